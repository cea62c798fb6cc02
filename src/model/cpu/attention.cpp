// Causal multi-head self-attention, one (batch, head) pair per thread, its
// products on BLAS. With Q, K, V the head's [T, hs] slices of qkv and s = 1/sqrt(hs):
//   forward:  S = s Q K^T,  P = softmax(S) row-wise over columns j <= i (0 above),  Y = P V
//   backward: dP = dY V^T,  dV = P^T dY,  dS = P * (dP - rowsum(dP * P)),
//             dQ = s dS K,  dK = s dS^T Q
// probs keeps P [B, NH, T, T] for the backward; scratch holds one T x T dS per thread.
#include <omp.h>

#include <cmath>

#include "model/cpu/kernels.h"
#include "model/cpu/vector_math.h"

namespace llmdion::cpu {
namespace {

// Where (batch b, head h) starts in a [B, T, 3C] qkv row layout: q; k and v
// follow at +C and +2C.
int64_t head_offset(int64_t bh, int64_t T, int64_t C, int64_t NH) { return (bh / NH) * T * 3 * C + (bh % NH) * (C / NH); }

}  // namespace

template <typename Real>
void attention_forward(Real* out, Real* probs, const Real* qkv, int64_t B, int64_t T, int64_t C, int64_t NH) {
  const int64_t hs = C / NH, C3 = 3 * C;
  const Real scale = Real(1) / std::sqrt(Real(hs));
  #pragma omp parallel for
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const Real* q = qkv + head_offset(bh, T, C, NH);
    const Real* k = q + C;
    const Real* v = q + 2 * C;
    Real* p = probs + bh * T * T;
    gemm<Real>(false, true, T, T, hs, scale, q, C3, k, C3, 0, p, T);
    for (int64_t i = 0; i < T; i++) {
      Real* row = p + i * T;
      const Real max = lane_max(row, i + 1);
      for (int64_t j = 0; j <= i; j++) row[j] = exp_nonpositive(row[j] - max);
      const Real inv_sum = Real(1) / lane_sum(row, i + 1);
      for (int64_t j = 0; j <= i; j++) row[j] *= inv_sum;
      for (int64_t j = i + 1; j < T; j++) row[j] = 0;
    }
    gemm<Real>(false, false, T, hs, T, 1, p, T, v, C3, 0, out + (bh / NH) * T * C + (bh % NH) * hs, C);
  }
}

template <typename Real>
void attention_backward(Real* dqkv, Real* scratch, const Real* dout, const Real* qkv, const Real* probs, int64_t B,
                        int64_t T, int64_t C, int64_t NH) {
  const int64_t hs = C / NH, C3 = 3 * C;
  const Real scale = Real(1) / std::sqrt(Real(hs));
  #pragma omp parallel for
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const Real* q = qkv + head_offset(bh, T, C, NH);
    const Real* k = q + C;
    const Real* v = q + 2 * C;
    Real* dq = dqkv + head_offset(bh, T, C, NH);
    Real* dk = dq + C;
    Real* dv = dq + 2 * C;
    const Real* dy = dout + (bh / NH) * T * C + (bh % NH) * hs;
    const Real* p = probs + bh * T * T;
    Real* ds = scratch + int64_t(omp_get_thread_num()) * T * T;
    gemm<Real>(false, true, T, T, hs, 1, dy, C, v, C3, 0, ds, T);   // dP
    gemm<Real>(true, false, T, hs, T, 1, p, T, dy, C, 0, dv, C3);   // dV
    for (int64_t i = 0; i < T; i++) {
      const Real* p_row = p + i * T;
      Real* row = ds + i * T;
      Real dot = 0;
      for (int64_t j = 0; j <= i; j++) dot += row[j] * p_row[j];
      for (int64_t j = 0; j <= i; j++) row[j] = p_row[j] * (row[j] - dot);
      for (int64_t j = i + 1; j < T; j++) row[j] = 0;
    }
    gemm<Real>(false, false, T, hs, T, scale, ds, T, k, C3, 0, dq, C3);  // dQ
    gemm<Real>(true, false, T, hs, T, scale, ds, T, q, C3, 0, dk, C3);   // dK
  }
}

template void attention_forward<float>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t);
template void attention_forward<double>(double*, double*, const double*, int64_t, int64_t, int64_t, int64_t);
template void attention_backward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                        int64_t, int64_t);
template void attention_backward<double>(double*, double*, const double*, const double*, const double*, int64_t,
                                         int64_t, int64_t, int64_t);

}  // namespace llmdion::cpu
