// The cuBLASLt matmuls against the CPU matmul and GELU: forward with and
// without bias (aligned for the epilogue, and shifted off 16 bytes so the bias
// kernel adds it), with the GELU epilogue and its kept pre-activation; the
// input gradient with and without the GELU-derivative epilogue; the fp32
// weight gradient accumulating onto what was there.
#include <gtest/gtest.h>

#include "gpu_test_util.h"
#include "model/cpu/kernels.h"
#include "model/cuda/matmul.h"

namespace llmdion::test {
namespace {

struct Shape {
  int N, C, OC;
};
const Shape kShapes[] = {{1, 8, 8}, {7, 13, 24}, {64, 96, 160}, {333, 64, 40}};

TEST(CudaMatmul, forward_with_and_without_bias_and_gelu_matches_the_cpu) {
  LLMDION_REQUIRE_GPU();
  cuda::Matmul matmul;
  uint64_t seed = 1;
  for (const Shape& s : kShapes)
    for (int bias_shift : {-1, 0, 1})  // no bias, an aligned bias, a bias 2 bytes off alignment
      for (bool gelu : {false, true}) {
        if (gelu && (s.OC % 8 != 0 || bias_shift == 1)) continue;  // the epilogue's conditions
        SCOPED_TRACE(::testing::Message() << "N " << s.N << " C " << s.C << " OC " << s.OC << " bias " << bias_shift
                                          << " gelu " << gelu);
        const std::vector<float> inp = random_bf16_exact(size_t(s.N) * s.C, seed++);
        const std::vector<float> weight = random_bf16_exact(size_t(s.OC) * s.C, seed++, 0.3f);
        const std::vector<float> bias = random_bf16_exact(size_t(s.OC) + 8, seed++);
        std::vector<float> want(size_t(s.N) * s.OC);
        const float* cpu_bias = bias_shift < 0 ? nullptr : bias.data() + bias_shift;
        cpu::matmul_forward(want.data(), inp.data(), weight.data(), cpu_bias, s.N, s.C, s.OC, false);
        DeviceArray<bf16> gpu_inp(to_bf16(inp)), gpu_weight(to_bf16(weight)), gpu_bias(to_bf16(bias));
        DeviceArray<bf16> out(size_t(s.N) * s.OC), pre(size_t(s.N) * s.OC);
        out.poison(), pre.poison();
        matmul.forward(out.ptr, gelu ? pre.ptr : nullptr, gpu_inp.ptr, gpu_weight.ptr,
                       bias_shift < 0 ? nullptr : gpu_bias.ptr + bias_shift, s.N, s.C, s.OC, 0);
        if (!gelu) {
          EXPECT_LT(relative_error(to_float(out.download()), want), kBf16Tolerance);
          continue;
        }
        EXPECT_LT(relative_error(to_float(pre.download()), want), kBf16Tolerance) << "pre-activation";
        // GELU of the pre-activation as the GPU stored it.
        const std::vector<float> stored = to_float(pre.download());
        std::vector<float> activated(stored.size());
        cpu::gelu_forward(activated.data(), stored.data(), int64_t(stored.size()));
        EXPECT_LT(relative_error(to_float(out.download()), activated), kBf16Tolerance) << "gelu";
      }
}

TEST(CudaMatmul, input_gradient_with_and_without_the_gelu_derivative_matches_the_cpu) {
  LLMDION_REQUIRE_GPU();
  cuda::Matmul matmul;
  uint64_t seed = 100;
  for (const Shape& s : kShapes)
    for (bool gelu : {false, true}) {
      if (gelu && s.C % 8 != 0) continue;
      SCOPED_TRACE(::testing::Message() << "N " << s.N << " C " << s.C << " OC " << s.OC << " gelu " << gelu);
      const std::vector<float> dout = random_bf16_exact(size_t(s.N) * s.OC, seed++);
      const std::vector<float> weight = random_bf16_exact(size_t(s.OC) * s.C, seed++, 0.3f);
      const std::vector<float> pre = random_bf16_exact(size_t(s.N) * s.C, seed++, 3.0f);
      std::vector<float> want(size_t(s.N) * s.C), dweight(size_t(s.OC) * s.C);
      cpu::matmul_backward(want.data(), dweight.data(), static_cast<float*>(nullptr), dout.data(),
                           pre.data(), weight.data(), s.N, s.C, s.OC);
      if (gelu) {  // the epilogue scales the fp32 product by gelu'(pre) before rounding, as the CPU does here
        std::vector<float> through(want.size());
        cpu::gelu_backward(through.data(), pre.data(), want.data(), int64_t(want.size()));
        want = through;
      }
      DeviceArray<bf16> gpu_dout(to_bf16(dout)), gpu_weight(to_bf16(weight)), gpu_pre(to_bf16(pre));
      DeviceArray<bf16> dinp(size_t(s.N) * s.C);
      dinp.poison();
      matmul.backward_input(dinp.ptr, gpu_dout.ptr, gpu_weight.ptr, gelu ? gpu_pre.ptr : nullptr, s.N, s.C, s.OC, 0);
      EXPECT_LT(relative_error(to_float(dinp.download()), want), kBf16Tolerance);
    }
}

TEST(CudaMatmul, weight_gradient_accumulates_in_fp32_like_the_cpu) {
  LLMDION_REQUIRE_GPU();
  cuda::Matmul matmul;
  uint64_t seed = 200;
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N " << s.N << " C " << s.C << " OC " << s.OC);
    const std::vector<float> dout = random_bf16_exact(size_t(s.N) * s.OC, seed++);
    const std::vector<float> inp = random_bf16_exact(size_t(s.N) * s.C, seed++);
    const std::vector<float> start = random_bf16_exact(size_t(s.OC) * s.C, seed++);  // gradients so far
    std::vector<float> want = start;  // dW += dout^T inp
    cpu::gemm<float>(true, false, s.OC, s.C, s.N, 1.0f, dout.data(), s.OC, inp.data(), s.C, 1.0f, want.data(), s.C);
    DeviceArray<bf16> gpu_dout(to_bf16(dout)), gpu_inp(to_bf16(inp));
    DeviceArray<float> dweight(start);
    matmul.backward_weight(dweight.ptr, gpu_dout.ptr, gpu_inp.ptr, s.N, s.C, s.OC, 0);
    // Products of bf16-exact values summed in fp32 on both sides: only the order of the sums differs.
    EXPECT_LT(relative_error(dweight.download(), want), kFp32Tolerance);
  }
}

}  // namespace
}  // namespace llmdion::test
