// cuda/precision.cu: stochastic rounding is its stated function of (seed,
// index, value) to the bit, lands on one of the two bf16 neighbours, repeats
// with its seed and changes with another, and is unbiased (each value rounds
// up with probability equal to its distance from the bf16 below, checked to
// six standard deviations); rounding to nearest equals the host conversion;
// widening is exact for every bf16.
#include <cmath>
#include <cstring>
#include <string>

#include "gpu/gpu_test_util.h"

namespace llmdion::test {
namespace {

uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}
uint16_t bits_of(bf16 x) { return __nv_bfloat16_raw(x).x; }
bf16 bf16_from_bits(uint16_t b) {
  __nv_bfloat16_raw raw;
  raw.x = b;
  return bf16(raw);
}
float float_from_bits(uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof(x));
  return x;
}

// Floats over the whole range: random patterns, and the cases that matter
// (zeros, subnormals, exact bf16 values, halfway ties, the largest finite, Inf, NaN).
std::vector<float> assorted_floats(size_t n, uint64_t seed) {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 1e-40f, -1e-40f, float_from_bits(0x00000001),
                          float_from_bits(0x3f808000), float_from_bits(0x3f818000), float_from_bits(0xbf808000),
                          float_from_bits(0x7f7fffff), float_from_bits(0xff7fffff), INFINITY, -INFINITY, NAN};
  SplitMix64 rng{seed};
  while (v.size() < n) {
    const float x = float_from_bits(uint32_t(rng.next()));
    if (!std::isnan(x)) v.push_back(x);
  }
  return v;
}

// The definition: r = the top 16 bits of SplitMix64 seeded with `seed`, stepped index + 1 times.
bf16 stochastic_reference(float x, uint64_t seed, int64_t index) {
  const uint32_t bits = bits_of(x);
  if ((bits & 0x7f800000u) == 0x7f800000u) return float_to_bf16(x);
  SplitMix64 rng{seed + 0x9e3779b97f4a7c15ull * uint64_t(index)};
  const uint32_t r = uint32_t(rng.next() >> 48);
  return bf16_from_bits(uint16_t((bits + r) >> 16));
}

std::vector<bf16> round_stochastic(const std::vector<float>& values, uint64_t seed) {
  DeviceArray<float> d_in(values);
  DeviceArray<bf16> d_out(values.size());
  d_out.poison();
  cuda::round_to_bf16_stochastic(d_out.ptr, d_in.ptr, int64_t(values.size()), seed, 0);
  return d_out.download();
}

TEST(CudaPrecision, stochastic_rounding_is_its_definition_and_lands_on_a_neighbour) {
  LLMDION_REQUIRE_GPU();
  const std::vector<float> values = assorted_floats((1 << 20) + 3, 1);
  const uint64_t seed = 0x1234abcdull;
  const std::vector<bf16> got = round_stochastic(values, seed);
  size_t not_definition = 0, not_neighbour = 0;
  for (size_t i = 0; i < values.size(); i++) {
    const bf16 want = stochastic_reference(values[i], seed, int64_t(i));
    if (std::isnan(values[i])) {
      not_definition += !std::isnan(bf16_to_float(got[i]));
      continue;
    }
    not_definition += bits_of(got[i]) != bits_of(want);
    if (std::isinf(values[i])) continue;
    const uint16_t below = uint16_t(bits_of(values[i]) >> 16);  // toward zero
    const bool exact = (bits_of(values[i]) & 0xffffu) == 0;
    not_neighbour += !(bits_of(got[i]) == below || (!exact && bits_of(got[i]) == uint16_t(below + 1)));
  }
  EXPECT_EQ(not_definition, 0u) << "outputs differing from the hash-of-(seed, index) definition";
  EXPECT_EQ(not_neighbour, 0u) << "outputs not on a bf16 neighbour of their input (exact bf16 values must stay)";
}

TEST(CudaPrecision, stochastic_rounding_repeats_with_its_seed_and_changes_with_another) {
  LLMDION_REQUIRE_GPU();
  const std::vector<float> values = random_bf16_exact(4096, 2);
  std::vector<float> between(values.size());  // a quarter step above each bf16 value
  for (size_t i = 0; i < values.size(); i++) between[i] = float_from_bits(bits_of(values[i]) + 0x4000u);
  const std::vector<bf16> a = round_stochastic(between, 7), b = round_stochastic(between, 7),
                          c = round_stochastic(between, 8);
  size_t same_seed_differs = 0, other_seed_differs = 0;
  for (size_t i = 0; i < a.size(); i++) {
    same_seed_differs += bits_of(a[i]) != bits_of(b[i]);
    other_seed_differs += bits_of(a[i]) != bits_of(c[i]);
  }
  EXPECT_EQ(same_seed_differs, 0u);
  // Each differs with probability 2 * 1/4 * 3/4: about 1536 of 4096.
  EXPECT_GT(other_seed_differs, 1000u);
}

// A value low16 / 2^16 of the way from its bf16 below to the one above rounds up
// that often: 65536 draws (indices) per value, within 6 sigma.
TEST(CudaPrecision, stochastic_rounding_rounds_up_with_probability_equal_to_the_distance) {
  LLMDION_REQUIRE_GPU();
  const int64_t draws = 1 << 16;
  for (uint32_t base : {0x3f800000u, 0xc0600000u, 0x00120000u, 0x7f000000u, 0x2a5e0000u})
    for (uint32_t low16 : {0x0001u, 0x4000u, 0x8000u, 0xc000u, 0xffffu}) {
      const std::vector<float> values(draws, float_from_bits(base | low16));
      const std::vector<bf16> got = round_stochastic(values, base ^ (uint64_t(low16) << 32));
      int64_t up = 0;
      for (bf16 g : got) up += bits_of(g) == uint16_t((base >> 16) + 1);
      const double p = low16 / 65536.0, expected = p * draws, sigma = std::sqrt(draws * p * (1 - p));
      EXPECT_LE(std::fabs(up - expected), 6 * sigma + 1) << std::hex << "bits " << (base | low16) << std::dec
                                                           << ": rounded up " << up << " times of " << draws
                                                           << ", expected " << expected;
    }
}

// Over 4096 seeds, the mean of each rounded value approaches the value itself.
TEST(CudaPrecision, stochastic_rounding_is_unbiased_over_seeds) {
  LLMDION_REQUIRE_GPU();
  const int seeds = 4096;
  std::vector<float> values(256);
  SplitMix64 rng{3};
  for (float& x : values) x = float((double(rng.next() >> 11) / 9007199254740992.0 * 2 - 1) * 100);
  std::vector<double> mean(values.size(), 0.0);
  DeviceArray<float> d_in(values);
  DeviceArray<bf16> d_out(values.size());
  for (int s = 0; s < seeds; s++) {
    cuda::round_to_bf16_stochastic(d_out.ptr, d_in.ptr, int64_t(values.size()), uint64_t(s) * 7919 + 11, 0);
    const std::vector<bf16> got = d_out.download();
    for (size_t i = 0; i < values.size(); i++) mean[i] += double(bf16_to_float(got[i])) / seeds;
  }
  for (size_t i = 0; i < values.size(); i++) {
    const uint32_t bits = bits_of(values[i]);
    const double below = float_from_bits(bits & 0xffff0000u), above = float_from_bits((bits & 0xffff0000u) + 0x10000u);
    const double p = (double(values[i]) - below) / (above - below);
    const double sigma = std::fabs(above - below) * std::sqrt(p * (1 - p) / seeds);
    EXPECT_LE(std::fabs(mean[i] - values[i]), 6 * sigma + 1e-12 * std::fabs(values[i]))
        << "value " << values[i] << ": mean of the rounded copies " << mean[i];
  }
}

TEST(CudaPrecision, rounding_to_nearest_equals_the_host_conversion) {
  LLMDION_REQUIRE_GPU();
  const std::vector<float> values = assorted_floats((1 << 20) + 3, 4);
  DeviceArray<float> d_in(values);
  DeviceArray<bf16> d_out(values.size());
  d_out.poison();
  cuda::round_to_bf16_nearest(d_out.ptr, d_in.ptr, int64_t(values.size()), 0);
  const std::vector<bf16> got = d_out.download();
  size_t differ = 0;
  for (size_t i = 0; i < values.size(); i++)
    differ += std::isnan(values[i]) ? !std::isnan(bf16_to_float(got[i]))
                                    : bits_of(got[i]) != bits_of(float_to_bf16(values[i]));
  EXPECT_EQ(differ, 0u);
}

TEST(CudaPrecision, widening_is_exact_for_every_bf16) {
  LLMDION_REQUIRE_GPU();
  std::vector<bf16> all(65536);
  for (uint32_t b = 0; b < 65536; b++) all[b] = bf16_from_bits(uint16_t(b));
  DeviceArray<bf16> d_in(all);
  DeviceArray<float> d_out(all.size());
  d_out.poison();
  cuda::widen_to_float(d_out.ptr, d_in.ptr, int64_t(all.size()), 0);
  const std::vector<float> got = d_out.download();
  size_t differ = 0;
  for (uint32_t b = 0; b < 65536; b++) {
    const bool nan = ((b & 0x7f80u) == 0x7f80u) && (b & 0x7fu);
    differ += nan ? !std::isnan(got[b]) : bits_of(got[b]) != (b << 16);
  }
  EXPECT_EQ(differ, 0u);
}

}  // namespace
}  // namespace llmdion::test
