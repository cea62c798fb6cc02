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

namespace llmdion::test {

// |got - want| <= rtol |want| + atol at every index (a NaN fails).
template <typename Value>
void expect_close(const std::vector<Value>& got, const std::vector<Value>& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0;
  std::ostringstream first;
  first.precision(9);
  for (size_t i = 0; i < want.size(); i++) {
    const double diff = std::fabs(double(got[i]) - double(want[i]));
    if (diff <= rtol * std::fabs(double(want[i])) + atol) continue;
    if (bad < 5) first << "\n  [" << i << "] got " << got[i] << ", want " << want[i];
    bad++;
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << want.size() << " elements differ by more than " << rtol
                     << " |want| + " << atol << first.str();
}

// The same bits at every index (floats compared as their patterns).
inline void expect_bitwise_equal(const std::vector<float>& got, const std::vector<float>& want,
                                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0;
  std::ostringstream first;
  first.precision(9);
  for (size_t i = 0; i < want.size(); i++) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) == 0) continue;
    if (bad < 5) first << "\n  [" << i << "] got " << got[i] << ", want " << want[i];
    bad++;
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << want.size() << " elements differ in their bits"
                     << first.str();
}

inline double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

}  // namespace llmdion::test
