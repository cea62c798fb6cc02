// The dense matrix operations the matrix optimizers (Muon, Dion, Dion2) are
// written in. The algorithms live once, in muon.cpp, dion.cpp and dion2.cpp;
// their heavy steps (GEMMs, norms, gathers and scatters of selected slices,
// QR) run on the backend that owns the parameters.
//
// Every matrix is fp32, row-major and dense; every float pointer lies in the
// backend's memory. Slice indices and small per-slice vectors travel as host
// vectors.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/bf16.h"

namespace llmdion {

// Which slices of a rows x cols matrix a selection names: whole rows or whole columns.
enum class SliceDim { kRows, kCols };

class MatrixOps {
 public:
  virtual ~MatrixOps() = default;

  // A zeroed buffer of n floats, alive as long as these ops.
  virtual float* allocate(int64_t n) = 0;
  virtual void copy_from_host(std::span<const float> from, float* to) = 0;
  virtual void copy_to_host(const float* from, std::span<float> to) = 0;

  // C = alpha op(A) op(B) + beta C, with op(A) m x k and op(B) k x n.
  // beta = 0 overwrites C whatever it held.
  virtual void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, const float* b, float beta, float* c) = 0;
  // The same product with A and B rounded to bf16 (nearest even) and fp32
  // products and sums: the GPU runs it on bf16 tensor cores, the CPU emulates
  // it exactly (rounded copies, then fp32 BLAS), so the two still agree.
  virtual void gemm_bf16(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float* a, const float* b, float beta, float* c) = 0;
  // `count` independent products C_i = alpha op(A_i) op(B_i) + beta C_i, the i-th
  // matrices `stride` floats after the (i-1)-th; bf16_operands as gemm_bf16.
  // One batched call on the GPU; on the CPU the loop of gemm it equals.
  virtual void gemm_batched(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
                            const float* a, int64_t stride_a, const float* b, int64_t stride_b, float beta, float* c,
                            int64_t stride_c, int64_t count, bool bf16_operands) = 0;
  // `count` symmetric products C_i = alpha A_i A_i^T + beta C_i, A_i n x k, the
  // i-th matrices `stride` floats after the (i-1)-th: half a GEMM's work where
  // the backend can skip the upper triangle. C_i comes out exactly symmetric
  // (its upper triangle a copy of the lower); with beta != 0 it must be
  // symmetric on entry. bf16_operands as gemm_bf16.
  virtual void syrk_batched(int64_t n, int64_t k, float alpha, const float* a, int64_t stride_a, float beta, float* c,
                            int64_t stride_c, int64_t count, bool bf16_operands) = 0;
  // y = a x + b y (b = 0 overwrites y).
  virtual void axpby(int64_t n, float a, const float* x, float b, float* y) = 0;
  virtual void scale(int64_t n, float factor, float* x) = 0;
  virtual void copy(int64_t n, const float* from, float* to) = 0;
  // to (cols x rows) = from (rows x cols) transposed.
  virtual void transpose(int64_t rows, int64_t cols, const float* from, float* to) = 0;
  // sum_i x_i^2, accumulated in double in a fixed order.
  virtual double sum_squares(int64_t n, const float* x) = 0;

  // Dion2's slice operations, each one pass over the memory it touches; a
  // selection K names distinct slices.
  // m += g, then norms = the l1 norm of every row (kRows: rows values) or column
  // (kCols: cols values) of m.
  virtual void accumulate_slice_l1_norms(SliceDim dim, int64_t rows, int64_t cols, const float* g, float* m,
                                         std::span<float> norms) = 0;
  // out = m[K] (kRows: k x cols; kCols: rows x k), slices in the order of `selected`.
  virtual void gather_slices(SliceDim dim, int64_t rows, int64_t cols, const float* m,
                             std::span<const int64_t> selected, float* out) = 0;
  // out = m[K], then m[K] *= factor.
  virtual void gather_and_scale_slices(SliceDim dim, int64_t rows, int64_t cols, float* m,
                                       std::span<const int64_t> selected, float* out, float factor) = 0;
  // w[K] = alpha * update, update shaped as gather_slices' output.
  virtual void set_slices(SliceDim dim, int64_t rows, int64_t cols, float* w, std::span<const int64_t> selected,
                          float alpha, const float* update) = 0;
  // w *= keep (every entry), then w[K] += alpha * update.
  virtual void add_to_slices(SliceDim dim, int64_t rows, int64_t cols, float* w, std::span<const int64_t> selected,
                             float keep, float alpha, const float* update) = 0;

  // NorMuon's per-row normalization of an update u (rows x cols) whose row i
  // belongs to neuron row_of[i] (row_of empty: row i is neuron i):
  //   v[n] = beta2 v[n] + (1 - beta2) mean_j u_ij^2;   u_ij /= sqrt(v[n]) + eps
  virtual void normalize_rows(int64_t rows, int64_t cols, float* u, std::span<const int64_t> row_of, float* v,
                              float beta2, float eps) = 0;
  // Each column of x (rows x cols) divided by its l2 norm + eps.
  virtual void normalize_columns(int64_t rows, int64_t cols, float* x, float eps) = 0;
  // p (m x r, m >= r) replaced by an orthonormal basis of its columns:
  // Cholesky-QR twice (p R^-1 with P^T P = R^T R). False when P^T P is not
  // numerically positive definite; p is then undefined. gram: r x r workspace.
  virtual bool cholesky_qr(int64_t m, int64_t r, float* p, float* gram) = 0;
  // The same by Householder QR: always succeeds (the fallback). Q's columns
  // are signed so that R = Q^T P has a non-negative diagonal: for P of full
  // rank, the Q that Cholesky-QR gives too.
  virtual void householder_qr(int64_t m, int64_t r, float* p) = 0;

  // bf16 copies of fp32 values, for values that travel in bf16 (gradients over
  // ranks, dist.grad_dtype): a zeroed buffer of n bf16 values, alive as long as
  // these ops; to = each value rounded to the nearest bf16 (ties to even,
  // core/bf16.h); to = each bf16 widened back to fp32 (exact).
  virtual bf16* allocate_bf16(int64_t n) = 0;
  virtual void copy_to_bf16(int64_t n, const float* from, bf16* to) = 0;
  virtual void copy_from_bf16(int64_t n, const bf16* from, float* to) = 0;
};

// The ops of a backend: "cpu" or "cuda" (run.device; "auto" resolves as resolve_device does).
std::unique_ptr<MatrixOps> make_matrix_ops(const std::string& device);

}  // namespace llmdion
