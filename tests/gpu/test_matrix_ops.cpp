// optim/cuda/matrix_ops.cu against the CPU matrix ops (themselves checked
// against float64 loops in tests/optim/test_matrix_ops.cpp): every op on odd
// shapes, outputs poisoned first, selections of several sizes in random order;
// data movement and element-wise updates bit for bit, sums to fp32 tolerance; both QRs
// orthonormal, spanning P and equal to the CPU's Q. Then Muon, Dion2 and Dion
// built for run.device cuda and cpu, five steps each: weights, the update
// alone and every state at fp32 tolerance, Dion2's selections identical.
#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <numeric>
#include <string>
#include <vector>

#include "core/device.h"
#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "optim/matrix_param.h"
#include "optim/matrix_problem.h"
#include "optim/optimizer.h"

namespace llmdion::test {
namespace {

// rows x cols: a single element, odd shapes both ways, wide, tall.
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{1, 1}, {7, 13}, {13, 7}, {64, 200}, {333, 65}};
// m x r for the QRs (m >= r).
const std::vector<std::pair<int64_t, int64_t>> kTallShapes = {{1, 1}, {13, 7}, {200, 64}, {333, 65}};

struct BothOps {
  std::unique_ptr<MatrixOps> cpu = make_matrix_ops("cpu"), gpu = make_matrix_ops("cuda");
};

std::string shape_name(int64_t rows, int64_t cols) { return std::to_string(rows) + "x" + std::to_string(cols); }

// k distinct indices below d in random order.
std::vector<int64_t> random_selection(int64_t d, int64_t k, uint64_t seed) {
  std::vector<int64_t> all(static_cast<size_t>(d));
  std::iota(all.begin(), all.end(), 0);
  SplitMix64 rng{seed};
  for (int64_t i = d - 1; i > 0; i--) std::swap(all[i], all[rng.next() % uint64_t(i + 1)]);
  return {all.begin(), all.begin() + k};
}

// max |Q^T Q - I| over the r x r entries, in fp64.
double orthonormality_error(const std::vector<float>& q, int64_t m, int64_t r) {
  double worst = 0;
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < r; j++) {
      double dot = 0;
      for (int64_t t = 0; t < m; t++) dot += double(q[t * r + i]) * q[t * r + j];
      worst = std::max(worst, std::fabs(dot - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

// ||Q Q^T P - P|| / ||P||: zero when Q's columns span P's.
double span_residual(const std::vector<float>& q, const std::vector<float>& p, int64_t m, int64_t r) {
  double residual = 0, norm = 0;
  for (int64_t j = 0; j < r; j++) {
    std::vector<double> coefficients(static_cast<size_t>(r), 0.0);
    for (int64_t i = 0; i < r; i++)
      for (int64_t t = 0; t < m; t++) coefficients[i] += double(q[t * r + i]) * p[t * r + j];
    for (int64_t t = 0; t < m; t++) {
      double projected = 0;
      for (int64_t i = 0; i < r; i++) projected += q[t * r + i] * coefficients[i];
      residual += (projected - p[t * r + j]) * (projected - p[t * r + j]);
      norm += double(p[t * r + j]) * p[t * r + j];
    }
  }
  return std::sqrt(residual / norm);
}

TEST(CudaMatrixOps, gemm_matches_the_cpu_for_both_transposes_and_betas) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 1;
  for (const auto& [m, n] : kShapes)
    for (int64_t k : {int64_t(0), int64_t(1), int64_t(29), int64_t(128)})
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (float beta : {0.0f, 0.5f}) {
            const std::vector<float> a = normal_values(m * k, seed++, 1.0f), b = normal_values(k * n, seed++, 1.0f);
            std::vector<float> cpu_c = normal_values(m * n, seed++, 1.0f);
            DeviceArray<float> gpu_a(a), gpu_b(b), gpu_c(cpu_c);
            if (beta == 0.0f) {  // beta 0 overwrites whatever C held
              std::fill(cpu_c.begin(), cpu_c.end(), std::nanf(""));
              gpu_c.poison();
            }
            ops.cpu->gemm(ta, tb, m, n, k, 1.5f, a.data(), b.data(), beta, cpu_c.data());
            ops.gpu->gemm(ta, tb, m, n, k, 1.5f, gpu_a.ptr, gpu_b.ptr, beta, gpu_c.ptr);
            EXPECT_LT(relative_error(gpu_c.download(), cpu_c), kFp32Tolerance)
                << "C " << shape_name(m, n) << ", k " << k << ", transpose_a " << ta << ", transpose_b " << tb
                << ", beta " << beta;
          }
}

// Products of bf16-rounded operands with fp32 sums: the GPU's tensor cores
// against the CPU's emulation (rounded copies, fp32 BLAS); only the order of
// the fp32 sums differs.
TEST(CudaMatrixOps, gemm_bf16_matches_the_cpu_emulation) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 500;
  for (const auto& [m, n] : kShapes)
    for (int64_t k : {int64_t(1), int64_t(29), int64_t(128)})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          const std::vector<float> a = normal_values(m * k, seed++, 1.0f), b = normal_values(k * n, seed++, 1.0f);
          std::vector<float> cpu_c = normal_values(m * n, seed++, 1.0f);
          DeviceArray<float> gpu_a(a), gpu_b(b), gpu_c(cpu_c);
          ops.cpu->gemm_bf16(ta, tb, m, n, k, 1.5f, a.data(), b.data(), 0.5f, cpu_c.data());
          ops.gpu->gemm_bf16(ta, tb, m, n, k, 1.5f, gpu_a.ptr, gpu_b.ptr, 0.5f, gpu_c.ptr);
          EXPECT_LT(relative_error(gpu_c.download(), cpu_c), kFp32Tolerance)
              << "C " << shape_name(m, n) << ", k " << k << ", transpose_a " << ta << ", transpose_b " << tb;
        }
}

// Batched products (Muon's same-shape matrices): one strided cuBLAS call against
// the CPU's loop, with fp32 and with bf16 operands, strides wider than the matrices.
TEST(CudaMatrixOps, gemm_batched_matches_the_cpu_loop) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 900;
  for (const auto& [m, n] : kShapes)
    for (int64_t k : {int64_t(1), int64_t(29)})
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (bool bf16 : {false, true}) {
            const int64_t count = 3, stride_a = m * k + 5, stride_b = k * n + 3, stride_c = m * n + 7;
            const std::vector<float> a = normal_values(count * stride_a, seed++, 1.0f);
            const std::vector<float> b = normal_values(count * stride_b, seed++, 1.0f);
            std::vector<float> cpu_c = normal_values(count * stride_c, seed++, 1.0f);
            DeviceArray<float> gpu_a(a), gpu_b(b), gpu_c(cpu_c);
            ops.cpu->gemm_batched(ta, tb, m, n, k, 1.5f, a.data(), stride_a, b.data(), stride_b, 0.5f, cpu_c.data(),
                                  stride_c, count, bf16);
            ops.gpu->gemm_batched(ta, tb, m, n, k, 1.5f, gpu_a.ptr, stride_a, gpu_b.ptr, stride_b, 0.5f, gpu_c.ptr,
                                  stride_c, count, bf16);
            EXPECT_LT(relative_error(gpu_c.download(), cpu_c), kFp32Tolerance)
                << "C " << shape_name(m, n) << ", k " << k << ", transpose_a " << ta << ", transpose_b " << tb
                << ", bf16 " << bf16;
          }
}

TEST(CudaMatrixOps, copies_transposes_and_element_wise_updates_match_the_cpu) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 100;
  for (const auto& [rows, cols] : kShapes) {
    const int64_t n = rows * cols;
    const std::string shape = shape_name(rows, cols);
    const std::vector<float> x = normal_values(n, seed++, 1.0f), y = normal_values(n, seed++, 1.0f);
    const DeviceArray<float> gpu_x(x);

    DeviceArray<float> out(static_cast<size_t>(n));
    out.poison();
    ops.gpu->copy(n, gpu_x.ptr, out.ptr);
    expect_bitwise_equal(out.download(), x, "copy " + shape);

    std::vector<float> cpu_t(static_cast<size_t>(n));
    ops.cpu->transpose(rows, cols, x.data(), cpu_t.data());
    out.poison();
    ops.gpu->transpose(rows, cols, gpu_x.ptr, out.ptr);
    expect_bitwise_equal(out.download(), cpu_t, "transpose " + shape);

    std::vector<float> cpu_scaled = x;
    ops.cpu->scale(n, -0.37f, cpu_scaled.data());
    DeviceArray<float> gpu_scaled(x);
    ops.gpu->scale(n, -0.37f, gpu_scaled.ptr);
    expect_bitwise_equal(gpu_scaled.download(), cpu_scaled, "scale " + shape);

    for (float b : {0.0f, -0.3f}) {  // b = 0 overwrites y whatever it held
      std::vector<float> cpu_y = b == 0.0f ? std::vector<float>(x.size(), std::nanf("")) : y;
      DeviceArray<float> gpu_y(y);
      if (b == 0.0f) gpu_y.poison();
      ops.cpu->axpby(n, 1.7f, x.data(), b, cpu_y.data());
      ops.gpu->axpby(n, 1.7f, gpu_x.ptr, b, gpu_y.ptr);
      EXPECT_LT(relative_error(gpu_y.download(), cpu_y), kFp32Tolerance) << "axpby " << shape << ", b " << b;
    }
  }
}

TEST(CudaMatrixOps, sum_squares_matches_the_cpu_in_fp64) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  for (int64_t n : {int64_t(1), int64_t(91), int64_t(12800), int64_t(21645), int64_t((1 << 20) + 3)}) {
    const std::vector<float> x = normal_values(n, 200 + uint64_t(n), 2.0f);
    const DeviceArray<float> gpu_x(x);
    const double want = ops.cpu->sum_squares(n, x.data()), got = ops.gpu->sum_squares(n, gpu_x.ptr);
    EXPECT_NEAR(got, want, 1e-12 * want) << "n " << n;  // fp64 sums of exact squares, in other orders
  }
}

// Symmetric products on both GPU paths: below two tiles of 256 rows the plain
// batched GEMM, above it the lower block triangle in 2 or 4 tiles; fp32 and
// bf16 operands, beta 0 over poison and beta 1 over a symmetric C, strides wider
// than the matrices. The result must be exactly symmetric, as on the CPU.
TEST(CudaMatrixOps, syrk_batched_matches_the_cpu_and_is_exactly_symmetric) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 1300;
  for (int64_t n : {int64_t(1), int64_t(37), int64_t(512), int64_t(1024), int64_t(1030)})
    for (int64_t k : {int64_t(3), int64_t(300)})
      for (bool bf16 : {false, true})
        for (float beta : {0.0f, 1.0f}) {
          const int64_t count = 2, stride_a = n * k + 5, stride_c = n * n + 3;
          const std::vector<float> a = normal_values(count * stride_a, seed++, 1.0f);
          std::vector<float> cpu_c = normal_values(count * stride_c, seed++, 1.0f);
          for (int64_t i = 0; i < count; i++)
            for (int64_t r = 0; r < n; r++)
              for (int64_t col = 0; col < r; col++) cpu_c[i * stride_c + r * n + col] = cpu_c[i * stride_c + col * n + r];
          DeviceArray<float> gpu_a(a), gpu_c(cpu_c);
          if (beta == 0.0f) gpu_c.poison();
          ops.cpu->syrk_batched(n, k, 0.75f, a.data(), stride_a, beta, cpu_c.data(), stride_c, count, bf16);
          ops.gpu->syrk_batched(n, k, 0.75f, gpu_a.ptr, stride_a, beta, gpu_c.ptr, stride_c, count, bf16);
          const std::vector<float> got = gpu_c.download();
          const std::string what = "n " + std::to_string(n) + ", k " + std::to_string(k) + ", bf16 " +
                                   std::to_string(bf16) + ", beta " + std::to_string(beta);
          for (int64_t i = 0; i < count; i++) {
            const auto matrix = [&](const std::vector<float>& c) {
              return std::vector<float>(c.begin() + i * stride_c, c.begin() + i * stride_c + n * n);
            };
            const std::vector<float> mine = matrix(got);
            EXPECT_LT(relative_error(mine, matrix(cpu_c)), kFp32Tolerance) << what;
            for (int64_t r = 0; r < n; r++)
              for (int64_t col = 0; col < r; col++) ASSERT_EQ(mine[r * n + col], mine[col * n + r]) << what;
          }
        }
}

TEST(CudaMatrixOps, accumulated_slice_l1_norms_match_the_cpu_for_rows_and_columns) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 300;
  for (const auto& [rows, cols] : kShapes)
    for (SliceDim dim : {SliceDim::kRows, SliceDim::kCols}) {
      std::vector<float> m = normal_values(rows * cols, seed++, 1.0f);
      const std::vector<float> g = normal_values(rows * cols, seed++, 1.0f);
      DeviceArray<float> gpu_m(m);
      const DeviceArray<float> gpu_g(g);
      const size_t count = static_cast<size_t>(dim == SliceDim::kRows ? rows : cols);
      std::vector<float> cpu_norms(count, std::nanf("")), gpu_norms(count, std::nanf(""));
      ops.cpu->accumulate_slice_l1_norms(dim, rows, cols, g.data(), m.data(), cpu_norms);
      ops.gpu->accumulate_slice_l1_norms(dim, rows, cols, gpu_g.ptr, gpu_m.ptr, gpu_norms);
      const std::string what = shape_name(rows, cols) + (dim == SliceDim::kRows ? " rows" : " columns");
      expect_bitwise_equal(gpu_m.download(), m, "M += G " + what);
      EXPECT_LT(relative_error(gpu_norms, cpu_norms), kFp32Tolerance) << what;
    }
}

TEST(CudaMatrixOps, dion2_slice_ops_match_the_cpu_bit_for_bit) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;  // one set of ops throughout: its index buffer grows and is reused
  uint64_t seed = 400;
  for (const auto& [rows, cols] : kShapes)
    for (SliceDim dim : {SliceDim::kRows, SliceDim::kCols}) {
      const bool by_rows = dim == SliceDim::kRows;
      const int64_t d = by_rows ? rows : cols, other = by_rows ? cols : rows;
      const std::vector<float> m = normal_values(rows * cols, seed++, 1.0f);
      const DeviceArray<float> gpu_m(m);
      for (int64_t k : {int64_t(1), d, (d + 1) / 2, std::min<int64_t>(2, d)}) {  // larger, then smaller again
        const std::vector<int64_t> selected = random_selection(d, k, seed++);
        const std::string what = shape_name(rows, cols) + (by_rows ? " rows" : " columns") + ", k " + std::to_string(k);

        std::vector<float> cpu_out(static_cast<size_t>(k * other));
        DeviceArray<float> gpu_out(cpu_out.size());
        gpu_out.poison();
        ops.cpu->gather_slices(dim, rows, cols, m.data(), selected, cpu_out.data());
        ops.gpu->gather_slices(dim, rows, cols, gpu_m.ptr, selected, gpu_out.ptr);
        expect_bitwise_equal(gpu_out.download(), cpu_out, "gather_slices " + what);

        std::vector<float> cpu_scaled = m, cpu_taken(cpu_out.size());
        DeviceArray<float> gpu_scaled(m), gpu_taken(cpu_out.size());
        gpu_taken.poison();
        ops.cpu->gather_and_scale_slices(dim, rows, cols, cpu_scaled.data(), selected, cpu_taken.data(), 0.37f);
        ops.gpu->gather_and_scale_slices(dim, rows, cols, gpu_scaled.ptr, selected, gpu_taken.ptr, 0.37f);
        expect_bitwise_equal(gpu_scaled.download(), cpu_scaled, "gather_and_scale_slices (M) " + what);
        expect_bitwise_equal(gpu_taken.download(), cpu_taken, "gather_and_scale_slices (out) " + what);

        const std::vector<float> update = normal_values(k * other, seed++, 1.0f);
        const DeviceArray<float> gpu_update(update);
        std::vector<float> cpu_set = m;
        DeviceArray<float> gpu_set(m);
        ops.cpu->set_slices(dim, rows, cols, cpu_set.data(), selected, -0.7f, update.data());
        ops.gpu->set_slices(dim, rows, cols, gpu_set.ptr, selected, -0.7f, gpu_update.ptr);
        expect_bitwise_equal(gpu_set.download(), cpu_set, "set_slices " + what);

        std::vector<float> cpu_w = m;
        DeviceArray<float> gpu_w(m);
        ops.cpu->add_to_slices(dim, rows, cols, cpu_w.data(), selected, 0.99f, -0.7f, update.data());
        ops.gpu->add_to_slices(dim, rows, cols, gpu_w.ptr, selected, 0.99f, -0.7f, gpu_update.ptr);
        expect_bitwise_equal(gpu_w.download(), cpu_w, "add_to_slices " + what);
      }
    }
}

TEST(CudaMatrixOps, normalize_rows_matches_the_cpu_with_and_without_row_of) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 500;
  for (const auto& [rows, cols] : kShapes)
    for (bool mapped : {false, true}) {
      // Mapped: the rows are a random subset, in random order, of rows + 5 neurons; the
      // neurons with no row must keep their moment.
      const int64_t neurons = mapped ? rows + 5 : rows;
      const std::vector<int64_t> row_of = mapped ? random_selection(neurons, rows, seed++) : std::vector<int64_t>();
      const std::vector<float> u = normal_values(rows * cols, seed++, 1.0f);
      std::vector<float> v = normal_values(neurons, seed++, 1.0f);
      for (float& x : v) x = x * x;
      std::vector<float> cpu_u = u, cpu_v = v;
      DeviceArray<float> gpu_u(u), gpu_v(v);
      ops.cpu->normalize_rows(rows, cols, cpu_u.data(), row_of, cpu_v.data(), 0.95f, 1e-8f);
      ops.gpu->normalize_rows(rows, cols, gpu_u.ptr, row_of, gpu_v.ptr, 0.95f, 1e-8f);
      const std::string what = shape_name(rows, cols) + (mapped ? ", row_of given" : ", row_of empty");
      EXPECT_LT(relative_error(gpu_u.download(), cpu_u), kFp32Tolerance) << "u " << what;
      EXPECT_LT(relative_error(gpu_v.download(), cpu_v), kFp32Tolerance) << "second moments " << what;
    }
}

TEST(CudaMatrixOps, normalize_columns_matches_the_cpu) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 600;
  for (const auto& [rows, cols] : kShapes)
    for (float eps : {0.0f, 1e-8f}) {
      std::vector<float> cpu_x = normal_values(rows * cols, seed++, 3.0f);
      DeviceArray<float> gpu_x(cpu_x);
      ops.cpu->normalize_columns(rows, cols, cpu_x.data(), eps);
      ops.gpu->normalize_columns(rows, cols, gpu_x.ptr, eps);
      EXPECT_LT(relative_error(gpu_x.download(), cpu_x), kFp32Tolerance) << shape_name(rows, cols) << ", eps " << eps;
    }
}

TEST(CudaMatrixOps, cholesky_qr_gives_the_cpus_orthonormal_basis_and_declines_rank_deficient_input) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 700;
  for (const auto& [m, r] : kTallShapes) {
    const std::string shape = shape_name(m, r);
    const std::vector<float> p = normal_values(m * r, seed++, 3.0f);
    std::vector<float> cpu_q = p, cpu_gram(static_cast<size_t>(r * r));
    DeviceArray<float> gpu_q(p), gpu_gram(cpu_gram.size());
    gpu_gram.poison();  // a workspace: nothing it held matters
    ASSERT_TRUE(ops.cpu->cholesky_qr(m, r, cpu_q.data(), cpu_gram.data())) << shape;
    ASSERT_TRUE(ops.gpu->cholesky_qr(m, r, gpu_q.ptr, gpu_gram.ptr)) << shape;
    const std::vector<float> q = gpu_q.download();
    EXPECT_LT(relative_error(q, cpu_q), kFp32Tolerance) << shape;
    EXPECT_LT(orthonormality_error(q, m, r), 1e-5) << "Q^T Q = I, " << shape;
    EXPECT_LT(span_residual(q, p, m, r), 1e-5) << "Q Q^T P = P, " << shape;
    if (r == 1) continue;

    // Two equal columns (P^T P singular, caught by the second pass's diagonal or by potrf)
    // and a zero column (a zero pivot): both decline.
    for (bool zero_column : {false, true}) {
      std::vector<float> deficient = p;
      for (int64_t t = 0; t < m; t++) deficient[t * r + 1] = zero_column ? 0.0f : deficient[t * r];
      std::vector<float> cpu_p = deficient;
      DeviceArray<float> gpu_p(deficient);
      const char* what = zero_column ? "a zero column" : "two equal columns";
      EXPECT_FALSE(ops.cpu->cholesky_qr(m, r, cpu_p.data(), cpu_gram.data())) << "cpu, " << what << ", " << shape;
      EXPECT_FALSE(ops.gpu->cholesky_qr(m, r, gpu_p.ptr, gpu_gram.ptr)) << "gpu, " << what << ", " << shape;
    }
  }
}

TEST(CudaMatrixOps, householder_qr_gives_the_cpus_q_which_is_cholesky_qrs_q) {
  LLMDION_REQUIRE_GPU();
  BothOps ops;
  uint64_t seed = 800;
  for (const auto& [m, r] : kTallShapes) {
    const std::string shape = shape_name(m, r);
    const std::vector<float> p = normal_values(m * r, seed++, 3.0f);
    std::vector<float> cpu_q = p;
    DeviceArray<float> gpu_q(p), gpu_cholesky(p), gpu_gram(static_cast<size_t>(r * r));
    ops.cpu->householder_qr(m, r, cpu_q.data());
    ops.gpu->householder_qr(m, r, gpu_q.ptr);
    const std::vector<float> q = gpu_q.download();
    // Both sign Q so that R has a non-negative diagonal: the same Q, not just the same span.
    EXPECT_LT(relative_error(q, cpu_q), kFp32Tolerance) << shape;
    EXPECT_LT(orthonormality_error(q, m, r), 1e-5) << "Q^T Q = I, " << shape;
    EXPECT_LT(span_residual(q, p, m, r), 1e-5) << "Q Q^T P = P, " << shape;
    ASSERT_TRUE(ops.gpu->cholesky_qr(m, r, gpu_cholesky.ptr, gpu_gram.ptr)) << shape;
    EXPECT_LT(relative_error(q, gpu_cholesky.download()), kFp32Tolerance) << "Householder vs Cholesky Q, " << shape;
    if (r == 1) continue;

    // Where Cholesky-QR declines, Householder still gives orthonormal columns.
    std::vector<float> deficient = p;
    for (int64_t t = 0; t < m; t++) deficient[t * r + 1] = deficient[t * r];
    DeviceArray<float> gpu_deficient(deficient);
    ops.gpu->householder_qr(m, r, gpu_deficient.ptr);
    EXPECT_LT(orthonormality_error(gpu_deficient.download(), m, r), 1e-5) << "two equal columns, " << shape;
  }
}

// ---- the matrix optimizers end to end ---------------------------------------------------------

// Five steps of the optimizer `optim` describes over a few matrices, built by
// make_optimizer_over for cpu and for cuda from the same seeds; the GPU may run
// another configuration (gpu_optim: bf16 products) at a looser tolerance.
void expect_same_five_steps(const std::string& what, const OptimConfig& optim,
                            const std::optional<OptimConfig>& gpu_optim = {}, double tolerance = kFp32Tolerance) {
  // Two matrices of one shape (a batch of two), a short side of 512 (the tiled
  // symmetric products), tall and wide, tiny.
  const MatrixProblem problem({{64, 200}, {333, 65}, {64, 200}, {600, 512}, {13, 7}, {1, 1}}, 5, 7);
  const size_t n = static_cast<size_t>(problem.numel);
  Config cpu_config;
  cpu_config.optim = optim;
  cpu_config.run.device = "cpu";
  Config gpu_config = cpu_config;
  gpu_config.run.device = "cuda";
  if (gpu_optim) gpu_config.optim = *gpu_optim;
  const std::unique_ptr<Optimizer> cpu = make_optimizer_over(cpu_config, problem.matrices, {}, {});
  const std::unique_ptr<Optimizer> gpu = make_optimizer_over(gpu_config, problem.matrices, {}, {});

  std::vector<float> cpu_weights = problem.weights;
  DeviceArray<float> gpu_weights(problem.weights), gpu_grads(n);
  for (int64_t t = 0; t < 5; t++) {
    const double lr_scale = 1.0 - 0.1 * double(t);
    const std::vector<float> gpu_before = gpu_weights.download();
    gpu_grads.upload(problem.grads[t]);
    cpu->step(cpu_weights, problem.grads[t], lr_scale, t + 1);
    gpu->step({gpu_weights.ptr, n}, {gpu_grads.ptr, n}, lr_scale, t + 1);
    const std::vector<float> gpu_after = gpu_weights.download();
    // Dion2's momentum is equal bit for bit (element-wise updates rounded alike), so its l1 and
    // random selections must be the same slices.
    const float keep = weight_decay_factor(float(gpu_config.optim.lr * lr_scale), gpu_config.optim.weight_decay);
    for (const MatrixParam& matrix : problem.matrices) {
      const SliceSelection* cpu_slices = cpu->changed_slices(matrix.offset);
      const SliceSelection* gpu_slices = gpu->changed_slices(matrix.offset);
      ASSERT_EQ(cpu_slices == nullptr, gpu_slices == nullptr) << what;
      if (!cpu_slices) continue;
      EXPECT_EQ(gpu_slices->indices, cpu_slices->indices) << what << ", " << matrix.name << ", step " << t + 1;
      // The sparse update on the GPU: every entry outside the selected slices only decays, bit for bit.
      std::vector<bool> selected(size_t(gpu_slices->dim == SliceDim::kRows ? matrix.rows : matrix.cols), false);
      for (int64_t i : gpu_slices->indices) selected[size_t(i)] = true;
      int64_t moved = 0;
      for (int64_t i = 0; i < matrix.rows; i++)
        for (int64_t j = 0; j < matrix.cols; j++) {
          if (selected[size_t(gpu_slices->dim == SliceDim::kRows ? i : j)]) continue;
          const size_t at = size_t(matrix.offset + i * matrix.cols + j);
          moved += gpu_after[at] != gpu_before[at] * keep;
        }
      EXPECT_EQ(moved, 0) << what << ", " << matrix.name << ", step " << t + 1
                          << ": entries outside the selected slices that did more than decay";
    }
  }

  // Measured in a host emulation of these runs with the GEMMs summed in three
  // other orders (sequential, reversed, 4-way split k; fused multiply-adds) and
  // the triangular solve by hand: the weights differ by at most 2.9e-7, the
  // update W - W0 alone by 2.1e-6 (Muon with Polar Express), every state by
  // 1.2e-6 (Dion's Q). kFp32Tolerance leaves 5x room or more.
  const std::vector<float> gpu_final = gpu_weights.download();
  EXPECT_LT(relative_error(gpu_final, cpu_weights), tolerance) << what << ": weights";
  std::vector<float> cpu_update(n), gpu_update(n);
  for (size_t i = 0; i < n; i++) {
    cpu_update[i] = cpu_weights[i] - problem.weights[i];
    gpu_update[i] = gpu_final[i] - problem.weights[i];
  }
  EXPECT_LT(relative_error(gpu_update, cpu_update), tolerance) << what << ": W - W0";

  const std::vector<OptimizerState> cpu_state = cpu->state(), gpu_state = gpu->state();
  ASSERT_EQ(cpu_state.size(), gpu_state.size()) << what;
  for (size_t s = 0; s < cpu_state.size(); s++) {
    ASSERT_EQ(gpu_state[s].name, cpu_state[s].name) << what;
    ASSERT_EQ(gpu_state[s].data.size(), cpu_state[s].data.size()) << what << ": " << cpu_state[s].name;
    if (cpu_state[s].data.empty()) continue;  // the AdamW of no other parameters
    std::vector<float> got(gpu_state[s].data.size());
    copy_to_host(Device::kCuda, gpu_state[s].data.data(), got);
    const std::vector<float> want(cpu_state[s].data.begin(), cpu_state[s].data.end());
    EXPECT_LT(relative_error(got, want), tolerance) << what << ": " << cpu_state[s].name;
  }
}

OptimConfig optim_config(const std::string& matrix, const std::function<void(OptimConfig&)>& set = {}) {
  OptimConfig config;
  config.matrix = matrix;
  config.lr = 0.02;
  if (set) set(config);
  return config;
}

TEST(CudaMatrixOptimizers, muon_matches_the_cpu_over_five_steps) {
  LLMDION_REQUIRE_GPU();
  expect_same_five_steps("muon", optim_config("muon"));
  expect_same_five_steps("muon, nesterov, normalize: neuron", optim_config("muon", [](OptimConfig& c) {
                           c.nesterov = true;
                           c.normalize = "neuron";
                         }));
  expect_same_five_steps("muon, polar_express",
                         optim_config("muon", [](OptimConfig& c) { c.ortho = "polar_express"; }));
}

TEST(CudaMatrixOptimizers, dion2_matches_the_cpu_over_five_steps) {
  LLMDION_REQUIRE_GPU();
  for (const char* select : {"l1", "random"})
    for (const char* select_dim : {"rows", "cols"})
      for (const char* normalize : {"none", "neuron"}) {
        const std::string what =
            std::string("dion2, ") + select + " selection of " + select_dim + ", normalize " + normalize;
        expect_same_five_steps(what, optim_config("dion2", [&](OptimConfig& c) {
                                 c.select = select;
                                 c.select_dim = select_dim;
                                 c.normalize = normalize;
                               }));
      }
}

// bf16 operands in the orthonormalization's products, against the CPU's
// emulation of them and against fp32 products. Not to fp32 tolerance: in a
// numpy emulation of 5 Newton-Schulz or Polar Express steps on random
// matrices, bf16 operands move the output by 1-3% relative to fp32 operands,
// and the order of the fp32 sums alone by up to 1.3% (each step's rounding of
// X to bf16, amplified along the smallest singular directions), while the
// singular values stay in the coefficients' band (tests/optim/test_newton_schulz.cpp).
// A wrong product moves it by O(1). Random selection: the same slices whatever the rounding.
TEST(CudaMatrixOptimizers, bf16_products_stay_near_the_cpu_emulation_and_fp32) {
  LLMDION_REQUIRE_GPU();
  for (const char* matrix : {"muon", "dion2"}) {
    const OptimConfig fp32 = optim_config(matrix, [](OptimConfig& c) { c.select = "random"; });
    OptimConfig bf16 = fp32;
    bf16.ortho_precision = "bf16";
    expect_same_five_steps(std::string(matrix) + ", bf16 products vs the CPU's emulation", bf16, bf16, 3e-2);
    expect_same_five_steps(std::string(matrix) + ", bf16 products vs fp32", fp32, bf16, 5e-2);
  }
}

TEST(CudaMatrixOptimizers, dion_matches_the_cpu_over_five_steps) {
  LLMDION_REQUIRE_GPU();
  expect_same_five_steps("dion, rank_frac 0.5", optim_config("dion", [](OptimConfig& c) { c.rank_frac = 0.5; }));
}

}  // namespace
}  // namespace llmdion::test
