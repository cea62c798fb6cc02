// Element-by-element checks for the kernel tests, sharper than a norm-wise
// error: one wrong element among a million fails. Failures show how many
// elements are off and the first few, with both numbers.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "gpu/gpu_test_util.h"

namespace llmdion::test {

// Every index where agrees(i) is false counted, the first five shown with both numbers.
template <typename Value, typename Agrees>
void expect_all(const std::vector<Value>& got, const std::vector<Value>& want, Agrees agrees, const std::string& what,
                const std::string& rule) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0;
  std::ostringstream first;
  first.precision(9);
  for (size_t i = 0; i < want.size(); i++) {
    if (agrees(i)) continue;
    if (bad < 5) first << "\n  [" << i << "] got " << got[i] << ", want " << want[i];
    bad++;
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << want.size() << " elements " << rule << first.str();
}

// |got - want| <= rtol |want| + atol at every index (a NaN fails).
template <typename Value>
void expect_close(const std::vector<Value>& got, const std::vector<Value>& want, double rtol, double atol,
                  const std::string& what) {
  std::ostringstream rule;
  rule << "differ by more than " << rtol << " |want| + " << atol;
  expect_all(got, want, [&](size_t i) {
    return std::fabs(double(got[i]) - double(want[i])) <= rtol * std::fabs(double(want[i])) + atol;
  }, what, rule.str());
}

// The same bits at every index (floats compared as their patterns).
inline void expect_bitwise_equal(const std::vector<float>& got, const std::vector<float>& want,
                                 const std::string& what) {
  expect_all(got, want, [&](size_t i) { return std::memcmp(&got[i], &want[i], sizeof(float)) == 0; }, what,
             "differ in their bits");
}

inline double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

// A bf16 output against its fp32 reference: norm-wise within kBf16Tolerance, and
// element by element within one bf16 step (1/128; rounding costs at most half of
// one, after fp32 math agreeing to ~1e-6) plus 1e-3 of the largest value, for
// elements near zero where the fp32 math cancels.
inline void expect_bf16_output_close(const std::vector<float>& got, const std::vector<float>& want,
                                     const std::string& what) {
  EXPECT_LT(relative_error(got, want), kBf16Tolerance) << what;
  expect_close(got, want, 1.0 / 128, 1e-3 * max_abs(want), what);
}

}  // namespace llmdion::test
