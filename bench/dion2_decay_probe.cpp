// Dion2's selection over a training run: how long a slice goes unselected, how
// large the momentum grows, and how much of a slice's gradients the full decay
// would have let fade before the slice was next selected. Trains one run from
// a config (as train_gpt, into its out_dir; never resumed, since the counts
// start at step 0) and writes a CSV row every --every steps:
//
//   step                 0-based step of the row
//   never_selected       fraction of all Dion2 slices not selected once so far
//   idle_mean, idle_max  steps since each slice's last selection (since the start
//                        for a slice never selected), mean and max over slices
//   gap_mean, gap_p90, gap_max
//                        the gaps g between a slice's consecutive selections
//                        (the first: steps since the start) ending in the row's
//                        window of --every steps
//   full_decay_keeps     mean over those gaps of (1/g) sum_{j<g} mu^j: the share of
//                        the gradients added over a gap that M *= mu every step
//                        keeps until the slice is selected (the selective decay
//                        keeps all of them: eq. 2's error feedback)
//   momentum_rms         RMS of M over the Dion2 matrices, after the step
//   slice_norm_max_median
//                        max over slices of ||M[slice]||_2 / the matrix's median
//                        slice norm, max over matrices
//
//   dion2_decay_probe --config configs/sotu_dion2.yaml [--set key=value ...] --csv probe.csv [--every 10]
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/device.h"
#include "dist/comm.h"
#include "train/logging.h"
#include "train/trainer.h"

using namespace llmdion;

namespace {

// One Dion2 matrix's slices: the step each was last selected (-1: never), and
// where its momentum lies in the optimizer's state.
struct MatrixSlices {
  int64_t offset, rows, cols, momentum_offset;
  std::vector<int64_t> last_selected;
};

double percentile90(std::vector<int64_t> values) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  return double(values[size_t(0.9 * double(values.size() - 1) + 0.5)]);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, csv_path;
  std::vector<std::string> overrides;
  int64_t every = 10;
  CLI::App app{"Dion2's slice selection and momentum over one training run"};
  app.add_option("--config", config_path, "the run's YAML config (optim.matrix: dion2)")->required();
  app.add_option("--set", overrides, "override a config key (repeatable)");
  app.add_option("--csv", csv_path, "where the statistics go")->required();
  app.add_option("--every", every, "steps per CSV row")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  setup_console_logging();
  std::unique_ptr<Comm> comm = make_comm(&argc, &argv);
  try {
    overrides.push_back("run.resume=never");
    const Config config = load_config(config_path, overrides);
    if (config.optim.matrix != "dion2")
      throw std::runtime_error("optim.matrix is '" + config.optim.matrix + "': the probe follows Dion2");
    if (comm->world_size() != 1) throw std::runtime_error("the probe runs on one rank");
    if (resolve_device(config.run.device) != Device::kCpu)
      throw std::runtime_error("the probe reads the momentum on the host: run.device must be cpu");
    std::filesystem::create_directories(config.run.out_dir);
    setup_logging(0, config.run.out_dir);
    const std::string csv_temp = csv_path + ".tmp";
    std::ofstream csv(csv_temp);
    if (!csv) throw std::runtime_error("cannot write '" + csv_temp + "'");
    csv << "step,never_selected,idle_mean,idle_max,gap_mean,gap_p90,gap_max,full_decay_keeps,momentum_rms,"
           "slice_norm_max_median\n";
    const double mu = config.optim.mu;
    std::vector<MatrixSlices> matrices;
    std::vector<int64_t> window_gaps;
    const int rc = run_training(config, *comm, [&](int64_t step, Optimizer& optimizer, const GptLayout& layout) {
      if (matrices.empty()) {
        int64_t momentum_offset = 0;
        for (const ParamTensor& t : layout.tensors) {
          if (t.role != ParamRole::kMatrix) continue;
          const SliceSelection* s = optimizer.changed_slices(t.offset);
          const int64_t d = s->dim == SliceDim::kRows ? t.shape[0] : t.shape[1];
          matrices.push_back({t.offset, t.shape[0], t.shape[1], momentum_offset, std::vector<int64_t>(size_t(d), -1)});
          momentum_offset += t.numel();
        }
      }
      for (MatrixSlices& m : matrices)
        for (int64_t i : optimizer.changed_slices(m.offset)->indices) {
          window_gaps.push_back(step - m.last_selected[size_t(i)]);
          m.last_selected[size_t(i)] = step;
        }
      if ((step + 1) % every != 0) return;

      int64_t slices = 0, never = 0, idle_max = 0;
      double idle_sum = 0, m_squares = 0, m_count = 0, norm_ratio_max = 0;
      const OptimizerState momentum_state = optimizer.state()[0];
      if (momentum_state.name != "dion2.momentum")
        throw std::runtime_error("the optimizer's first state is '" + momentum_state.name + "', not dion2.momentum");
      const std::span<float> momentum = momentum_state.data;  // on the host: the CPU backend
      for (const MatrixSlices& m : matrices) {
        const bool by_rows = optimizer.changed_slices(m.offset)->dim == SliceDim::kRows;
        std::vector<double> norms(m.last_selected.size(), 0.0);
        for (int64_t r = 0; r < m.rows; r++)
          for (int64_t c = 0; c < m.cols; c++) {
            const double v = momentum[size_t(m.momentum_offset + r * m.cols + c)];
            norms[size_t(by_rows ? r : c)] += v * v;
            m_squares += v * v;
          }
        m_count += double(m.rows * m.cols);
        for (double& n : norms) n = std::sqrt(n);
        std::vector<double> sorted = norms;
        std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
        const double median = sorted[sorted.size() / 2];
        if (median > 0) norm_ratio_max = std::max(norm_ratio_max, *std::max_element(norms.begin(), norms.end()) / median);
        for (int64_t last : m.last_selected) {
          const int64_t idle = step - last;
          slices++, never += last < 0, idle_sum += double(idle), idle_max = std::max(idle_max, idle);
        }
      }
      double keeps = 0, gap_sum = 0;
      for (int64_t g : window_gaps) keeps += (1 - std::pow(mu, double(g))) / ((1 - mu) * double(g)), gap_sum += double(g);
      const double n_gaps = double(window_gaps.size());
      csv << step << ',' << double(never) / double(slices) << ',' << idle_sum / double(slices) << ',' << idle_max
          << ',' << gap_sum / n_gaps << ',' << percentile90(window_gaps) << ','
          << *std::max_element(window_gaps.begin(), window_gaps.end()) << ',' << keeps / n_gaps << ','
          << std::sqrt(m_squares / m_count) << ',' << norm_ratio_max << std::endl;  // readable while it runs
      window_gaps.clear();
    });
    csv.close();
    if (!csv) throw std::runtime_error("writing '" + csv_temp + "' failed");
    std::filesystem::rename(csv_temp, csv_path);
    spdlog::info("selection statistics in {}", csv_path);
    return rc;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
