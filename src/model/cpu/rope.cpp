// Rotary position embedding (Su et al. 2021), the half-split form: in each
// head of q and k at position t, the pair (x_j, x_{j+hs/2}), j < hs/2, turns by
// the angle t * theta^(-2j/hs):
//   forward:  (a, b) -> (a cos - b sin, a sin + b cos)
//   backward: the inverse turn, (da, db) -> (da cos + db sin, -da sin + db cos)
// In place on the heads of rows [N = B*T, stride]; cos and sin are [T, hs/2].
#include <cmath>

#include "model/cpu/kernels.h"

namespace llmdion::cpu {

template <typename Real>
void rope_tables(Real* cos_table, Real* sin_table, int64_t T, int64_t hs, double theta) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t j = 0; j < hs / 2; j++) {
      const double angle = double(t) * std::pow(theta, -2.0 * double(j) / double(hs));
      cos_table[t * (hs / 2) + j] = Real(std::cos(angle));
      sin_table[t * (hs / 2) + j] = Real(std::sin(angle));
    }
}

template <typename Real>
void rope_rotate(Real* x, const Real* cos_table, const Real* sin_table, int64_t N, int64_t T, int64_t heads, int64_t hs,
                 int64_t stride, bool inverse) {
  const int64_t half = hs / 2;
  const Real direction = inverse ? Real(-1) : Real(1);
  #pragma omp parallel for
  for (int64_t nh = 0; nh < N * heads; nh++) {
    Real* head = x + (nh / heads) * stride + (nh % heads) * hs;
    const Real* c = cos_table + ((nh / heads) % T) * half;
    const Real* s = sin_table + ((nh / heads) % T) * half;
    for (int64_t j = 0; j < half; j++) {
      const Real a = head[j], b = head[j + half];
      head[j] = a * c[j] - direction * b * s[j];
      head[j + half] = direction * a * s[j] + b * c[j];
    }
  }
}

template void rope_tables<float>(float*, float*, int64_t, int64_t, double);
template void rope_tables<double>(double*, double*, int64_t, int64_t, double);
template void rope_rotate<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
template void rope_rotate<double>(double*, const double*, const double*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                  bool);

}  // namespace llmdion::cpu
