// Causal multi-head self-attention, its products on BLAS. Rows of qkv hold
// [q heads (NH) | k heads (NKV) | v heads (NKV)], hs values each; query head h
// reads kv head h / (NH / NKV) (grouped-query attention when NKV < NH, without
// copying K or V). With Q, K, V one head's [T, hs] slices and s = 1/sqrt(hs):
//   forward:  S = s Q K^T,  P = softmax(S) row-wise over columns j <= i (0 above),  Y = P V
//   backward: dP = dY V^T,  dV = sum over the group of P^T dY,  dS = P * (dP - rowsum(dP * P)),
//             dQ = s dS K,  dK = sum over the group of s dS^T Q
// The forward runs one (batch, query head) per thread, the backward one
// (batch, kv head) per thread, its group's query heads in order (no races,
// a fixed summation order). probs keeps P [B, NH, T, T]; scratch holds one
// T x T dS per thread.
#include <omp.h>

#include <cmath>

#include "model/cpu/kernels.h"
#include "model/cpu/vector_math.h"

namespace llmdion::cpu {

template <typename Real>
void attention_forward(Real* out, Real* probs, const Real* qkv, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                       int64_t hs) {
  const int64_t W = (NH + 2 * NKV) * hs, C = NH * hs, group = NH / NKV;
  const Real scale = Real(1) / std::sqrt(Real(hs));
  #pragma omp parallel for
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const int64_t b = bh / NH, h = bh % NH, kv = h / group;
    const Real* q = qkv + b * T * W + h * hs;
    const Real* k = qkv + b * T * W + (NH + kv) * hs;
    const Real* v = qkv + b * T * W + (NH + NKV + kv) * hs;
    Real* p = probs + bh * T * T;
    gemm<Real>(false, true, T, T, hs, scale, q, W, k, W, 0, p, T);
    for (int64_t i = 0; i < T; i++) {
      Real* row = p + i * T;
      const Real max = lane_max(row, i + 1);
      for (int64_t j = 0; j <= i; j++) row[j] = exp_nonpositive(row[j] - max);
      const Real inv_sum = Real(1) / lane_sum(row, i + 1);
      for (int64_t j = 0; j <= i; j++) row[j] *= inv_sum;
      for (int64_t j = i + 1; j < T; j++) row[j] = 0;
    }
    gemm<Real>(false, false, T, hs, T, 1, p, T, v, W, 0, out + b * T * C + h * hs, C);
  }
}

template <typename Real>
void attention_backward(Real* dqkv, Real* scratch, const Real* dout, const Real* qkv, const Real* probs, int64_t B,
                        int64_t T, int64_t NH, int64_t NKV, int64_t hs) {
  const int64_t W = (NH + 2 * NKV) * hs, C = NH * hs, group = NH / NKV;
  const Real scale = Real(1) / std::sqrt(Real(hs));
  #pragma omp parallel for
  for (int64_t bkv = 0; bkv < B * NKV; bkv++) {
    const int64_t b = bkv / NKV, kv = bkv % NKV;
    const Real* k = qkv + b * T * W + (NH + kv) * hs;
    const Real* v = qkv + b * T * W + (NH + NKV + kv) * hs;
    Real* dk = dqkv + b * T * W + (NH + kv) * hs;
    Real* dv = dqkv + b * T * W + (NH + NKV + kv) * hs;
    Real* ds = scratch + int64_t(omp_get_thread_num()) * T * T;
    for (int64_t g = 0; g < group; g++) {
      const int64_t h = kv * group + g;
      const Real* q = qkv + b * T * W + h * hs;
      Real* dq = dqkv + b * T * W + h * hs;
      const Real* dy = dout + b * T * C + h * hs;
      const Real* p = probs + (b * NH + h) * T * T;
      const Real accumulate = g == 0 ? Real(0) : Real(1);
      gemm<Real>(false, true, T, T, hs, 1, dy, C, v, W, 0, ds, T);            // dP
      gemm<Real>(true, false, T, hs, T, 1, p, T, dy, C, accumulate, dv, W);   // dV
      for (int64_t i = 0; i < T; i++) {
        const Real* p_row = p + i * T;
        Real* row = ds + i * T;
        Real dot = 0;
        for (int64_t j = 0; j <= i; j++) dot += row[j] * p_row[j];
        for (int64_t j = 0; j <= i; j++) row[j] = p_row[j] * (row[j] - dot);
        for (int64_t j = i + 1; j < T; j++) row[j] = 0;
      }
      gemm<Real>(false, false, T, hs, T, scale, ds, T, k, W, 0, dq, W);          // dQ
      gemm<Real>(true, false, T, hs, T, scale, ds, T, q, W, accumulate, dk, W);  // dK
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void attention_forward<double>(double*, double*, const double*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void attention_backward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                        int64_t, int64_t, int64_t);
template void attention_backward<double>(double*, double*, const double*, const double*, const double*, int64_t,
                                         int64_t, int64_t, int64_t, int64_t);

}  // namespace llmdion::cpu
