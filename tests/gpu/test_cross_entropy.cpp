// cuda/cross_entropy.cu against cpu/cross_entropy.cpp: the fused classifier's
// losses within fp32 rounding, its dlogits within bf16 rounding element by
// element over the first V columns and exactly 0 over the padding, whose
// logits (NaN here) are never read; the logits untouched without dlogits; the
// same bits on a second run. mean_of against an fp64 mean.
#include <cmath>
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

struct ClassifierShape {
  int N, V, Vp;
};

// Odd V and Vp (scalar path), V = Vp, and GPT-2's 50257 padded to 50304 (16-byte packs,
// the last valid column alone in its pack); under a sanitizer GPT-2's rows only 3 times.
const std::vector<ClassifierShape> kShapes =
    kSanitized ? std::vector<ClassifierShape>{{1, 37, 37}, {7, 37, 41}, {5, 64, 64}, {33, 1031, 1032}, {3, 50257, 50304}}
               : std::vector<ClassifierShape>{{1, 37, 37}, {7, 37, 41}, {5, 64, 64}, {33, 1031, 1032}, {3, 50257, 50304},
                                              {64, 50257, 50304}};

std::string name(const ClassifierShape& s) {
  return "N=" + std::to_string(s.N) + " V=" + std::to_string(s.V) + " Vp=" + std::to_string(s.Vp);
}

uint16_t bits_of(bf16 x) { return __nv_bfloat16_raw(x).x; }

struct ClassifierCase {
  ClassifierShape s;
  std::vector<float> logits;  // padding columns NaN
  std::vector<int32_t> targets;
  float dloss;
  explicit ClassifierCase(const ClassifierShape& shape)
      : s(shape), logits(random_bf16_exact(size_t(s.N) * s.Vp, 1, 4.0f)) {
    for (int n = 0; n < s.N; n++)
      for (int i = s.V; i < s.Vp; i++) logits[size_t(n) * s.Vp + i] = NAN;
    SplitMix64 rng{2};
    for (int n = 0; n < s.N; n++) targets.push_back(int32_t(rng.below(s.V)));
    targets.front() = s.V - 1;  // the edges of the valid columns
    targets.back() = 0;
    dloss = 1.0f / float(s.N);
  }
};

TEST(CudaCrossEntropy, losses_match_cpu_and_leave_the_logits_alone) {
  LLMDION_REQUIRE_GPU();
  for (const ClassifierShape& s : kShapes) {
    const ClassifierCase c(s);
    std::vector<float> probs = c.logits, want(s.N);
    cpu::softmax_cross_entropy_forward<float>(want.data(), probs.data(), c.targets.data(), s.N, s.V, s.Vp);

    const std::vector<bf16> logits = to_bf16(c.logits);
    DeviceArray<bf16> d_logits(logits);
    DeviceArray<int32_t> d_targets(c.targets);
    DeviceArray<float> d_losses(s.N);
    d_losses.poison();
    cuda::fused_classifier(d_logits.ptr, d_losses.ptr, d_targets.ptr, c.dloss, s.N, s.V, s.Vp, false, 0);
    const std::vector<float> losses = d_losses.download();
    EXPECT_LT(relative_error(losses, want), kFp32Tolerance) << name(s);
    expect_close(losses, want, 1e-5, 1e-6, "losses, " + name(s));
    const std::vector<bf16> after = d_logits.download();
    size_t changed = 0;
    for (size_t i = 0; i < after.size(); i++) changed += bits_of(after[i]) != bits_of(logits[i]);
    EXPECT_EQ(changed, 0u) << "logits changed without write_dlogits, " << name(s);
  }
}

TEST(CudaCrossEntropy, dlogits_match_cpu_with_zero_padding_and_repeat_exactly) {
  LLMDION_REQUIRE_GPU();
  for (const ClassifierShape& s : kShapes) {
    const ClassifierCase c(s);
    std::vector<float> dlogits = c.logits, want_losses(s.N);
    cpu::softmax_cross_entropy_forward<float>(want_losses.data(), dlogits.data(), c.targets.data(), s.N, s.V, s.Vp);
    cpu::softmax_cross_entropy_backward<float>(dlogits.data(), c.targets.data(), c.dloss, s.N, s.V, s.Vp);
    std::vector<float> want;  // the first V columns of each row
    for (int n = 0; n < s.N; n++)
      want.insert(want.end(), dlogits.begin() + size_t(n) * s.Vp, dlogits.begin() + size_t(n) * s.Vp + s.V);

    DeviceArray<bf16> d_logits(c.logits.size());
    DeviceArray<int32_t> d_targets(c.targets);
    DeviceArray<float> d_losses(s.N);
    std::vector<bf16> first_dlogits;
    std::vector<float> first_losses;
    for (int run = 0; run < 2; run++) {
      d_logits.upload(to_bf16(c.logits));
      d_losses.poison();
      cuda::fused_classifier(d_logits.ptr, d_losses.ptr, d_targets.ptr, c.dloss, s.N, s.V, s.Vp, true, 0);
      const std::vector<bf16> got_rows = d_logits.download();
      const std::vector<float> losses = d_losses.download();
      if (run == 1) {
        expect_bitwise_equal(losses, first_losses, "losses, second run, " + name(s));
        expect_bitwise_equal(to_float(got_rows), to_float(first_dlogits), "dlogits, second run, " + name(s));
        break;
      }
      expect_close(losses, want_losses, 1e-5, 1e-6, "losses, " + name(s));
      std::vector<float> got;
      size_t nonzero_padding = 0;
      for (int n = 0; n < s.N; n++)
        for (int i = 0; i < s.Vp; i++) {
          const bf16 g = got_rows[size_t(n) * s.Vp + i];
          if (i < s.V) got.push_back(bf16_to_float(g));
          else nonzero_padding += bits_of(g) != 0;
        }
      EXPECT_EQ(nonzero_padding, 0u) << "padding gradients not exactly +0, " << name(s);
      EXPECT_LT(relative_error(got, want), kBf16Tolerance) << name(s);
      // Each value within bf16 rounding of its own size, the smallest probabilities included.
      expect_close(got, want, 1.0 / 128, 1e-12, "dlogits, " + name(s));
      first_dlogits = got_rows;
      first_losses = losses;
    }
  }
}

TEST(CudaCrossEntropy, mean_of_matches_an_fp64_mean) {
  LLMDION_REQUIRE_GPU();
  for (int n : {1, 7, 1000, 1024, 65539}) {
    std::vector<float> values = random_bf16_exact(n, 3, 5.0f);
    double sum = 0;
    for (float& v : values) sum += (v += 5.0f);  // losses are positive
    DeviceArray<float> d_values(values), d_out(1);
    d_out.poison();
    cuda::mean_of(d_out.ptr, d_values.ptr, n, 0);
    const float got = d_out.download()[0];
    EXPECT_NEAR(got, sum / n, 1e-6 * sum / n) << "n=" << n;
  }
}

}  // namespace
}  // namespace llmdion::test
