#include "train/run_summary.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "core/version.h"

namespace llmdion {

int64_t timing_warmup_steps(int64_t steps) { return std::min<int64_t>(10, steps / 4); }

namespace {

// Quartiles by linear interpolation between order statistics (numpy's default).
Spread spread_of(std::vector<double> values) {
  if (values.empty()) return {NAN, NAN, NAN};
  std::sort(values.begin(), values.end());
  const auto quantile = [&](double q) {
    const double at = q * double(values.size() - 1);
    const size_t below = size_t(std::floor(at));
    const size_t above = std::min(below + 1, values.size() - 1);
    return values[below] + (at - double(below)) * (values[above] - values[below]);
  };
  return {quantile(0.25), quantile(0.5), quantile(0.75)};
}

}  // namespace

RunSummary summarize_loss_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::string line;
  std::getline(in, line);  // the header
  RunSummary s;
  double seconds = 0;
  std::vector<double> tokens_per_s, step_ms, opt_ms;
  struct Row {
    int64_t step, tokens;
    double train_loss, val_loss, step_ms, opt_ms, tokens_per_s;
  };
  std::vector<Row> rows;
  for (int64_t number = 2; std::getline(in, line); number++) {
    if (line.empty()) continue;
    std::vector<std::string> cells;
    std::stringstream fields(line);
    for (std::string cell; std::getline(fields, cell, ',');) cells.push_back(cell);
    if (line.back() == ',') cells.push_back("");
    try {
      if (cells.size() < 9) throw std::invalid_argument("too few columns");
      rows.push_back({std::stoll(cells[0]), std::stoll(cells[1]), std::stod(cells[3]),
                      cells[4].empty() ? NAN : std::stod(cells[4]), std::stod(cells[6]), std::stod(cells[7]),
                      std::stod(cells[8])});
    } catch (const std::exception&) {
      throw std::runtime_error("'" + path + "' line " + std::to_string(number) + " is not a row of loss.csv: '" +
                               line.substr(0, 60) + "'");
    }
  }
  if (rows.empty()) throw std::runtime_error("'" + path + "' holds no steps");
  const Row& last = rows.back();
  s.steps = last.step + 1, s.tokens = last.tokens;
  s.train_loss = last.train_loss, s.val_loss = last.val_loss;
  const int64_t warmup = timing_warmup_steps(s.steps);
  for (const Row& r : rows) {
    seconds += r.step_ms / 1000.0;
    if (std::isfinite(r.val_loss) && (s.best_val_step < 0 || r.val_loss < s.best_val_loss))
      s.best_val_loss = r.val_loss, s.best_val_step = r.step;
    if (r.step < warmup) continue;
    tokens_per_s.push_back(r.tokens_per_s), step_ms.push_back(r.step_ms), opt_ms.push_back(r.opt_ms);
  }
  if (s.best_val_step < 0) throw std::runtime_error("'" + path + "' holds no val loss");
  s.tokens_per_s_mean = seconds > 0 ? double(s.tokens) / seconds : NAN;
  s.tokens_per_s = spread_of(tokens_per_s), s.step_ms = spread_of(step_ms), s.opt_ms = spread_of(opt_ms);
  return s;
}

std::string done_yaml(const RunSummary& s, double wall_seconds, const std::string& config_hash) {
  const auto spread = [](const char* name, const Spread& v) {
    return fmt::format("{0}_median: {1:.6g}\n{0}_p25: {2:.6g}\n{0}_p75: {3:.6g}\n", name, v.median, v.p25, v.p75);
  };
  return fmt::format("steps: {}\ntokens: {}\ntrain_loss: {:.9g}\nval_loss: {:.9g}\nbest_val_loss: {:.9g}\n"
                     "best_val_step: {}\nwall_seconds: {:.3f}\ntokens_per_s_mean: {:.6g}\n",
                     s.steps, s.tokens, s.train_loss, s.val_loss, s.best_val_loss, s.best_val_step, wall_seconds,
                     s.tokens_per_s_mean) +
         spread("tokens_per_s", s.tokens_per_s) + spread("step_ms", s.step_ms) + spread("opt_ms", s.opt_ms) +
         fmt::format("timing_warmup_steps: {}\nconfig_hash: \"{}\"\nversion: \"{}\"\n", timing_warmup_steps(s.steps),
                     config_hash, build_version());
}

}  // namespace llmdion
