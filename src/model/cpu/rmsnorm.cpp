// RMSNorm (Zhang and Sennrich 2019) over the last dimension, eps = 1e-5:
//   y = x * rstd,  rstd = 1 / sqrt(mean(x^2) + eps),  out = y * w   (w null: no learned scale)
// backward, with g = dout * w:
//   dx = rstd * (g - y * mean(g * y)),  dw += sum_n dout * y
// The same without a scale normalizes each attention head's q and k in place
// (qk-norm); its backward takes the normalized output y, which is what stays.
#include <algorithm>
#include <cmath>

#include "model/cpu/kernels.h"

namespace llmdion::cpu {

constexpr double kRmsEps = 1e-5;

template <typename Real>
void rmsnorm_forward(Real* out, Real* rstd, const Real* inp, const Real* weight, int64_t N, int64_t C) {
  #pragma omp parallel for
  for (int64_t n = 0; n < N; n++) {
    const Real* x = inp + n * C;
    Real sum = 0;
    for (int64_t i = 0; i < C; i++) sum += x[i] * x[i];
    const Real s = Real(1) / std::sqrt(sum / Real(C) + Real(kRmsEps));
    for (int64_t i = 0; i < C; i++) out[n * C + i] = x[i] * s * (weight ? weight[i] : Real(1));
    rstd[n] = s;
  }
}

template <typename Real>
void rmsnorm_backward(Real* dinp, Real* dweight, const Real* dout, const Real* inp, const Real* weight,
                      const Real* rstd, int64_t N, int64_t C) {
  #pragma omp parallel for
  for (int64_t n = 0; n < N; n++) {
    const Real* x = inp + n * C;
    const Real* d = dout + n * C;
    Real g_y_mean = 0;
    for (int64_t i = 0; i < C; i++) g_y_mean += d[i] * (weight ? weight[i] : Real(1)) * x[i] * rstd[n];
    g_y_mean /= Real(C);
    for (int64_t i = 0; i < C; i++)
      dinp[n * C + i] += rstd[n] * (d[i] * (weight ? weight[i] : Real(1)) - x[i] * rstd[n] * g_y_mean);
  }
  if (!dweight) return;
  constexpr int64_t kBlock = 64;
  #pragma omp parallel for
  for (int64_t i0 = 0; i0 < C; i0 += kBlock) {
    const int64_t i1 = std::min(C, i0 + kBlock);
    Real dw[kBlock] = {};
    for (int64_t n = 0; n < N; n++)
      for (int64_t i = i0; i < i1; i++) dw[i - i0] += dout[n * C + i] * inp[n * C + i] * rstd[n];
    for (int64_t i = i0; i < i1; i++) dweight[i] += dw[i - i0];
  }
}

template <typename Real>
void head_rmsnorm_forward(Real* x, Real* rstd, int64_t N, int64_t heads, int64_t hs, int64_t stride) {
  #pragma omp parallel for
  for (int64_t nh = 0; nh < N * heads; nh++) {
    Real* head = x + (nh / heads) * stride + (nh % heads) * hs;
    Real sum = 0;
    for (int64_t i = 0; i < hs; i++) sum += head[i] * head[i];
    const Real s = Real(1) / std::sqrt(sum / Real(hs) + Real(kRmsEps));
    for (int64_t i = 0; i < hs; i++) head[i] *= s;
    rstd[nh] = s;
  }
}

template <typename Real>
void head_rmsnorm_backward(Real* d, const Real* y, const Real* rstd, int64_t N, int64_t heads, int64_t hs,
                           int64_t stride) {
  #pragma omp parallel for
  for (int64_t nh = 0; nh < N * heads; nh++) {
    const int64_t at = (nh / heads) * stride + (nh % heads) * hs;
    Real dot = 0;
    for (int64_t i = 0; i < hs; i++) dot += d[at + i] * y[at + i];
    dot /= Real(hs);
    for (int64_t i = 0; i < hs; i++) d[at + i] = rstd[nh] * (d[at + i] - y[at + i] * dot);
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*, int64_t,
                                      int64_t);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*, const double*,
                                       int64_t, int64_t);
template void head_rmsnorm_forward<float>(float*, float*, int64_t, int64_t, int64_t, int64_t);
template void head_rmsnorm_forward<double>(double*, double*, int64_t, int64_t, int64_t, int64_t);
template void head_rmsnorm_backward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t);
template void head_rmsnorm_backward<double>(double*, const double*, const double*, int64_t, int64_t, int64_t, int64_t);

}  // namespace llmdion::cpu
