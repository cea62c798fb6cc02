// Element-wise maps over bf16 arrays, computed in fp32: out[i] = f(a[i]) or
// out[i] = f(a[i], b[i]). One thread per W values: 16-byte packs when n % 8 == 0
// and every pointer is aligned, single values otherwise. out may be a or b (in
// place): each thread reads its values before it writes them.
#pragma once

#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {

constexpr int kElementwiseThreads = 256;

template <int W, typename Map>
__global__ void __launch_bounds__(kElementwiseThreads) map_kernel(bf16* out, const bf16* a, int64_t n, Map f) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i >= n) return;
  float x[W];
  load_pack<W>(x, a + i);
#pragma unroll
  for (int k = 0; k < W; k++) x[k] = f(x[k]);
  store_pack<W>(out + i, x);
}

template <int W, typename Map>
__global__ void __launch_bounds__(kElementwiseThreads) map2_kernel(bf16* out, const bf16* a, const bf16* b, int64_t n,
                                                                   Map f) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i >= n) return;
  float x[W], y[W];
  load_pack<W>(x, a + i);
  load_pack<W>(y, b + i);
#pragma unroll
  for (int k = 0; k < W; k++) x[k] = f(x[k], y[k]);
  store_pack<W>(out + i, x);
}

inline unsigned elementwise_blocks(int64_t n, int W) {
  return unsigned((n / W + kElementwiseThreads - 1) / kElementwiseThreads);
}

// out = f(a), f a functor with a __device__ float operator()(float).
template <typename Map>
void map_elements(bf16* out, const bf16* a, int64_t n, Map f, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 8 == 0 && all_aligned_16({out, a}))
    map_kernel<8><<<elementwise_blocks(n, 8), kElementwiseThreads, 0, stream>>>(out, a, n, f);
  else
    map_kernel<1><<<elementwise_blocks(n, 1), kElementwiseThreads, 0, stream>>>(out, a, n, f);
  CUDA_CHECK_LAUNCH();
}

// out = f(a, b), f a functor with a __device__ float operator()(float, float).
template <typename Map>
void map_elements2(bf16* out, const bf16* a, const bf16* b, int64_t n, Map f, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 8 == 0 && all_aligned_16({out, a, b}))
    map2_kernel<8><<<elementwise_blocks(n, 8), kElementwiseThreads, 0, stream>>>(out, a, b, n, f);
  else
    map2_kernel<1><<<elementwise_blocks(n, 1), kElementwiseThreads, 0, stream>>>(out, a, b, n, f);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llmdion::cuda
