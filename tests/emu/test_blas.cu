// The cuBLAS, cuBLASLt and cuSOLVER emulations against NVIDIA's references:
// known answers, float64 loops, the argument checks and the "no algorithm"
// cases the references name, the stream order of their work.
//
// Tolerances: each output is float64 rounded once, so it is within half an
// ulp of the float64 value: 2^-24 |x| in fp32, 2^-8 |x| in bf16 (8 significant
// bits). The float64 loops here add in another order than the emulation; that
// differs by at most k 2^-53 times the sum of the terms' magnitudes, which the
// 2^-40 magnitude term covers for every k below.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <future>
#include <limits>
#include <numbers>
#include <random>
#include <vector>

#include "emu/runtime.h"

namespace {

template <typename T>
struct Device {
  T* ptr = nullptr;
  size_t size;
  explicit Device(size_t n) : size(n) { EXPECT_EQ(cudaMalloc(&ptr, n * sizeof(T)), cudaSuccess); }
  ~Device() { cudaFree(ptr); }
  void upload(const std::vector<T>& host) {
    ASSERT_EQ(host.size(), size);
    ASSERT_EQ(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> download() const {
    std::vector<T> host(size);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr, size * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
};

// Holds the device thread, at its turn on `stream`, until opened: the host
// must not wait for the device meanwhile.
class Gate {
 public:
  explicit Gate(cudaStream_t stream) {
    std::shared_future<void> opened = open_.get_future().share();
    emu::enqueue(stream, "gate", [opened] { opened.wait(); });
  }
  ~Gate() { open(); }
  void open() {
    if (!opened_) open_.set_value();
    opened_ = true;
  }

 private:
  std::promise<void> open_;
  bool opened_ = false;
};

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> random_floats(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> out(n);
  for (float& x : out) x = uniform(rng);
  return out;
}
std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& x) {
  std::vector<__nv_bfloat16> out(x.size());
  for (size_t i = 0; i < x.size(); i++) out[i] = __float2bfloat16(x[i]);
  return out;
}
std::vector<float> to_float(const std::vector<__nv_bfloat16>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); i++) out[i] = __bfloat162float(x[i]);
  return out;
}

// op(X)(i, j) of a column-major matrix.
double op_at(const std::vector<float>& x, int ld, bool transposed, int i, int j) {
  return transposed ? x[size_t(j + i * ld)] : x[size_t(i + j * ld)];
}

// A float64 value and the sum of its terms' magnitudes.
struct Exact {
  double value = 0, magnitude = 0;
};

// alpha op(A) op(B) (i, j) in float64.
Exact product_at(bool ta, bool tb, int k, double alpha, const std::vector<float>& a, int lda,
                 const std::vector<float>& b, int ldb, int i, int j) {
  Exact sum;
  for (int l = 0; l < k; l++) {
    const double term = alpha * op_at(a, lda, ta, i, l) * op_at(b, ldb, tb, l, j);
    sum.value += term;
    sum.magnitude += std::fabs(term);
  }
  return sum;
}

void expect_fp32(float got, Exact want, const char* what) {
  EXPECT_NEAR(got, want.value, std::ldexp(std::fabs(want.value), -24) + std::ldexp(want.magnitude, -40)) << what;
}
void expect_bf16(float got, Exact want, const char* what) {
  EXPECT_NEAR(got, want.value, std::ldexp(std::fabs(want.value), -8) + std::ldexp(want.magnitude, -40)) << what;
}

class EmuBlas : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
  }
  void TearDown() override { EXPECT_EQ(cublasDestroy(handle), CUBLAS_STATUS_SUCCESS); }
  cublasHandle_t handle = nullptr;
};

// ---- cuBLAS GEMMs ---------------------------------------------------------------

// Row-major C = A B (A 2 x 3, B 3 x 2) is column-major C^T = B^T A^T: the
// row-major arrays are B^T and A^T as stored, so the call is N, N with m and n swapped.
TEST_F(EmuBlas, a_row_major_product_is_the_column_major_call_of_its_transpose) {
  Device<float> a(6), b(6), c(4);
  a.upload({1, 2, 3, 4, 5, 6});
  b.upload({7, 8, 9, 10, 11, 12});
  const float one = 1, zero = 0;
  ASSERT_EQ(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, b.ptr, 2, a.ptr, 3, &zero, c.ptr, 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(c.download(), (std::vector<float>{58, 64, 139, 154}));
}

// All of N, T and C (C is T on real data) for A and B, leading dimensions past
// the rows, alpha and beta: the padding of C is never written.
TEST_F(EmuBlas, every_transpose_pair_with_padded_leading_dimensions_matches_float64) {
  const int m = 5, n = 4, k = 3;
  const float alpha = 0.75f, beta = -1.25f;
  for (cublasOperation_t op_a : {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C})
    for (cublasOperation_t op_b : {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C}) {
      const bool ta = op_a != CUBLAS_OP_N, tb = op_b != CUBLAS_OP_N;
      const int lda = (ta ? k : m) + 3, ldb = (tb ? n : k) + 2, ldc = m + 4;
      const std::vector<float> host_a = random_floats(size_t(lda) * (ta ? m : k), 1);
      const std::vector<float> host_b = random_floats(size_t(ldb) * (tb ? k : n), 2);
      std::vector<float> host_c = random_floats(size_t(ldc) * n, 3);
      for (int j = 0; j < n; j++)
        for (int i = m; i < ldc; i++) host_c[size_t(i + j * ldc)] = 12345.0f;
      Device<float> a(host_a.size()), b(host_b.size()), c(host_c.size());
      a.upload(host_a), b.upload(host_b), c.upload(host_c);
      ASSERT_EQ(cublasSgemm(handle, op_a, op_b, m, n, k, &alpha, a.ptr, lda, b.ptr, ldb, &beta, c.ptr, ldc),
                CUBLAS_STATUS_SUCCESS);
      const std::vector<float> got = c.download();
      for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++) {
          Exact want = product_at(ta, tb, k, alpha, host_a, lda, host_b, ldb, i, j);
          const double old = beta * double(host_c[size_t(i + j * ldc)]);
          want.value += old, want.magnitude += std::fabs(old);
          expect_fp32(got[size_t(i + j * ldc)], want, "C");
        }
        for (int i = m; i < ldc; i++) EXPECT_EQ(got[size_t(i + j * ldc)], 12345.0f) << "padding of C";
      }
    }
}

// "If beta == 0, then C does not have to be a valid input": NaN there stays out.
TEST_F(EmuBlas, beta_zero_does_not_read_c) {
  Device<float> a(4), b(4), c(4);
  a.upload({1, 2, 3, 4});
  b.upload({1, 0, 0, 1});
  c.upload({kNaN, kNaN, kNaN, kNaN});
  const float one = 1, zero = 0;
  ASSERT_EQ(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a.ptr, 2, b.ptr, 2, &zero, c.ptr, 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(c.download(), (std::vector<float>{1, 2, 3, 4}));
}

// k = 0: the product is empty, so C = beta C.
TEST_F(EmuBlas, an_empty_product_scales_c_by_beta) {
  Device<float> a(1), b(1), c(4);
  c.upload({1, 2, 3, 4});
  const float one = 1, half = 0.5f;
  ASSERT_EQ(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 0, &one, a.ptr, 2, b.ptr, 1, &half, c.ptr, 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(c.download(), (std::vector<float>{0.5f, 1, 1.5f, 2}));
}

// Accumulated in float64 and rounded once: 1 + 2^-24 + 2^-52 is exact in
// float64 and rounds to 1 + 2^-23 in fp32, where adding in fp32 gives 1. In
// bf16, 256 + 1 + 2^-20 rounds to 258, though its fp32 rounding, 257, is a
// bf16 tie that would round to 256; 257 itself is a tie and goes to the even 256.
TEST_F(EmuBlas, products_are_accumulated_in_float64_and_rounded_once_to_nearest_even) {
  Device<float> a32(3), b32(3), c32(1);
  a32.upload({1.0f, std::ldexp(1.0f, -24), std::ldexp(1.0f, -52)});
  b32.upload({1, 1, 1});
  const float one = 1, zero = 0;
  ASSERT_EQ(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 3, &one, a32.ptr, 1, b32.ptr, 3, &zero, c32.ptr, 1),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(c32.download()[0], 1.0f + std::ldexp(1.0f, -23));

  const std::vector<std::pair<std::vector<float>, float>> cases = {
      {{256, 1, std::ldexp(1.0f, -20)}, 258}, {{256, 1, 0}, 256}, {{-256, -1, -std::ldexp(1.0f, -20)}, -258},
      {{256, 2, 1}, 260}};
  Device<__nv_bfloat16> a(3), b(3), c(1);
  b.upload(to_bf16({1, 1, 1}));
  for (const auto& [terms, want] : cases) {
    a.upload(to_bf16(terms));
    ASSERT_EQ(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 3, &one, a.ptr, CUDA_R_16BF, 1, b.ptr, CUDA_R_16BF,
                           3, &zero, c.ptr, CUDA_R_16BF, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(__bfloat162float(c.download()[0]), want) << terms[0] << " + " << terms[1] << " + " << terms[2];
  }
}

// Product i reads A + i strideA, B + i strideB and writes C + i strideC; the
// strides leave gaps, and bf16 operands go with fp32 C (matrix_ops' gemm_batched).
TEST_F(EmuBlas, strided_batches_in_fp32_and_bf16_match_float64) {
  const int m = 4, n = 3, k = 5, count = 3;
  const long long stride_a = m * k + 7, stride_b = k * n + 5, stride_c = m * n + 3;
  const std::vector<float> host_a = random_floats(size_t(stride_a * count), 4);
  const std::vector<float> host_b = random_floats(size_t(stride_b * count), 5);
  const float alpha = 1.5f, zero = 0;
  for (const bool bf16 : {false, true}) {
    const std::vector<float> wide_a = bf16 ? to_float(to_bf16(host_a)) : host_a;
    const std::vector<float> wide_b = bf16 ? to_float(to_bf16(host_b)) : host_b;
    Device<float> c(size_t(stride_c * count));
    c.upload(std::vector<float>(c.size, 777.0f));
    if (bf16) {
      Device<__nv_bfloat16> a(host_a.size()), b(host_b.size());
      a.upload(to_bf16(host_a)), b.upload(to_bf16(host_b));
      ASSERT_EQ(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a.ptr, CUDA_R_16BF, k,
                                           stride_a, b.ptr, CUDA_R_16BF, k, stride_b, &zero, c.ptr, CUDA_R_32F, m,
                                           stride_c, count, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                CUBLAS_STATUS_SUCCESS);
    } else {
      Device<float> a(host_a.size()), b(host_b.size());
      a.upload(host_a), b.upload(host_b);
      ASSERT_EQ(cublasSgemmStridedBatched(handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a.ptr, k, stride_a, b.ptr,
                                          k, stride_b, &zero, c.ptr, m, stride_c, count),
                CUBLAS_STATUS_SUCCESS);
    }
    const std::vector<float> got = c.download();
    for (int p = 0; p < count; p++) {
      const std::vector<float> a_p(wide_a.begin() + p * stride_a, wide_a.begin() + (p + 1) * stride_a);
      const std::vector<float> b_p(wide_b.begin() + p * stride_b, wide_b.begin() + (p + 1) * stride_b);
      for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++)
          expect_fp32(got[size_t(p * stride_c + i + j * m)], product_at(true, false, k, alpha, a_p, k, b_p, k, i, j),
                      bf16 ? "bf16 batch" : "fp32 batch");
      for (long long gap = m * n; gap < stride_c; gap++) EXPECT_EQ(got[size_t(p * stride_c + gap)], 777.0f);
    }
  }
}

// The pointer arrays are device memory, filled by a copy queued just before
// the call: the call must read them when its work runs, after that copy (the
// stream is held until then, so the arrays are still zero at the call).
TEST_F(EmuBlas, pointer_array_batches_read_their_arrays_when_the_work_runs) {
  const int m = 3, n = 2, k = 4, count = 2;
  const std::vector<float> host_a = random_floats(size_t(m * k * count), 6), host_b = random_floats(size_t(k * n * count), 7);
  Device<float> a(host_a.size()), b(host_b.size()), c(size_t(m * n * count));
  a.upload(host_a), b.upload(host_b);
  Device<void*> arrays(size_t(3 * count));
  ASSERT_EQ(cudaMemset(arrays.ptr, 0, arrays.size * sizeof(void*)), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<void*> pointers = {a.ptr, a.ptr + m * k, b.ptr, b.ptr + k * n, c.ptr, c.ptr + m * n};
  const float one = 1, zero = 0;
  {
    Gate gate(nullptr);
    ASSERT_EQ(cudaMemcpyAsync(arrays.ptr, pointers.data(), pointers.size() * sizeof(void*), cudaMemcpyHostToDevice),
              cudaSuccess);
    ASSERT_EQ(cublasGemmBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, arrays.ptr, CUDA_R_32F, m,
                                  arrays.ptr + count, CUDA_R_32F, k, &zero, arrays.ptr + 2 * count, CUDA_R_32F, m,
                                  count, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT),
              CUBLAS_STATUS_SUCCESS);
  }
  const std::vector<float> got = c.download();
  for (int p = 0; p < count; p++) {
    const std::vector<float> a_p(host_a.begin() + p * m * k, host_a.begin() + (p + 1) * m * k);
    const std::vector<float> b_p(host_b.begin() + p * k * n, host_b.begin() + (p + 1) * k * n);
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++)
        expect_fp32(got[size_t(p * m * n + i + j * m)], product_at(false, false, k, 1.0, a_p, m, b_p, k, i, j), "C_p");
  }
}

// A pointer in the arrays that is not device memory is found when the work
// reads it: a fault of the device, as on the GPU.
TEST_F(EmuBlas, a_pointer_array_naming_host_memory_is_a_fault) {
  std::vector<float> host(16);
  Device<float> device(16);
  Device<void*> arrays(3);
  arrays.upload({host.data(), device.ptr, device.ptr});
  const float one = 1, zero = 0;
  EXPECT_DEATH(
      {
        cublasGemmBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, arrays.ptr, CUDA_R_32F, 2, arrays.ptr + 1,
                            CUDA_R_32F, 2, &zero, arrays.ptr + 2, CUDA_R_32F, 2, 1, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT);
        cudaDeviceSynchronize();
      },
      "cublasGemmBatchedEx: A .* is not inside one device allocation");
}

// The work runs on the handle's stream, in its order: it sees the copy queued
// there before it, and the copy queued after it sees its result. The stream
// is non-blocking, so work put on another stream instead would run in a
// seeded random order against these copies and fail for some seed.
TEST_F(EmuBlas, work_runs_in_order_on_the_handles_stream) {
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cublasSetStream(handle, stream), CUBLAS_STATUS_SUCCESS);
  Device<float> a(1), b(1), c(1);
  b.upload({5});
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const float one = 1, zero = 0;
  for (int seed = 1; seed <= 8; seed++) {
    emu::set_seed(seed);
    const float value = float(seed);
    float result = 0;
    ASSERT_EQ(cudaMemcpyAsync(a.ptr, &value, sizeof(float), cudaMemcpyHostToDevice, stream), cudaSuccess);
    ASSERT_EQ(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a.ptr, 1, b.ptr, 1, &zero, c.ptr, 1),
              CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cudaMemcpyAsync(&result, c.ptr, sizeof(float), cudaMemcpyDeviceToHost, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(result, 5.0f * value) << "seed " << seed;
  }
  emu::set_seed(1);
  ASSERT_EQ(cublasSetStream(handle, nullptr), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

// ---- geam and trsm ------------------------------------------------------------------

// matrix_ops' transpose: C = 1 op(A) + 0 op(B) with A as B; "the user can
// transpose matrix A by setting *alpha=1 and *beta=0", and B is then not read.
TEST_F(EmuBlas, geam_transposes_with_beta_zero_and_never_reads_b) {
  const int rows = 3, cols = 2;  // C rows x cols from A cols x rows
  Device<float> a(6), b(6), c(6);
  a.upload({1, 2, 3, 4, 5, 6});  // 2 x 3: columns (1 2) (3 4) (5 6)
  b.upload(std::vector<float>(6, kNaN));
  const float one = 1, zero = 0;
  ASSERT_EQ(cublasSgeam(handle, CUBLAS_OP_T, CUBLAS_OP_T, rows, cols, &one, a.ptr, cols, &zero, b.ptr, cols, c.ptr, rows),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(c.download(), (std::vector<float>{1, 3, 5, 2, 4, 6}));
}

// op(A) X = alpha B (left) or X op(A) = alpha B (right) for every side, fill,
// transpose and diagonal: only A's named triangle is read (the other holds
// NaN, as does the diagonal where it is taken as ones), X overwrites B, and X
// matches a float64 substitution. A is diagonally dominant: the solve is well
// conditioned, so its float64 errors stay far below the 2^-40 term.
TEST_F(EmuBlas, trsm_for_every_side_fill_transpose_and_diagonal_matches_float64) {
  const int m = 4, n = 3, ldb = m + 1;
  const float alpha = 2.0f;
  for (cublasSideMode_t side : {CUBLAS_SIDE_LEFT, CUBLAS_SIDE_RIGHT})
    for (cublasFillMode_t uplo : {CUBLAS_FILL_MODE_LOWER, CUBLAS_FILL_MODE_UPPER})
      for (cublasOperation_t trans : {CUBLAS_OP_N, CUBLAS_OP_T})
        for (cublasDiagType_t diag : {CUBLAS_DIAG_NON_UNIT, CUBLAS_DIAG_UNIT}) {
          const int order = side == CUBLAS_SIDE_LEFT ? m : n, lda = order + 2;
          const bool upper = uplo == CUBLAS_FILL_MODE_UPPER, unit = diag == CUBLAS_DIAG_UNIT;
          std::vector<float> host_a = random_floats(size_t(lda * order), 8);
          std::vector<double> full(size_t(order * order), 0.0);  // the triangular matrix A stands for
          for (int j = 0; j < order; j++)
            for (int i = 0; i < order; i++) {
              float& x = host_a[size_t(i + j * lda)];
              if (i == j) x = unit ? kNaN : 2.0f + 0.5f * x;
              else if ((i < j) != upper) x = kNaN;
              const bool in_triangle = i == j || (i < j) == upper;
              if (in_triangle) full[size_t(i + j * order)] = i == j && unit ? 1.0 : double(x);
            }
          const std::vector<float> host_b = random_floats(size_t(ldb * n), 9);
          Device<float> a(host_a.size()), b(host_b.size());
          a.upload(host_a), b.upload(host_b);
          ASSERT_EQ(cublasStrsm(handle, side, uplo, trans, diag, m, n, &alpha, a.ptr, lda, b.ptr, ldb),
                    CUBLAS_STATUS_SUCCESS);
          const std::vector<float> got = b.download();
          // op(A) element (i, j) of the full triangular matrix.
          auto op_a = [&](int i, int j) { return trans == CUBLAS_OP_N ? full[size_t(i + j * order)] : full[size_t(j + i * order)]; };
          // Solve column by column (left) or row by row (right) by substitution in float64.
          std::vector<double> x(size_t(m * n));
          const bool forward = (trans == CUBLAS_OP_N) != upper;  // op(A) lower: from the first unknown
          for (int line = 0; line < (side == CUBLAS_SIDE_LEFT ? n : m); line++)
            for (int step = 0; step < order; step++) {
              const int u = side == CUBLAS_SIDE_LEFT ? (forward ? step : order - 1 - step)
                                                     : ((trans == CUBLAS_OP_N) == upper ? step : order - 1 - step);
              const int row = side == CUBLAS_SIDE_LEFT ? u : line, col = side == CUBLAS_SIDE_LEFT ? line : u;
              double rest = alpha * double(host_b[size_t(row + col * ldb)]);
              for (int v = 0; v < order; v++) {
                if (v == u) continue;
                rest -= side == CUBLAS_SIDE_LEFT ? op_a(u, v) * x[size_t(v + col * m)] : x[size_t(row + v * m)] * op_a(v, u);
              }
              x[size_t(row + col * m)] = rest / op_a(u, u);
            }
          for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++)
              EXPECT_NEAR(got[size_t(i + j * ldb)], x[size_t(i + j * m)], std::ldexp(std::fabs(x[size_t(i + j * m)]), -24) + 1e-12)
                  << "side " << side << " uplo " << uplo << " trans " << trans << " diag " << diag << " at " << i << ", " << j;
          for (int j = 0; j < n; j++) EXPECT_EQ(got[size_t(m + j * ldb)], host_b[size_t(m + j * ldb)]) << "padding of B";
        }
}

// ---- argument checks ------------------------------------------------------------------

TEST_F(EmuBlas, arguments_are_checked_as_documented) {
  Device<float> a(16), b(16), c(16);
  std::vector<float> host(16);
  const float one = 1, zero = 0;
  const auto sgemm = [&](cublasHandle_t h, int m, int lda, const float* alpha, const float* x) {
    return cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, 2, 2, alpha, x, lda, b.ptr, 2, &zero, c.ptr, 4);
  };
  EXPECT_EQ(sgemm(handle, 2, 2, &one, a.ptr), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(sgemm(nullptr, 2, 2, &one, a.ptr), CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_EQ(sgemm(handle, -1, 2, &one, a.ptr), CUBLAS_STATUS_INVALID_VALUE) << "m < 0";
  EXPECT_EQ(sgemm(handle, 3, 2, &one, a.ptr), CUBLAS_STATUS_INVALID_VALUE) << "lda < max(1, m)";
  EXPECT_EQ(sgemm(handle, 2, 0, &one, a.ptr), CUBLAS_STATUS_INVALID_VALUE) << "lda < 1";
  EXPECT_EQ(sgemm(handle, 2, 2, nullptr, a.ptr), CUBLAS_STATUS_INVALID_VALUE) << "alpha null";
  EXPECT_EQ(sgemm(handle, 2, 2, &one, host.data()), CUBLAS_STATUS_INVALID_VALUE) << "A in host memory";
  EXPECT_EQ(sgemm(handle, 2, 2, a.ptr, a.ptr), CUBLAS_STATUS_INVALID_VALUE) << "alpha in device memory";
  EXPECT_EQ(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, 4, 4, 4, &one, a.ptr, 4, b.ptr, 4, &zero, c.ptr + 1, 4),
            CUBLAS_STATUS_INVALID_VALUE)
      << "C runs past its allocation";
  EXPECT_EQ(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a.ptr, CUDA_R_16F, 2, b.ptr, CUDA_R_16F, 2,
                         &zero, c.ptr, CUDA_R_32F, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED)
      << "fp16 is not emulated";
  EXPECT_EQ(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a.ptr, CUDA_R_32F, 2, b.ptr, CUDA_R_32F, 2,
                         &zero, c.ptr, CUDA_R_16BF, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED)
      << "fp32 A, B with bf16 C is not in the table";
  EXPECT_EQ(cublasSgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a.ptr, 2, 4, b.ptr, 2, 4, &zero,
                                      c.ptr, 2, 4, -1),
            CUBLAS_STATUS_INVALID_VALUE)
      << "batchCount < 0";
  EXPECT_EQ(cublasSgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a.ptr, 2, 4, b.ptr, 2, 4, &zero,
                                      c.ptr, 2, 4, 5),
            CUBLAS_STATUS_INVALID_VALUE)
      << "the fifth product runs past the allocations";
  EXPECT_EQ(cublasSgeam(handle, CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, &one, c.ptr, 2, &zero, b.ptr, 2, c.ptr, 2),
            CUBLAS_STATUS_INVALID_VALUE)
      << "in place with A transposed";
  EXPECT_EQ(cublasStrsm(handle, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_UNIT, 4, 3, &one,
                        a.ptr, 2, b.ptr, 4),
            CUBLAS_STATUS_INVALID_VALUE)
      << "lda < n on the right";
  EXPECT_EQ(cublasSetMathMode(handle, cublasMath_t(7)), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasSetMathMode(handle, cublasMath_t(CUBLAS_PEDANTIC_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE");
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// ---- cuBLASLt ---------------------------------------------------------------------------

// One cublasLtMatmul as src/model/cuda/matmul.cu makes it: D (m x n) =
// epilogue(alpha op(A) op(B) + beta D), C being D.
struct LtCall {
  bool ta, tb;
  int m, n, k;
  const void* a;
  int lda;
  const void* b;
  int ldb;
  void* d;
  int ldd;
  cudaDataType_t ab_type = CUDA_R_16BF, d_type = CUDA_R_16BF;
  float alpha = 1, beta = 0;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: not set
  void* aux = nullptr;
  int64_t aux_ld = 0;
  int32_t aux_type = -1;
  uint32_t min_alignment_a = 256;
};

// The descriptor and layouts of a call, destroyed with it.
struct Described {
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t a, b, d;
  explicit Described(const LtCall& p) {
    EXPECT_EQ(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    const cublasOperation_t op_a = p.ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = p.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const auto set = [&](cublasLtMatmulDescAttributes_t attribute, const void* value, size_t bytes) {
      EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, attribute, value, bytes), CUBLAS_STATUS_SUCCESS) << attribute;
    };
    set(CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a));
    set(CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b));
    set(CUBLASLT_MATMUL_DESC_EPILOGUE, &p.epilogue, sizeof(p.epilogue));
    if (p.bias) set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof(p.bias));
    if (p.bias_type != -1) set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &p.bias_type, sizeof(p.bias_type));
    if (p.aux) set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p.aux, sizeof(p.aux));
    if (p.aux) set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &p.aux_ld, sizeof(p.aux_ld));
    if (p.aux_type != -1) set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &p.aux_type, sizeof(p.aux_type));
    EXPECT_EQ(cublasLtMatrixLayoutCreate(&a, p.ab_type, p.ta ? p.k : p.m, p.ta ? p.m : p.k, p.lda), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasLtMatrixLayoutCreate(&b, p.ab_type, p.tb ? p.n : p.k, p.tb ? p.k : p.n, p.ldb), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasLtMatrixLayoutCreate(&d, p.d_type, p.m, p.n, p.ldd), CUBLAS_STATUS_SUCCESS);
  }
  ~Described() {
    cublasLtMatrixLayoutDestroy(a), cublasLtMatrixLayoutDestroy(b), cublasLtMatrixLayoutDestroy(d);
    cublasLtMatmulDescDestroy(desc);
  }
};

class EmuBlasLt : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cublasLtCreate(&handle), CUBLAS_STATUS_SUCCESS); }
  void TearDown() override { EXPECT_EQ(cublasLtDestroy(handle), CUBLAS_STATUS_SUCCESS); }

  // The heuristic's status; its one algorithm in *algo when it finds it.
  cublasStatus_t heuristic(const LtCall& p, cublasLtMatmulAlgo_t* algo, int* found) {
    const Described described(p);
    cublasLtMatmulPreference_t preference;
    EXPECT_EQ(cublasLtMatmulPreferenceCreate(&preference), CUBLAS_STATUS_SUCCESS);
    const uint64_t workspace = 0;
    EXPECT_EQ(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                   sizeof(workspace)),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                   &p.min_alignment_a, sizeof(p.min_alignment_a)),
              CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t result{};
    *found = -1;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, described.desc, described.a, described.b,
                                                                 described.d, described.d, preference, 1, &result, found);
    EXPECT_EQ(cublasLtMatmulPreferenceDestroy(preference), CUBLAS_STATUS_SUCCESS);
    if (*found == 1) {
      EXPECT_EQ(result.state, CUBLAS_STATUS_SUCCESS);
      EXPECT_EQ(result.workspaceSize, 0u);
      *algo = result.algo;
    }
    return status;
  }
  cublasStatus_t matmul(const LtCall& p, const cublasLtMatmulAlgo_t* algo) {
    const Described described(p);
    return cublasLtMatmul(handle, described.desc, &p.alpha, p.a, described.a, p.b, described.b, &p.beta, p.d,
                          described.d, p.d, described.d, algo, nullptr, 0, nullptr);
  }
  // The heuristic, then the product with its algorithm.
  void run(const LtCall& p) {
    cublasLtMatmulAlgo_t algo;
    int found;
    ASSERT_EQ(heuristic(p, &algo, &found), CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(found, 1);
    ASSERT_EQ(matmul(p, &algo), CUBLAS_STATUS_SUCCESS);
  }

  cublasLtHandle_t handle = nullptr;
};

double gelu(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x))); }
// d/dx of gelu, from its definition by central differences in float64 (h
// = 2^-12: an error of order h^2 gelu''' ~ 1e-7, far below bf16's 2^-8).
double gelu_slope(double x) {
  const double h = std::ldexp(1.0, -12);
  return (gelu(x + h) - gelu(x - h)) / (2 * h);
}

// The layer's shapes (matmul.cu's forward: D = W^T X, m = OC, n = N, k = C).
struct Layer {
  static constexpr int m = 16, n = 6, k = 24;
  std::vector<float> w = to_float(to_bf16(random_floats(size_t(k * m), 11)));  // k x m
  std::vector<float> x = to_float(to_bf16(random_floats(size_t(k * n), 12)));  // k x n
  std::vector<float> bias = to_float(to_bf16(random_floats(m, 13)));
  Device<__nv_bfloat16> dw{w.size()}, dx{x.size()}, dbias{bias.size()}, dd{size_t(m * n)}, daux{size_t(m * n)};
  Layer() { dw.upload(to_bf16(w)), dx.upload(to_bf16(x)), dbias.upload(to_bf16(bias)); }
  LtCall call() { return LtCall{true, false, m, n, k, dw.ptr, k, dx.ptr, k, dd.ptr, m}; }
  Exact pre_activation(int i, int j, bool with_bias) const {
    Exact e = product_at(true, false, k, 1.0, w, k, x, k, i, j);
    if (with_bias) e.value += bias[size_t(i)], e.magnitude += std::fabs(bias[size_t(i)]);
    return e;
  }
};

TEST_F(EmuBlasLt, the_default_epilogue_in_bf16_matches_float64) {
  Layer layer;
  run(layer.call());
  const std::vector<float> d = to_float(layer.dd.download());
  for (int j = 0; j < layer.n; j++)
    for (int i = 0; i < layer.m; i++) expect_bf16(d[size_t(i + j * layer.m)], layer.pre_activation(i, j, false), "D");
}

// "Bias vector length must match matrix D rows ... broadcast to all columns":
// bias[i] is added to row i of D.
TEST_F(EmuBlasLt, the_bias_epilogue_adds_bias_i_to_row_i_of_d) {
  Layer layer;
  LtCall p = layer.call();
  p.epilogue = CUBLASLT_EPILOGUE_BIAS, p.bias = layer.dbias.ptr, p.bias_type = CUDA_R_16BF;
  run(p);
  const std::vector<float> d = to_float(layer.dd.download());
  for (int j = 0; j < layer.n; j++)
    for (int i = 0; i < layer.m; i++) expect_bf16(d[size_t(i + j * layer.m)], layer.pre_activation(i, j, true), "D");
}

// GELU_AUX(_BIAS): the GELU input (after the bias) goes to the aux matrix,
// its GELU to D. GELU's rounding-free error is below 2^-40 of the magnitude
// too (it is 1.13-Lipschitz).
TEST_F(EmuBlasLt, gelu_aux_stores_the_pre_activation_and_d_its_gelu) {
  for (const bool with_bias : {false, true}) {
    Layer layer;
    LtCall p = layer.call();
    p.epilogue = with_bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    if (with_bias) p.bias = layer.dbias.ptr;
    p.aux = layer.daux.ptr, p.aux_ld = layer.m;
    run(p);
    const std::vector<float> d = to_float(layer.dd.download()), aux = to_float(layer.daux.download());
    for (int j = 0; j < layer.n; j++)
      for (int i = 0; i < layer.m; i++) {
        const Exact pre = layer.pre_activation(i, j, with_bias);
        expect_bf16(aux[size_t(i + j * layer.m)], pre, "aux");
        expect_bf16(d[size_t(i + j * layer.m)], {gelu(pre.value), pre.magnitude}, "D");
      }
  }
}

// DGELU: D = (alpha op(A) op(B) + beta C) gelu'(aux), the aux matrix read as the
// forward pass stored it (matmul.cu's backward: D = W dout, m = C, k = OC).
TEST_F(EmuBlasLt, dgelu_multiplies_the_product_by_gelu_slope_at_aux) {
  const int m = 8, n = 5, k = 7;
  const std::vector<float> w = to_float(to_bf16(random_floats(size_t(m * k), 14)));
  const std::vector<float> dout = to_float(to_bf16(random_floats(size_t(k * n), 15)));
  std::vector<float> pre = random_floats(size_t(m * n), 16);
  for (float& x : pre) x *= 3;
  pre = to_float(to_bf16(pre));
  Device<__nv_bfloat16> dw(w.size()), ddout(dout.size()), aux(pre.size()), d(size_t(m * n));
  dw.upload(to_bf16(w)), ddout.upload(to_bf16(dout)), aux.upload(to_bf16(pre));
  LtCall p{false, false, m, n, k, dw.ptr, m, ddout.ptr, k, d.ptr, m};
  p.epilogue = CUBLASLT_EPILOGUE_DGELU, p.aux = aux.ptr, p.aux_ld = m;
  run(p);
  const std::vector<float> got = to_float(d.download());
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      Exact want = product_at(false, false, k, 1.0, w, m, dout, k, i, j);
      const double slope = gelu_slope(pre[size_t(i + j * m)]);
      want.value *= slope, want.magnitude *= std::fabs(slope);
      // plus 1e-6 |D| for the finite-difference slope (its error is near 1e-8)
      EXPECT_NEAR(got[size_t(i + j * m)], want.value,
                  (std::ldexp(1.0, -8) + 1e-6) * std::fabs(want.value) + std::ldexp(want.magnitude, -40));
    }
}

// matmul.cu's weight gradient: fp32 D accumulates (beta 1), B transposed.
TEST_F(EmuBlasLt, fp32_output_accumulates_with_beta_one) {
  const int m = 8, n = 4, k = 6;
  const std::vector<float> a = to_float(to_bf16(random_floats(size_t(m * k), 17)));
  const std::vector<float> b = to_float(to_bf16(random_floats(size_t(n * k), 18)));
  const std::vector<float> old = random_floats(size_t(m * n), 19);
  Device<__nv_bfloat16> da(a.size()), db(b.size());
  Device<float> d(old.size());
  da.upload(to_bf16(a)), db.upload(to_bf16(b)), d.upload(old);
  LtCall p{false, true, m, n, k, da.ptr, m, db.ptr, n, d.ptr, m};
  p.d_type = CUDA_R_32F, p.beta = 1;
  run(p);
  const std::vector<float> got = d.download();
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      Exact want = product_at(false, true, k, 1.0, a, m, b, n, i, j);
      want.value += old[size_t(i + j * m)], want.magnitude += std::fabs(old[size_t(i + j * m)]);
      expect_fp32(got[size_t(i + j * m)], want, "D");
    }
}

TEST_F(EmuBlasLt, beta_zero_does_not_read_c) {
  Layer layer;
  layer.dd.upload(to_bf16(std::vector<float>(layer.dd.size, kNaN)));
  run(layer.call());
  for (float x : to_float(layer.dd.download())) EXPECT_FALSE(std::isnan(x));
}

// Where the reference gives no algorithm, the heuristic finds none:
// CUBLAS_STATUS_NOT_SUPPORTED and no result.
TEST_F(EmuBlasLt, the_heuristic_finds_no_algorithm_where_the_reference_gives_none) {
  Layer layer;
  Device<float> fp32(size_t(layer.m * layer.n));
  struct Case {
    const char* why;
    LtCall call;
  };
  std::vector<Case> cases;
  LtCall p = layer.call();
  p.m = 12, p.ldd = 12, p.epilogue = CUBLASLT_EPILOGUE_GELU_AUX, p.aux = layer.daux.ptr, p.aux_ld = 12;
  cases.push_back({"GELU aux leading dimension not divisible by 8", p});
  p = layer.call(), p.epilogue = CUBLASLT_EPILOGUE_DGELU, p.aux = layer.daux.ptr, p.aux_ld = 8;
  cases.push_back({"aux leading dimension below D's rows", p});
  p = layer.call(), p.epilogue = CUBLASLT_EPILOGUE_GELU_AUX, p.aux = layer.daux.ptr, p.aux_ld = layer.m,
  p.aux_type = CUDA_R_16BF;
  cases.push_back({"aux data type set outside fp8", p});
  p = layer.call(), p.epilogue = CUBLASLT_EPILOGUE_BIAS, p.bias = layer.dbias.ptr, p.bias_type = CUDA_R_32F;
  cases.push_back({"fp32 bias with bf16 D", p});
  p = layer.call(), p.epilogue = CUBLASLT_EPILOGUE_BIAS, p.bias = reinterpret_cast<const char*>(layer.dbias.ptr) + 1;
  cases.push_back({"bias pointer not aligned to its elements", p});
  p = layer.call(), p.min_alignment_a = 1;
  cases.push_back({"MIN_ALIGNMENT_A_BYTES below bf16's 2", p});
  p = layer.call(), p.ab_type = CUDA_R_32F;
  cases.push_back({"fp32 A, B with bf16 D", p});
  p = layer.call(), p.d = fp32.ptr, p.d_type = CUDA_R_16F;
  cases.push_back({"fp16 D", p});
  for (const Case& c : cases) {
    cublasLtMatmulAlgo_t algo;
    int found;
    EXPECT_EQ(heuristic(c.call, &algo, &found), CUBLAS_STATUS_NOT_SUPPORTED) << c.why;
    EXPECT_EQ(found, 0) << c.why;
  }
}

// An algorithm serves the alignments it was chosen for: chosen under the
// default 256 bytes, a bf16 A 2 bytes past an allocation is refused; chosen
// under MIN_ALIGNMENT_A_BYTES = 2 (matmul.cu sets the actual alignment), it runs.
TEST_F(EmuBlasLt, an_algorithm_needs_the_alignment_it_was_chosen_for) {
  Layer layer;
  Device<__nv_bfloat16> shifted(layer.w.size() + 1);
  std::vector<__nv_bfloat16> host = to_bf16(layer.w);
  host.insert(host.begin(), __float2bfloat16(0.0f));
  shifted.upload(host);
  LtCall p = layer.call();
  p.a = shifted.ptr + 1;
  cublasLtMatmulAlgo_t algo;
  int found;
  ASSERT_EQ(heuristic(p, &algo, &found), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(matmul(p, &algo), CUBLAS_STATUS_INVALID_VALUE);
  p.min_alignment_a = 2;
  ASSERT_EQ(heuristic(p, &algo, &found), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(matmul(p, &algo), CUBLAS_STATUS_SUCCESS);
  const std::vector<float> d = to_float(layer.dd.download());
  for (int j = 0; j < layer.n; j++)
    for (int i = 0; i < layer.m; i++) expect_bf16(d[size_t(i + j * layer.m)], layer.pre_activation(i, j, false), "D");
}

// ---- cuSOLVER -------------------------------------------------------------------------------

class EmuSolver : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cusolverDnCreate(&handle), CUSOLVER_STATUS_SUCCESS);
    ASSERT_EQ(cusolverDnSetDeterministicMode(handle, CUSOLVER_DETERMINISTIC_RESULTS), CUSOLVER_STATUS_SUCCESS);
  }
  void TearDown() override { EXPECT_EQ(cusolverDnDestroy(handle), CUSOLVER_STATUS_SUCCESS); }
  cusolverDnHandle_t handle = nullptr;
};

// A = M^T M + n I, symmetric positive definite; with fill UPPER the factor U
// (A = U^T U) replaces A's upper triangle, LOWER likewise L (A = L L^T), and
// the other triangle is left alone (NaN stays NaN). Cholesky's backward
// error: |A - U^T U| <= c n u |U^T| |U| with u = 2^-24; c n = 4 n here.
TEST_F(EmuSolver, potrf_factors_reproduce_a) {
  const int n = 6, lda = n + 1;
  const std::vector<float> mrand = random_floats(size_t(n * n), 20);
  std::vector<double> a(size_t(n * n));
  for (int j = 0; j < n; j++)
    for (int i = 0; i < n; i++) {
      double sum = i == j ? n : 0;
      for (int l = 0; l < n; l++) sum += double(mrand[size_t(l + i * n)]) * mrand[size_t(l + j * n)];
      a[size_t(i + j * n)] = float(sum);
    }
  for (cublasFillMode_t uplo : {CUBLAS_FILL_MODE_UPPER, CUBLAS_FILL_MODE_LOWER}) {
    const bool upper = uplo == CUBLAS_FILL_MODE_UPPER;
    std::vector<float> host(size_t(lda * n), kNaN);
    for (int j = 0; j < n; j++)
      for (int i = 0; i < n; i++)
        if (i == j || (i < j) == upper) host[size_t(i + j * lda)] = float(a[size_t(i + j * n)]);
    Device<float> da(host.size());
    Device<int> info(1);
    da.upload(host);
    int lwork = -1;
    ASSERT_EQ(cusolverDnSpotrf_bufferSize(handle, uplo, n, da.ptr, lda, &lwork), CUSOLVER_STATUS_SUCCESS);
    ASSERT_GE(lwork, 0);
    Device<float> work(size_t(std::max(lwork, 1)));
    ASSERT_EQ(cusolverDnSpotrf(handle, uplo, n, da.ptr, lda, work.ptr, lwork, info.ptr), CUSOLVER_STATUS_SUCCESS);
    EXPECT_EQ(info.download()[0], 0);
    const std::vector<float> got = da.download();
    // U(i, j) for the upper factor, or L^T(i, j) = L(j, i) for the lower: R with A = R^T R.
    auto r = [&](int i, int j) -> double {
      if (i > j) return 0.0;
      return upper ? got[size_t(i + j * lda)] : got[size_t(j + i * lda)];
    };
    for (int j = 0; j < n; j++)
      for (int i = 0; i < n; i++) {
        double sum = 0, magnitude = 0;
        for (int l = 0; l < n; l++) sum += r(l, i) * r(l, j), magnitude += std::fabs(r(l, i) * r(l, j));
        EXPECT_NEAR(sum, a[size_t(i + j * n)], 4 * n * std::ldexp(magnitude, -24)) << i << ", " << j;
        const bool other_triangle = i != j && (i < j) != upper;
        EXPECT_TRUE(!other_triangle || std::isnan(got[size_t(i + j * lda)])) << "the other triangle at " << i << ", " << j;
      }
  }
}

// "If devInfo = i (i > 0), the leading minor of order i is not positive definite."
TEST_F(EmuSolver, potrf_reports_the_first_leading_minor_that_is_not_positive_definite) {
  const std::vector<std::pair<std::vector<float>, int>> cases = {
      {{4, 2, 0, 2, 1, 0, 0, 0, 1}, 2},                       // 4 1 - 2 2 = 0
      {{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1}, 3},  // diag(1, 1, -1, 1)
  };
  for (const auto& [matrix, want] : cases) {
    const int n = want == 2 ? 3 : 4;
    Device<float> a(matrix.size());
    Device<int> info(1);
    a.upload(matrix);
    ASSERT_EQ(cusolverDnSpotrf(handle, CUBLAS_FILL_MODE_UPPER, n, a.ptr, n, nullptr, 0, info.ptr), CUSOLVER_STATUS_SUCCESS);
    EXPECT_EQ(info.download()[0], want);
  }
}

// Householder QR of a 9 x 4 A: R on and above the diagonal, then orgqr's Q
// from the reflectors; Q^T Q = I and Q R = A. Householder QR in fp32 is
// backward stable with errors of order m n u = 36 2^-24 ~ 2e-6: 1e-5 bounds them.
TEST_F(EmuSolver, geqrf_and_orgqr_give_orthonormal_q_with_q_r_equal_to_a) {
  const int m = 9, n = 4, lda = m + 2;
  const std::vector<float> a = random_floats(size_t(lda * n), 21);
  Device<float> da(a.size()), tau(n);
  Device<int> info(2);
  da.upload(a);
  int geqrf_work = -1, orgqr_work = -1;
  ASSERT_EQ(cusolverDnSgeqrf_bufferSize(handle, m, n, da.ptr, lda, &geqrf_work), CUSOLVER_STATUS_SUCCESS);
  ASSERT_EQ(cusolverDnSorgqr_bufferSize(handle, m, n, n, da.ptr, lda, tau.ptr, &orgqr_work), CUSOLVER_STATUS_SUCCESS);
  ASSERT_GE(geqrf_work, n);
  ASSERT_GE(orgqr_work, n);
  Device<float> work(size_t(std::max(geqrf_work, orgqr_work)));
  ASSERT_EQ(cusolverDnSgeqrf(handle, m, n, da.ptr, lda, tau.ptr, work.ptr, int(work.size), info.ptr),
            CUSOLVER_STATUS_SUCCESS);
  const std::vector<float> factored = da.download();
  ASSERT_EQ(cusolverDnSorgqr(handle, m, n, n, da.ptr, lda, tau.ptr, work.ptr, int(work.size), info.ptr + 1),
            CUSOLVER_STATUS_SUCCESS);
  const std::vector<float> q = da.download();
  EXPECT_EQ(info.download(), (std::vector<int>{0, 0}));
  for (int j = 0; j < n; j++)
    for (int i = 0; i < n; i++) {
      double dot = 0;
      for (int l = 0; l < m; l++) dot += double(q[size_t(l + i * lda)]) * q[size_t(l + j * lda)];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-5) << "Q^T Q at " << i << ", " << j;
    }
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double sum = 0;
      for (int l = 0; l <= j; l++) sum += double(q[size_t(i + l * lda)]) * factored[size_t(l + j * lda)];
      EXPECT_NEAR(sum, a[size_t(i + j * lda)], 1e-5) << "Q R at " << i << ", " << j;
    }
}

// The checks the reference lists (INVALID_VALUE), and "if devInfo = -i, the
// i-th parameter is wrong (not counting handle)": geqrf's 7th is Lwork.
TEST_F(EmuSolver, arguments_are_checked_as_documented) {
  Device<float> a(36), tau(6), work(64);
  Device<int> info(1);
  std::vector<float> host(36);
  int lwork;
  EXPECT_EQ(cusolverDnSgeqrf_bufferSize(handle, 6, 4, a.ptr, 5, &lwork), CUSOLVER_STATUS_INVALID_VALUE) << "lda < m";
  EXPECT_EQ(cusolverDnSorgqr_bufferSize(handle, 4, 5, 4, a.ptr, 4, tau.ptr, &lwork), CUSOLVER_STATUS_INVALID_VALUE) << "n > m";
  EXPECT_EQ(cusolverDnSorgqr(handle, 6, 4, 5, a.ptr, 6, tau.ptr, work.ptr, 64, info.ptr), CUSOLVER_STATUS_INVALID_VALUE)
      << "k > n";
  EXPECT_EQ(cusolverDnSpotrf(handle, CUBLAS_FILL_MODE_FULL, 4, a.ptr, 4, nullptr, 0, info.ptr), CUSOLVER_STATUS_INVALID_VALUE);
  EXPECT_EQ(cusolverDnSpotrf(handle, CUBLAS_FILL_MODE_UPPER, -1, a.ptr, 4, nullptr, 0, info.ptr), CUSOLVER_STATUS_INVALID_VALUE);
  EXPECT_EQ(cusolverDnSpotrf(handle, CUBLAS_FILL_MODE_UPPER, 6, host.data(), 6, nullptr, 0, info.ptr),
            CUSOLVER_STATUS_INVALID_VALUE)
      << "A in host memory";
  EXPECT_EQ(cusolverDnSpotrf(nullptr, CUBLAS_FILL_MODE_UPPER, 6, a.ptr, 6, nullptr, 0, info.ptr),
            CUSOLVER_STATUS_NOT_INITIALIZED);
  a.upload(random_floats(36, 22));
  ASSERT_EQ(cusolverDnSgeqrf(handle, 6, 4, a.ptr, 6, tau.ptr, work.ptr, 0, info.ptr), CUSOLVER_STATUS_SUCCESS);
  EXPECT_EQ(info.download()[0], -7);
}

}  // namespace
