// cuda/vector_math.cu: sum_squares against an fp64 sum (its squares are exact
// in fp64, so only the order of the additions differs), on sizes from empty to
// past one pass of its grid, the same bits on a second run; scale_in_place
// equal to the host's fp32 products.
#include <cmath>
#include <cstring>
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"

namespace llmdion::test {
namespace {

std::vector<float> random_floats(int64_t n, uint64_t seed, float scale) {
  SplitMix64 rng{seed};
  std::vector<float> v(n);
  for (float& x : v) x = float((double(rng.next() >> 11) / 9007199254740992.0 * 2 - 1) * scale);
  return v;
}

TEST(CudaVectorMath, sum_squares_matches_fp64_and_repeats_exactly) {
  LLMDION_REQUIRE_GPU();
  // 1024 blocks of 512 threads cover 524288 values a pass; the last two sizes take several
  // (under a sanitizer, the first of them alone).
  std::vector<int64_t> sizes = {0, 1, 7, 1000, 524288 + 5, 3 << 20};
  if (kSanitized) sizes.pop_back();
  for (int64_t n : sizes) {
    const std::vector<float> x = random_floats(n, 1, 3.0f);
    double want = 0;
    for (float v : x) want += double(v) * v;
    DeviceArray<float> d_x(x);
    DeviceArray<double> d_out(1), d_partials(size_t(cuda::sum_squares_partials(n)));
    double first = 0;
    for (int run = 0; run < 2; run++) {
      d_out.poison();
      d_partials.poison();
      cuda::sum_squares(d_out.ptr, d_partials.ptr, d_x.ptr, n, 0);
      const double got = d_out.download()[0];
      if (run == 1) {
        EXPECT_EQ(std::memcmp(&got, &first, sizeof(got)), 0) << "second run " << got << " vs " << first << ", n=" << n;
        break;
      }
      EXPECT_NEAR(got, want, 1e-12 * want) << "n=" << n;
      first = got;
    }
  }
}

TEST(CudaVectorMath, scale_in_place_equals_host_products) {
  LLMDION_REQUIRE_GPU();
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(1003), int64_t(1 << 20)}) {
    const std::vector<float> x = random_floats(n, 2, 5.0f);
    const float factor = 0.3712f;
    std::vector<float> want(n);
    for (int64_t i = 0; i < n; i++) want[i] = x[i] * factor;
    DeviceArray<float> d_x(x);
    cuda::scale_in_place(d_x.ptr, factor, n, 0);
    expect_bitwise_equal(d_x.download(), want, "n=" + std::to_string(n));
  }
}

}  // namespace
}  // namespace llmdion::test
