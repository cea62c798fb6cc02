// cuda/layernorm.cu against cpu/layernorm.cpp on fresh bf16-exact inputs, for
// rows N in {1, 7, 64, 333} and widths C in {8, 13, 768, 1600} (odd widths take
// the scalar path, the rest 16-byte packs): bf16 outputs within bf16 rounding
// element by element, fp32 statistics and weight gradients within fp32
// rounding, every output poisoned first, gradients accumulated onto nonzero
// values, and the backward bitwise repeatable.
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

const int kRows[] = {1, 7, 64, 333};
const int kWidths[] = {8, 13, 768, 1600};

// fp32 sums of bf16-exact terms, orders differing: ~1e-7 of the largest sum; 1e-5 leaves room.
constexpr double kFp32Elementwise = 1e-5;

std::string name(int N, int C) { return "N=" + std::to_string(N) + " C=" + std::to_string(C); }

void expect_statistics_close(const std::vector<float>& mean, const std::vector<float>& rstd,
                             const std::vector<float>& want_mean, const std::vector<float>& want_rstd,
                             const std::string& what) {
  expect_close(mean, want_mean, kFp32Elementwise, 1e-6, "mean, " + what);
  expect_close(rstd, want_rstd, kFp32Elementwise, 0.0, "rstd, " + what);
}

struct LayerNormCase {
  int N, C;
  std::vector<float> inp, weight, bias;
  LayerNormCase(int N_, int C_, uint64_t seed)
      : N(N_), C(C_), inp(random_bf16_exact(size_t(N) * C, seed, 2.0f)), weight(random_bf16_exact(C, seed + 1)),
        bias(random_bf16_exact(C, seed + 2)) {}
};

// The input starts `offset` elements into its buffer (1: off the 16-byte
// boundary, so a width of whole packs takes the scalar path).
void check_forward(int N, int C, bool affine, int offset) {
  const std::string what = name(N, C) + (affine ? "" : " without weight and bias") + (offset ? " unaligned" : "");
  const LayerNormCase c(N, C, 10);
  std::vector<float> inp(offset, 0.0f);
  inp.insert(inp.end(), c.inp.begin(), c.inp.end());
  std::vector<float> want(c.inp.size()), want_mean(N), want_rstd(N);
  cpu::layernorm_forward<float>(want.data(), want_mean.data(), want_rstd.data(), c.inp.data(),
                                affine ? c.weight.data() : nullptr, affine ? c.bias.data() : nullptr, N, C);

  DeviceArray<bf16> d_inp(to_bf16(inp)), d_weight(to_bf16(c.weight)), d_bias(to_bf16(c.bias)), d_out(want.size());
  DeviceArray<float> d_mean(N), d_rstd(N);
  d_out.poison();
  d_mean.poison();
  d_rstd.poison();
  cuda::layernorm_forward(d_out.ptr, d_mean.ptr, d_rstd.ptr, d_inp.ptr + offset, affine ? d_weight.ptr : nullptr,
                          affine ? d_bias.ptr : nullptr, N, C, 0);
  expect_bf16_output_close(to_float(d_out.download()), want, what);
  expect_statistics_close(d_mean.download(), d_rstd.download(), want_mean, want_rstd, what);
}

TEST(CudaLayerNorm, forward_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (int C : kWidths) check_forward(N, C, true, 0);
}

// No learned scale or shift (null weight and bias); an input off the 16-byte boundary.
TEST(CudaLayerNorm, forward_without_weight_or_bias_or_unaligned_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int C : {13, 768}) {
    check_forward(64, C, false, 0);
    check_forward(64, C, true, 1);
  }
}

// residual_out = bf16(residual + branch) exactly, then the LayerNorm of that rounded value;
// also in place (residual_out == residual).
TEST(CudaLayerNorm, residual_forward_rounds_the_sum_then_normalizes_it) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (int C : kWidths)
      for (bool in_place : {false, true}) {
        if (in_place && N != 64) continue;
        const LayerNormCase c(N, C, 30);
        const std::vector<float> branch = random_bf16_exact(c.inp.size(), 33);
        std::vector<float> sum(c.inp.size());
        for (size_t i = 0; i < sum.size(); i++) sum[i] = c.inp[i] + branch[i];
        const std::vector<float> want_residual = to_float(to_bf16(sum));
        std::vector<float> want(sum.size()), want_mean(N), want_rstd(N);
        cpu::layernorm_forward<float>(want.data(), want_mean.data(), want_rstd.data(), want_residual.data(),
                                      c.weight.data(), c.bias.data(), N, C);

        DeviceArray<bf16> d_residual(to_bf16(c.inp)), d_branch(to_bf16(branch)), d_weight(to_bf16(c.weight)),
            d_bias(to_bf16(c.bias)), d_residual_out(sum.size()), d_out(sum.size());
        DeviceArray<float> d_mean(N), d_rstd(N);
        d_residual_out.poison();
        d_out.poison();
        d_mean.poison();
        d_rstd.poison();
        bf16* residual_out = in_place ? d_residual.ptr : d_residual_out.ptr;
        cuda::residual_layernorm_forward(residual_out, d_out.ptr, d_mean.ptr, d_rstd.ptr, d_residual.ptr,
                                         d_branch.ptr, d_weight.ptr, d_bias.ptr, N, C, 0);
        const std::string what = name(N, C) + (in_place ? " in place" : "");
        expect_bitwise_equal(to_float((in_place ? d_residual : d_residual_out).download()), want_residual,
                             "residual_out, " + what);
        expect_bf16_output_close(to_float(d_out.download()), want, what);
        expect_statistics_close(d_mean.download(), d_rstd.download(), want_mean, want_rstd, what);
      }
}

enum class Affine { kWeightAndBias, kWeightOnly, kNone };

void check_backward(int N, int C, Affine affine) {
  const std::string what = name(N, C) + (affine == Affine::kWeightAndBias ? ""
                                         : affine == Affine::kWeightOnly  ? " without bias"
                                                                          : " without weight");
  const bool has_weight = affine != Affine::kNone, has_bias = affine == Affine::kWeightAndBias;
  const LayerNormCase c(N, C, 40);
  const float* weight = has_weight ? c.weight.data() : nullptr;
  std::vector<float> out(c.inp.size()), mean(N), rstd(N);
  cpu::layernorm_forward<float>(out.data(), mean.data(), rstd.data(), c.inp.data(), weight, nullptr, N, C);
  const std::vector<float> dout = random_bf16_exact(c.inp.size(), 43);
  const std::vector<float> dinp_start = random_bf16_exact(c.inp.size(), 44);
  const std::vector<float> dweight_start = random_bf16_exact(C, 45, 3.0f), dbias_start = random_bf16_exact(C, 46, 3.0f);
  std::vector<float> want_dinp = dinp_start, want_dweight = dweight_start, want_dbias = dbias_start;
  cpu::layernorm_backward<float>(want_dinp.data(), has_weight ? want_dweight.data() : nullptr,
                                 has_bias ? want_dbias.data() : nullptr, dout.data(), c.inp.data(), weight, mean.data(),
                                 rstd.data(), N, C);

  DeviceArray<bf16> d_inp(to_bf16(c.inp)), d_weight(to_bf16(c.weight)), d_dout(to_bf16(dout)), d_dinp(c.inp.size());
  DeviceArray<float> d_mean(mean), d_rstd(rstd), d_dweight(C), d_dbias(C);
  DeviceArray<float> d_scratch(size_t(cuda::layernorm_backward_scratch_floats(N, C)));
  std::vector<float> first_dinp, first_dweight, first_dbias;
  for (int run = 0; run < 2; run++) {
    d_dinp.upload(to_bf16(dinp_start));
    d_dweight.upload(dweight_start);
    d_dbias.upload(dbias_start);
    d_scratch.poison();  // every partial must be written before it is read
    cuda::layernorm_backward(d_dinp.ptr, has_weight ? d_dweight.ptr : nullptr, has_bias ? d_dbias.ptr : nullptr,
                             d_scratch.ptr, d_dout.ptr, d_inp.ptr, has_weight ? d_weight.ptr : nullptr, d_mean.ptr,
                             d_rstd.ptr, N, C, 0);
    const std::vector<float> dinp = to_float(d_dinp.download()), dweight = d_dweight.download(),
                             dbias = d_dbias.download();
    if (run == 1) {
      expect_bitwise_equal(dinp, first_dinp, "dinp, second run, " + what);
      expect_bitwise_equal(dweight, first_dweight, "dweight, second run, " + what);
      expect_bitwise_equal(dbias, first_dbias, "dbias, second run, " + what);
      break;
    }
    expect_bf16_output_close(dinp, want_dinp, "dinp, " + what);
    EXPECT_LT(relative_error(dweight, want_dweight), kFp32Tolerance) << "dweight, " << what;
    expect_close(dweight, want_dweight, kFp32Elementwise, kFp32Elementwise * max_abs(want_dweight), "dweight, " + what);
    EXPECT_LT(relative_error(dbias, want_dbias), kFp32Tolerance) << "dbias, " << what;
    expect_close(dbias, want_dbias, kFp32Elementwise, kFp32Elementwise * max_abs(want_dbias), "dbias, " + what);
    first_dinp = dinp;
    first_dweight = dweight;
    first_dbias = dbias;
  }
}

TEST(CudaLayerNorm, backward_accumulates_like_cpu_and_repeats_exactly) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (int C : kWidths) check_backward(N, C, Affine::kWeightAndBias);
}

// A learned scale without a shift (dbias null), and no learned scale (dweight null: dinp only).
TEST(CudaLayerNorm, backward_without_bias_or_weight_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int C : {13, 768}) {
    check_backward(333, C, Affine::kWeightOnly);
    check_backward(333, C, Affine::kNone);
  }
}

}  // namespace
}  // namespace llmdion::test
