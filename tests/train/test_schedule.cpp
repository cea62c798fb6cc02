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
}  // namespace llmdion
