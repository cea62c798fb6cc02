#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace llmdion {

double lr_multiplier(const ScheduleConfig& schedule, int64_t step, int64_t total_steps) {
  const int64_t warmup = schedule.warmup_steps;
  if (step < warmup) return double(step + 1) / double(warmup);
  const double final_frac = schedule.final_lr_frac;
  if (schedule.kind == "cosine") {
    const double progress = total_steps > warmup ? double(step - warmup) / double(total_steps - warmup) : 1.0;
    return final_frac + (1.0 - final_frac) * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
  }
  const double decay_steps = schedule.decay_frac * double(total_steps);
  const double decay_start = double(total_steps) - decay_steps;
  if (decay_steps <= 0 || double(step) < decay_start) return 1.0;
  // Reaches final_frac exactly at the last step.
  const double progress = (double(step) - decay_start + 1.0) / decay_steps;
  return 1.0 - (1.0 - final_frac) * std::min(1.0, progress);
}

std::vector<std::string> schedule_warnings(const ScheduleConfig& schedule, int64_t total_steps) {
  std::vector<std::string> warnings;
  const auto steps = std::to_string(total_steps), warmup = std::to_string(schedule.warmup_steps);
  if (schedule.warmup_steps >= total_steps)
    warnings.push_back("schedule.warmup_steps " + warmup + " >= train.steps " + steps +
                       ": the warmup takes the whole run (the peak learning rate comes at the last step, or never)");
  if (schedule.kind == "wsd") {
    const int64_t decay_steps = int64_t(std::floor(schedule.decay_frac * double(total_steps)));
    if (decay_steps < 1)
      warnings.push_back("schedule.decay_frac " + std::to_string(schedule.decay_frac) + " of " + steps +
                         " steps is an empty decay phase: the learning rate stays at its peak to the end");
    else if (schedule.warmup_steps < total_steps && schedule.warmup_steps > total_steps - decay_steps)
      warnings.push_back("schedule.warmup_steps " + warmup + " runs into the decay phase (its last " +
                         std::to_string(decay_steps) + " of " + steps + " steps)");
  }
  return warnings;
}

}  // namespace llmdion
