// The rotary turn of W pairs of one head (RoPE, Su et al. 2021, the half-split
// form; the math of cpu/rope.cpp): with (a, b) = (x_j, x_{j+hs/2}) and c, s the
// cosine and sine of the pair's angle,
//   direction +1:  (a, b) -> (a c - b s, a s + b c)
//   direction -1:  (a, b) -> (a c + b s, -a s + b c)   (the inverse turn)
// in fp32 from the bf16 values, rounded to the nearest bf16. rope.cu turns
// heads in global memory with it and attention.cu turns tiles in shared memory:
// one spelled-out rounding (a product rounded, then one fused multiply-add),
// which the compiler cannot contract differently at the two sites, so a tile
// turned in attention holds the bits rope_rotate would have stored.
#pragma once

#include <cuda_bf16.h>

#include "model/cuda/bf16_pack.cuh"

namespace llmdion::cuda {

__device__ __forceinline__ void rope_turn(float& a, float& b, float c, float s, float direction) {
  const float a_in = a;
  a = __fmaf_rn(a_in, c, -__fmul_rn(direction * b, s));
  b = __fmaf_rn(direction * a_in, s, __fmul_rn(b, c));
}

// W consecutive floats, as float4s when W is a multiple of 4 (from 16-byte aligned).
template <int W>
__device__ __forceinline__ void load_floats(float (&out)[W], const float* from) {
  if constexpr (W % 4 == 0) {
#pragma unroll
    for (int q = 0; q < W / 4; q++) {
      const float4 v = reinterpret_cast<const float4*>(from)[q];
      out[4 * q] = v.x;
      out[4 * q + 1] = v.y;
      out[4 * q + 2] = v.z;
      out[4 * q + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int k = 0; k < W; k++) out[k] = from[k];
  }
}

// The pairs (first[k], second[k]), k < W, turned in place by the angles of
// cos_at[k], sin_at[k] (bf16 packs and float runs: 16-byte aligned when W = 8).
template <int W>
__device__ __forceinline__ void rope_turn_pack(__nv_bfloat16* first, __nv_bfloat16* second, const float* cos_at,
                                               const float* sin_at, float direction) {
  float a[W], b[W], c[W], s[W];
  load_pack<W>(a, first);
  load_pack<W>(b, second);
  load_floats<W>(c, cos_at);
  load_floats<W>(s, sin_at);
#pragma unroll
  for (int k = 0; k < W; k++) rope_turn(a[k], b[k], c[k], s[k], direction);
  store_pack<W>(first, a);
  store_pack<W>(second, b);
}

}  // namespace llmdion::cuda
