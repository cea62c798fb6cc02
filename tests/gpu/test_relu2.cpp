// cuda/relu2.cu against cpu/relu2.cpp, forward and backward (also in place), on
// sizes that take the scalar path (n % 8 != 0) and the 16-byte path, every
// output poisoned first. On bf16-exact inputs x^2 and 2 x dout are exact in
// fp32, so the GPU's bf16 results are the CPU's rounded to nearest, to the bit.
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

const int64_t kSizes[] = {1, 7, 8, 333 * 13, 333 * 768, (1 << 20) + 3};

TEST(CudaRelu2, forward_is_the_cpu_result_rounded) {
  LLMDION_REQUIRE_GPU();
  for (int64_t n : kSizes) {
    const std::vector<float> inp = random_bf16_exact(n, 1, 4.0f);
    std::vector<float> want(n);
    cpu::relu2_forward<float>(want.data(), inp.data(), n);

    DeviceArray<bf16> d_inp(to_bf16(inp)), d_out(n);
    d_out.poison();
    cuda::relu2_forward(d_out.ptr, d_inp.ptr, n, 0);
    expect_bitwise_equal(to_float(d_out.download()), to_float(to_bf16(want)), "n=" + std::to_string(n));
  }
}

TEST(CudaRelu2, backward_is_the_cpu_result_rounded_also_in_place) {
  LLMDION_REQUIRE_GPU();
  for (int64_t n : kSizes) {
    const std::vector<float> inp = random_bf16_exact(n, 2, 4.0f), dout = random_bf16_exact(n, 3);
    std::vector<float> want(n);
    cpu::relu2_backward<float>(want.data(), inp.data(), dout.data(), n);
    const std::vector<float> want_rounded = to_float(to_bf16(want));

    DeviceArray<bf16> d_inp(to_bf16(inp)), d_dout(to_bf16(dout)), d_dinp(n);
    d_dinp.poison();
    cuda::relu2_backward(d_dinp.ptr, d_inp.ptr, d_dout.ptr, n, 0);
    expect_bitwise_equal(to_float(d_dinp.download()), want_rounded, "n=" + std::to_string(n));
    cuda::relu2_backward(d_dout.ptr, d_inp.ptr, d_dout.ptr, n, 0);
    expect_bitwise_equal(to_float(d_dout.download()), want_rounded, "in place, n=" + std::to_string(n));
  }
}

}  // namespace
}  // namespace llmdion::test
