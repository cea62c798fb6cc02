// Squared ReLU (So et al. 2021), the paper GPT's MLP activation:
//   relu2(x) = max(x, 0)^2,   relu2'(x) = 2 max(x, 0)
#include "model/cpu/kernels.h"

namespace llmdion::cpu {

template <typename Real>
void relu2_forward(Real* out, const Real* inp, int64_t n) {
  #pragma omp parallel for
  for (int64_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] * inp[i] : Real(0);
}

template <typename Real>
void relu2_backward(Real* dinp, const Real* inp, const Real* dout, int64_t n) {
  #pragma omp parallel for
  for (int64_t i = 0; i < n; i++) dinp[i] = inp[i] > 0 ? Real(2) * inp[i] * dout[i] : Real(0);
}

template void relu2_forward<float>(float*, const float*, int64_t);
template void relu2_forward<double>(double*, const double*, int64_t);
template void relu2_backward<float>(float*, const float*, const float*, int64_t);
template void relu2_backward<double>(double*, const double*, const double*, int64_t);

}  // namespace llmdion::cpu
