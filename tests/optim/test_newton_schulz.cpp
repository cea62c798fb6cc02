// Orthonormalization (newton_schulz.h) against LAPACK's float64 SVD: the
// polynomial acts on each singular value alone, lands them in the band its
// coefficients promise, and Polar Express converges to the exact polar factor
// U V^T. Zero, rank-deficient, tall, wide and one-row inputs included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "matrix_problem.h"
#include "optim/newton_schulz.h"

extern "C" void dgesvd_(const char* jobu, const char* jobvt, const int* m, const int* n, double* a, const int* lda,
                        double* s, double* u, const int* ldu, double* vt, const int* ldvt, double* work,
                        const int* lwork, int* info);

namespace llmdion {
namespace {

// Singular values (descending) and the polar factor U V^T of a row-major matrix, in float64.
struct Svd {
  std::vector<double> singular, polar;
};

Svd svd(int64_t rows, int64_t cols, const std::vector<double>& a_row_major) {
  // Row-major rows x cols is column-major A^T (cols x rows); polar(A^T) read back row-major is polar(A).
  const int m = int(cols), n = int(rows), k = std::min(m, n);
  std::vector<double> a = a_row_major, s(static_cast<size_t>(k)), u(static_cast<size_t>(m) * k), vt(static_cast<size_t>(k) * n), work(1);
  int lwork = -1, info = 0;
  dgesvd_("S", "S", &m, &n, a.data(), &m, s.data(), u.data(), &m, vt.data(), &k, work.data(), &lwork, &info);
  lwork = int(work[0]);
  work.resize(size_t(lwork));
  a = a_row_major;
  dgesvd_("S", "S", &m, &n, a.data(), &m, s.data(), u.data(), &m, vt.data(), &k, work.data(), &lwork, &info);
  EXPECT_EQ(info, 0);
  std::vector<double> polar(size_t(m) * n, 0.0);  // column-major m x n = U_k VT_k
  for (int j = 0; j < n; j++)
    for (int t = 0; t < k; t++)
      for (int i = 0; i < m; i++) polar[i + size_t(j) * m] += u[i + size_t(t) * m] * vt[t + size_t(j) * k];
  return {s, polar};
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// A rows x cols matrix U diag(sigma) V^T with seeded random orthonormal U, V.
std::vector<float> with_spectrum(int64_t rows, int64_t cols, const std::vector<double>& sigma, uint64_t seed) {
  const int64_t k = int64_t(sigma.size());
  const Svd left = svd(rows, k, to_double(test::normal_values(rows * k, seed, 1.0f)));
  const Svd right = svd(cols, k, to_double(test::normal_values(cols * k, seed + 1, 1.0f)));
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      double sum = 0;
      for (int64_t t = 0; t < k; t++) sum += left.polar[r * k + t] * sigma[t] * right.polar[c * k + t];
      out[r * cols + c] = float(sum);
    }
  return out;
}

std::vector<float> orthonormalized(const Orthonormalizer& ortho, int64_t rows, int64_t cols, const std::vector<float>& in) {
  std::unique_ptr<MatrixOps> ops = make_matrix_ops("cpu");
  OrthoWorkspace work(*ops, rows * cols, std::min(rows, cols));
  std::vector<float> out(in.size(), std::nanf(""));  // poisoned
  orthonormalize(*ops, ortho, rows, cols, in.data(), out.data(), work);
  return out;
}

// The scalar map the iteration applies to each singular value s of the input.
double scalar_map(const Orthonormalizer& ortho, double s, double frobenius) {
  double x = s / ((ortho.kind == "polar_express" ? 1.01 : 1.0) * frobenius + ortho.eps);
  for (const auto& [a, b, c] : ortho_coefficients(ortho)) x = a * x + b * x * x * x + c * x * x * x * x * x;
  return x;
}

const std::vector<std::pair<int64_t, int64_t>> kShapes = {{32, 32}, {24, 64}, {64, 24}};

std::vector<double> log_spaced(double low, double high, int64_t n) {
  std::vector<double> out;
  for (int64_t i = 0; i < n; i++) out.push_back(high * std::pow(low / high, double(i) / double(n - 1)));
  return out;
}

TEST(Orthonormalize, acts_on_each_singular_value_by_the_composed_polynomial) {
  for (const std::string kind : {"newton_schulz", "polar_express"})
    for (const auto& [rows, cols] : kShapes) {
      const std::vector<double> sigma = log_spaced(0.01, 2.0, std::min(rows, cols));
      double frobenius = 0;
      for (double s : sigma) frobenius += s * s;
      frobenius = std::sqrt(frobenius);
      const Orthonormalizer ortho{kind, 5};
      const std::vector<double> out = svd(rows, cols, to_double(orthonormalized(ortho, rows, cols, with_spectrum(rows, cols, sigma, 5)))).singular;
      std::vector<double> expected;
      for (double s : sigma) expected.push_back(scalar_map(ortho, s, frobenius));
      std::sort(expected.rbegin(), expected.rend());
      for (size_t i = 0; i < sigma.size(); i++)
        EXPECT_NEAR(out[i], expected[i], 2e-4) << kind << " " << rows << "x" << cols << " singular value " << i;
    }
}

TEST(Orthonormalize, lands_singular_values_in_the_band_its_coefficients_promise) {
  // Input singular values over a 100x range (after the Frobenius normalization
  // all lie in [3e-3, 1]). On that range the scalar maps give, in float64:
  // Jordan's quintic x5 [0.682, 1.203], Polar Express x5 [0.870, 1.124],
  // Polar Express x8 1 within 1e-6.
  struct Band { std::string kind; int64_t steps; double low, high; };
  for (const Band& band : {Band{"newton_schulz", 5, 0.68, 1.21}, Band{"polar_express", 5, 0.865, 1.13},
                           Band{"polar_express", 8, 0.9995, 1.0005}})
    for (const auto& [rows, cols] : kShapes) {
      const std::vector<float> in = with_spectrum(rows, cols, log_spaced(0.01, 1.0, std::min(rows, cols)), 8);
      const Orthonormalizer ortho{band.kind, band.steps};
      const std::vector<double> s = svd(rows, cols, to_double(orthonormalized(ortho, rows, cols, in))).singular;
      EXPECT_GE(s.back(), band.low) << band.kind << " x" << band.steps << " " << rows << "x" << cols;
      EXPECT_LE(s.front(), band.high) << band.kind << " x" << band.steps << " " << rows << "x" << cols;
    }
}

// ortho_precision: bf16 (MatrixOps::gemm_bf16): the product of the operands
// rounded to bf16, summed in fp32, equals the float64 product of the rounded
// values to fp32 rounding, and is not the fp32 product.
TEST(Orthonormalize, bf16_products_are_exact_products_of_rounded_operands) {
  std::unique_ptr<MatrixOps> ops = make_matrix_ops("cpu");
  const int64_t m = 13, n = 17, k = 40;
  const std::vector<float> a = test::normal_values(m * k, 21, 1.0f), b = test::normal_values(k * n, 22, 1.0f);
  auto bf16 = [](float x) {  // round to nearest even, by hand
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    const uint32_t lower = bits & 0xffff0000u, half = 0x8000u, rest = bits & 0xffffu;
    if (rest > half || (rest == half && (bits & 0x10000u))) bits = lower + 0x10000u;
    else bits = lower;
    std::memcpy(&x, &bits, 4);
    return double(x);
  };
  std::vector<float> c16(m * n, std::nanf("")), c32(m * n, std::nanf(""));
  ops->gemm_bf16(false, false, m, n, k, 1.0f, a.data(), b.data(), 0.0f, c16.data());
  ops->gemm(false, false, m, n, k, 1.0f, a.data(), b.data(), 0.0f, c32.data());
  double diff16 = 0, diff32 = 0, norm = 0;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double want = 0;
      for (int64_t p = 0; p < k; p++) want += bf16(a[i * k + p]) * bf16(b[p * n + j]);
      diff16 += (c16[i * n + j] - want) * (c16[i * n + j] - want), diff32 += (c32[i * n + j] - want) * (c32[i * n + j] - want);
      norm += want * want;
    }
  EXPECT_LT(std::sqrt(diff16 / norm), 1e-6);
  EXPECT_GT(std::sqrt(diff32 / norm), 1e-4) << "fp32 operands give another product";
}

// bf16 operands perturb the iterate every step, yet the singular values land
// in the same bands (a numpy emulation gives Jordan [0.679, 1.203], Polar
// Express [0.864, 1.125] on this spectrum) and the output stays within a few
// percent of fp32 operands' (1-2% measured there).
TEST(Orthonormalize, bf16_products_keep_the_band_and_stay_near_fp32) {
  struct Band { std::string kind; double low, high; };
  for (const Band& band : {Band{"newton_schulz", 0.67, 1.22}, Band{"polar_express", 0.855, 1.135}})
    for (const auto& [rows, cols] : kShapes) {
      const std::vector<float> in = with_spectrum(rows, cols, log_spaced(0.01, 1.0, std::min(rows, cols)), 8);
      const Orthonormalizer fp32{band.kind, 5}, bf16{band.kind, 5, true};
      const std::vector<float> out16 = orthonormalized(bf16, rows, cols, in), out32 = orthonormalized(fp32, rows, cols, in);
      const std::vector<double> s = svd(rows, cols, to_double(out16)).singular;
      EXPECT_GE(s.back(), band.low) << band.kind << " " << rows << "x" << cols;
      EXPECT_LE(s.front(), band.high) << band.kind << " " << rows << "x" << cols;
      double diff2 = 0, norm2 = 0;
      for (size_t i = 0; i < out32.size(); i++)
        diff2 += (out16[i] - out32[i]) * (out16[i] - out32[i]), norm2 += out32[i] * out32[i];
      EXPECT_GT(std::sqrt(diff2 / norm2), 1e-4) << "bf16 operands changed nothing";
      EXPECT_LT(std::sqrt(diff2 / norm2), 3e-2) << band.kind << " " << rows << "x" << cols;
    }
}

// Matrices of one shape orthonormalized together (Muon's batches): each as it
// would be alone, tall ones transposed and back, each with its own norm.
TEST(Orthonormalize, a_batch_equals_its_matrices_one_by_one) {
  std::unique_ptr<MatrixOps> ops = make_matrix_ops("cpu");
  for (const bool bf16 : {false, true})
    for (const auto& [rows, cols] : kShapes) {
      const int64_t n = rows * cols, count = 3;
      std::vector<float> in = test::normal_values(count * n, 31, 1.0f);
      for (int64_t i = 0; i < n; i++) in[size_t(2 * n + i)] *= 40.0f;  // norms apart
      const Orthonormalizer ortho{"newton_schulz", 5, bf16};
      OrthoWorkspace work(*ops, n, std::min(rows, cols), count);
      std::vector<float> batch(size_t(count * n), std::nanf(""));
      orthonormalize_batch(*ops, ortho, rows, cols, count, in.data(), batch.data(), work);
      for (int64_t i = 0; i < count; i++) {
        const std::vector<float> one(in.begin() + i * n, in.begin() + (i + 1) * n);
        const std::vector<float> alone = orthonormalized(ortho, rows, cols, one);
        EXPECT_TRUE(std::equal(alone.begin(), alone.end(), batch.begin() + i * n))
            << rows << "x" << cols << " matrix " << i << (bf16 ? " (bf16 products)" : "");
      }
    }
}

TEST(Orthonormalize, polar_express_converges_to_the_exact_polar_factor) {
  for (const auto& [rows, cols] : kShapes) {
    const std::vector<float> in = test::normal_values(rows * cols, 13, 1.0f);
    const std::vector<double> exact = svd(rows, cols, to_double(in)).polar;
    const std::vector<float> ours = orthonormalized({"polar_express", 10}, rows, cols, in);
    double diff2 = 0, norm2 = 0;
    for (size_t i = 0; i < exact.size(); i++) diff2 += (ours[i] - exact[i]) * (ours[i] - exact[i]), norm2 += exact[i] * exact[i];
    std::printf("%lldx%lld: relative distance to U V^T %.2e\n", static_cast<long long>(rows), static_cast<long long>(cols),
                std::sqrt(diff2 / norm2));
    EXPECT_LT(std::sqrt(diff2 / norm2), 1e-5) << rows << "x" << cols;
  }
}

TEST(Orthonormalize, tall_input_is_the_transpose_of_its_wide_twin) {
  const int64_t rows = 40, cols = 12;
  const std::vector<float> tall = test::normal_values(rows * cols, 17, 1.0f);
  std::vector<float> wide(tall.size());
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) wide[c * rows + r] = tall[r * cols + c];
  const std::vector<float> o_tall = orthonormalized({}, rows, cols, tall), o_wide = orthonormalized({}, cols, rows, wide);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) ASSERT_EQ(o_tall[r * cols + c], o_wide[c * rows + r]);
}

TEST(Orthonormalize, zero_and_rank_deficient_inputs_give_finite_output) {
  const std::vector<float> zero = orthonormalized({}, 8, 20, std::vector<float>(160, 0.0f));
  for (float x : zero) ASSERT_EQ(x, 0.0f);

  // Rank 3 in 20 x 30: three singular values in the band, the rest stay 0.
  const std::vector<float> in = with_spectrum(20, 30, {1.0, 0.5, 0.2}, 21);
  for (const std::string kind : {"newton_schulz", "polar_express"}) {
    const std::vector<float> out = orthonormalized({kind, 5}, 20, 30, in);
    for (float x : out) ASSERT_TRUE(std::isfinite(x));
    const std::vector<double> s = svd(20, 30, to_double(out)).singular;
    for (int i = 0; i < 3; i++) EXPECT_TRUE(s[i] > 0.68 && s[i] < 1.21) << kind << " singular value " << i << " = " << s[i];
    for (size_t i = 3; i < s.size(); i++) EXPECT_LT(s[i], 1e-4) << kind << " singular value " << i;
  }
}

TEST(Orthonormalize, one_row_becomes_its_direction_scaled_by_the_map_of_one) {
  const std::vector<float> row = test::normal_values(40, 23, 3.0f);
  double norm = 0;
  for (float x : row) norm += double(x) * x;
  norm = std::sqrt(norm);
  for (const std::string kind : {"newton_schulz", "polar_express"}) {
    const Orthonormalizer ortho{kind, 5};
    const std::vector<float> out = orthonormalized(ortho, 1, 40, row);
    const double length = scalar_map(ortho, norm, norm);  // the one singular value
    for (size_t i = 0; i < row.size(); i++) EXPECT_NEAR(out[i], row[i] / norm * length, 1e-5) << kind;
    // And a column: the same, transposed.
    const std::vector<float> column = orthonormalized(ortho, 40, 1, row);
    for (size_t i = 0; i < row.size(); i++) EXPECT_EQ(column[i], out[i]) << kind;
  }
}

}  // namespace
}  // namespace llmdion
