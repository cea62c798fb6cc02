// GELU, tanh form (Hendrycks and Gimpel 2016), as in GPT-2:
//   gelu(x)  = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
#include <cmath>

#include "model/cpu/kernels.h"

namespace llmdion::cpu {

constexpr double kSqrt2OverPi = 0.7978845608028654;

template <typename Real>
void gelu_forward(Real* out, const Real* inp, int64_t n) {
  #pragma omp parallel for
  for (int64_t i = 0; i < n; i++) {
    const Real x = inp[i];
    out[i] = Real(0.5) * x * (Real(1) + std::tanh(Real(kSqrt2OverPi) * (x + Real(0.044715) * x * x * x)));
  }
}

template <typename Real>
void gelu_backward(Real* dinp, const Real* inp, const Real* dout, int64_t n) {
  #pragma omp parallel for
  for (int64_t i = 0; i < n; i++) {
    const Real x = inp[i];
    const Real th = std::tanh(Real(kSqrt2OverPi) * (x + Real(0.044715) * x * x * x));
    const Real local = Real(0.5) * (Real(1) + th) +
                       Real(0.5) * x * (Real(1) - th * th) * Real(kSqrt2OverPi) * (Real(1) + Real(3 * 0.044715) * x * x);
    dinp[i] = local * dout[i];
  }
}

template void gelu_forward<float>(float*, const float*, int64_t);
template void gelu_forward<double>(double*, const double*, int64_t);
template void gelu_backward<float>(float*, const float*, const float*, int64_t);
template void gelu_backward<double>(double*, const double*, const double*, int64_t);

}  // namespace llmdion::cpu
