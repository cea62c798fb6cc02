// The learning-rate schedule against its definition, point by point.
#include <gtest/gtest.h>

#include <cmath>

#include "train/schedule.h"

namespace llmdion {
namespace {

TEST(Schedule, wsd_warms_up_holds_then_decays_linearly_over_the_last_quarter) {
  ScheduleConfig s;
  s.kind = "wsd", s.warmup_steps = 10, s.decay_frac = 0.25, s.final_lr_frac = 0.1;
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 0, 100), 0.1);   // (0 + 1) / 10
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 74, 100), 1.0);  // decay starts at step 75
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 75, 100), 1.0 - 0.9 * 1.0 / 25.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 87, 100), 1.0 - 0.9 * 13.0 / 25.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 99, 100), 0.1);  // the last step reaches final_lr_frac
  for (int64_t step = 76; step < 100; step++)
    EXPECT_LT(lr_multiplier(s, step, 100), lr_multiplier(s, step - 1, 100)) << step;
}

TEST(Schedule, zero_decay_fraction_is_constant_after_warmup) {
  ScheduleConfig s;
  s.warmup_steps = 0, s.decay_frac = 0;
  for (int64_t step : {0, 1, 50, 99}) EXPECT_DOUBLE_EQ(lr_multiplier(s, step, 100), 1.0);
}

TEST(Schedule, cosine_goes_from_one_to_the_final_fraction) {
  ScheduleConfig s;
  s.kind = "cosine", s.warmup_steps = 4, s.final_lr_frac = 0.0;
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 3, 104), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 4, 104), 1.0);
  EXPECT_NEAR(lr_multiplier(s, 54, 104), 0.5, 1e-12);
  EXPECT_NEAR(lr_multiplier(s, 29, 104), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_NEAR(lr_multiplier(s, 104, 104), 0.0, 1e-12);
}

}  // namespace
// Each warning holds exactly when lr_multiplier shows the problem: no step
// at the peak before the last, or (wsd) no step below the peak after the
// warmup, or warmup steps inside the decay phase.
TEST(Schedule, warnings_name_what_the_multipliers_show) {
  for (const char* kind : {"wsd", "cosine"})
    for (int64_t warmup : {0, 5, 8, 10, 30})
      for (double decay_frac : {0.0, 0.05, 0.25}) {
        ScheduleConfig s;
        s.kind = kind, s.warmup_steps = warmup, s.decay_frac = decay_frac;
        const int64_t steps = 10;
        bool peak_before_last = false, decays_after_warmup = false, warmup_in_decay = false;
        for (int64_t step = 0; step < steps; step++) {
          const double m = lr_multiplier(s, step, steps);
          const double m_without_warmup = lr_multiplier(ScheduleConfig{s.kind, 0, s.decay_frac, 0.0}, step, steps);
          peak_before_last |= m == 1.0 && step + 1 < steps;
          decays_after_warmup |= step >= warmup && m < 1.0;
          warmup_in_decay |= step < warmup && m_without_warmup < 1.0;
        }
        std::string all;
        for (const std::string& w : schedule_warnings(s, steps)) all += w + "\n";
        SCOPED_TRACE(std::string(kind) + " warmup " + std::to_string(warmup) + " decay " + std::to_string(decay_frac));
        EXPECT_EQ(all.find("the warmup takes the whole run") != std::string::npos, !peak_before_last) << all;
        if (s.kind == "wsd" && peak_before_last) {
          EXPECT_EQ(all.find("empty decay phase") != std::string::npos, !decays_after_warmup) << all;
          EXPECT_EQ(all.find("runs into the decay phase") != std::string::npos, warmup_in_decay) << all;
        }
      }
}

}  // namespace llmdion
