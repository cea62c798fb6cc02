// The matrix optimizers' operations on the GPU, fp32 throughout: the CPU ops
// (optim/cpu/matrix_ops.cpp) over device memory, equal to them to fp32
// rounding, everything on the default stream, where the CUDA model and AdamW run.
//
//   gemm, transpose, triangular solve   cuBLAS in pedantic math: real fp32, never TF32 or
//                                       bf16x9 emulation, no atomics
//   symmetric products (syrk)           the lower block triangle by batched cuBLAS GEMMs, the
//                                       upper mirrored from it
//   Cholesky, Householder QR            cuSOLVER potrf; geqrf + orgqr, in deterministic mode
//   element-wise updates                one thread per element, each product and sum rounded
//                                       where the CPU loop rounds it (__fmul_rn, __fadd_rn: no
//                                       fused multiply-adds), so they equal the CPU build's
//                                       bit for bit
//   row and column reductions           fp64 sums in a fixed order (a block per row; a 32 x 32
//                                       tile per 32 columns), no atomics: the same bits every run
//
// Row-major matrices are column-major to cuBLAS as their transposes, so C = op(A) op(B)
// is computed as C^T = op(B)^T op(A)^T. Slice indices arrive as host spans and go up
// into an index buffer owned here; it and every workspace grow only when a larger
// request arrives, so steady-state steps allocate nothing.
#include "optim/cuda/matrix_ops.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/cuda/check.h"
#include "core/device.h"
#include "model/cuda/block_reduce.cuh"
#include "model/cuda/kernels.h"

namespace llmdion {
namespace {

constexpr cudaStream_t kStream = nullptr;  // the default stream
constexpr int kThreads = 256;              // element-wise kernels and row reductions
constexpr int kTile = 32;                  // column reductions: kTile columns x kTile row lanes a block

// Blocks for element-wise kernels over n elements; past the cap, threads stride the grid.
unsigned blocks_for(int64_t n) { return unsigned(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 1 << 16)); }

__device__ int64_t thread_index() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ int64_t thread_count() { return int64_t(gridDim.x) * blockDim.x; }

// ---- element-wise --------------------------------------------------------------------------

// y = a x (b = 0: y is not read, as on the CPU) or y = a x + b y.
__global__ void axpby_kernel(int64_t n, float a, const float* x, float b, float* y) {
  for (int64_t i = thread_index(); i < n; i += thread_count())
    y[i] = b == 0.0f ? __fmul_rn(a, x[i]) : __fadd_rn(__fmul_rn(a, x[i]), __fmul_rn(b, y[i]));
}

// ---- selected slices -----------------------------------------------------------------------
// Element e of the k-slice submatrix (kRows: k x cols, kCols: rows x k, row-major) lies at
// this index of the rows x cols matrix.
__device__ int64_t slice_element(bool by_rows, int64_t e, int64_t cols, int64_t k, const int64_t* selected) {
  return by_rows ? selected[e / cols] * cols + e % cols : (e / k) * cols + selected[e % k];
}

// out = m[K]; with kScale, then m[K] *= factor (the read comes first, so out keeps m's value).
template <bool kScale>
__global__ void gather_slices_kernel(bool by_rows, int64_t count, int64_t cols, int64_t k,
                                     std::conditional_t<kScale, float*, const float*> m, const int64_t* selected,
                                     float* out, float factor) {
  for (int64_t e = thread_index(); e < count; e += thread_count()) {
    const int64_t at = slice_element(by_rows, e, cols, k, selected);
    out[e] = m[at];
    if constexpr (kScale) m[at] = __fmul_rn(m[at], factor);
  }
}

// w[K] = alpha update
__global__ void set_slices_kernel(bool by_rows, int64_t count, int64_t cols, int64_t k, float* w,
                                  const int64_t* selected, float alpha, const float* update) {
  for (int64_t e = thread_index(); e < count; e += thread_count())
    w[slice_element(by_rows, e, cols, k, selected)] = __fmul_rn(alpha, update[e]);
}

// w = keep w, then w[K] += alpha update, over every element of w: slot[s] is slice s's
// place in the selection, or -1 where s is not selected.
__global__ void add_to_slices_kernel(bool by_rows, int64_t rows, int64_t cols, int64_t k, float* w,
                                     const int64_t* slot, float keep, float alpha, const float* update) {
  for (int64_t at = thread_index(); at < rows * cols; at += thread_count()) {
    const int64_t i = at / cols, j = at % cols, t = slot[by_rows ? i : j];
    float x = __fmul_rn(w[at], keep);
    if (t >= 0) x = __fadd_rn(x, __fmul_rn(alpha, update[by_rows ? t * cols + j : i * k + t]));
    w[at] = x;
  }
}

// The upper triangle of each of `count` n x n matrices (stride apart) = its lower triangle, transposed.
__global__ void mirror_lower_kernel(int64_t n, int64_t count, float* c, int64_t stride) {
  for (int64_t e = thread_index(); e < count * n * n; e += thread_count()) {
    const int64_t i = e / (n * n), r = e % (n * n) / n, col = e % n;
    if (col > r) c[i * stride + r * n + col] = c[i * stride + col * n + r];
  }
}

// ---- row reductions: a block per row, thread t summing columns t, t + 256, ... ----------------

// m += g, then norms[i] = sum_j |m_ij| for this block's row i.
__global__ void __launch_bounds__(kThreads) accumulate_row_l1_norms_kernel(int64_t cols, const float* g, float* m,
                                                                           float* norms) {
  __shared__ double warp_sums[32];
  const int64_t row = int64_t(blockIdx.x) * cols;
  double sum = 0;
  for (int64_t j = row + threadIdx.x; j < row + cols; j += kThreads) sum += fabs(double(m[j] = __fadd_rn(m[j], g[j])));
  sum = cuda::block_sum(sum, warp_sums);
  if (threadIdx.x == 0) norms[blockIdx.x] = float(sum);
}

// NorMuon: v[n] = beta2 v[n] + (1 - beta2) mean_j u_ij^2 for row i's neuron n; u_ij /= sqrt(v[n]) + eps.
__global__ void __launch_bounds__(kThreads) normalize_rows_kernel(int64_t cols, float* u, const int64_t* row_of,
                                                                  float* v, float beta2, float eps) {
  __shared__ double warp_sums[32];
  float* row = u + int64_t(blockIdx.x) * cols;
  float& second_moment = v[row_of ? row_of[blockIdx.x] : blockIdx.x];
  const float previous = second_moment;  // every thread reads it before thread 0 writes (block_sum syncs)
  double sum = 0;
  for (int64_t j = threadIdx.x; j < cols; j += kThreads) sum += double(row[j]) * double(row[j]);
  sum = cuda::block_sum(sum, warp_sums);
  const float updated = __fadd_rn(__fmul_rn(beta2, previous), __fmul_rn(1.0f - beta2, float(sum / double(cols))));
  if (threadIdx.x == 0) second_moment = updated;
  const float factor = __fdiv_rn(1.0f, __fadd_rn(__fsqrt_rn(updated), eps));
  for (int64_t j = threadIdx.x; j < cols; j += kThreads) row[j] *= factor;
}

// ---- column reductions: block b takes columns 32b .. 32b + 31 ---------------------------------
// sum_i term(i * cols + j) in fp64 for this thread's column j: thread (j, lane) takes rows
// lane, lane + 32, ... (each element once), then each column's 32 lane sums are added in
// lane order. Every thread of the column returns the total. The block's only
// synchronization: call it before writing what the terms read.
template <typename Term>
__device__ double column_sum(int64_t rows, int64_t cols, Term term) {
  __shared__ double lane_sums[kTile][kTile + 1];
  const int64_t j = int64_t(blockIdx.x) * kTile + threadIdx.x;
  double sum = 0;
  if (j < cols)
    for (int64_t i = threadIdx.y; i < rows; i += kTile) sum += term(i * cols + j);
  lane_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  double total = 0;
  for (int lane = 0; lane < kTile; lane++) total += lane_sums[lane][threadIdx.x];
  return total;
}

// m += g, then norms[j] = sum_i |m_ij|.
__global__ void __launch_bounds__(kTile * kTile) accumulate_column_l1_norms_kernel(int64_t rows, int64_t cols,
                                                                                   const float* g, float* m,
                                                                                   float* norms) {
  const double sum = column_sum(rows, cols, [&](int64_t at) { return fabs(double(m[at] = __fadd_rn(m[at], g[at]))); });
  const int64_t j = int64_t(blockIdx.x) * kTile + threadIdx.x;
  if (threadIdx.y == 0 && j < cols) norms[j] = float(sum);
}

// x_ij /= ||x_:j|| + eps
__global__ void __launch_bounds__(kTile * kTile) normalize_columns_kernel(int64_t rows, int64_t cols, float* x,
                                                                          float eps) {
  const double sum = column_sum(rows, cols, [&](int64_t at) { return double(x[at]) * double(x[at]); });
  const int64_t j = int64_t(blockIdx.x) * kTile + threadIdx.x;
  if (j >= cols) return;
  const float factor = __fdiv_rn(1.0f, __fadd_rn(float(sqrt(sum)), eps));
  for (int64_t i = threadIdx.y; i < rows; i += kTile) x[i * cols + j] *= factor;
}

// ---- QR ------------------------------------------------------------------------------------

// far[0] = 1 when some |gram_ii - 1| >= 0.5 (or is NaN), else 0: Cholesky-QR's first pass left
// P far from orthonormal. One block.
__global__ void check_near_identity_diagonal_kernel(int64_t r, const float* gram, int* far) {
  int bad = 0;
  for (int64_t i = threadIdx.x; i < r; i += blockDim.x) bad |= !(fabsf(gram[i * r + i] - 1.0f) < 0.5f);
  bad = __syncthreads_or(bad);
  if (threadIdx.x == 0) far[0] = bad;
}

// signs[j] = -1 where R_jj < 0, else 1; a: geqrf's m x r column-major output, R in its upper triangle.
__global__ void diagonal_signs_kernel(int64_t m, int64_t r, const float* a, float* signs) {
  for (int64_t j = thread_index(); j < r; j += thread_count()) signs[j] = a[j * m + j] < 0.0f ? -1.0f : 1.0f;
}

// q (m x r column-major) *= diag(signs): column j negated where R_jj < 0, so D R has a non-negative diagonal.
__global__ void sign_columns_kernel(int64_t m, int64_t r, float* q, const float* signs) {
  for (int64_t e = thread_index(); e < m * r; e += thread_count()) q[e] *= signs[e / m];
}

// ---- the ops -------------------------------------------------------------------------------

// A device array that grows to the largest count asked of it; contents are not kept.
template <typename T>
class Workspace {
 public:
  Workspace() = default;
  ~Workspace() { cudaFree(data_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  T* reserve(int64_t count) {
    if (count > capacity_) {
      CUDA_CHECK(cudaFree(data_));  // waits for the kernels that may still read it
      data_ = nullptr, capacity_ = 0;
      CUDA_CHECK(cudaMalloc(&data_, size_t(count) * sizeof(T)));
      capacity_ = count;
    }
    return data_;
  }

 private:
  T* data_ = nullptr;
  int64_t capacity_ = 0;
};

class CudaMatrixOps final : public MatrixOps {
 public:
  CudaMatrixOps() {
    CUBLAS_CHECK(cublasCreate(&blas_));
    CUBLAS_CHECK(cublasSetStream(blas_, kStream));
    CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH));
    CUBLAS_CHECK(cublasSetAtomicsMode(blas_, CUBLAS_ATOMICS_NOT_ALLOWED));
    // gemm_bf16's handle: tensor cores allowed (bf16 operands, fp32 accumulation).
    CUBLAS_CHECK(cublasCreate(&tensor_blas_));
    CUBLAS_CHECK(cublasSetStream(tensor_blas_, kStream));
    CUBLAS_CHECK(cublasSetAtomicsMode(tensor_blas_, CUBLAS_ATOMICS_NOT_ALLOWED));
    CUSOLVER_CHECK(cusolverDnCreate(&solver_));
    CUSOLVER_CHECK(cusolverDnSetStream(solver_, kStream));
    CUSOLVER_CHECK(cusolverDnSetDeterministicMode(solver_, CUSOLVER_DETERMINISTIC_RESULTS));
  }
  ~CudaMatrixOps() override {
    cusolverDnDestroy(solver_);
    cublasDestroy(tensor_blas_);
    cublasDestroy(blas_);
  }
  CudaMatrixOps(const CudaMatrixOps&) = delete;
  CudaMatrixOps& operator=(const CudaMatrixOps&) = delete;

  float* allocate(int64_t n) override { return buffers_.emplace_back(Device::kCuda, size_t(n)).data(); }
  void copy_from_host(std::span<const float> from, float* to) override {
    llmdion::copy_from_host(Device::kCuda, from, to);
  }
  void copy_to_host(const float* from, std::span<float> to) override { llmdion::copy_to_host(Device::kCuda, from, to); }

  // Row-major C (m x n, ld n) is column-major C^T = alpha op(B)^T op(A)^T + beta C^T. Row-major
  // A is column-major A^T (ld = its row length: k, or m when transposed), so op(A)^T is A^T as
  // stored (N) without transpose_a and the stored matrix transposed (T) with it; B likewise.
  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b, float beta,
            float* c) override {
    if (m == 0 || n == 0) return;
    if (k == 0) {  // C = beta C, as on the CPU
      if (beta == 0.0f) CUDA_CHECK(cudaMemsetAsync(c, 0, size_t(m * n) * sizeof(float), kStream));
      else scale(m * n, beta, c);
      return;
    }
    // beta = 0: cuBLAS does not read C, so whatever it held (NaN included) is overwritten.
    CUBLAS_CHECK(cublasSgemm(blas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m),
                             int(k), &alpha, b, int(tb ? k : n), a, int(ta ? m : k), &beta, c, int(n)));
  }

  // The same mapping with A and B rounded to bf16 first (the CPU's rounding, nearest even),
  // multiplied on tensor cores with fp32 accumulation.
  void gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
                 float beta, float* c) override {
    if (m == 0 || n == 0 || k == 0) return gemm(ta, tb, m, n, k, alpha, a, b, beta, c);
    cuda::bf16* a16 = bf16_operands_.reserve(m * k + n * k);
    cuda::bf16* b16 = a16 + m * k;
    cuda::round_to_bf16_nearest(a16, a, m * k, kStream);
    cuda::round_to_bf16_nearest(b16, b, n * k, kStream);
    CUBLAS_CHECK(cublasGemmEx(tensor_blas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(n),
                              int(m), int(k), &alpha, b16, CUDA_R_16BF, int(tb ? k : n), a16, CUDA_R_16BF,
                              int(ta ? m : k), &beta, c, CUDA_R_32F, int(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  // The same mappings as gemm and gemm_bf16 with strides between the matrices: one cuBLAS call.
  void gemm_batched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t stride_a,
                    const float* b, int64_t stride_b, float beta, float* c, int64_t stride_c, int64_t count,
                    bool bf16_operands) override {
    if (count == 0 || m == 0 || n == 0) return;
    if (k == 0) {  // C_i = beta C_i, as gemm does it
      for (int64_t i = 0; i < count; i++) gemm(ta, tb, m, n, k, alpha, a, b, beta, c + i * stride_c);
      return;
    }
    const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int lda = int(ta ? m : k), ldb = int(tb ? k : n);
    if (!bf16_operands) {
      CUBLAS_CHECK(cublasSgemmStridedBatched(blas_, op_b, op_a, int(n), int(m), int(k), &alpha, b, ldb, stride_b, a,
                                             lda, stride_a, &beta, c, int(n), stride_c, int(count)));
      return;
    }
    // Each operand's whole strided span rounded once, keeping its strides.
    const int64_t a_span = (count - 1) * stride_a + m * k, b_span = (count - 1) * stride_b + n * k;
    cuda::bf16* a16 = bf16_operands_.reserve(a_span + b_span);
    cuda::bf16* b16 = a16 + a_span;
    cuda::round_to_bf16_nearest(a16, a, a_span, kStream);
    cuda::round_to_bf16_nearest(b16, b, b_span, kStream);
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(tensor_blas_, op_b, op_a, int(n), int(m), int(k), &alpha, b16,
                                            CUDA_R_16BF, ldb, stride_b, a16, CUDA_R_16BF, lda, stride_a, &beta, c,
                                            CUDA_R_32F, int(n), stride_c, int(count), CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT));
  }

  // The lower block triangle of each C_i in tiles: with C_i split into T x T blocks of t = n / T
  // rows, block (I, J), I >= J, is A_I A_J^T (A_I: rows I of A_i), T (T + 1) / 2 of the T^2
  // products, all of every C_i in one batched cuBLAS call over pointer arrays; then the upper
  // triangle mirrored from the lower. Column-major, block (I, J) at c_i + I t n + J t (ld n) is
  // its transpose A_J A_I^T, with A_J^T stored at a_i + J t k (ld k): op(A) = T, op(B) = N.
  // Below two tiles of kSymmetricTile rows the plain GEMM is the better call.
  void syrk_batched(int64_t n, int64_t k, float alpha, const float* a, int64_t stride_a, float beta, float* c,
                    int64_t stride_c, int64_t count, bool bf16_operands) override {
    if (count == 0 || n == 0) return;
    constexpr int64_t kSymmetricTile = 256;
    int64_t tiles = 1;
    for (int64_t t : {4, 2})
      if (n % t == 0 && n / t >= kSymmetricTile) {
        tiles = t;
        break;
      }
    if (tiles == 1 || k == 0) {
      gemm_batched(false, true, n, n, k, alpha, a, stride_a, a, stride_a, beta, c, stride_c, count, bf16_operands);
    } else {
      const void* operand = a;
      if (bf16_operands) {
        const int64_t span = (count - 1) * stride_a + n * k;
        cuda::bf16* a16 = bf16_operands_.reserve(span);
        cuda::round_to_bf16_nearest(a16, a, span, kStream);
        operand = a16;
      }
      const size_t element = bf16_operands ? sizeof(cuda::bf16) : sizeof(float);
      const int64_t t = n / tiles, products = count * tiles * (tiles + 1) / 2;
      tile_pointers_.clear();
      for (const bool left : {true, false})  // [A array | B array | C array]
        for (int64_t i = 0; i < count; i++)
          for (int64_t big = 0; big < tiles; big++)
            for (int64_t small = 0; small <= big; small++)
              tile_pointers_.push_back(const_cast<char*>(static_cast<const char*>(operand)) +
                                       size_t(i * stride_a + (left ? small : big) * t * k) * element);
      for (int64_t i = 0; i < count; i++)
        for (int64_t big = 0; big < tiles; big++)
          for (int64_t small = 0; small <= big; small++) tile_pointers_.push_back(c + i * stride_c + big * t * n + small * t);
      void** device = tile_pointer_array_.reserve(int64_t(tile_pointers_.size()));
      CUDA_CHECK(cudaMemcpyAsync(device, tile_pointers_.data(), tile_pointers_.size() * sizeof(void*),
                                 cudaMemcpyHostToDevice, kStream));
      const cudaDataType type = bf16_operands ? CUDA_R_16BF : CUDA_R_32F;
      CUBLAS_CHECK(cublasGemmBatchedEx(bf16_operands ? tensor_blas_ : blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(t), int(t),
                                       int(k), &alpha, device, type, int(k), device + products, type, int(k), &beta,
                                       device + 2 * products, CUDA_R_32F, int(n),
                                       int(products), bf16_operands ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC,
                                       CUBLAS_GEMM_DEFAULT));
    }
    mirror_lower_kernel<<<blocks_for(count * n * n), kThreads, 0, kStream>>>(n, count, c, stride_c);
    CUDA_CHECK_LAUNCH();
  }

  void axpby(int64_t n, float a, const float* x, float b, float* y) override {
    if (n == 0) return;
    axpby_kernel<<<blocks_for(n), kThreads, 0, kStream>>>(n, a, x, b, y);
    CUDA_CHECK_LAUNCH();
  }

  void scale(int64_t n, float factor, float* x) override { cuda::scale_in_place(x, factor, n, kStream); }

  void copy(int64_t n, const float* from, float* to) override {
    CUDA_CHECK(cudaMemcpyAsync(to, from, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, kStream));
  }

  // Column-major, `from` is cols x rows (ld cols) and `to` rows x cols (ld rows): to = from^T.
  // (geam's second operand is `from` again, scaled by 0.)
  void transpose(int64_t rows, int64_t cols, const float* from, float* to) override {
    if (rows == 0 || cols == 0) return;
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgeam(blas_, CUBLAS_OP_T, CUBLAS_OP_T, int(rows), int(cols), &one, from, int(cols), &zero, from,
                             int(cols), to, int(rows)));
  }

  double sum_squares(int64_t n, const float* x) override {
    double* sums = sum_squares_.reserve(1 + cuda::sum_squares_partials(n));  // [total | partials]
    cuda::sum_squares(sums, sums + 1, x, n, kStream);
    double total = 0;
    CUDA_CHECK(cudaMemcpy(&total, sums, sizeof(double), cudaMemcpyDeviceToHost));
    return total;
  }

  void accumulate_slice_l1_norms(SliceDim dim, int64_t rows, int64_t cols, const float* g, float* m,
                                 std::span<float> norms) override {
    const int64_t count = dim == SliceDim::kRows ? rows : cols;
    if (rows == 0 || cols == 0) {  // empty slices: norm 0, as on the CPU
      std::fill(norms.begin(), norms.end(), 0.0f);
      return;
    }
    float* device_norms = slice_norms_.reserve(count);
    if (dim == SliceDim::kRows) {
      accumulate_row_l1_norms_kernel<<<unsigned(rows), kThreads, 0, kStream>>>(cols, g, m, device_norms);
    } else {
      accumulate_column_l1_norms_kernel<<<unsigned((cols + kTile - 1) / kTile), dim3(kTile, kTile), 0, kStream>>>(
          rows, cols, g, m, device_norms);
    }
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(norms.data(), device_norms, size_t(count) * sizeof(float), cudaMemcpyDeviceToHost));
  }

  void gather_slices(SliceDim dim, int64_t rows, int64_t cols, const float* m, std::span<const int64_t> selected,
                     float* out) override {
    const int64_t k = int64_t(selected.size()), count = (dim == SliceDim::kRows ? cols : rows) * k;
    if (count == 0) return;
    gather_slices_kernel<false><<<blocks_for(count), kThreads, 0, kStream>>>(dim == SliceDim::kRows, count, cols, k,
                                                                             m, upload(selected), out, 1.0f);
    CUDA_CHECK_LAUNCH();
  }

  void gather_and_scale_slices(SliceDim dim, int64_t rows, int64_t cols, float* m, std::span<const int64_t> selected,
                               float* out, float factor) override {
    const int64_t k = int64_t(selected.size()), count = (dim == SliceDim::kRows ? cols : rows) * k;
    if (count == 0) return;
    gather_slices_kernel<true><<<blocks_for(count), kThreads, 0, kStream>>>(dim == SliceDim::kRows, count, cols, k,
                                                                            m, upload(selected), out, factor);
    CUDA_CHECK_LAUNCH();
  }

  void set_slices(SliceDim dim, int64_t rows, int64_t cols, float* w, std::span<const int64_t> selected, float alpha,
                  const float* update) override {
    const int64_t k = int64_t(selected.size()), count = (dim == SliceDim::kRows ? cols : rows) * k;
    if (count == 0) return;
    set_slices_kernel<<<blocks_for(count), kThreads, 0, kStream>>>(dim == SliceDim::kRows, count, cols, k, w,
                                                                   upload(selected), alpha, update);
    CUDA_CHECK_LAUNCH();
  }

  void add_to_slices(SliceDim dim, int64_t rows, int64_t cols, float* w, std::span<const int64_t> selected, float keep,
                     float alpha, const float* update) override {
    if (rows == 0 || cols == 0) return;
    const bool by_rows = dim == SliceDim::kRows;
    slot_.assign(size_t(by_rows ? rows : cols), -1);
    for (size_t t = 0; t < selected.size(); t++) {
      int64_t& slot = slot_[size_t(selected[t])];
      if (slot >= 0) throw std::invalid_argument("add_to_slices: slice " + std::to_string(selected[t]) + " selected twice");
      slot = int64_t(t);
    }
    add_to_slices_kernel<<<blocks_for(rows * cols), kThreads, 0, kStream>>>(
        by_rows, rows, cols, int64_t(selected.size()), w, upload(slot_), keep, alpha, update);
    CUDA_CHECK_LAUNCH();
  }

  void normalize_rows(int64_t rows, int64_t cols, float* u, std::span<const int64_t> row_of, float* v, float beta2,
                      float eps) override {
    if (rows == 0) return;
    const int64_t* device_row_of = row_of.empty() ? nullptr : upload(row_of);
    normalize_rows_kernel<<<unsigned(rows), kThreads, 0, kStream>>>(cols, u, device_row_of, v, beta2, eps);
    CUDA_CHECK_LAUNCH();
  }

  void normalize_columns(int64_t rows, int64_t cols, float* x, float eps) override {
    if (cols == 0) return;
    normalize_columns_kernel<<<unsigned((cols + kTile - 1) / kTile), dim3(kTile, kTile), 0, kStream>>>(rows, cols, x,
                                                                                                       eps);
    CUDA_CHECK_LAUNCH();
  }

  // As on the CPU: gram = P^T P (row-major, r x r) is, column-major, the same symmetric
  // matrix; potrf's upper factor U (gram = U^T U) is, row-major, the lower L = U^T; and
  // P <- P L^-T, column-major P^T <- U^-T P^T, is one triangular solve from the left.
  // The checks (both factorizations, the second pass's diagonal) come back in one copy.
  bool cholesky_qr(int64_t m, int64_t r, float* p, float* gram) override {
    int lwork = 0;
    CUSOLVER_CHECK(cusolverDnSpotrf_bufferSize(solver_, CUBLAS_FILL_MODE_UPPER, int(r), gram, int(r), &lwork));
    float* work = solver_work_.reserve(lwork);
    int* status = status_.reserve(3);  // [potrf info of pass 0, of pass 1, pass 1's gram far from I]
    const float one = 1.0f;
    for (int pass = 0; pass < 2; pass++) {
      gemm(true, false, r, r, m, 1.0f, p, p, 0.0f, gram);
      // After the first pass P^T P should be close to I; far from it, P was too
      // ill-conditioned for fp32 Cholesky-QR.
      if (pass == 1) {
        check_near_identity_diagonal_kernel<<<1, kThreads, 0, kStream>>>(r, gram, status + 2);
        CUDA_CHECK_LAUNCH();
      }
      CUSOLVER_CHECK(
          cusolverDnSpotrf(solver_, CUBLAS_FILL_MODE_UPPER, int(r), gram, int(r), work, lwork, status + pass));
      CUBLAS_CHECK(cublasStrsm(blas_, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, CUBLAS_DIAG_NON_UNIT,
                               int(r), int(m), &one, gram, int(r), p, int(r)));
    }
    int host_status[3];
    CUDA_CHECK(cudaMemcpy(host_status, status, sizeof(host_status), cudaMemcpyDeviceToHost));
    return host_status[0] == 0 && host_status[1] == 0 && host_status[2] == 0;
  }

  // cuSOLVER is column-major: factor P copied into column order (a), then Q = a, its columns
  // signed so that R has a non-negative diagonal (as on the CPU), copied back into row order.
  void householder_qr(int64_t m, int64_t r, float* p) override {
    float* a = householder_.reserve(m * r);
    float* tau = householder_tau_.reserve(2 * r);
    float* signs = tau + r;
    int* status = status_.reserve(2);  // [geqrf info, orgqr info]
    transpose(m, r, p, a);
    int geqrf_work = 0, orgqr_work = 0;
    CUSOLVER_CHECK(cusolverDnSgeqrf_bufferSize(solver_, int(m), int(r), a, int(m), &geqrf_work));
    CUSOLVER_CHECK(cusolverDnSorgqr_bufferSize(solver_, int(m), int(r), int(r), a, int(m), tau, &orgqr_work));
    const int lwork = std::max(geqrf_work, orgqr_work);
    float* work = solver_work_.reserve(lwork);
    CUSOLVER_CHECK(cusolverDnSgeqrf(solver_, int(m), int(r), a, int(m), tau, work, lwork, status));
    diagonal_signs_kernel<<<blocks_for(r), kThreads, 0, kStream>>>(m, r, a, signs);
    CUDA_CHECK_LAUNCH();
    CUSOLVER_CHECK(cusolverDnSorgqr(solver_, int(m), int(r), int(r), a, int(m), tau, work, lwork, status + 1));
    sign_columns_kernel<<<blocks_for(m * r), kThreads, 0, kStream>>>(m, r, a, signs);
    CUDA_CHECK_LAUNCH();
    transpose(r, m, a, p);
    int host_status[2];
    CUDA_CHECK(cudaMemcpy(host_status, status, sizeof(host_status), cudaMemcpyDeviceToHost));
    if (host_status[0] != 0)
      throw std::runtime_error("Householder QR (cusolverDnSgeqrf) failed with info " + std::to_string(host_status[0]));
    if (host_status[1] != 0)
      throw std::runtime_error("Householder QR (cusolverDnSorgqr) failed with info " + std::to_string(host_status[1]));
  }

  // allocate()'s zeroed device memory, n bf16 values in the bytes of (n + 1) / 2 floats;
  // the conversions are the CUDA model's (model/cuda/precision.cu).
  bf16* allocate_bf16(int64_t n) override {
    static_assert(sizeof(bf16) == sizeof(cuda::bf16) && 2 * sizeof(bf16) == sizeof(float));
    return reinterpret_cast<bf16*>(allocate((n + 1) / 2));
  }
  void copy_to_bf16(int64_t n, const float* from, bf16* to) override {
    cuda::round_to_bf16_nearest(reinterpret_cast<cuda::bf16*>(to), from, n, kStream);
  }
  void copy_from_bf16(int64_t n, const bf16* from, float* to) override {
    cuda::widen_to_float(to, reinterpret_cast<const cuda::bf16*>(from), n, kStream);
  }

 private:
  // The selection in device memory, for the kernels queued after this call (the copy is
  // ordered on the stream after the kernels that read the previous selection).
  const int64_t* upload(std::span<const int64_t> indices) {
    int64_t* device = indices_.reserve(int64_t(indices.size()));
    CUDA_CHECK(cudaMemcpyAsync(device, indices.data(), indices.size_bytes(), cudaMemcpyHostToDevice, kStream));
    return device;
  }

  cublasHandle_t blas_ = nullptr, tensor_blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
  std::vector<DeviceBuffer> buffers_;  // allocate()'s
  Workspace<int64_t> indices_;
  std::vector<int64_t> slot_;  // add_to_slices' place of each slice in the selection
  std::vector<void*> tile_pointers_;  // syrk_batched's operand and result tiles
  Workspace<void*> tile_pointer_array_;
  Workspace<cuda::bf16> bf16_operands_;  // gemm_bf16's rounded A and B
  Workspace<float> slice_norms_, solver_work_, householder_, householder_tau_;
  Workspace<double> sum_squares_;
  Workspace<int> status_;
};

}  // namespace

std::unique_ptr<MatrixOps> make_cuda_matrix_ops() { return std::make_unique<CudaMatrixOps>(); }

}  // namespace llmdion
