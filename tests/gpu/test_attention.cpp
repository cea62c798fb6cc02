// cuda/attention.cu (flash) and cuda/attention_reference.cu (cuBLAS) against
// cpu/attention.cpp on fresh bf16-exact inputs, over shapes (B, T, NH, NKV, hs)
// with one token, lengths that leave partial 64-row tiles, whole tiles,
// grouped-query and multi-query heads and every head size: outputs and each
// of dq, dk, dv within bf16 rounding (norm-wise), the flash log-sum-exp within
// fp32 rounding of one computed in fp64, the reference's probabilities within
// fp32 rounding; every output poisoned first (NaN), so an element left
// unwritten fails. Then the flash kernels against the reference at GPT-2's
// length, their results the same bits on a second run, and the head sizes
// they are not built for refused. With RoPE tables: the same bits as
// rope_rotate around the kernels without tables, qkv left as it is, and within
// bf16 rounding of the CPU's fp32 RoPE around its attention.
#include <omp.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

struct AttentionShape {
  int B, T, NH, NKV, hs;
  float qk_scale;  // q and k uniform in [-qk_scale, qk_scale): larger peaks the softmax
};

const std::vector<AttentionShape> kShapes =
    kSanitized ? std::vector<AttentionShape>{
                     // under a sanitizer, a seventh of the work and each path still: no GPT-2 heads
                     {1, 1, 1, 1, 64, 1.0f},     // one token
                     {2, 7, 3, 3, 32, 1.0f},     // one partial tile
                     {1, 67, 4, 2, 64, 2.0f},    // a whole tile and 3 rows; groups of 2
                     {1, 130, 2, 1, 128, 2.0f},  // multi-query, 2 rows past two tiles
                     {3, 33, 6, 3, 64, 2.0f},    // three sequences of half a tile
                     {1, 64, 2, 2, 128, 1.0f},   // exactly one tile
                     {1, 100, 8, 2, 32, 3.0f},   // groups of 4, a peaked softmax
                 }
               : std::vector<AttentionShape>{
                     {1, 1, 1, 1, 64, 1.0f},     // one token
                     {2, 7, 3, 3, 32, 1.0f},     // one partial tile
                     {1, 67, 4, 2, 64, 2.0f},    // a whole tile and 3 rows; groups of 2
                     {2, 130, 2, 1, 128, 2.0f},  // multi-query, 2 rows past two tiles
                     {1, 256, 12, 12, 64, 1.0f}, // GPT-2's heads, four whole tiles
                     {3, 33, 6, 3, 64, 2.0f},    // three sequences of half a tile
                     {1, 64, 2, 2, 128, 1.0f},   // exactly one tile
                     {2, 100, 8, 2, 32, 3.0f},   // groups of 4
                     {1, 129, 4, 1, 64, 3.0f},   // multi-query, 1 row past two tiles, a peaked softmax
                 };

std::string name(const AttentionShape& s) {
  return "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " NH=" + std::to_string(s.NH) +
         " NKV=" + std::to_string(s.NKV) + " hs=" + std::to_string(s.hs);
}

// qkv rows with q and k times qk_scale, rounded back to bf16.
std::vector<float> random_qkv(const AttentionShape& s, uint64_t seed) {
  const int64_t N = int64_t(s.B) * s.T, W = int64_t(s.NH + 2 * s.NKV) * s.hs;
  std::vector<float> qkv = random_bf16_exact(size_t(N * W), seed);
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < (s.NH + s.NKV) * s.hs; c++)
      qkv[n * W + c] = bf16_to_float(float_to_bf16(qkv[n * W + c] * s.qk_scale));
  return qkv;
}

// The RoPE tables of a shape's T and hs, as the model makes them.
struct RopeTables {
  std::vector<float> cos, sin;
  explicit RopeTables(const AttentionShape& s) : cos(size_t(s.T) * (s.hs / 2)), sin(cos.size()) {
    cpu::rope_tables<float>(cos.data(), sin.data(), s.T, s.hs, 10000.0);
  }
};

// Inputs and the CPU's fp32 results for one shape; with `rope`, those of RoPE
// on q and k, attention, and RoPE back on dq and dk.
struct AttentionCase {
  AttentionShape s;
  int64_t N, W, C;
  std::vector<float> qkv, dout;
  std::vector<float> out, probs, dqkv;  // CPU
  AttentionCase(const AttentionShape& shape, uint64_t seed, bool rope = false)
      : s(shape), N(int64_t(s.B) * s.T), W(int64_t(s.NH + 2 * s.NKV) * s.hs), C(int64_t(s.NH) * s.hs),
        qkv(random_qkv(s, seed)), dout(random_bf16_exact(size_t(N * C), seed + 1)), out(N * C),
        probs(size_t(s.B) * s.NH * s.T * s.T), dqkv(N * W) {
    const RopeTables tables(s);
    const int64_t heads = s.NH + s.NKV;
    std::vector<float> turned = qkv;
    if (rope)
      cpu::rope_rotate<float>(turned.data(), tables.cos.data(), tables.sin.data(), N, s.T, heads, s.hs, W, false);
    cpu::attention_forward<float>(out.data(), probs.data(), turned.data(), s.B, s.T, s.NH, s.NKV, s.hs);
    std::vector<float> scratch(size_t(omp_get_max_threads()) * s.T * s.T);
    cpu::attention_backward<float>(dqkv.data(), scratch.data(), dout.data(), turned.data(), probs.data(), s.B, s.T,
                                   s.NH, s.NKV, s.hs);
    if (rope) cpu::rope_rotate<float>(dqkv.data(), tables.cos.data(), tables.sin.data(), N, s.T, heads, s.hs, W, true);
  }

  // lse[b, h, i] = log sum_{j <= i} exp(s q_i . k_j), in fp64.
  std::vector<float> log_sum_exp() const {
    std::vector<float> lse(size_t(s.B) * s.NH * s.T);
    const double scale = 1.0 / std::sqrt(double(s.hs));
    std::vector<double> scores(s.T);
    for (int b = 0; b < s.B; b++)
      for (int h = 0; h < s.NH; h++) {
        const int kv = h / (s.NH / s.NKV);
        for (int i = 0; i < s.T; i++) {
          double max = -INFINITY;
          for (int j = 0; j <= i; j++) {
            double dot = 0;
            for (int d = 0; d < s.hs; d++)
              dot += double(qkv[(int64_t(b) * s.T + i) * W + h * s.hs + d]) *
                     qkv[(int64_t(b) * s.T + j) * W + (s.NH + kv) * s.hs + d];
            scores[j] = scale * dot;
            max = std::max(max, scores[j]);
          }
          double sum = 0;
          for (int j = 0; j <= i; j++) sum += std::exp(scores[j] - max);
          lse[(size_t(b) * s.NH + h) * s.T + i] = float(max + std::log(sum));
        }
      }
    return lse;
  }
};

// Columns [first, first + width) of every row: the q, k or v part of a dqkv.
std::vector<float> columns(const std::vector<float>& rows, int64_t N, int64_t W, int64_t first, int64_t width) {
  std::vector<float> part;
  part.reserve(N * width);
  for (int64_t n = 0; n < N; n++) part.insert(part.end(), rows.begin() + n * W + first, rows.begin() + n * W + first + width);
  return part;
}

// dq, dk and dv each within `tolerance`, so a failure says which. A part is
// judged against at least 1e-3 of the whole dqkv's norm: with one key (T = 1)
// dq and dk are exactly zero on the CPU but hold one rounding of dP - D on the GPU.
void expect_dqkv_close(const std::vector<float>& got, const std::vector<float>& want, const AttentionShape& s,
                       double tolerance, const std::string& what) {
  const int64_t N = int64_t(s.B) * s.T, W = int64_t(s.NH + 2 * s.NKV) * s.hs;
  const int64_t q = int64_t(s.NH) * s.hs, kv = int64_t(s.NKV) * s.hs;
  double whole = 0;
  for (float x : want) whole += double(x) * x;
  const double min_norm = 1e-3 * std::sqrt(whole);
  EXPECT_LT(relative_error(columns(got, N, W, 0, q), columns(want, N, W, 0, q), min_norm), tolerance) << "dq, " << what;
  EXPECT_LT(relative_error(columns(got, N, W, q, kv), columns(want, N, W, q, kv), min_norm), tolerance)
      << "dk, " << what;
  EXPECT_LT(relative_error(columns(got, N, W, q + kv, kv), columns(want, N, W, q + kv, kv), min_norm), tolerance)
      << "dv, " << what;
}

struct CublasHandle {
  cublasHandle_t handle = nullptr;
  CublasHandle() {
    CUBLAS_CHECK(cublasCreate(&handle));
    CUBLAS_CHECK(cublasSetStream(handle, 0));
  }
  ~CublasHandle() { cublasDestroy(handle); }
};

struct FlashResult {
  std::vector<float> out, lse, dqkv;
  std::vector<float> qkv;  // the input array after the run
};

// Rotary positions: none, the tables given to the flash kernels, or
// rope_rotate on q and k before them and on dq and dk after (the unfused path).
enum class Rope { kNone, kInside, kApart };

// The flash forward, then its backward from the forward's own out and lse; outputs and scratch poisoned first.
FlashResult run_flash(const std::vector<float>& qkv, const std::vector<float>& dout, const AttentionShape& s,
                      Rope rope = Rope::kNone) {
  const int N = s.B * s.T, heads = s.NH + s.NKV, W = (s.NH + 2 * s.NKV) * s.hs;
  const RopeTables tables(s);
  DeviceArray<bf16> d_qkv(to_bf16(qkv)), d_dout(to_bf16(dout)), d_out(dout.size()), d_dqkv(qkv.size());
  DeviceArray<float> d_lse(size_t(s.B) * s.NH * s.T),
      d_scratch(cuda::attention_backward_scratch_floats(s.B, s.T, s.NH, s.NKV, s.hs));
  DeviceArray<float> d_cos(tables.cos), d_sin(tables.sin);
  const float* rope_cos = rope == Rope::kInside ? d_cos.ptr : nullptr;
  const float* rope_sin = rope == Rope::kInside ? d_sin.ptr : nullptr;
  d_out.poison();
  d_lse.poison();
  d_dqkv.poison();
  d_scratch.poison();
  if (rope == Rope::kApart) cuda::rope_rotate(d_qkv.ptr, d_cos.ptr, d_sin.ptr, N, s.T, heads, s.hs, W, false, 0);
  cuda::attention_forward(d_out.ptr, d_lse.ptr, d_qkv.ptr, rope_cos, rope_sin, s.B, s.T, s.NH, s.NKV, s.hs, 0);
  cuda::attention_backward(d_dqkv.ptr, d_scratch.ptr, d_dout.ptr, d_out.ptr, d_qkv.ptr, rope_cos, rope_sin, d_lse.ptr,
                           s.B, s.T, s.NH, s.NKV, s.hs, 0);
  if (rope == Rope::kApart) cuda::rope_rotate(d_dqkv.ptr, d_cos.ptr, d_sin.ptr, N, s.T, heads, s.hs, W, true, 0);
  return {to_float(d_out.download()), d_lse.download(), to_float(d_dqkv.download()), to_float(d_qkv.download())};
}

struct ReferenceResult {
  std::vector<float> out, probs, dqkv;
};

// With `rope`: rope_rotate on q and k before, and on dq and dk after.
ReferenceResult run_reference(const std::vector<float>& qkv, const std::vector<float>& dout, const AttentionShape& s,
                              bool rope = false) {
  const int N = s.B * s.T, heads = s.NH + s.NKV, W = (s.NH + 2 * s.NKV) * s.hs;
  const RopeTables tables(s);
  DeviceArray<float> d_cos(tables.cos), d_sin(tables.sin);
  CublasHandle cublas;
  DeviceArray<bf16> d_qkv(to_bf16(qkv)), d_dout(to_bf16(dout)), d_out(dout.size()), d_dqkv(qkv.size());
  DeviceArray<float> d_probs(size_t(s.B) * s.NH * s.T * s.T),
      d_scratch(cuda::attention_reference_scratch_floats(s.B, s.T, s.NH, s.NKV, s.hs));
  d_out.poison();
  d_probs.poison();
  d_dqkv.poison();
  d_scratch.poison();
  if (rope) cuda::rope_rotate(d_qkv.ptr, d_cos.ptr, d_sin.ptr, N, s.T, heads, s.hs, W, false, 0);
  cuda::attention_reference_forward(d_out.ptr, d_probs.ptr, d_scratch.ptr, d_qkv.ptr, s.B, s.T, s.NH, s.NKV, s.hs,
                                    cublas.handle, 0);
  cuda::attention_reference_backward(d_dqkv.ptr, d_scratch.ptr, d_dout.ptr, d_qkv.ptr, d_probs.ptr, s.B, s.T, s.NH,
                                     s.NKV, s.hs, cublas.handle, 0);
  if (rope) cuda::rope_rotate(d_dqkv.ptr, d_cos.ptr, d_sin.ptr, N, s.T, heads, s.hs, W, true, 0);
  return {to_float(d_out.download()), d_probs.download(), to_float(d_dqkv.download())};
}

// fp32 scores of bf16-exact products, exp2 and log2 within a few ulp: ~1e-6
// observed; a key wrongly masked or let in moves lse by ~1/T or more.
constexpr double kLseTolerance = 1e-4;

TEST(CudaAttention, flash_forward_matches_cpu_and_keeps_the_log_sum_exp) {
  LLMDION_REQUIRE_GPU();
  for (const AttentionShape& s : kShapes) {
    const AttentionCase c(s, 100 + s.T);
    const FlashResult got = run_flash(c.qkv, c.dout, s);
    EXPECT_LT(relative_error(got.out, c.out), kBf16Tolerance) << "out, " << name(s);
    expect_close(got.lse, c.log_sum_exp(), 0.0, kLseTolerance, "lse, " + name(s));
  }
}

TEST(CudaAttention, flash_backward_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (const AttentionShape& s : kShapes) {
    const AttentionCase c(s, 200 + s.T);
    expect_dqkv_close(run_flash(c.qkv, c.dout, s).dqkv, c.dqkv, s, kBf16Tolerance, name(s));
  }
}

// fp32 math from the same bf16 inputs: outputs within bf16 rounding (~2e-3),
// probabilities within fp32 rounding, 0 above the diagonal.
TEST(CudaAttention, reference_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (const AttentionShape& s : kShapes) {
    const AttentionCase c(s, 300 + s.T);
    const ReferenceResult got = run_reference(c.qkv, c.dout, s);
    EXPECT_LT(relative_error(got.out, c.out), kBf16Tolerance) << "out, " << name(s);
    EXPECT_LT(relative_error(got.probs, c.probs), kFp32Tolerance) << "probs, " << name(s);
    expect_close(got.probs, c.probs, 1e-4, 1e-7, "probs, " + name(s));
    expect_dqkv_close(got.dqkv, c.dqkv, s, kBf16Tolerance, name(s));
  }
}

// GPT-2 124M's attention (T = 1024, 12 heads of 64) and a grouped-query one
// with 128-wide heads and a length off the tiles: flash within bf16 rounding
// of the fp32 reference, on the GPU alone; and with RoPE inside against the
// reference between rope_rotate's turns, every angle of a long sequence. (On
// the host execution layer, a quarter of the length and fewer heads: still
// many tiles, each kind of group, and a length off the tiles; under a
// sanitizer, shorter again.)
TEST(CudaAttention, flash_matches_reference_at_gpt2_length) {
  LLMDION_REQUIRE_GPU();
  const std::vector<AttentionShape> shapes =
      kSanitized ? std::vector<AttentionShape>{{1, 192, 2, 2, 64, 2.0f}, {1, 130, 2, 1, 128, 2.0f},
                                               {1, 160, 4, 2, 32, 2.0f}}
      : kEmulated ? std::vector<AttentionShape>{{1, 256, 2, 2, 64, 2.0f}, {1, 250, 4, 1, 128, 2.0f},
                                                {1, 256, 4, 2, 32, 2.0f}}
                  : std::vector<AttentionShape>{{4, 1024, 12, 12, 64, 2.0f}, {2, 1000, 8, 2, 128, 2.0f},
                                                {2, 1024, 16, 4, 32, 2.0f}};
  for (const AttentionShape& s : shapes) {
    const std::vector<float> qkv = random_qkv(s, 400 + s.hs);
    const std::vector<float> dout = random_bf16_exact(size_t(s.B) * s.T * s.NH * s.hs, 401 + s.hs);
    for (bool rope : {false, true}) {
      const std::string what = name(s) + (rope ? " rope" : "");
      const FlashResult flash = run_flash(qkv, dout, s, rope ? Rope::kInside : Rope::kNone);
      const ReferenceResult reference = run_reference(qkv, dout, s, rope);
      EXPECT_LT(relative_error(flash.out, reference.out), kBf16Tolerance) << "out, " << what;
      expect_dqkv_close(flash.dqkv, reference.dqkv, s, kBf16Tolerance, what);
    }
  }
}

// RoPE inside the kernels turns each Q and K tile with rope_rotate's rounding
// (rope_turn.cuh) and turns dq, dk back after the same bf16 rounding of the
// kernels' products: the unfused path's bits exactly, and qkv untouched.
TEST(CudaAttention, rope_inside_equals_rope_rotate_around_the_kernels_bit_for_bit) {
  LLMDION_REQUIRE_GPU();
  for (const AttentionShape& s : kShapes) {
    const std::vector<float> qkv = random_qkv(s, 600 + s.T);
    const std::vector<float> dout = random_bf16_exact(size_t(s.B) * s.T * s.NH * s.hs, 601 + s.T);
    const FlashResult inside = run_flash(qkv, dout, s, Rope::kInside), apart = run_flash(qkv, dout, s, Rope::kApart);
    expect_bitwise_equal(inside.out, apart.out, "out, " + name(s));
    expect_bitwise_equal(inside.lse, apart.lse, "lse, " + name(s));
    expect_bitwise_equal(inside.dqkv, apart.dqkv, "dqkv, " + name(s));
    expect_bitwise_equal(inside.qkv, qkv, "qkv after the kernels, " + name(s));
  }
}

// Against fp32 RoPE around the CPU's attention: within bf16 rounding, which
// here includes the rounding of the turned q and k (a sharply peaked softmax,
// q and k far beyond these scales, would amplify that one past 1e-2).
TEST(CudaAttention, rope_inside_matches_cpu_rope_around_attention) {
  LLMDION_REQUIRE_GPU();
  for (const AttentionShape& s : kShapes) {
    const AttentionCase c(s, 700 + s.T, true);
    const FlashResult got = run_flash(c.qkv, c.dout, s, Rope::kInside);
    EXPECT_LT(relative_error(got.out, c.out), kBf16Tolerance) << "out, " << name(s);
    expect_dqkv_close(got.dqkv, c.dqkv, s, kBf16Tolerance, name(s));
  }
}

// The tables' contract: both or neither, 16-byte aligned.
TEST(CudaAttention, refuses_half_a_pair_of_rope_tables_and_unaligned_ones) {
  LLMDION_REQUIRE_GPU();
  const AttentionShape s{1, 8, 2, 2, 64, 1.0f};
  DeviceArray<bf16> d_qkv(size_t(s.T) * 6 * s.hs), d_out(size_t(s.T) * 2 * s.hs);
  DeviceArray<float> d_lse(size_t(2) * s.T), d_table(size_t(s.T) * s.hs / 2 + 4);
  EXPECT_THROW(cuda::attention_forward(d_out.ptr, d_lse.ptr, d_qkv.ptr, d_table.ptr, nullptr, s.B, s.T, s.NH, s.NKV,
                                       s.hs, 0),
               std::invalid_argument);
  EXPECT_THROW(cuda::attention_forward(d_out.ptr, d_lse.ptr, d_qkv.ptr, d_table.ptr + 1, d_table.ptr, s.B, s.T, s.NH,
                                       s.NKV, s.hs, 0),
               std::invalid_argument);
}

// No atomics, one summation order: out, lse and dqkv the same bits every run.
TEST(CudaAttention, flash_is_bitwise_repeatable) {
  LLMDION_REQUIRE_GPU();
  const AttentionShape s = kSanitized ? AttentionShape{1, 150, 4, 2, 64, 2.0f} : AttentionShape{2, 300, 8, 2, 64, 2.0f};
  const std::vector<float> qkv = random_qkv(s, 500);
  const std::vector<float> dout = random_bf16_exact(size_t(s.B) * s.T * s.NH * s.hs, 501);
  const FlashResult first = run_flash(qkv, dout, s, Rope::kInside), second = run_flash(qkv, dout, s, Rope::kInside);
  expect_bitwise_equal(second.out, first.out, "out");
  expect_bitwise_equal(second.lse, first.lse, "lse");
  expect_bitwise_equal(second.dqkv, first.dqkv, "dqkv");
}

TEST(CudaAttention, refuses_head_sizes_it_is_not_built_for_and_uneven_groups) {
  LLMDION_REQUIRE_GPU();
  for (int hs : {16, 48, 96, 256}) {
    try {
      cuda::attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8, 2, 2, hs, 0);
      ADD_FAILURE() << "head size " << hs << " was accepted by the forward";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("head size " + std::to_string(hs)), std::string::npos) << e.what();
    }
    EXPECT_THROW(cuda::attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8,
                                          2, 2, hs, 0),
                 std::invalid_argument)
        << "head size " << hs;
  }
  EXPECT_THROW(cuda::attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8, 6, 4, 64, 0),
               std::invalid_argument);
  EXPECT_THROW(cuda::attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8, 6,
                                        4, 64, 0),
               std::invalid_argument);
}

}  // namespace
}  // namespace llmdion::test
