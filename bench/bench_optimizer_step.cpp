// Matrix optimizer step time on the CPU: the six matrices of one transformer
// block (q, k, v, o: d x d; mlp.fc: 4d x d; mlp.proj: d x 4d) stepped by AdamW,
// Muon, Dion (rank d/4) and Dion2 (alpha 0.5, 0.25, 0.125); median of N steps
// after one warmup step, printed as a table with the time relative to Muon.
//   bench_optimizer_step [d_model ...] [--steps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "optim/adamw.h"
#include "optim/dion.h"
#include "optim/dion2.h"
#include "optim/matrix_ops.h"
#include "optim/muon.h"

using namespace llmdion;

namespace {

struct Variant {
  std::string name;
  std::string matrix;
  double alpha = 0.25, rank_frac = 0.25;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> widths;
  int steps = 5;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else widths.push_back(std::atoll(argv[i]));
  }
  if (widths.empty()) widths = {256, 512, 1024};
  if (steps < 1) {
    std::fprintf(stderr, "bench_optimizer_step: --steps must be at least 1\n");
    return 2;
  }
  const std::vector<Variant> variants = {{"AdamW", "adamw"},          {"Muon", "muon"},
                                         {"Dion rank d/4", "dion"},  {"Dion2 alpha 0.5", "dion2", 0.5},
                                         {"Dion2 alpha 0.25", "dion2", 0.25}, {"Dion2 alpha 0.125", "dion2", 0.125}};
  std::printf("| d_model | optimizer | step ms (one block, 12 d^2 values) | vs Muon |\n|---|---|---|---|\n");
  for (int64_t d : widths) {
    std::vector<MatrixParam> matrices;
    int64_t numel = 0;
    for (const auto& [name, rows, cols] : std::vector<std::tuple<const char*, int64_t, int64_t>>{
             {"q", d, d}, {"k", d, d}, {"v", d, d}, {"o", d, d}, {"fc", 4 * d, d}, {"proj", d, 4 * d}}) {
      matrices.push_back({name, numel, rows, cols});
      numel += rows * cols;
    }
    std::vector<float> weights(static_cast<size_t>(numel)), grads(static_cast<size_t>(numel));
    SplitMix64 rng{1};
    for (float& w : weights) w = float(int64_t(rng.below(2001)) - 1000) * 2e-5f;
    for (float& g : grads) g = float(int64_t(rng.below(2001)) - 1000) * 1e-6f;
    double muon_ms = 0;
    for (const Variant& v : variants) {
      OptimConfig config;
      config.matrix = v.matrix;
      config.alpha = v.alpha;
      config.rank_frac = v.rank_frac;
      std::unique_ptr<MatrixOps> ops = make_matrix_ops("cpu");
      std::unique_ptr<Optimizer> optimizer;
      if (v.matrix == "adamw") {
        AdamWGroup group{"matrices", {}, 1e-3, 0.9, 0.95, 1e-8, 0.1};
        for (const MatrixParam& p : matrices) group.params.push_back({p.name, p.offset, p.numel()});
        optimizer = std::make_unique<AdamW>(std::vector<AdamWGroup>{group}, Device::kCpu);
      } else if (v.matrix == "muon") {
        optimizer = std::make_unique<Muon>(config, matrices, *ops);
      } else if (v.matrix == "dion") {
        optimizer = std::make_unique<Dion>(config, matrices, *ops, 1);
      } else {
        optimizer = std::make_unique<Dion2>(config, matrices, *ops, 1);
      }
      std::vector<double> times;
      for (int s = 0; s <= steps; s++) {
        const auto start = std::chrono::steady_clock::now();
        optimizer->step(weights, grads, 1.0, s + 1);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        if (s > 0) times.push_back(ms);
      }
      const double ms = median(times);
      if (v.matrix == "muon") muon_ms = ms;
      std::printf("| %lld | %s | %.1f | %s |\n", static_cast<long long>(d), v.name.c_str(), ms,
                  muon_ms > 0 ? (std::to_string(ms / muon_ms).substr(0, 4) + "x").c_str() : "-");
      std::fflush(stdout);
    }
  }
  return 0;
}
