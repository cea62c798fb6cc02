// The CPU matrix ops (optim/matrix_ops.h) against plain float64 loops, on odd
// sizes, with outputs poisoned before each call: the layer a GPU backend will
// be checked against.
#include <gtest/gtest.h>

#include <cmath>

#include "matrix_problem.h"

namespace llmdion {
namespace {

class MatrixOpsTest : public ::testing::Test {
 protected:
  std::unique_ptr<MatrixOps> ops = make_matrix_ops("cpu");
};

double max_relative_difference(const std::vector<float>& ours, const std::vector<double>& reference) {
  double worst = 0, scale = 0;
  for (double r : reference) scale = std::max(scale, std::fabs(r));
  for (size_t i = 0; i < ours.size(); i++) worst = std::max(worst, std::fabs(ours[i] - reference[i]) / scale);
  return worst;
}

TEST_F(MatrixOpsTest, gemm_matches_float64_for_every_transpose_and_beta) {
  const int64_t m = 13, n = 7, k = 29;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 0.5f}) {
        const std::vector<float> a = test::normal_values(m * k, 1, 1.0f), b = test::normal_values(k * n, 2, 1.0f);
        std::vector<float> c = test::normal_values(m * n, 3, 1.0f);
        std::vector<double> expected(static_cast<size_t>(m * n));
        for (int64_t i = 0; i < m; i++)
          for (int64_t j = 0; j < n; j++) {
            double sum = 0;
            for (int64_t p = 0; p < k; p++) sum += double(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
            expected[i * n + j] = 1.5 * sum + beta * c[i * n + j];
          }
        if (beta == 0.0f) std::fill(c.begin(), c.end(), std::nanf(""));  // beta 0 must overwrite
        ops->gemm(ta, tb, m, n, k, 1.5f, a.data(), b.data(), beta, c.data());
        EXPECT_LT(max_relative_difference(c, expected), 1e-6) << ta << tb << beta;
      }
}

TEST_F(MatrixOpsTest, syrk_matches_float64_and_is_exactly_symmetric) {
  const int64_t n = 19, k = 23, count = 2, stride_a = n * k + 5, stride_c = n * n + 3;  // gaps between matrices
  const std::vector<float> a = test::normal_values(count * stride_a, 7, 1.0f);
  for (float beta : {0.0f, 0.5f}) {
    std::vector<float> c = test::normal_values(count * stride_c, 8, 1.0f);
    for (int64_t i = 0; i < count; i++)  // beta != 0 needs a symmetric C; beta 0 must overwrite NaN
      for (int64_t r = 0; r < n; r++)
        for (int64_t col = 0; col < n; col++)
          c[i * stride_c + r * n + col] = beta == 0.0f ? std::nanf("") : c[i * stride_c + std::min(r, col) * n + std::max(r, col)];
    std::vector<double> expected(c.begin(), c.end());
    const float gap = c[n * n];
    for (int64_t i = 0; i < count; i++)
      for (int64_t r = 0; r < n; r++)
        for (int64_t col = 0; col < n; col++) {
          double dot = 0;
          for (int64_t p = 0; p < k; p++) dot += double(a[i * stride_a + r * k + p]) * a[i * stride_a + col * k + p];
          double& e = expected[size_t(i * stride_c + r * n + col)];
          e = 1.5 * dot + (beta == 0.0f ? 0.0 : beta * e);
        }
    ops->syrk_batched(n, k, 1.5f, a.data(), stride_a, beta, c.data(), stride_c, count, false);
    for (int64_t i = 0; i < count; i++) {
      const std::vector<float> ci(c.begin() + i * stride_c, c.begin() + i * stride_c + n * n);
      const std::vector<double> ei(expected.begin() + i * stride_c, expected.begin() + i * stride_c + n * n);
      EXPECT_LT(max_relative_difference(ci, ei), 1e-6) << "beta " << beta << ", matrix " << i;
      for (int64_t r = 0; r < n; r++)
        for (int64_t col = 0; col < r; col++) ASSERT_EQ(ci[r * n + col], ci[col * n + r]);
    }
    EXPECT_EQ(c[n * n], gap) << "the gap between matrices is left alone";
  }
  // bf16 operands: the same product as gemm_bf16 of A and A^T.
  std::vector<float> sym(static_cast<size_t>(n * n)), full(sym.size());
  ops->syrk_batched(n, k, 1.0f, a.data(), stride_a, 0.0f, sym.data(), n * n, 1, true);
  ops->gemm_bf16(false, true, n, n, k, 1.0f, a.data(), a.data(), 0.0f, full.data());
  EXPECT_LT(max_relative_difference(sym, std::vector<double>(full.begin(), full.end())), 1e-6);
}

TEST_F(MatrixOpsTest, dion2_slice_ops_address_the_right_slices) {
  const int64_t rows = 11, cols = 17;
  const std::vector<float> m = test::normal_values(rows * cols, 4, 1.0f), g = test::normal_values(rows * cols, 9, 1.0f);
  const std::vector<int64_t> selected = {0, 3, 4, 10};
  for (SliceDim dim : {SliceDim::kRows, SliceDim::kCols}) {
    const bool by_rows = dim == SliceDim::kRows;
    auto in_slice = [&](int64_t r, int64_t c, int64_t s) { return by_rows ? r == s : c == s; };
    std::vector<float> accumulated = m, norms(static_cast<size_t>(by_rows ? rows : cols), std::nanf(""));
    ops->accumulate_slice_l1_norms(dim, rows, cols, g.data(), accumulated.data(), norms);
    for (int64_t e = 0; e < rows * cols; e++) ASSERT_EQ(accumulated[e], m[e] + g[e]);
    for (size_t s = 0; s < norms.size(); s++) {
      double sum = 0;
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) sum += in_slice(r, c, int64_t(s)) ? std::fabs(accumulated[r * cols + c]) : 0.0;
      EXPECT_NEAR(norms[s], sum, 1e-5 * sum);
    }
    const int64_t k = int64_t(selected.size());
    std::vector<float> gathered(static_cast<size_t>(by_rows ? k * cols : rows * k), std::nanf(""));
    ops->gather_slices(dim, rows, cols, m.data(), selected, gathered.data());
    for (int64_t t = 0; t < k; t++)
      for (int64_t i = 0; i < (by_rows ? cols : rows); i++) {
        const float expected = by_rows ? m[selected[t] * cols + i] : m[i * cols + selected[t]];
        ASSERT_EQ(by_rows ? gathered[t * cols + i] : gathered[i * k + t], expected);
      }
    std::vector<float> scaled = m, set = m, added = m, taken(gathered.size(), std::nanf(""));
    ops->gather_and_scale_slices(dim, rows, cols, scaled.data(), selected, taken.data(), 0.5f);
    EXPECT_EQ(taken, gathered) << "the gather reads before the scale";
    ops->set_slices(dim, rows, cols, set.data(), selected, -2.0f, gathered.data());
    ops->add_to_slices(dim, rows, cols, added.data(), selected, 0.5f, -2.0f, gathered.data());
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) {
        const bool chosen = std::binary_search(selected.begin(), selected.end(), by_rows ? r : c);
        const float x = m[r * cols + c], kept = x * 0.5f, twice = -2.0f * x;
        ASSERT_EQ(scaled[r * cols + c], chosen ? kept : x);
        ASSERT_EQ(set[r * cols + c], chosen ? twice : x);
        ASSERT_EQ(added[r * cols + c], chosen ? kept + twice : kept);
      }
  }
}

TEST_F(MatrixOpsTest, transpose_sum_squares_and_normalizations) {
  const int64_t rows = 37, cols = 45;  // not multiples of the transpose tile
  const std::vector<float> m = test::normal_values(rows * cols, 5, 2.0f);
  std::vector<float> t(m.size(), std::nanf(""));
  ops->transpose(rows, cols, m.data(), t.data());
  double sum = 0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      ASSERT_EQ(t[c * rows + r], m[r * cols + c]);
      sum += double(m[r * cols + c]) * m[r * cols + c];
    }
  EXPECT_NEAR(ops->sum_squares(rows * cols, m.data()), sum, 1e-12 * sum);

  std::vector<float> columns = m;
  ops->normalize_columns(rows, cols, columns.data(), 0.0f);
  for (int64_t c = 0; c < cols; c++) {
    double norm = 0;
    for (int64_t r = 0; r < rows; r++) norm += double(columns[r * cols + c]) * columns[r * cols + c];
    EXPECT_NEAR(norm, 1.0, 1e-5);
  }
  // NorMuon rows: v = 0.5 v + 0.5 mean(u^2) for the neuron each row belongs to, then u /= sqrt(v) + eps.
  std::vector<float> u(m.begin(), m.begin() + 3 * cols), v = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::vector<int64_t> row_of = {3, 0, 2};
  ops->normalize_rows(3, cols, u.data(), row_of, v.data(), 0.5f, 1e-8f);
  EXPECT_EQ(v[1], 2.0f) << "a neuron with no row keeps its moment";
  for (int64_t i = 0; i < 3; i++) {
    double mean_square = 0;
    for (int64_t j = 0; j < cols; j++) mean_square += double(m[i * cols + j]) * m[i * cols + j] / double(cols);
    const double moment = 0.5 * (row_of[i] + 1.0) + 0.5 * mean_square;
    EXPECT_NEAR(v[row_of[i]], moment, 1e-5 * moment);
    for (int64_t j = 0; j < cols; j++) EXPECT_NEAR(u[i * cols + j], m[i * cols + j] / std::sqrt(moment), 1e-5);
  }
}

TEST_F(MatrixOpsTest, both_qr_paths_give_an_orthonormal_basis_of_the_same_columns) {
  const int64_t m = 50, r = 9;
  const std::vector<float> p = test::normal_values(m * r, 6, 3.0f);
  std::vector<float> cholesky = p, householder = p, gram(static_cast<size_t>(r * r));
  ASSERT_TRUE(ops->cholesky_qr(m, r, cholesky.data(), gram.data()));
  ops->householder_qr(m, r, householder.data());
  for (const std::vector<float>* q : {&cholesky, &householder}) {
    // Q^T Q = I, and Q Q^T P = P (the same column space).
    for (int64_t i = 0; i < r; i++)
      for (int64_t j = 0; j < r; j++) {
        double dot = 0;
        for (int64_t t = 0; t < m; t++) dot += double((*q)[t * r + i]) * (*q)[t * r + j];
        EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-5);
      }
    double residual = 0, norm = 0;
    for (int64_t j = 0; j < r; j++) {
      std::vector<double> coeff(static_cast<size_t>(r), 0.0);
      for (int64_t i = 0; i < r; i++)
        for (int64_t t = 0; t < m; t++) coeff[i] += double((*q)[t * r + i]) * p[t * r + j];
      for (int64_t t = 0; t < m; t++) {
        double projected = 0;
        for (int64_t i = 0; i < r; i++) projected += (*q)[t * r + i] * coeff[i];
        residual += (projected - p[t * r + j]) * (projected - p[t * r + j]), norm += double(p[t * r + j]) * p[t * r + j];
      }
    }
    EXPECT_LT(std::sqrt(residual / norm), 1e-5);
  }
  // Householder QR signs Q so that R has a non-negative diagonal: the very Q of Cholesky-QR.
  double diff = 0, norm = 0;
  for (size_t i = 0; i < p.size(); i++)
    diff += double(householder[i] - cholesky[i]) * (householder[i] - cholesky[i]), norm += double(cholesky[i]) * cholesky[i];
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
  // Two equal columns: P^T P is singular, Cholesky-QR declines.
  std::vector<float> singular = p;
  for (int64_t t = 0; t < m; t++) singular[t * r + 1] = singular[t * r + 0];
  EXPECT_FALSE(ops->cholesky_qr(m, r, singular.data(), gram.data()));
}

}  // namespace
}  // namespace llmdion
