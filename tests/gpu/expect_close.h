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

}  // namespace llmdion::test
