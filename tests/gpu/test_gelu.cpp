// cuda/gelu.cu against cpu/gelu.cpp: forward and backward (also in place) within
// bf16 rounding element by element, on sizes that take the scalar path (n % 8
// != 0) and the 16-byte path, every output poisoned first.
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

const int64_t kSizes[] = {1, 7, 8, 333 * 13, 333 * 768, (1 << 20) + 3};

TEST(CudaGelu, forward_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int64_t n : kSizes) {
    const std::vector<float> inp = random_bf16_exact(n, 1, 4.0f);
    std::vector<float> want(n);
    cpu::gelu_forward<float>(want.data(), inp.data(), n);

    DeviceArray<bf16> d_inp(to_bf16(inp)), d_out(n);
    d_out.poison();
    cuda::gelu_forward(d_out.ptr, d_inp.ptr, n, 0);
    expect_bf16_output_close(to_float(d_out.download()), want, "n=" + std::to_string(n));
  }
}

TEST(CudaGelu, backward_matches_cpu_also_in_place) {
  LLMDION_REQUIRE_GPU();
  for (int64_t n : kSizes) {
    const std::vector<float> inp = random_bf16_exact(n, 2, 4.0f), dout = random_bf16_exact(n, 3);
    std::vector<float> want(n);
    cpu::gelu_backward<float>(want.data(), inp.data(), dout.data(), n);

    DeviceArray<bf16> d_inp(to_bf16(inp)), d_dout(to_bf16(dout)), d_dinp(n);
    d_dinp.poison();
    cuda::gelu_backward(d_dinp.ptr, d_inp.ptr, d_dout.ptr, n, 0);
    expect_bf16_output_close(to_float(d_dinp.download()), want, "n=" + std::to_string(n));
    cuda::gelu_backward(d_dout.ptr, d_inp.ptr, d_dout.ptr, n, 0);
    expect_bf16_output_close(to_float(d_dout.download()), want, "in place, n=" + std::to_string(n));
  }
}

}  // namespace
}  // namespace llmdion::test
