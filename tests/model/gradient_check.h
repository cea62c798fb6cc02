// Comparing fp32 gradients with a float64 reference, tensor by tensor.
#pragma once

#include <gtest/gtest.h>

#include <cmath>

#include "model/gpt.h"

namespace llmdion::test {

// ||ours - ref|| / ||ref|| over n values.
inline double relative_error(const float* ours, const double* ref, int64_t n) {
  double diff2 = 0, ref2 = 0;
  for (int64_t i = 0; i < n; i++) {
    diff2 += (double(ours[i]) - ref[i]) * (double(ours[i]) - ref[i]);
    ref2 += ref[i] * ref[i];
  }
  return std::sqrt(diff2 / std::max(ref2, 1e-300));
}

// Every tensor's gradient within `tolerance` (norm-wise relative). A gradient
// that is zero in exact arithmetic (attn.k.bias: softmax ignores a constant
// added to every key score) holds only rounding, so it must instead be
// negligible next to the whole gradient.
inline void expect_gradients_match(const GptLayout& layout, const float* ours, const double* ref, double tolerance) {
  double all2 = 0;
  for (int64_t i = 0; i < layout.num_params; i++) all2 += ref[i] * ref[i];
  for (const ParamTensor& t : layout.tensors) {
    double ref2 = 0, ours2 = 0;
    for (int64_t i = 0; i < t.numel(); i++) {
      ref2 += ref[t.offset + i] * ref[t.offset + i];
      ours2 += double(ours[t.offset + i]) * ours[t.offset + i];
    }
    if (ref2 < 1e-20 * all2) {
      EXPECT_LT(std::sqrt(ours2 / all2), 1e-6) << t.name;
      continue;
    }
    EXPECT_LT(relative_error(ours + t.offset, ref + t.offset, t.numel()), tolerance) << t.name;
  }
}

}  // namespace llmdion::test
