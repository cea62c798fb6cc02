// AdamW on the GPU against the CPU AdamW: several groups and slices, changing
// learning-rate scales, ten steps; weights and both moments at fp32 tolerance.
#include <gtest/gtest.h>

#include "gpu_test_util.h"
#include "optim/adamw.h"

namespace llmdion {
namespace {

TEST(CudaAdamW, ten_steps_match_the_cpu_adamw) {
  LLMDION_REQUIRE_GPU();
  const int64_t n = 3001;  // odd: the last block is partial
  const std::vector<AdamWGroup> groups = {
      {"a", {{"x", 0, 1000}, {"y", 1000, 777}}, 1e-2, 0.9, 0.95, 1e-8, 0.1},
      {"b", {{"z", 1777, 1224}}, 3e-3, 0.8, 0.999, 1e-6, 0.0}};
  AdamW cpu(groups, Device::kCpu), gpu(groups, Device::kCuda);
  std::vector<float> cpu_params = test::random_bf16_exact(n, 1);
  test::DeviceArray<float> gpu_params(cpu_params), gpu_grads(static_cast<size_t>(n));
  const std::vector<double> lr_scale = {1.0, 0.5, 0.25, 1.0, 0.75, 1.0, 0.1, 0.9, 1.0, 0.3};
  for (int t = 1; t <= 10; t++) {
    const std::vector<float> grads = test::random_bf16_exact(n, 100 + t, 0.1f);
    gpu_grads.upload(grads);
    cpu.step(cpu_params, grads, lr_scale[t - 1], t);
    gpu.step({gpu_params.ptr, size_t(n)}, {gpu_grads.ptr, size_t(n)}, lr_scale[t - 1], t);
  }
  EXPECT_LT(test::relative_error(gpu_params.download(), cpu_params), test::kFp32Tolerance);
  const std::vector<OptimizerState> cpu_state = cpu.state(), gpu_state = gpu.state();
  ASSERT_EQ(cpu_state.size(), gpu_state.size());
  for (size_t s = 0; s < cpu_state.size(); s++) {
    std::vector<float> got(gpu_state[s].data.size());
    copy_to_host(Device::kCuda, gpu_state[s].data.data(), got);
    const std::vector<float> want(cpu_state[s].data.begin(), cpu_state[s].data.end());
    EXPECT_LT(test::relative_error(got, want), test::kFp32Tolerance) << cpu_state[s].name;
  }
}

}  // namespace
}  // namespace llmdion
