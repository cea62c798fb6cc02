// The classifier's softmax and cross-entropy fused, the bf16 twin of
// cpu/cross_entropy.cpp, over the first V of Vp logits per row (the padding
// is never read and gets gradient 0):
//   loss     = logsumexp(x[:V]) - x[target] = log(sum_i exp(x_i - m)) + m - x[target],  m = max x
//   dlogits  = dloss * (softmax(x) - onehot(target)),  written over the logits
// One block of 1024 threads per row. Pass 1 reads the row once, each thread
// keeping an online (max, sum of exp(x - max)) over its values (Milakov and
// Gimelshein 2018); the pairs merge in a fixed tree. Pass 2 (with dlogits)
// recomputes each exp and overwrites the row. Targets must lie in [0, V): the
// caller validates them (the data loader checks every token).
#include <cmath>

#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/block_reduce.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

constexpr int kRowThreads = 1024;
constexpr int kMeanThreads = 1024;

// sum = sum of exp(x - max) over the values seen; {-inf, 0} before any.
struct SoftmaxStats {
  float max;
  float sum;
};

__device__ inline SoftmaxStats add_logit(SoftmaxStats s, float x) {
  if (x > s.max) return {x, s.sum * expf(s.max - x) + 1.0f};
  return {s.max, s.sum + expf(x - s.max)};
}

// Symmetric to the bit (no fused multiply-add), so both lanes of a butterfly agree.
__device__ inline SoftmaxStats merge(SoftmaxStats a, SoftmaxStats b) {
  const float m = fmaxf(a.max, b.max);
  if (m == -INFINITY) return a;  // neither has seen a value
  return {m, __fmul_rn(a.sum, expf(a.max - m)) + __fmul_rn(b.sum, expf(b.max - m))};
}

__device__ inline SoftmaxStats warp_merge(SoftmaxStats s) {
  for (int offset = 16; offset > 0; offset /= 2)
    s = merge(s, {__shfl_xor_sync(0xffffffffu, s.max, offset), __shfl_xor_sync(0xffffffffu, s.sum, offset)});
  return s;
}

template <int W>
__global__ void __launch_bounds__(kRowThreads) fused_classifier_kernel(bf16* logits, float* losses,
                                                                       const int32_t* targets, float dloss, int V,
                                                                       int Vp, bool write_dlogits) {
  __shared__ SoftmaxStats stats_of_warp[kRowThreads / 32];
  const int row = blockIdx.x;
  bf16* x = logits + int64_t(row) * Vp;
  const int target = targets[row];
  const float target_logit = __bfloat162float(x[target]);  // read before the barrier below, so before any write

  SoftmaxStats stats = {-INFINITY, 0.0f};
  for (int i = threadIdx.x * W; i < V; i += kRowThreads * W) {
    float v[W];
    load_pack<W>(v, x + i);  // i + W <= Vp: W = 8 only when Vp % 8 == 0
#pragma unroll
    for (int k = 0; k < W; k++)
      if (i + k < V) stats = add_logit(stats, v[k]);
  }
  stats = warp_merge(stats);
  if (threadIdx.x % 32 == 0) stats_of_warp[threadIdx.x / 32] = stats;
  __syncthreads();
  stats = warp_merge(stats_of_warp[threadIdx.x % 32]);  // every warp the same, in the same order
  if (threadIdx.x == 0) losses[row] = logf(stats.sum) + stats.max - target_logit;
  if (!write_dlogits) return;

  const float inv_sum = 1.0f / stats.sum;
  for (int i = threadIdx.x * W; i < Vp; i += kRowThreads * W) {
    float v[W];
    load_pack<W>(v, x + i);
#pragma unroll
    for (int k = 0; k < W; k++) {
      const int j = i + k;
      v[k] = j < V ? dloss * (expf(v[k] - stats.max) * inv_sum - (j == target ? 1.0f : 0.0f)) : 0.0f;
    }
    store_pack<W>(x + i, v);
  }
}

__global__ void __launch_bounds__(kMeanThreads) mean_kernel(float* out, const float* values, int n) {
  __shared__ float warp_sums[32];
  float sum = 0;
  for (int i = threadIdx.x; i < n; i += kMeanThreads) sum += values[i];
  sum = block_sum(sum, warp_sums);
  if (threadIdx.x == 0) out[0] = sum / n;
}

}  // namespace

void fused_classifier(bf16* logits, float* losses, const int32_t* targets, float dloss, int N, int V, int Vp,
                      bool write_dlogits, cudaStream_t stream) {
  if (N == 0) return;
  if (Vp % 8 == 0 && all_aligned_16({logits}))
    fused_classifier_kernel<8><<<N, kRowThreads, 0, stream>>>(logits, losses, targets, dloss, V, Vp, write_dlogits);
  else
    fused_classifier_kernel<1><<<N, kRowThreads, 0, stream>>>(logits, losses, targets, dloss, V, Vp, write_dlogits);
  CUDA_CHECK_LAUNCH();
}

void mean_of(float* out, const float* values, int n, cudaStream_t stream) {
  mean_kernel<<<1, kMeanThreads, 0, stream>>>(out, values, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llmdion::cuda
