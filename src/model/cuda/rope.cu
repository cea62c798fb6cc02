// Rotary position embedding, the half-split form, the bf16 twin of cpu/rope.cpp:
// in each of the first `heads` heads of a row at position t = n % T, the pair
// (a, b) = (x_j, x_{j+hs/2}), j < hs/2, turns by the angle t * theta^(-2j/hs):
//   forward:  (a, b) -> (a cos - b sin, a sin + b cos)
//   inverse:  (a, b) -> (a cos + b sin, -a sin + b cos)   (the backward of the forward)
// in place, in fp32 (rope_turn.cuh, which the attention kernels share), with
// cos and sin fp32 [T, hs/2] as cpu::rope_tables makes them.
//
// One thread per W pairs (j ... j+W-1 with their partners j+hs/2 ...), the
// threads of a head side by side: 16-byte accesses to x and to the tables when
// each half head is whole packs on 16-byte boundaries. Each thread reads the
// values it writes, and no one else's, so the rotation is safe in place.
#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/kernels.h"
#include "model/cuda/rope_turn.cuh"

namespace llmdion::cuda {
namespace {

constexpr int kThreads = 256;

// direction = +1 turns forward, -1 back.
template <int W>
__global__ void __launch_bounds__(kThreads) rope_rotate_kernel(bf16* x, const float* cos_table,
                                                               const float* sin_table, int N, int T, int heads, int hs,
                                                               int stride, float direction) {
  const int half = hs / 2, packs = half / W;
  const int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= int64_t(N) * heads * packs) return;
  const int j = int(item % packs) * W;
  const int64_t nh = item / packs, n = nh / heads;
  bf16* head = x + n * stride + (nh % heads) * hs;
  const int64_t table_at = (n % T) * half + j;
  rope_turn_pack<W>(head + j, head + j + half, cos_table + table_at, sin_table + table_at, direction);
}

template <int W>
void launch_rope_rotate(bf16* x, const float* cos_table, const float* sin_table, int N, int T, int heads, int hs,
                        int stride, bool inverse, cudaStream_t stream) {
  const int64_t threads = int64_t(N) * heads * (hs / 2 / W);
  rope_rotate_kernel<W><<<unsigned((threads + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      x, cos_table, sin_table, N, T, heads, hs, stride, inverse ? -1.0f : 1.0f);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_rotate(bf16* x, const float* cos_table, const float* sin_table, int N, int T, int heads, int hs, int stride,
                 bool inverse, cudaStream_t stream) {
  if (N == 0 || heads == 0 || hs < 2) return;
  if ((hs / 2) % 8 == 0 && stride % 8 == 0 && all_aligned_16({x, cos_table, sin_table}))
    launch_rope_rotate<8>(x, cos_table, sin_table, N, T, heads, hs, stride, inverse, stream);
  else
    launch_rope_rotate<1>(x, cos_table, sin_table, N, T, heads, hs, stride, inverse, stream);
}

}  // namespace llmdion::cuda
