// Elementwise math the compiler can vectorize, with results that do not depend
// on the vector width or the thread count.
//
// exp(x) for x <= 0 (Cephes expf): x = n ln2 + r, |r| <= ln2/2, with n rounded
// to nearest; exp(r) ~ 1 + r + r^2 (p5 + r (p4 + ... r p0)), then scaled by 2^n
// through the exponent bits. Relative error about 1e-7; x < -87.3 gives ~1e-38.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace llmdion::cpu {

inline float exp_nonpositive(float x) {
  x = x < -87.3f ? -87.3f : x;
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((int32_t(n) + 127) << 23);
}

// The fp64 path is the precise reference: the library's exp.
inline double exp_nonpositive(double x) { return std::exp(x); }

// Sums in 8 interleaved lanes, then the lanes in order: a fixed order the
// compiler can still vectorize.
template <typename Real>
inline Real lane_sum(const Real* x, int64_t n) {
  Real lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) lanes[k] += x[i + k];
  for (; i < n; i++) lanes[i % 8] += x[i];
  Real total = 0;
  for (int k = 0; k < 8; k++) total += lanes[k];
  return total;
}

template <typename Real>
inline Real lane_max(const Real* x, int64_t n) {
  Real lanes[8];
  for (int k = 0; k < 8; k++) lanes[k] = x[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) lanes[k] = lanes[k] > x[i + k] ? lanes[k] : x[i + k];
  for (; i < n; i++) lanes[i % 8] = lanes[i % 8] > x[i] ? lanes[i % 8] : x[i];
  Real m = lanes[0];
  for (int k = 1; k < 8; k++) m = m > lanes[k] ? m : lanes[k];
  return m;
}

}  // namespace llmdion::cpu
