// LayerNorm (Ba et al. 2016) over the last dimension, eps = 1e-5:
//   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(mean((x - mean)^2) + eps),  out = xhat * w + b
// (w null: no learned scale, w = 1; b null: no shift)
// backward, with g = dout * w:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dw += sum_n dout * xhat,  db += sum_n dout
// Threads own rows for dx and blocks of channels for dw, db (fixed order).
#include <algorithm>
#include <cmath>

#include "model/cpu/kernels.h"

namespace llmdion::cpu {

template <typename Real>
void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight, const Real* bias,
                       int64_t N, int64_t C) {
  #pragma omp parallel for
  for (int64_t n = 0; n < N; n++) {
    const Real* x = inp + n * C;
    Real m = 0;
    for (int64_t i = 0; i < C; i++) m += x[i];
    m /= Real(C);
    Real v = 0;
    for (int64_t i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
    v /= Real(C);
    const Real s = Real(1) / std::sqrt(v + Real(1e-5));
    for (int64_t i = 0; i < C; i++)
      out[n * C + i] = (x[i] - m) * s * (weight ? weight[i] : Real(1)) + (bias ? bias[i] : Real(0));
    mean[n] = m;
    rstd[n] = s;
  }
}

template <typename Real>
void layernorm_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                        const Real* weight, const Real* mean, const Real* rstd, int64_t N, int64_t C) {
  #pragma omp parallel for
  for (int64_t n = 0; n < N; n++) {
    const Real* x = inp + n * C;
    const Real* d = dout + n * C;
    Real g_mean = 0, g_xhat_mean = 0;
    for (int64_t i = 0; i < C; i++) {
      const Real g = d[i] * (weight ? weight[i] : Real(1));
      g_mean += g;
      g_xhat_mean += g * (x[i] - mean[n]) * rstd[n];
    }
    g_mean /= Real(C);
    g_xhat_mean /= Real(C);
    for (int64_t i = 0; i < C; i++) {
      const Real xhat = (x[i] - mean[n]) * rstd[n];
      dinp[n * C + i] += rstd[n] * (d[i] * (weight ? weight[i] : Real(1)) - g_mean - xhat * g_xhat_mean);
    }
  }
  if (!dweight) return;
  constexpr int64_t kBlock = 64;
  #pragma omp parallel for
  for (int64_t i0 = 0; i0 < C; i0 += kBlock) {
    const int64_t i1 = std::min(C, i0 + kBlock);
    Real dw[kBlock] = {}, db[kBlock] = {};
    for (int64_t n = 0; n < N; n++)
      for (int64_t i = i0; i < i1; i++) {
        dw[i - i0] += dout[n * C + i] * (inp[n * C + i] - mean[n]) * rstd[n];
        db[i - i0] += dout[n * C + i];
      }
    for (int64_t i = i0; i < i1; i++) {
      dweight[i] += dw[i - i0];
      if (dbias) dbias[i] += db[i - i0];
    }
  }
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                       int64_t);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*,
                                        int64_t, int64_t);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                        const float*, const float*, int64_t, int64_t);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                         const double*, const double*, int64_t, int64_t);

}  // namespace llmdion::cpu
