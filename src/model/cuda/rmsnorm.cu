// RMSNorm over the last dimension, eps = 1e-5, the bf16 twin of cpu/rmsnorm.cpp:
//   y = x * rstd,  rstd = 1 / sqrt(mean(x^2) + eps),  out = y * w   (w null: w = 1)
// fused with the residual add before it: x = bf16(residual + branch), stored, then normalized;
// backward, with g = dout * w:
//   dx += rstd * (g - y * mean(g * y)),  dw += sum_n dout * y   (dw null: not learned)
// and without a scale on each attention head of q and k, in place (qk-norm), whose
// backward turns d = dL/dy into dL/dx = rstd * (d - y * mean(d * y)) from the stored y.
// Statistics in fp32.
//
// Row work (forward, dx) is one warp per row, 8 rows a block: lane l takes the
// W-wide packs at l*W, (l+32)*W, ... and the warp sums with a butterfly. dw is
// a column sum, done without atomics in two steps: block (chunk, tile) sums the
// rows of a 256-row chunk for a tile of 32*W columns (warp y takes rows y, y+8,
// ..., then the 8 warps are added in order) into scratch [chunk][C]; then one
// thread per column adds the chunks in order into dw.
// Head work (qk-norm) is one group of L lanes per (row, head), 256 threads a
// block, L the largest power of two up to hs/W and 32, so a warp covers 32/L
// heads of 64 or 128 values in 16-byte packs with every lane busy; the group
// sums with a butterfly of its own.
#include <cmath>

#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/block_reduce.cuh"
#include "model/cuda/kernels.h"
#include "model/cuda/norm_rows.cuh"

namespace llmdion::cuda {
namespace {

constexpr int kHeadThreads = 256;



// One warp writes out = x * rstd * w for the row x, given the row's sum of squares (reduced over the warp).
template <int W>
__device__ void scale_row(bf16* out, float* rstd_out, const bf16* x, const bf16* weight, int C, float squares) {
  const int lane = threadIdx.x % 32;
  const float rstd = 1.0f / sqrtf(squares / C + kEpsilon);
  for (int i = lane * W; i < C; i += 32 * W) {
    float v[W], w[W];
    load_pack<W>(v, x + i);
    load_or<W>(w, weight ? weight + i : nullptr, 1.0f);
#pragma unroll
    for (int k = 0; k < W; k++) v[k] = v[k] * rstd * w[k];
    store_pack<W>(out + i, v);
  }
  if (lane == 0) *rstd_out = rstd;
}

template <int W>
__global__ void __launch_bounds__(kRowThreads) rmsnorm_forward_kernel(bf16* out, float* rstd, const bf16* inp,
                                                                      const bf16* weight, int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;  // the whole warp
  const int64_t offset = int64_t(row) * C;
  const float squares = lane_row_sum<W>(inp + offset, C, [](float x) { return x * x; });
  scale_row<W>(out + offset, rstd + row, inp + offset, weight, C, warp_sum(squares));
}

// residual_out may be residual itself (an in-place add): each lane reads back
// only the values it has itself written, so the scaling reads residual_out.
template <int W>
__global__ void __launch_bounds__(kRowThreads) residual_rmsnorm_forward_kernel(bf16* residual_out, bf16* out,
                                                                               float* rstd, const bf16* residual,
                                                                               const bf16* branch, const bf16* weight,
                                                                               int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;
  const int64_t offset = int64_t(row) * C;
  const float squares = add_residual_row<W>(residual_out + offset, residual + offset, branch + offset, C,
                                            [](float x) { return x * x; });
  scale_row<W>(out + offset, rstd + row, residual_out + offset, weight, C, warp_sum(squares));
}

// dx for one row a warp, added to dinp in fp32 and rounded once.
template <int W>
__global__ void __launch_bounds__(kRowThreads) rmsnorm_backward_input_kernel(bf16* dinp, const bf16* dout,
                                                                             const bf16* inp, const bf16* weight,
                                                                             const float* rstd, int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;
  const int64_t offset = int64_t(row) * C;
  const float s = rstd[row];
  float g_y_sum = 0;
  for (int i = (threadIdx.x % 32) * W; i < C; i += 32 * W) {
    float d[W], x[W], w[W];
    load_pack<W>(d, dout + offset + i);
    load_pack<W>(x, inp + offset + i);
    load_or<W>(w, weight ? weight + i : nullptr, 1.0f);
#pragma unroll
    for (int k = 0; k < W; k++) g_y_sum += d[k] * w[k] * x[k] * s;
  }
  const float g_y_mean = warp_sum(g_y_sum) / C;
  for (int i = (threadIdx.x % 32) * W; i < C; i += 32 * W) {
    float d[W], x[W], w[W], dx[W];
    load_pack<W>(d, dout + offset + i);
    load_pack<W>(x, inp + offset + i);
    load_or<W>(w, weight ? weight + i : nullptr, 1.0f);
    load_pack<W>(dx, dinp + offset + i);
#pragma unroll
    for (int k = 0; k < W; k++) dx[k] += s * (d[k] * w[k] - x[k] * s * g_y_mean);
    store_pack<W>(dinp + offset + i, dx);
  }
}

// Block (chunk, tile): partials[chunk][c] = sum over the chunk's rows of dout * x * rstd,
// for the tile's 32*W columns c.
template <int W>
__global__ void __launch_bounds__(32 * kChunkWarps) rmsnorm_weight_partials_kernel(float* partials, const bf16* dout,
                                                                                   const bf16* inp,
                                                                                   const float* rstd, int N, int C) {
  __shared__ float dw_of_warp[kChunkWarps][32 * W];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int tile = blockIdx.y * 32 * W;
  const int c = tile + lane * W;
  float dw[W] = {};
  if (c < C) {
    const int chunk_start = int(blockIdx.x) * kRowsPerChunk;
    const int end = min(N, chunk_start + kRowsPerChunk);
    for (int row = chunk_start + warp; row < end; row += kChunkWarps) {
      float d[W], x[W];
      load_pack<W>(d, dout + int64_t(row) * C + c);
      load_pack<W>(x, inp + int64_t(row) * C + c);
      const float s = rstd[row];
#pragma unroll
      for (int k = 0; k < W; k++) dw[k] += d[k] * x[k] * s;
    }
  }
#pragma unroll
  for (int k = 0; k < W; k++) dw_of_warp[warp][lane * W + k] = dw[k];
  __syncthreads();
  for (int j = threadIdx.x; j < 32 * W && tile + j < C; j += blockDim.x) {
    float dw_sum = 0;
    for (int y = 0; y < kChunkWarps; y++) dw_sum += dw_of_warp[y][j];
    partials[int64_t(blockIdx.x) * C + tile + j] = dw_sum;
  }
}

// One thread per column: the chunks' partials in chunk order, added to dw.
__global__ void __launch_bounds__(kColumnThreads) rmsnorm_weight_sums_kernel(float* dweight, const float* partials,
                                                                             int chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float dw_sum = 0;
  for (int chunk = 0; chunk < chunks; chunk++) dw_sum += partials[int64_t(chunk) * C + c];
  dweight[c] += dw_sum;
}

template <int W>
void launch_rmsnorm_backward(bf16* dinp, float* dweight, float* scratch, const bf16* dout, const bf16* inp,
                             const bf16* weight, const float* rstd, int N, int C, cudaStream_t stream) {
  rmsnorm_backward_input_kernel<W><<<row_blocks(N), kRowThreads, 0, stream>>>(dinp, dout, inp, weight, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  if (!dweight) return;
  const dim3 grid(row_chunks(N), (C + 32 * W - 1) / (32 * W));
  rmsnorm_weight_partials_kernel<W><<<grid, 32 * kChunkWarps, 0, stream>>>(scratch, dout, inp, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  rmsnorm_weight_sums_kernel<<<(C + kColumnThreads - 1) / kColumnThreads, kColumnThreads, 0, stream>>>(
      dweight, scratch, row_chunks(N), C);
  CUDA_CHECK_LAUNCH();
}

// Heads: `lanes` consecutive lanes (a power of two dividing 32) per head nh = n * heads + h,
// which starts at n * stride + h * hs; lane j of the group takes the packs at j*W, (j+lanes)*W, ...
// Lanes past the last head still join the group sums, which need the whole warp.
struct HeadLayout {
  int64_t count;  // N * heads
  int heads, hs, stride, lanes;
  __device__ int64_t head() const { return (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / lanes; }
  __device__ int lane() const { return threadIdx.x % lanes; }
  __device__ int64_t start(int64_t nh) const { return (nh / heads) * stride + (nh % heads) * hs; }
};

template <int W>
__global__ void __launch_bounds__(kHeadThreads) head_rmsnorm_forward_kernel(bf16* x, float* rstd, HeadLayout layout) {
  const int64_t nh = layout.head();
  const bool real = nh < layout.count;
  bf16* head = x + (real ? layout.start(nh) : 0);
  const int first = layout.lane() * W, step = layout.lanes * W;
  float squares = 0;
  if (real)
    for (int i = first; i < layout.hs; i += step) {
      float v[W];
      load_pack<W>(v, head + i);
#pragma unroll
      for (int k = 0; k < W; k++) squares += v[k] * v[k];
    }
  const float s = 1.0f / sqrtf(lane_group_sum(squares, layout.lanes) / layout.hs + kEpsilon);
  if (!real) return;
  for (int i = first; i < layout.hs; i += step) {
    float v[W];
    load_pack<W>(v, head + i);
#pragma unroll
    for (int k = 0; k < W; k++) v[k] *= s;
    store_pack<W>(head + i, v);
  }
  if (layout.lane() == 0) rstd[nh] = s;
}

template <int W>
__global__ void __launch_bounds__(kHeadThreads) head_rmsnorm_backward_kernel(bf16* d, const bf16* y,
                                                                             const float* rstd, HeadLayout layout) {
  const int64_t nh = layout.head();
  const bool real = nh < layout.count;
  const int64_t at = real ? layout.start(nh) : 0;
  const int first = layout.lane() * W, step = layout.lanes * W;
  float dot = 0;
  if (real)
    for (int i = first; i < layout.hs; i += step) {
      float g[W], v[W];
      load_pack<W>(g, d + at + i);
      load_pack<W>(v, y + at + i);
#pragma unroll
      for (int k = 0; k < W; k++) dot += g[k] * v[k];
    }
  const float dot_mean = lane_group_sum(dot, layout.lanes) / layout.hs;
  if (!real) return;
  const float s = rstd[nh];
  for (int i = first; i < layout.hs; i += step) {
    float g[W], v[W];
    load_pack<W>(g, d + at + i);
    load_pack<W>(v, y + at + i);
#pragma unroll
    for (int k = 0; k < W; k++) g[k] = s * (g[k] - v[k] * dot_mean);
    store_pack<W>(d + at + i, g);
  }
}

// 16-byte packs when every head is whole packs on 16-byte boundaries.
bool heads_take_packs(int hs, int stride, std::initializer_list<const void*> pointers) {
  return hs % 8 == 0 && stride % 8 == 0 && all_aligned_16(pointers);
}

HeadLayout head_layout(int N, int heads, int hs, int stride, int W) {
  int lanes = 1;
  while (lanes < 32 && 2 * lanes * W <= hs) lanes *= 2;
  return HeadLayout{int64_t(N) * heads, heads, hs, stride, lanes};
}

unsigned head_blocks(const HeadLayout& layout) {
  const int64_t heads_per_block = kHeadThreads / layout.lanes;
  return unsigned((layout.count + heads_per_block - 1) / heads_per_block);
}

}  // namespace

void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  if (C % 8 == 0 && all_aligned_16({out, inp, weight}))
    rmsnorm_forward_kernel<8><<<row_blocks(N), kRowThreads, 0, stream>>>(out, rstd, inp, weight, N, C);
  else
    rmsnorm_forward_kernel<1><<<row_blocks(N), kRowThreads, 0, stream>>>(out, rstd, inp, weight, N, C);
  CUDA_CHECK_LAUNCH();
}

void residual_rmsnorm_forward(bf16* residual_out, bf16* out, float* rstd, const bf16* residual, const bf16* branch,
                              const bf16* weight, int N, int C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  if (C % 8 == 0 && all_aligned_16({residual_out, out, residual, branch, weight}))
    residual_rmsnorm_forward_kernel<8><<<row_blocks(N), kRowThreads, 0, stream>>>(residual_out, out, rstd, residual,
                                                                                   branch, weight, N, C);
  else
    residual_rmsnorm_forward_kernel<1><<<row_blocks(N), kRowThreads, 0, stream>>>(residual_out, out, rstd, residual,
                                                                                   branch, weight, N, C);
  CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(bf16* dinp, float* dweight, float* scratch, const bf16* dout, const bf16* inp,
                      const bf16* weight, const float* rstd, int N, int C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  if (C % 8 == 0 && all_aligned_16({dinp, dout, inp, weight}))
    launch_rmsnorm_backward<8>(dinp, dweight, scratch, dout, inp, weight, rstd, N, C, stream);
  else
    launch_rmsnorm_backward<1>(dinp, dweight, scratch, dout, inp, weight, rstd, N, C, stream);
}

int64_t rmsnorm_backward_scratch_floats(int N, int C) { return int64_t(row_chunks(N)) * C; }

void head_rmsnorm_forward(bf16* x, float* rstd, int N, int heads, int hs, int stride, cudaStream_t stream) {
  if (N == 0 || heads == 0 || hs == 0) return;
  if (heads_take_packs(hs, stride, {x})) {
    const HeadLayout layout = head_layout(N, heads, hs, stride, 8);
    head_rmsnorm_forward_kernel<8><<<head_blocks(layout), kHeadThreads, 0, stream>>>(x, rstd, layout);
  } else {
    const HeadLayout layout = head_layout(N, heads, hs, stride, 1);
    head_rmsnorm_forward_kernel<1><<<head_blocks(layout), kHeadThreads, 0, stream>>>(x, rstd, layout);
  }
  CUDA_CHECK_LAUNCH();
}

void head_rmsnorm_backward(bf16* d, const bf16* y, const float* rstd, int N, int heads, int hs, int stride,
                           cudaStream_t stream) {
  if (N == 0 || heads == 0 || hs == 0) return;
  if (heads_take_packs(hs, stride, {d, y})) {
    const HeadLayout layout = head_layout(N, heads, hs, stride, 8);
    head_rmsnorm_backward_kernel<8><<<head_blocks(layout), kHeadThreads, 0, stream>>>(d, y, rstd, layout);
  } else {
    const HeadLayout layout = head_layout(N, heads, hs, stride, 1);
    head_rmsnorm_backward_kernel<1><<<head_blocks(layout), kHeadThreads, 0, stream>>>(d, y, rstd, layout);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace llmdion::cuda
