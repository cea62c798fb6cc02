// Sums across a warp and across a block in a fixed order: xor butterflies
// within each warp, then the warps' sums in warp order. No atomics, so the
// same inputs give the same bits on every run. A butterfly adds the same two
// numbers on both lanes of each pair (a + b == b + a exactly), so every lane
// ends with the same value.
#pragma once

#include <cuda_runtime.h>

namespace llmdion::cuda {

template <typename Value>
__device__ inline Value warp_sum(Value x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// The sum over each aligned group of `lanes` lanes (a power of two up to 32),
// returned to every lane of the group: warp_sum on a part of the warp. Every
// lane of the warp calls it.
template <typename Value>
__device__ inline Value lane_group_sum(Value x, int lanes) {
  for (int offset = lanes / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// The sum over the whole block, returned to every thread. blockDim.x is a
// multiple of 32; `warp_sums` is shared memory for 32 values.
template <typename Value>
__device__ inline Value block_sum(Value x, Value* warp_sums) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_sum(x);
  __syncthreads();  // a previous call may still be reading warp_sums
  if (lane == 0) warp_sums[warp] = x;
  __syncthreads();
  return warp_sum(lane < warps ? warp_sums[lane] : Value(0));
}

}  // namespace llmdion::cuda
