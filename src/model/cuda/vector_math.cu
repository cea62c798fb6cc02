// Reductions and scalings over fp32 parameter-sized buffers.
//   sum_squares:    out = sum_i x_i^2 in fp64 (each square exact), in a fixed order:
//                   block b sums x[i] for i = b*512 + t + k*(blocks*512) (thread t, k = 0, 1, ...)
//                   into partials[b] (threads in a fixed tree), then one block sums the partials.
//                   The block count depends on n only (sum_squares_partials), so the bits do too.
//   scale_in_place: x_i *= factor
#include <algorithm>

#include "core/cuda/check.h"
#include "model/cuda/block_reduce.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

constexpr int kSumThreads = 512;
constexpr int64_t kMaxSumBlocks = 1024;
constexpr int kFinalThreads = 1024;
constexpr int kScaleThreads = 256;

__global__ void __launch_bounds__(kSumThreads) sum_squares_partials_kernel(double* partials, const float* x,
                                                                           int64_t n) {
  __shared__ double warp_sums[32];
  const int64_t stride = int64_t(gridDim.x) * kSumThreads;
  double sum = 0;
  for (int64_t i = int64_t(blockIdx.x) * kSumThreads + threadIdx.x; i < n; i += stride) {
    const double v = x[i];
    sum += v * v;
  }
  sum = block_sum(sum, warp_sums);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void __launch_bounds__(kFinalThreads) sum_partials_kernel(double* out, const double* partials, int count) {
  __shared__ double warp_sums[32];
  double sum = 0;
  for (int i = threadIdx.x; i < count; i += kFinalThreads) sum += partials[i];
  sum = block_sum(sum, warp_sums);
  if (threadIdx.x == 0) out[0] = sum;
}

__global__ void __launch_bounds__(kScaleThreads) scale_kernel(float* x, float factor, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= factor;
}

}  // namespace

int64_t sum_squares_partials(int64_t n) {
  return std::clamp<int64_t>((n + kSumThreads - 1) / kSumThreads, 1, kMaxSumBlocks);
}

void sum_squares(double* out, double* partials, const float* x, int64_t n, cudaStream_t stream) {
  const int blocks = int(sum_squares_partials(n));
  sum_squares_partials_kernel<<<blocks, kSumThreads, 0, stream>>>(partials, x, n);
  CUDA_CHECK_LAUNCH();
  sum_partials_kernel<<<1, kFinalThreads, 0, stream>>>(out, partials, blocks);
  CUDA_CHECK_LAUNCH();
}

void scale_in_place(float* x, float factor, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<unsigned((n + kScaleThreads - 1) / kScaleThreads), kScaleThreads, 0, stream>>>(x, factor, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llmdion::cuda
