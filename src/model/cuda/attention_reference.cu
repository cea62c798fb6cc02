// Causal attention the plain way, kept as the in-GPU reference the flash
// kernels (attention.cu) are tested against. Per (batch, query head), with
// Q, K, V fp32 copies of its [T, hs] slices (K, V those of kv head h / (NH / NKV))
// and s = 1/sqrt(hs), exactly the CPU kernel's math (model/cpu/attention.cpp):
//   forward:  S = s Q K^T,  P = softmax(S) row-wise over columns j <= i (0 above),  Y = P V
//   backward: dP = dY V^T,  dS = P * (dP - rowsum(dP * P)),  dQ = s dS K,
//             dK_h = s dS^T Q,  dV_h = P^T dY,  and a kv head's dK, dV = the sum of
//             its group's dK_h, dV_h in head order (no atomics).
// The products are fp32 batched GEMMs on cuBLAS (CUBLAS_COMPUTE_32F_PEDANTIC:
// no TF32, whatever the handle's math mode), one batch entry per (b, h); the
// row softmax and its backward are one warp per row.
//
// scratch (attention_reference_scratch_floats), each per-head array [B * NH, T, hs]:
//   q, k, v, y | dy, dq, dk, dv, then dS [B * NH, T, T] (the backward only).
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/cuda/check.h"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;

unsigned blocks_for(int64_t n, int per_block) { return unsigned((n + per_block - 1) / per_block); }

// Row-major C[M, N] = alpha op(A) op(B) + beta C for each of `batch` strided
// entries, through cuBLAS's column-major view: C^T = op(B)^T op(A)^T.
// lda, ldb, ldc are the row strides of the matrices as stored.
void gemm_batched(cublasHandle_t handle, bool transpose_a, bool transpose_b, int M, int N, int K, float alpha,
                  const float* A, int lda, int64_t stride_a, const float* B, int ldb, int64_t stride_b, float beta,
                  float* C, int ldc, int64_t stride_c, int batch) {
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, CUDA_R_32F,
                                          ldb, stride_b, A, CUDA_R_32F, lda, stride_a, &beta, C, CUDA_R_32F, ldc,
                                          stride_c, batch, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
}

// q, k, v [B * NH, T, hs] from qkv rows; query head h gets kv head h / (NH / NKV).
__global__ void split_heads_kernel(float* q, float* k, float* v, const bf16* qkv, int T, int NH, int NKV, int hs,
                                   int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t bh = i / (int64_t(T) * hs), b = bh / NH;
  const int h = int(bh % NH), t = int(i / hs % T), d = int(i % hs), kv = h / (NH / NKV);
  const bf16* row = qkv + (b * T + t) * int64_t(NH + 2 * NKV) * hs;
  q[i] = __bfloat162float(row[h * hs + d]);
  k[i] = __bfloat162float(row[(NH + kv) * hs + d]);
  v[i] = __bfloat162float(row[(NH + NKV + kv) * hs + d]);
}

// heads [B * NH, T, hs] from rows [B * T, NH * hs] (dY from dout).
__global__ void rows_to_heads_kernel(float* heads, const bf16* rows, int T, int NH, int hs, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t bh = i / (int64_t(T) * hs), b = bh / NH;
  const int h = int(bh % NH), t = int(i / hs % T), d = int(i % hs);
  heads[i] = __bfloat162float(rows[(b * T + t) * int64_t(NH) * hs + h * hs + d]);
}

// rows [B * T, NH * hs] (out) from heads [B * NH, T, hs] (Y), rounded to bf16.
__global__ void heads_to_rows_kernel(bf16* rows, const float* heads, int T, int NH, int hs, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t bh = i / (int64_t(T) * hs), b = bh / NH;
  const int h = int(bh % NH), t = int(i / hs % T), d = int(i % hs);
  rows[(b * T + t) * int64_t(NH) * hs + h * hs + d] = __float2bfloat16(heads[i]);
}

// In place on each row i of [B * NH * T, T] scores: softmax over j <= i, 0 above.
__global__ void causal_softmax_kernel(float* scores, int T, int64_t rows) {
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  float* row = scores + r * T;
  const int i = int(r % T);
  float max = -INFINITY;
  for (int j = lane; j <= i; j += 32) max = fmaxf(max, row[j]);
  for (int offset = 16; offset > 0; offset /= 2) max = fmaxf(max, __shfl_xor_sync(0xffffffffu, max, offset));
  float sum = 0.0f;
  for (int j = lane; j <= i; j += 32) {
    row[j] = expf(row[j] - max);
    sum += row[j];
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const float inverse_sum = 1.0f / sum;
  for (int j = lane; j < T; j += 32) row[j] = j <= i ? row[j] * inverse_sum : 0.0f;
}

// In place on each row i of [B * NH * T, T]: dP -> dS = P * (dP - sum_j dP_ij P_ij), 0 above the diagonal.
__global__ void softmax_backward_kernel(float* grad, const float* probs, int T, int64_t rows) {
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  float* row = grad + r * T;
  const float* p = probs + r * T;
  const int i = int(r % T);
  float dot = 0.0f;
  for (int j = lane; j <= i; j += 32) dot += row[j] * p[j];
  for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
  for (int j = lane; j < T; j += 32) row[j] = j <= i ? p[j] * (row[j] - dot) : 0.0f;
}

// dqkv rows from the per-head dq, dk, dv [B * NH, T, hs]; a kv head's dk, dv sum its group's heads in order.
__global__ void merge_heads_kernel(bf16* dqkv, const float* dq, const float* dk, const float* dv, int T, int NH,
                                   int NKV, int hs, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int W = (NH + 2 * NKV) * hs, group = NH / NKV;
  const int64_t n = i / W, b = n / T;
  const int t = int(n % T), c = int(i % W), d = c % hs, head = c / hs;
  auto at = [&](int h) { return ((b * NH + h) * T + t) * hs + d; };
  float value = 0.0f;
  if (head < NH) {
    value = dq[at(head)];
  } else {
    const bool is_k = head < NH + NKV;
    const int kv = is_k ? head - NH : head - NH - NKV;
    const float* per_head = is_k ? dk : dv;
    for (int g = 0; g < group; g++) value += per_head[at(kv * group + g)];
  }
  dqkv[i] = __float2bfloat16(value);
}

void check_heads(int NH, int NKV) {
  if (NH < 1 || NKV < 1 || NH % NKV != 0)
    throw std::invalid_argument("attention reference: " + std::to_string(NKV) + " kv heads do not divide " +
                                std::to_string(NH) + " query heads");
}

struct ScratchLayout {
  float *q, *k, *v, *y, *dq, *dk, *dv, *ds;
  ScratchLayout(float* scratch, int B, int T, int NH, int hs) {
    const int64_t heads = int64_t(B) * NH * T * hs;
    q = scratch, k = q + heads, v = k + heads, y = v + heads;  // y holds dY in the backward
    dq = y + heads, dk = dq + heads, dv = dk + heads, ds = dv + heads;
  }
};

}  // namespace

void attention_reference_forward(bf16* out, float* probs, float* scratch, const bf16* qkv, int B, int T, int NH,
                                 int NKV, int hs, cublasHandle_t handle, cudaStream_t stream) {
  check_heads(NH, NKV);
  if (B == 0 || T == 0) return;
  const ScratchLayout s(scratch, B, T, NH, hs);
  const int64_t heads = int64_t(B) * NH * T * hs, rows = int64_t(B) * NH * T, batch = int64_t(B) * NH;
  const float scale = 1.0f / sqrtf(float(hs));
  split_heads_kernel<<<blocks_for(heads, kThreads), kThreads, 0, stream>>>(s.q, s.k, s.v, qkv, T, NH, NKV, hs, heads);
  CUDA_CHECK_LAUNCH();
  gemm_batched(handle, false, true, T, T, hs, scale, s.q, hs, int64_t(T) * hs, s.k, hs, int64_t(T) * hs, 0.0f, probs,
               T, int64_t(T) * T, int(batch));  // S = s Q K^T
  causal_softmax_kernel<<<blocks_for(rows, kRowsPerBlock), kThreads, 0, stream>>>(probs, T, rows);
  CUDA_CHECK_LAUNCH();
  gemm_batched(handle, false, false, T, hs, T, 1.0f, probs, T, int64_t(T) * T, s.v, hs, int64_t(T) * hs, 0.0f, s.y,
               hs, int64_t(T) * hs, int(batch));  // Y = P V
  heads_to_rows_kernel<<<blocks_for(heads, kThreads), kThreads, 0, stream>>>(out, s.y, T, NH, hs, heads);
  CUDA_CHECK_LAUNCH();
}

void attention_reference_backward(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const float* probs,
                                  int B, int T, int NH, int NKV, int hs, cublasHandle_t handle, cudaStream_t stream) {
  check_heads(NH, NKV);
  if (B == 0 || T == 0) return;
  const ScratchLayout s(scratch, B, T, NH, hs);
  const int64_t heads = int64_t(B) * NH * T * hs, rows = int64_t(B) * NH * T, batch = int64_t(B) * NH;
  const int64_t head_stride = int64_t(T) * hs, probs_stride = int64_t(T) * T;
  const float scale = 1.0f / sqrtf(float(hs));
  float* dy = s.y;
  split_heads_kernel<<<blocks_for(heads, kThreads), kThreads, 0, stream>>>(s.q, s.k, s.v, qkv, T, NH, NKV, hs, heads);
  CUDA_CHECK_LAUNCH();
  rows_to_heads_kernel<<<blocks_for(heads, kThreads), kThreads, 0, stream>>>(dy, dout, T, NH, hs, heads);
  CUDA_CHECK_LAUNCH();
  gemm_batched(handle, false, true, T, T, hs, 1.0f, dy, hs, head_stride, s.v, hs, head_stride, 0.0f, s.ds, T,
               probs_stride, int(batch));  // dP = dY V^T
  gemm_batched(handle, true, false, T, hs, T, 1.0f, probs, T, probs_stride, dy, hs, head_stride, 0.0f, s.dv, hs,
               head_stride, int(batch));  // dV_h = P^T dY
  softmax_backward_kernel<<<blocks_for(rows, kRowsPerBlock), kThreads, 0, stream>>>(s.ds, probs, T, rows);
  CUDA_CHECK_LAUNCH();
  gemm_batched(handle, false, false, T, hs, T, scale, s.ds, T, probs_stride, s.k, hs, head_stride, 0.0f, s.dq, hs,
               head_stride, int(batch));  // dQ = s dS K
  gemm_batched(handle, true, false, T, hs, T, scale, s.ds, T, probs_stride, s.q, hs, head_stride, 0.0f, s.dk, hs,
               head_stride, int(batch));  // dK_h = s dS^T Q
  const int64_t total = int64_t(B) * T * (NH + 2 * NKV) * hs;
  merge_heads_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream>>>(dqkv, s.dq, s.dk, s.dv, T, NH, NKV, hs,
                                                                           total);
  CUDA_CHECK_LAUNCH();
}

int64_t attention_reference_scratch_floats(int B, int T, int NH, int /*NKV*/, int hs) {
  const int64_t heads = int64_t(B) * NH * T * hs;
  return 7 * heads + int64_t(B) * NH * T * T;
}

}  // namespace llmdion::cuda
