// The learning-rate multiplier of step s (0-based) of S steps, warmup W:
//   warmup:  (s + 1) / W                                       for s < W
//   wsd:     1, then over the last decay_frac * S steps a linear fall to final_lr_frac
//            (the Dion2 paper's constant schedule with a 25% decay period)
//   cosine:  final + (1 - final) * (1 + cos(pi * p)) / 2,  p = (s - W) / (S - W)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace llmdion {

double lr_multiplier(const ScheduleConfig& schedule, int64_t step, int64_t total_steps);

// What a schedule of total_steps most likely did not mean: a warmup as long as
// the run, no step left at the peak, or (wsd) an empty decay phase.
std::vector<std::string> schedule_warnings(const ScheduleConfig& schedule, int64_t total_steps);

}  // namespace llmdion
