// Squared ReLU, the bf16 twin of cpu/relu2.cpp, in fp32 per element:
//   relu2(x) = max(x, 0)^2,   relu2'(x) = 2 max(x, 0)
// One thread per W values (16-byte accesses when n % 8 == 0 and aligned).
// The backward may run in place (dinp == dout): each thread reads its values
// before it writes them.
#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

constexpr int kThreads = 256;

template <int W>
__global__ void __launch_bounds__(kThreads) relu2_forward_kernel(bf16* out, const bf16* inp, int64_t n) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i >= n) return;
  float x[W];
  load_pack<W>(x, inp + i);
#pragma unroll
  for (int k = 0; k < W; k++) x[k] = x[k] > 0.0f ? x[k] * x[k] : 0.0f;
  store_pack<W>(out + i, x);
}

template <int W>
__global__ void __launch_bounds__(kThreads) relu2_backward_kernel(bf16* dinp, const bf16* inp, const bf16* dout,
                                                                  int64_t n) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i >= n) return;
  float x[W], d[W];
  load_pack<W>(x, inp + i);
  load_pack<W>(d, dout + i);
#pragma unroll
  for (int k = 0; k < W; k++) d[k] = x[k] > 0.0f ? 2.0f * x[k] * d[k] : 0.0f;
  store_pack<W>(dinp + i, d);
}

unsigned blocks_for(int64_t n, int W) { return unsigned((n / W + kThreads - 1) / kThreads); }

}  // namespace

void relu2_forward(bf16* out, const bf16* inp, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 8 == 0 && all_aligned_16({out, inp}))
    relu2_forward_kernel<8><<<blocks_for(n, 8), kThreads, 0, stream>>>(out, inp, n);
  else
    relu2_forward_kernel<1><<<blocks_for(n, 1), kThreads, 0, stream>>>(out, inp, n);
  CUDA_CHECK_LAUNCH();
}

void relu2_backward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 8 == 0 && all_aligned_16({dinp, inp, dout}))
    relu2_backward_kernel<8><<<blocks_for(n, 8), kThreads, 0, stream>>>(dinp, inp, dout, n);
  else
    relu2_backward_kernel<1><<<blocks_for(n, 1), kThreads, 0, stream>>>(dinp, inp, dout, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llmdion::cuda
