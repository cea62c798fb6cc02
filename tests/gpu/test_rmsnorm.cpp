// cuda/rmsnorm.cu against cpu/rmsnorm.cpp on fresh bf16-exact inputs, for rows
// N in {1, 7, 333} (333: past one 256-row chunk of the weight sums) and widths
// C in {8, 13, 768} (13 takes the scalar path, the rest 16-byte packs): bf16
// outputs within bf16 rounding element by element, fp32 rstd and weight
// gradients within fp32 rounding, every output poisoned first, gradients
// accumulated onto nonzero values, the backward bitwise repeatable; and the
// per-head qk-norm in place on the q and k heads of qkv rows (qkv_heads.h).
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "gpu/qkv_heads.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

const int kRows[] = {1, 7, 333};
const int kWidths[] = {8, 13, 768};

// fp32 sums of bf16-exact terms, orders differing: ~1e-7 of the largest sum; 1e-5 leaves room.
constexpr double kFp32Elementwise = 1e-5;

std::string name(int N, int C) { return "N=" + std::to_string(N) + " C=" + std::to_string(C); }

void expect_rstd_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  expect_close(got, want, kFp32Elementwise, 0.0, "rstd, " + what);
}

// The input starts `offset` elements into its buffer (1: off the 16-byte
// boundary, so a width of whole packs takes the scalar path).
void check_forward(int N, int C, bool scaled, int offset) {
  const std::string what = name(N, C) + (scaled ? "" : " without weight") + (offset ? " unaligned" : "");
  const std::vector<float> x = random_bf16_exact(size_t(N) * C, 10, 2.0f), weight = random_bf16_exact(C, 11);
  std::vector<float> inp(offset, 0.0f);
  inp.insert(inp.end(), x.begin(), x.end());
  std::vector<float> want(x.size()), want_rstd(N);
  cpu::rmsnorm_forward<float>(want.data(), want_rstd.data(), x.data(), scaled ? weight.data() : nullptr, N, C);

  DeviceArray<bf16> d_inp(to_bf16(inp)), d_weight(to_bf16(weight)), d_out(x.size());
  DeviceArray<float> d_rstd(N);
  d_out.poison();
  d_rstd.poison();
  cuda::rmsnorm_forward(d_out.ptr, d_rstd.ptr, d_inp.ptr + offset, scaled ? d_weight.ptr : nullptr, N, C, 0);
  expect_bf16_output_close(to_float(d_out.download()), want, what);
  expect_rstd_close(d_rstd.download(), want_rstd, what);
}

TEST(CudaRmsNorm, forward_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (int C : kWidths) check_forward(N, C, true, 0);
}

// No learned scale (null weight); an input off the 16-byte boundary.
TEST(CudaRmsNorm, forward_without_weight_or_unaligned_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int C : {13, 768}) {
    check_forward(333, C, false, 0);
    check_forward(333, C, true, 1);
  }
}

// residual_out = bf16(residual + branch) exactly, then the RMSNorm of that rounded value;
// also in place (residual_out == residual).
TEST(CudaRmsNorm, residual_forward_rounds_the_sum_then_normalizes_it) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (int C : kWidths)
      for (bool in_place : {false, true}) {
        const std::vector<float> residual = random_bf16_exact(size_t(N) * C, 30, 2.0f);
        const std::vector<float> branch = random_bf16_exact(residual.size(), 31), weight = random_bf16_exact(C, 32);
        std::vector<float> sum(residual.size());
        for (size_t i = 0; i < sum.size(); i++) sum[i] = residual[i] + branch[i];
        const std::vector<float> want_residual = to_float(to_bf16(sum));
        std::vector<float> want(sum.size()), want_rstd(N);
        cpu::rmsnorm_forward<float>(want.data(), want_rstd.data(), want_residual.data(), weight.data(), N, C);

        DeviceArray<bf16> d_residual(to_bf16(residual)), d_branch(to_bf16(branch)), d_weight(to_bf16(weight)),
            d_residual_out(sum.size()), d_out(sum.size());
        DeviceArray<float> d_rstd(N);
        d_residual_out.poison();
        d_out.poison();
        d_rstd.poison();
        bf16* residual_out = in_place ? d_residual.ptr : d_residual_out.ptr;
        cuda::residual_rmsnorm_forward(residual_out, d_out.ptr, d_rstd.ptr, d_residual.ptr, d_branch.ptr,
                                       d_weight.ptr, N, C, 0);
        const std::string what = name(N, C) + (in_place ? " in place" : "");
        expect_bitwise_equal(to_float((in_place ? d_residual : d_residual_out).download()), want_residual,
                             "residual_out, " + what);
        expect_bf16_output_close(to_float(d_out.download()), want, what);
        expect_rstd_close(d_rstd.download(), want_rstd, what);
      }
}

// kLearned: weight and its gradient; kFrozen: a weight that is not learned (dweight null); kNone: neither.
enum class Scale { kLearned, kFrozen, kNone };

void check_backward(int N, int C, Scale scale) {
  const std::string what = name(N, C) + (scale == Scale::kLearned  ? ""
                                         : scale == Scale::kFrozen ? " without dweight"
                                                                   : " without weight");
  const bool has_weight = scale != Scale::kNone, learned = scale == Scale::kLearned;
  const std::vector<float> inp = random_bf16_exact(size_t(N) * C, 40, 2.0f), weight = random_bf16_exact(C, 41);
  std::vector<float> out(inp.size()), rstd(N);
  cpu::rmsnorm_forward<float>(out.data(), rstd.data(), inp.data(), has_weight ? weight.data() : nullptr, N, C);
  const std::vector<float> dout = random_bf16_exact(inp.size(), 43);
  const std::vector<float> dinp_start = random_bf16_exact(inp.size(), 44);
  const std::vector<float> dweight_start = random_bf16_exact(C, 45, 3.0f);
  std::vector<float> want_dinp = dinp_start, want_dweight = dweight_start;
  cpu::rmsnorm_backward<float>(want_dinp.data(), learned ? want_dweight.data() : nullptr, dout.data(), inp.data(),
                               has_weight ? weight.data() : nullptr, rstd.data(), N, C);

  DeviceArray<bf16> d_inp(to_bf16(inp)), d_weight(to_bf16(weight)), d_dout(to_bf16(dout)), d_dinp(inp.size());
  DeviceArray<float> d_rstd(rstd), d_dweight(C);
  DeviceArray<float> d_scratch(size_t(cuda::rmsnorm_backward_scratch_floats(N, C)));
  std::vector<float> first_dinp, first_dweight;
  for (int run = 0; run < 2; run++) {
    d_dinp.upload(to_bf16(dinp_start));
    d_dweight.upload(dweight_start);
    d_scratch.poison();  // every partial must be written before it is read
    cuda::rmsnorm_backward(d_dinp.ptr, learned ? d_dweight.ptr : nullptr, d_scratch.ptr, d_dout.ptr, d_inp.ptr,
                           has_weight ? d_weight.ptr : nullptr, d_rstd.ptr, N, C, 0);
    const std::vector<float> dinp = to_float(d_dinp.download()), dweight = d_dweight.download();
    if (run == 1) {
      expect_bitwise_equal(dinp, first_dinp, "dinp, second run, " + what);
      expect_bitwise_equal(dweight, first_dweight, "dweight, second run, " + what);
      break;
    }
    expect_bf16_output_close(dinp, want_dinp, "dinp, " + what);
    if (learned) {
      EXPECT_LT(relative_error(dweight, want_dweight), kFp32Tolerance) << "dweight, " << what;
      expect_close(dweight, want_dweight, kFp32Elementwise, kFp32Elementwise * max_abs(want_dweight),
                   "dweight, " + what);
    } else {
      expect_bitwise_equal(dweight, dweight_start, "dweight untouched, " + what);
    }
    first_dinp = dinp;
    first_dweight = dweight;
  }
}

TEST(CudaRmsNorm, backward_accumulates_like_cpu_and_repeats_exactly) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (int C : kWidths) check_backward(N, C, Scale::kLearned);
}

// A weight that is not learned (dweight null), and no weight at all: dinp only.
TEST(CudaRmsNorm, backward_with_frozen_or_no_weight_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int C : {13, 768}) {
    check_backward(333, C, Scale::kFrozen);
    check_backward(333, C, Scale::kNone);
  }
}

// qkv rows of random values, bf16-exact.
std::vector<float> random_rows(int N, const QkvHeads& layout, uint64_t seed) {
  return random_bf16_exact(size_t(N) * layout.stride, seed, 2.0f);
}

TEST(CudaHeadRmsNorm, forward_normalizes_each_head_in_place_like_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (const QkvHeads& layout : kQkvHeads) {
      const std::string what = "N=" + std::to_string(N) + " " + layout.name();
      const std::vector<float> x = random_rows(N, layout, 50);
      std::vector<float> want = x, want_rstd(size_t(N) * layout.heads);
      cpu::head_rmsnorm_forward<float>(want.data(), want_rstd.data(), N, layout.heads, layout.hs, layout.stride);

      DeviceArray<bf16> d_x(to_bf16(x));
      DeviceArray<float> d_rstd(want_rstd.size());
      d_rstd.poison();
      cuda::head_rmsnorm_forward(d_x.ptr, d_rstd.ptr, N, layout.heads, layout.hs, layout.stride, 0);
      expect_heads_close(to_float(d_x.download()), want, x, layout, what);
      expect_rstd_close(d_rstd.download(), want_rstd, what);
    }
}

// d, the gradient of y, becomes the gradient of x in place; y is the forward's bf16 output.
TEST(CudaHeadRmsNorm, backward_in_place_matches_cpu_and_repeats_exactly) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (const QkvHeads& layout : kQkvHeads) {
      const std::string what = "N=" + std::to_string(N) + " " + layout.name();
      std::vector<float> y = random_rows(N, layout, 60), rstd(size_t(N) * layout.heads);
      cpu::head_rmsnorm_forward<float>(y.data(), rstd.data(), N, layout.heads, layout.hs, layout.stride);
      y = to_float(to_bf16(y));
      const std::vector<float> d = random_rows(N, layout, 61);
      std::vector<float> want = d;
      cpu::head_rmsnorm_backward<float>(want.data(), y.data(), rstd.data(), N, layout.heads, layout.hs,
                                        layout.stride);

      DeviceArray<bf16> d_y(to_bf16(y)), d_d(to_bf16(d));
      DeviceArray<float> d_rstd(rstd);
      cuda::head_rmsnorm_backward(d_d.ptr, d_y.ptr, d_rstd.ptr, N, layout.heads, layout.hs, layout.stride, 0);
      const std::vector<float> got = to_float(d_d.download());
      expect_heads_close(got, want, d, layout, what);
      d_d.upload(to_bf16(d));
      cuda::head_rmsnorm_backward(d_d.ptr, d_y.ptr, d_rstd.ptr, N, layout.heads, layout.hs, layout.stride, 0);
      expect_bitwise_equal(to_float(d_d.download()), got, "second run, " + what);
    }
}

}  // namespace
}  // namespace llmdion::test
