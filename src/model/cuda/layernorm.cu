// LayerNorm over the last dimension, eps = 1e-5, the bf16 twin of cpu/layernorm.cpp:
//   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(mean((x - mean)^2) + eps),  out = xhat * w + b
// fused with the residual add before it: x = bf16(residual + branch), stored, then normalized;
// backward, with g = dout * w:
//   dx += rstd * (g - mean(g) - xhat * mean(g * xhat)),  dw += sum_n dout * xhat,  db += sum_n dout
// (w null: w = 1; b null: no shift; dw null: neither dw nor db.) Statistics in fp32.
//
// Row work (forward, dx) is one warp per row, 8 rows a block: lane l takes the
// W-wide packs at l*W, (l+32)*W, ... and the warp sums with a butterfly. dw, db
// are column sums, done without atomics in two steps: block (chunk, tile) sums
// the rows of a 256-row chunk for a tile of 32*W columns (warp y takes rows
// y, y+8, ..., then the 8 warps are added in order) into scratch [chunk][2][C];
// then one thread per column adds the chunks in order into dw, db.
#include <cmath>

#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/block_reduce.cuh"
#include "model/cuda/kernels.h"
#include "model/cuda/norm_rows.cuh"

namespace llmdion::cuda {
namespace {

// One warp writes out = LN(x) for the row x, given the row's sum (reduced over the warp).
template <int W>
__device__ void normalize_row(bf16* out, float* mean_out, float* rstd_out, const bf16* x, const bf16* weight,
                              const bf16* bias, int C, float sum) {
  const int lane = threadIdx.x % 32;
  const float mean = sum / C;
  float squares = 0;
  for (int i = lane * W; i < C; i += 32 * W) {
    float v[W];
    load_pack<W>(v, x + i);
#pragma unroll
    for (int k = 0; k < W; k++) squares += (v[k] - mean) * (v[k] - mean);
  }
  const float rstd = 1.0f / sqrtf(warp_sum(squares) / C + kEpsilon);
  for (int i = lane * W; i < C; i += 32 * W) {
    float v[W], w[W], b[W];
    load_pack<W>(v, x + i);
    load_or<W>(w, weight ? weight + i : nullptr, 1.0f);
    load_or<W>(b, bias ? bias + i : nullptr, 0.0f);
#pragma unroll
    for (int k = 0; k < W; k++) v[k] = (v[k] - mean) * rstd * w[k] + b[k];
    store_pack<W>(out + i, v);
  }
  if (lane == 0) {
    *mean_out = mean;
    *rstd_out = rstd;
  }
}

template <int W>
__global__ void __launch_bounds__(kRowThreads) layernorm_forward_kernel(bf16* out, float* mean, float* rstd,
                                                                        const bf16* inp, const bf16* weight,
                                                                        const bf16* bias, int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;  // the whole warp
  const int64_t offset = int64_t(row) * C;
  const float sum = lane_row_sum<W>(inp + offset, C, [](float x) { return x; });
  normalize_row<W>(out + offset, mean + row, rstd + row, inp + offset, weight, bias, C, warp_sum(sum));
}

// residual_out may be residual itself (an in-place add): each lane reads only
// the values it has written, so the normalization reads residual_out.
template <int W>
__global__ void __launch_bounds__(kRowThreads) residual_layernorm_forward_kernel(
    bf16* residual_out, bf16* out, float* mean, float* rstd, const bf16* residual, const bf16* branch,
    const bf16* weight, const bf16* bias, int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;
  const int64_t offset = int64_t(row) * C;
  const float sum = add_residual_row<W>(residual_out + offset, residual + offset, branch + offset, C,
                                        [](float x) { return x; });
  __syncwarp();
  normalize_row<W>(out + offset, mean + row, rstd + row, residual_out + offset, weight, bias, C, warp_sum(sum));
}

// dx for one row a warp, added to dinp in fp32 and rounded once.
template <int W>
__global__ void __launch_bounds__(kRowThreads) layernorm_backward_input_kernel(bf16* dinp, const bf16* dout,
                                                                               const bf16* inp, const bf16* weight,
                                                                               const float* mean, const float* rstd,
                                                                               int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;
  const int64_t offset = int64_t(row) * C;
  const float m = mean[row], s = rstd[row];
  float g_sum = 0, g_xhat_sum = 0;
  for (int i = (threadIdx.x % 32) * W; i < C; i += 32 * W) {
    float d[W], x[W], w[W];
    load_pack<W>(d, dout + offset + i);
    load_pack<W>(x, inp + offset + i);
    load_or<W>(w, weight ? weight + i : nullptr, 1.0f);
#pragma unroll
    for (int k = 0; k < W; k++) {
      const float g = d[k] * w[k];
      g_sum += g;
      g_xhat_sum += g * (x[k] - m) * s;
    }
  }
  const float g_mean = warp_sum(g_sum) / C, g_xhat_mean = warp_sum(g_xhat_sum) / C;
  for (int i = (threadIdx.x % 32) * W; i < C; i += 32 * W) {
    float d[W], x[W], w[W], dx[W];
    load_pack<W>(d, dout + offset + i);
    load_pack<W>(x, inp + offset + i);
    load_or<W>(w, weight ? weight + i : nullptr, 1.0f);
    load_pack<W>(dx, dinp + offset + i);
#pragma unroll
    for (int k = 0; k < W; k++) dx[k] += s * (d[k] * w[k] - g_mean - (x[k] - m) * s * g_xhat_mean);
    store_pack<W>(dinp + offset + i, dx);
  }
}

// Block (chunk, tile): partials[chunk][0][c] = sum over the chunk's rows of dout * xhat,
// partials[chunk][1][c] = sum of dout, for the tile's 32*W columns c.
template <int W>
__global__ void __launch_bounds__(32 * kChunkWarps) layernorm_weight_partials_kernel(
    float* partials, const bf16* dout, const bf16* inp, const float* mean, const float* rstd, int N, int C) {
  __shared__ float dw_of_warp[kChunkWarps][32 * W], db_of_warp[kChunkWarps][32 * W];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int tile = blockIdx.y * 32 * W;
  const int c = tile + lane * W;
  float dw[W] = {}, db[W] = {};
  if (c < C) {
    const int chunk_start = int(blockIdx.x) * kRowsPerChunk;
    const int end = min(N, chunk_start + kRowsPerChunk);
    for (int row = chunk_start + warp; row < end; row += kChunkWarps) {
      float d[W], x[W];
      load_pack<W>(d, dout + int64_t(row) * C + c);
      load_pack<W>(x, inp + int64_t(row) * C + c);
      const float m = mean[row], s = rstd[row];
#pragma unroll
      for (int k = 0; k < W; k++) {
        dw[k] += d[k] * (x[k] - m) * s;
        db[k] += d[k];
      }
    }
  }
#pragma unroll
  for (int k = 0; k < W; k++) {
    dw_of_warp[warp][lane * W + k] = dw[k];
    db_of_warp[warp][lane * W + k] = db[k];
  }
  __syncthreads();
  for (int j = threadIdx.x; j < 32 * W && tile + j < C; j += blockDim.x) {
    float dw_sum = 0, db_sum = 0;
    for (int y = 0; y < kChunkWarps; y++) {
      dw_sum += dw_of_warp[y][j];
      db_sum += db_of_warp[y][j];
    }
    partials[(2 * int64_t(blockIdx.x)) * C + tile + j] = dw_sum;
    partials[(2 * int64_t(blockIdx.x) + 1) * C + tile + j] = db_sum;
  }
}

// One thread per column: the chunks' partials in chunk order, added to dw (and db).
__global__ void __launch_bounds__(kColumnThreads) layernorm_weight_sums_kernel(float* dweight, float* dbias,
                                                                               const float* partials, int chunks,
                                                                               int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float dw_sum = 0, db_sum = 0;
  for (int chunk = 0; chunk < chunks; chunk++) {
    dw_sum += partials[(2 * int64_t(chunk)) * C + c];
    db_sum += partials[(2 * int64_t(chunk) + 1) * C + c];
  }
  dweight[c] += dw_sum;
  if (dbias) dbias[c] += db_sum;
}


template <int W>
void launch_layernorm_backward(bf16* dinp, float* dweight, float* dbias, float* scratch, const bf16* dout,
                               const bf16* inp, const bf16* weight, const float* mean, const float* rstd, int N, int C,
                               cudaStream_t stream) {
  layernorm_backward_input_kernel<W><<<row_blocks(N), kRowThreads, 0, stream>>>(dinp, dout, inp, weight, mean, rstd,
                                                                                  N, C);
  CUDA_CHECK_LAUNCH();
  if (!dweight) return;
  const dim3 grid(row_chunks(N), (C + 32 * W - 1) / (32 * W));
  layernorm_weight_partials_kernel<W><<<grid, 32 * kChunkWarps, 0, stream>>>(scratch, dout, inp, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  layernorm_weight_sums_kernel<<<(C + kColumnThreads - 1) / kColumnThreads, kColumnThreads, 0, stream>>>(
      dweight, dbias, scratch, row_chunks(N), C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void layernorm_forward(bf16* out, float* mean, float* rstd, const bf16* inp, const bf16* weight, const bf16* bias,
                       int N, int C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  if (C % 8 == 0 && all_aligned_16({out, inp, weight, bias}))
    layernorm_forward_kernel<8><<<row_blocks(N), kRowThreads, 0, stream>>>(out, mean, rstd, inp, weight, bias, N, C);
  else
    layernorm_forward_kernel<1><<<row_blocks(N), kRowThreads, 0, stream>>>(out, mean, rstd, inp, weight, bias, N, C);
  CUDA_CHECK_LAUNCH();
}

void residual_layernorm_forward(bf16* residual_out, bf16* out, float* mean, float* rstd, const bf16* residual,
                                const bf16* branch, const bf16* weight, const bf16* bias, int N, int C,
                                cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  if (C % 8 == 0 && all_aligned_16({residual_out, out, residual, branch, weight, bias}))
    residual_layernorm_forward_kernel<8><<<row_blocks(N), kRowThreads, 0, stream>>>(
        residual_out, out, mean, rstd, residual, branch, weight, bias, N, C);
  else
    residual_layernorm_forward_kernel<1><<<row_blocks(N), kRowThreads, 0, stream>>>(
        residual_out, out, mean, rstd, residual, branch, weight, bias, N, C);
  CUDA_CHECK_LAUNCH();
}

void layernorm_backward(bf16* dinp, float* dweight, float* dbias, float* scratch, const bf16* dout, const bf16* inp,
                        const bf16* weight, const float* mean, const float* rstd, int N, int C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  if (C % 8 == 0 && all_aligned_16({dinp, dout, inp, weight}))
    launch_layernorm_backward<8>(dinp, dweight, dbias, scratch, dout, inp, weight, mean, rstd, N, C, stream);
  else
    launch_layernorm_backward<1>(dinp, dweight, dbias, scratch, dout, inp, weight, mean, rstd, N, C, stream);
}

int64_t layernorm_backward_scratch_floats(int N, int C) { return 2 * int64_t(row_chunks(N)) * C; }

}  // namespace llmdion::cuda
