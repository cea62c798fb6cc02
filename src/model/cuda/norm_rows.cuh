// What the norm kernels share: one warp's lanes over one row, each on its own
// packs: a statistic of the row, and the residual add they fuse in front.
#pragma once

#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {

// The norm kernels' geometry: row kernels run one warp per row; weight
// gradients sum kRowsPerChunk rows a partial (kChunkWarps warps), then the
// partials in order (kColumnThreads columns a block).
constexpr int kRowsPerBlock = 8;
constexpr int kRowThreads = 32 * kRowsPerBlock;
constexpr int kRowsPerChunk = 256;
constexpr int kChunkWarps = 8;
constexpr int kColumnThreads = 256;
constexpr float kEpsilon = 1e-5f;  // as the CPU norms

inline int row_chunks(int N) { return (N + kRowsPerChunk - 1) / kRowsPerChunk; }
inline unsigned row_blocks(int N) { return unsigned((N + kRowsPerBlock - 1) / kRowsPerBlock); }

// A pack of a norm's weight or bias, or `otherwise` in every place where there is none (null).
template <int W>
__device__ inline void load_or(float (&out)[W], const bf16* from, float otherwise) {
  if (from) {
    load_pack<W>(out, from);
  } else {
#pragma unroll
    for (int k = 0; k < W; k++) out[k] = otherwise;
  }
}

// This lane's sum of statistic(x) over its packs of a row x of C.
template <int W, typename Statistic>
__device__ float lane_row_sum(const bf16* x, int C, Statistic statistic) {
  float sum = 0;
  for (int i = (threadIdx.x % 32) * W; i < C; i += 32 * W) {
    float v[W];
    load_pack<W>(v, x + i);
#pragma unroll
    for (int k = 0; k < W; k++) sum += statistic(v[k]);
  }
  return sum;
}

// residual_out = bf16(residual + branch) over this lane's packs of a row of C;
// returns the lane's sum of statistic(stored value), the norm's statistic of
// exactly what it will normalize (x for a mean, x^2 for a mean square).
// residual_out may be residual (in place): a lane reads back only what it wrote.
template <int W, typename Statistic>
__device__ float add_residual_row(bf16* residual_out, const bf16* residual, const bf16* branch, int C,
                                  Statistic statistic) {
  float sum = 0;
  for (int i = (threadIdx.x % 32) * W; i < C; i += 32 * W) {
    float r[W], b[W];
    load_pack<W>(r, residual + i);
    load_pack<W>(b, branch + i);
#pragma unroll
    for (int k = 0; k < W; k++) {
      r[k] = __bfloat162float(__float2bfloat16_rn(r[k] + b[k]));  // the value stored, exactly
      sum += statistic(r[k]);
    }
    store_pack<W>(residual_out + i, r);
  }
  return sum;
}

}  // namespace llmdion::cuda
