#include "train/schedule.h"

#include <algorithm>
#include <cmath>

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

}  // namespace llmdion
