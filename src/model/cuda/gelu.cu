// GELU, tanh form, the bf16 twin of cpu/gelu.cpp, in fp32 per element:
//   gelu(x)  = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// One thread per W values (16-byte accesses when n % 8 == 0 and aligned).
// The backward may run in place (dinp == dout): each thread reads its values
// before it writes them.
#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

constexpr int kThreads = 256;
constexpr float kSqrt2OverPi = 0.7978845608028654f;

template <int W>
__global__ void __launch_bounds__(kThreads) gelu_forward_kernel(bf16* out, const bf16* inp, int64_t n) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i >= n) return;
  float x[W];
  load_pack<W>(x, inp + i);
#pragma unroll
  for (int k = 0; k < W; k++)
    x[k] = 0.5f * x[k] * (1.0f + tanhf(kSqrt2OverPi * (x[k] + 0.044715f * x[k] * x[k] * x[k])));
  store_pack<W>(out + i, x);
}

template <int W>
__global__ void __launch_bounds__(kThreads) gelu_backward_kernel(bf16* dinp, const bf16* inp, const bf16* dout,
                                                                 int64_t n) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i >= n) return;
  float x[W], d[W];
  load_pack<W>(x, inp + i);
  load_pack<W>(d, dout + i);
#pragma unroll
  for (int k = 0; k < W; k++) {
    const float th = tanhf(kSqrt2OverPi * (x[k] + 0.044715f * x[k] * x[k] * x[k]));
    const float local = 0.5f * (1.0f + th) +
                        0.5f * x[k] * (1.0f - th * th) * kSqrt2OverPi * (1.0f + float(3 * 0.044715) * x[k] * x[k]);
    d[k] *= local;
  }
  store_pack<W>(dinp + i, d);
}

unsigned blocks_for(int64_t n, int W) { return unsigned((n / W + kThreads - 1) / kThreads); }

}  // namespace

void gelu_forward(bf16* out, const bf16* inp, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 8 == 0 && all_aligned_16({out, inp}))
    gelu_forward_kernel<8><<<blocks_for(n, 8), kThreads, 0, stream>>>(out, inp, n);
  else
    gelu_forward_kernel<1><<<blocks_for(n, 1), kThreads, 0, stream>>>(out, inp, n);
  CUDA_CHECK_LAUNCH();
}

void gelu_backward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (n % 8 == 0 && all_aligned_16({dinp, inp, dout}))
    gelu_backward_kernel<8><<<blocks_for(n, 8), kThreads, 0, stream>>>(dinp, inp, dout, n);
  else
    gelu_backward_kernel<1><<<blocks_for(n, 1), kThreads, 0, stream>>>(dinp, inp, dout, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llmdion::cuda
