// sums[j] += sum over rows n of x[n, j] (bias gradients), the bf16-input twin of
// cpu/column_sums.cpp, summed in fp32 without atomics in two steps:
//   partials[chunk][j] = sum of x[n, j] over the 256 rows n of the chunk
//   sums[j]           += sum of partials[chunk][j] over the chunks, in order
// Block (chunk, tile) covers 32*W columns: lane l holds columns l*W ... l*W+W-1
// (16-byte loads when W = 8), warp y takes the rows y, y+8, ... of the chunk,
// and the 8 warps' sums are added in warp order. The order depends on N only.
#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/kernels.h"
#include "model/cuda/norm_rows.cuh"

namespace llmdion::cuda {
namespace {

template <int W>
__global__ void __launch_bounds__(32 * kChunkWarps) column_partials_kernel(float* partials, const bf16* x, int N,
                                                                           int width) {
  __shared__ float sum_of_warp[kChunkWarps][32 * W];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int tile = blockIdx.y * 32 * W;
  const int j = tile + lane * W;
  float sum[W] = {};
  if (j < width) {
    const int chunk_start = int(blockIdx.x) * kRowsPerChunk;
    const int end = min(N, chunk_start + kRowsPerChunk);
    for (int row = chunk_start + warp; row < end; row += kChunkWarps) {
      float v[W];
      load_pack<W>(v, x + int64_t(row) * width + j);
#pragma unroll
      for (int k = 0; k < W; k++) sum[k] += v[k];
    }
  }
#pragma unroll
  for (int k = 0; k < W; k++) sum_of_warp[warp][lane * W + k] = sum[k];
  __syncthreads();
  for (int t = threadIdx.x; t < 32 * W && tile + t < width; t += blockDim.x) {
    float total = 0;
    for (int y = 0; y < kChunkWarps; y++) total += sum_of_warp[y][t];
    partials[int64_t(blockIdx.x) * width + tile + t] = total;
  }
}

__global__ void __launch_bounds__(kColumnThreads) add_partials_kernel(float* sums, const float* partials, int chunks,
                                                                      int width) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= width) return;
  float total = 0;
  for (int chunk = 0; chunk < chunks; chunk++) total += partials[int64_t(chunk) * width + j];
  sums[j] += total;
}

template <int W>
void launch_add_column_sums(float* sums, float* scratch, const bf16* x, int N, int width, cudaStream_t stream) {
  const dim3 grid(row_chunks(N), (width + 32 * W - 1) / (32 * W));
  column_partials_kernel<W><<<grid, 32 * kChunkWarps, 0, stream>>>(scratch, x, N, width);
  CUDA_CHECK_LAUNCH();
  add_partials_kernel<<<(width + kColumnThreads - 1) / kColumnThreads, kColumnThreads, 0, stream>>>(
      sums, scratch, row_chunks(N), width);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void add_column_sums(float* sums, float* scratch, const bf16* x, int N, int width, cudaStream_t stream) {
  if (N == 0 || width == 0) return;
  if (width % 8 == 0 && all_aligned_16({x}))
    launch_add_column_sums<8>(sums, scratch, x, N, width, stream);
  else
    launch_add_column_sums<1>(sums, scratch, x, N, width, stream);
}

int64_t column_sums_scratch_floats(int N, int width) { return int64_t(row_chunks(N)) * width; }

}  // namespace llmdion::cuda
