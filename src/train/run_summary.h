// done.yaml: a finished run's summary, written last (trainer.h), from its
// loss.csv, its wall time and what built it. Sweep scripts and
// scripts/results.py read it:
//   steps, tokens, train_loss, val_loss     the last step's losses
//   best_val_loss, best_val_step            the lowest evaluation and its step
//   wall_seconds                            training time over every resume
//   tokens_per_s_mean                       tokens / the steps' summed time
//   tokens_per_s_median, step_ms_median, opt_ms_median (with _p25, _p75: the
//                                           spread) over the steps after the
//                                           first timing_warmup_steps(steps)
//   config_hash, version                    what was trained (config.h), by what
#pragma once

#include <cstdint>
#include <string>

namespace llmdion {

// The first steps hold one-time costs (allocation, page faults, library
// heuristics): the timing medians start after min(10, steps / 4) of them.
int64_t timing_warmup_steps(int64_t steps);

struct Spread {
  double p25 = 0, median = 0, p75 = 0;
};

struct RunSummary {
  int64_t steps = 0, tokens = 0;
  double train_loss = 0, val_loss = 0;
  double best_val_loss = 0;
  int64_t best_val_step = -1;
  double tokens_per_s_mean = 0;
  Spread tokens_per_s, step_ms, opt_ms;
};

// Reads loss.csv (trainer.h's columns); throws naming the file and line when
// a row is malformed or no step has a val loss.
RunSummary summarize_loss_csv(const std::string& path);

// done.yaml's text.
std::string done_yaml(const RunSummary& summary, double wall_seconds, const std::string& config_hash);

}  // namespace llmdion
