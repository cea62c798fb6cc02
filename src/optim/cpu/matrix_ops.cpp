// The matrix optimizers' operations on the CPU: OpenBLAS GEMMs and LAPACK
// factorizations, OpenMP loops for the rest. Reductions use fixed blocks, so
// results do not depend on the thread count.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/bf16.h"
#include "optim/cpu/matrix_ops.h"

extern "C" {
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info);
void sgeqrf_(const int* m, const int* n, float* a, const int* lda, float* tau, float* work, const int* lwork,
             int* info);
void sorgqr_(const int* m, const int* n, const int* k, float* a, const int* lda, const float* tau, float* work,
             const int* lwork, int* info);
}

namespace llmdion {
namespace {

// Each value rounded to the nearest bf16 (ties to even, core/bf16.h), kept as a float.
void round_to_bf16(const float* in, int64_t n, float* out) {
  #pragma omp parallel for
  for (int64_t i = 0; i < n; i++) out[i] = to_float(llmdion::round_to_bf16(in[i]));
}

// Calls visit(e, at) for every element of the selected slices of a rows x cols
// matrix: `at` its index in the matrix, e its index in the gathered submatrix
// (kRows: k x cols; kCols: rows x k, slices in the order of `selected`).
template <typename Visit>
void for_each_selected(SliceDim dim, int64_t rows, int64_t cols, std::span<const int64_t> selected, Visit visit) {
  const int64_t k = int64_t(selected.size());
  if (dim == SliceDim::kRows) {
    #pragma omp parallel for
    for (int64_t t = 0; t < k; t++)
      for (int64_t j = 0; j < cols; j++) visit(t * cols + j, selected[t] * cols + j);
  } else {
    #pragma omp parallel for
    for (int64_t i = 0; i < rows; i++)
      for (int64_t t = 0; t < k; t++) visit(i * k + t, i * cols + selected[t]);
  }
}

class CpuMatrixOps final : public MatrixOps {
 public:
  float* allocate(int64_t n) override { return buffers_.emplace_back(size_t(n), 0.0f).data(); }
  void copy_from_host(std::span<const float> from, float* to) override { std::copy(from.begin(), from.end(), to); }
  void copy_to_host(const float* from, std::span<float> to) override { std::copy(from, from + to.size(), to.begin()); }

  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b, float beta,
            float* c) override {
    if (beta == 0.0f) std::fill(c, c + m * n, 0.0f);  // BLAS may read C * 0: NaN in C would survive
    if (k == 0) {
      scale(m * n, beta, c);
      return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
                alpha, a, int(ta ? m : k), b, int(tb ? k : n), beta, c, int(n));
  }

  void gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
                 float beta, float* c) override {
    const int64_t a_numel = m * k, b_numel = k * n;
    if (bf16_operands_.size() < size_t(a_numel + b_numel)) bf16_operands_.resize(size_t(a_numel + b_numel));
    float* a16 = bf16_operands_.data();
    float* b16 = a16 + a_numel;
    round_to_bf16(a, a_numel, a16);
    round_to_bf16(b, b_numel, b16);
    gemm(ta, tb, m, n, k, alpha, a16, b16, beta, c);
  }

  void gemm_batched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t stride_a,
                    const float* b, int64_t stride_b, float beta, float* c, int64_t stride_c, int64_t count,
                    bool bf16_operands) override {
    for (int64_t i = 0; i < count; i++) {
      if (bf16_operands) gemm_bf16(ta, tb, m, n, k, alpha, a + i * stride_a, b + i * stride_b, beta, c + i * stride_c);
      else gemm(ta, tb, m, n, k, alpha, a + i * stride_a, b + i * stride_b, beta, c + i * stride_c);
    }
  }

  // BLAS ssyrk fills the lower triangle (row-major), then the upper is mirrored from it.
  void syrk_batched(int64_t n, int64_t k, float alpha, const float* a, int64_t stride_a, float beta, float* c,
                    int64_t stride_c, int64_t count, bool bf16_operands) override {
    for (int64_t i = 0; i < count; i++) {
      const float* ai = a + i * stride_a;
      float* ci = c + i * stride_c;
      if (bf16_operands) {
        if (bf16_operands_.size() < size_t(n * k)) bf16_operands_.resize(size_t(n * k));
        round_to_bf16(ai, n * k, bf16_operands_.data());
        ai = bf16_operands_.data();
      }
      if (beta == 0.0f) std::fill(ci, ci + n * n, 0.0f);  // as in gemm: NaN in C must not survive
      if (k == 0) scale(n * n, beta, ci);
      else cblas_ssyrk(CblasRowMajor, CblasLower, CblasNoTrans, int(n), int(k), alpha, ai, int(k), beta, ci, int(n));
      #pragma omp parallel for
      for (int64_t r = 0; r < n; r++)
        for (int64_t col = r + 1; col < n; col++) ci[r * n + col] = ci[col * n + r];
    }
  }

  void axpby(int64_t n, float a, const float* x, float b, float* y) override {
    if (b == 0.0f) {
      #pragma omp parallel for
      for (int64_t i = 0; i < n; i++) y[i] = a * x[i];
    } else {
      #pragma omp parallel for
      for (int64_t i = 0; i < n; i++) y[i] = a * x[i] + b * y[i];
    }
  }

  void scale(int64_t n, float factor, float* x) override {
    #pragma omp parallel for
    for (int64_t i = 0; i < n; i++) x[i] *= factor;
  }

  void copy(int64_t n, const float* from, float* to) override { std::memcpy(to, from, size_t(n) * sizeof(float)); }

  void transpose(int64_t rows, int64_t cols, const float* from, float* to) override {
    constexpr int64_t kTile = 32;
    #pragma omp parallel for collapse(2)
    for (int64_t r0 = 0; r0 < rows; r0 += kTile)
      for (int64_t c0 = 0; c0 < cols; c0 += kTile)
        for (int64_t r = r0; r < std::min(rows, r0 + kTile); r++)
          for (int64_t c = c0; c < std::min(cols, c0 + kTile); c++) to[c * rows + r] = from[r * cols + c];
  }

  double sum_squares(int64_t n, const float* x) override {
    constexpr int64_t kBlocks = 64;
    double partial[kBlocks] = {};
    const int64_t block = (n + kBlocks - 1) / kBlocks;
    #pragma omp parallel for
    for (int64_t b = 0; b < kBlocks; b++) {
      double sum = 0;
      for (int64_t i = b * block; i < std::min(n, (b + 1) * block); i++) sum += double(x[i]) * double(x[i]);
      partial[b] = sum;
    }
    double total = 0;
    for (double p : partial) total += p;
    return total;
  }

  void accumulate_slice_l1_norms(SliceDim dim, int64_t rows, int64_t cols, const float* g, float* m,
                                 std::span<float> norms) override {
    if (dim == SliceDim::kRows) {
      #pragma omp parallel for
      for (int64_t i = 0; i < rows; i++) {
        double sum = 0;
        for (int64_t j = i * cols; j < (i + 1) * cols; j++) sum += std::fabs(m[j] += g[j]);
        norms[i] = float(sum);
      }
    } else {  // row by row over a band of columns: each column still summed top to bottom
      constexpr int64_t kBand = 64;
      #pragma omp parallel for
      for (int64_t j0 = 0; j0 < cols; j0 += kBand) {
        const int64_t j1 = std::min(cols, j0 + kBand);
        double sums[kBand] = {};
        for (int64_t i = 0; i < rows; i++)
          for (int64_t j = j0; j < j1; j++) sums[j - j0] += std::fabs(m[i * cols + j] += g[i * cols + j]);
        for (int64_t j = j0; j < j1; j++) norms[j] = float(sums[j - j0]);
      }
    }
  }

  void gather_slices(SliceDim dim, int64_t rows, int64_t cols, const float* m, std::span<const int64_t> selected,
                     float* out) override {
    for_each_selected(dim, rows, cols, selected, [&](int64_t e, int64_t at) { out[e] = m[at]; });
  }

  void gather_and_scale_slices(SliceDim dim, int64_t rows, int64_t cols, float* m, std::span<const int64_t> selected,
                               float* out, float factor) override {
    for_each_selected(dim, rows, cols, selected, [&](int64_t e, int64_t at) {
      out[e] = m[at];
      m[at] *= factor;
    });
  }

  void set_slices(SliceDim dim, int64_t rows, int64_t cols, float* w, std::span<const int64_t> selected, float alpha,
                  const float* update) override {
    for_each_selected(dim, rows, cols, selected, [&](int64_t e, int64_t at) { w[at] = alpha * update[e]; });
  }

  void add_to_slices(SliceDim dim, int64_t rows, int64_t cols, float* w, std::span<const int64_t> selected, float keep,
                     float alpha, const float* update) override {
    scale(rows * cols, keep, w);
    for_each_selected(dim, rows, cols, selected, [&](int64_t e, int64_t at) { w[at] += alpha * update[e]; });
  }

  void normalize_rows(int64_t rows, int64_t cols, float* u, std::span<const int64_t> row_of, float* v, float beta2,
                      float eps) override {
    #pragma omp parallel for
    for (int64_t i = 0; i < rows; i++) {
      float* row = u + i * cols;
      double sum = 0;
      for (int64_t j = 0; j < cols; j++) sum += double(row[j]) * double(row[j]);
      float& second_moment = v[row_of.empty() ? i : row_of[i]];
      second_moment = beta2 * second_moment + (1.0f - beta2) * float(sum / double(cols));
      const float factor = 1.0f / (std::sqrt(second_moment) + eps);
      for (int64_t j = 0; j < cols; j++) row[j] *= factor;
    }
  }

  void normalize_columns(int64_t rows, int64_t cols, float* x, float eps) override {
    #pragma omp parallel for
    for (int64_t j = 0; j < cols; j++) {
      double sum = 0;
      for (int64_t i = 0; i < rows; i++) sum += double(x[i * cols + j]) * double(x[i * cols + j]);
      const float factor = 1.0f / (float(std::sqrt(sum)) + eps);
      for (int64_t i = 0; i < rows; i++) x[i * cols + j] *= factor;
    }
  }

  bool cholesky_qr(int64_t m, int64_t r, float* p, float* gram) override {
    for (int pass = 0; pass < 2; pass++) {
      gemm(true, false, r, r, m, 1.0f, p, p, 0.0f, gram);
      // After the first pass P^T P should be close to I; far from it, P was too
      // ill-conditioned for fp32 Cholesky-QR.
      if (pass == 1)
        for (int64_t i = 0; i < r; i++)
          if (!(std::fabs(gram[i * r + i] - 1.0f) < 0.5f)) return false;
      // Row-major gram read as column-major is the same symmetric matrix;
      // LAPACK's upper factor U (gram = U^T U) is, in row-major, the lower L = U^T.
      const int n = int(r);
      int info = 0;
      spotrf_("U", &n, gram, &n, &info);
      if (info != 0) return false;
      // P <- P L^-T, so that (P L^-T)^T (P L^-T) = L^-1 (L L^T) L^-T = I.
      cblas_strsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, int(m), int(r), 1.0f, gram, int(r),
                  p, int(r));
    }
    return true;
  }

  void householder_qr(int64_t m, int64_t r, float* p) override {
    // LAPACK is column-major: factor P^T's transpose, i.e. copy P into column order.
    std::vector<float> a(static_cast<size_t>(m * r)), tau(static_cast<size_t>(r));
    transpose(m, r, p, a.data());
    const int mm = int(m), rr = int(r);
    int info = 0, lwork = -1;
    float query = 0;
    sgeqrf_(&mm, &rr, a.data(), &mm, tau.data(), &query, &lwork, &info);
    lwork = std::max(1, int(query));
    std::vector<float> work(static_cast<size_t>(lwork));
    sgeqrf_(&mm, &rr, a.data(), &mm, tau.data(), work.data(), &lwork, &info);
    if (info != 0) throw std::runtime_error("Householder QR (sgeqrf) failed with info " + std::to_string(info));
    // The signs of R's diagonal, before sorgqr overwrites it: Q D with D = sign(diag R)
    // is the Q of the factorization whose R has a non-negative diagonal.
    std::vector<float> signs(static_cast<size_t>(r));
    for (int64_t j = 0; j < r; j++) signs[j] = a[j * m + j] < 0.0f ? -1.0f : 1.0f;
    lwork = -1;
    sorgqr_(&mm, &rr, &rr, a.data(), &mm, tau.data(), &query, &lwork, &info);
    lwork = std::max(1, int(query));
    work.resize(size_t(lwork));
    sorgqr_(&mm, &rr, &rr, a.data(), &mm, tau.data(), work.data(), &lwork, &info);
    if (info != 0) throw std::runtime_error("Householder QR (sorgqr) failed with info " + std::to_string(info));
    for (int64_t j = 0; j < r; j++)
      for (int64_t i = 0; i < m; i++) a[j * m + i] *= signs[j];
    transpose(r, m, a.data(), p);
  }

  bf16* allocate_bf16(int64_t n) override { return bf16_buffers_.emplace_back(size_t(n), bf16{0}).data(); }
  void copy_to_bf16(int64_t n, const float* from, bf16* to) override {
    #pragma omp parallel for
    for (int64_t i = 0; i < n; i++) to[i] = llmdion::round_to_bf16(from[i]);
  }
  void copy_from_bf16(int64_t n, const bf16* from, float* to) override {
    #pragma omp parallel for
    for (int64_t i = 0; i < n; i++) to[i] = to_float(from[i]);
  }

 private:
  std::vector<std::vector<float>> buffers_;
  std::vector<std::vector<bf16>> bf16_buffers_;  // allocate_bf16()'s
  std::vector<float> bf16_operands_;  // gemm_bf16's rounded copies of A and B
};

}  // namespace

std::unique_ptr<MatrixOps> make_cpu_matrix_ops() { return std::make_unique<CpuMatrixOps>(); }

}  // namespace llmdion
