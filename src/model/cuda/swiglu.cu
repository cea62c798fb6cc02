// SwiGLU, the bf16 twin of cpu/swiglu.cpp, over rows [gate | up] of width 2H, in fp32:
//   out = silu(g) * u,   silu(g) = g sigmoid(g)
//   d g = dout * u * sigmoid(g) (1 + g (1 - sigmoid(g))),   d u = dout * silu(g)
// One thread per W outputs of a row (16-byte accesses when H % 8 == 0 and the
// pointers are aligned, so a pack never straddles two rows or gate and up).
#include <cmath>

#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

template <int W>
__global__ void __launch_bounds__(kThreads) swiglu_forward_kernel(bf16* out, const bf16* gate_up, int N, int H) {
  const int64_t out_at = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;  // n * H + i
  if (out_at >= int64_t(N) * H) return;
  const int64_t gate_at = (out_at / H) * 2 * H + out_at % H;
  float g[W], u[W];
  load_pack<W>(g, gate_up + gate_at);
  load_pack<W>(u, gate_up + gate_at + H);
#pragma unroll
  for (int k = 0; k < W; k++) g[k] = g[k] * sigmoid(g[k]) * u[k];
  store_pack<W>(out + out_at, g);
}

template <int W>
__global__ void __launch_bounds__(kThreads) swiglu_backward_kernel(bf16* d_gate_up, const bf16* gate_up,
                                                                   const bf16* dout, int N, int H) {
  const int64_t out_at = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (out_at >= int64_t(N) * H) return;
  const int64_t gate_at = (out_at / H) * 2 * H + out_at % H;
  float g[W], u[W], d[W], dg[W], du[W];
  load_pack<W>(g, gate_up + gate_at);
  load_pack<W>(u, gate_up + gate_at + H);
  load_pack<W>(d, dout + out_at);
#pragma unroll
  for (int k = 0; k < W; k++) {
    const float sig = sigmoid(g[k]);
    dg[k] = d[k] * u[k] * sig * (1.0f + g[k] * (1.0f - sig));
    du[k] = d[k] * g[k] * sig;
  }
  store_pack<W>(d_gate_up + gate_at, dg);
  store_pack<W>(d_gate_up + gate_at + H, du);
}

unsigned blocks_for(int N, int H, int W) { return unsigned((int64_t(N) * H / W + kThreads - 1) / kThreads); }

}  // namespace

void swiglu_forward(bf16* out, const bf16* gate_up, int N, int H, cudaStream_t stream) {
  if (N == 0 || H == 0) return;
  if (H % 8 == 0 && all_aligned_16({out, gate_up}))
    swiglu_forward_kernel<8><<<blocks_for(N, H, 8), kThreads, 0, stream>>>(out, gate_up, N, H);
  else
    swiglu_forward_kernel<1><<<blocks_for(N, H, 1), kThreads, 0, stream>>>(out, gate_up, N, H);
  CUDA_CHECK_LAUNCH();
}

void swiglu_backward(bf16* d_gate_up, const bf16* gate_up, const bf16* dout, int N, int H, cudaStream_t stream) {
  if (N == 0 || H == 0) return;
  if (H % 8 == 0 && all_aligned_16({d_gate_up, gate_up, dout}))
    swiglu_backward_kernel<8><<<blocks_for(N, H, 8), kThreads, 0, stream>>>(d_gate_up, gate_up, dout, N, H);
  else
    swiglu_backward_kernel<1><<<blocks_for(N, H, 1), kThreads, 0, stream>>>(d_gate_up, gate_up, dout, N, H);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llmdion::cuda
