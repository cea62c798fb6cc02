// cuda/column_sums.cu against cpu/column_sums.cpp: bias gradients added onto
// nonzero sums within fp32 rounding, for row counts below, at and past one
// 256-row chunk and widths odd (scalar path) and of whole 16-byte packs, the
// scratch poisoned first; the same bits on a second run.
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

TEST(CudaColumnSums, add_onto_sums_like_cpu_and_repeat_exactly) {
  LLMDION_REQUIRE_GPU();
  for (int N : {1, 7, 64, 256, 333, 1000})
    for (int width : {8, 13, 768, 1600, 2304}) {
      const std::string what = "N=" + std::to_string(N) + " width=" + std::to_string(width);
      const std::vector<float> x = random_bf16_exact(size_t(N) * width, 1);
      const std::vector<float> start = random_bf16_exact(width, 2, 3.0f);
      std::vector<float> want = start;
      cpu::add_column_sums<float>(want.data(), x.data(), N, width);

      DeviceArray<bf16> d_x(to_bf16(x));
      DeviceArray<float> d_sums(width), d_scratch(size_t(cuda::column_sums_scratch_floats(N, width)));
      std::vector<float> first;
      for (int run = 0; run < 2; run++) {
        d_sums.upload(start);
        d_scratch.poison();
        cuda::add_column_sums(d_sums.ptr, d_scratch.ptr, d_x.ptr, N, width, 0);
        const std::vector<float> sums = d_sums.download();
        if (run == 1) {
          expect_bitwise_equal(sums, first, "second run, " + what);
          break;
        }
        EXPECT_LT(relative_error(sums, want), kFp32Tolerance) << what;
        expect_close(sums, want, 1e-5, 1e-5 * max_abs(want), what);
        first = sums;
      }
    }
}

}  // namespace
}  // namespace llmdion::test
