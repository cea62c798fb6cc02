// train_gpt with run.device: cuda end to end: 20 AdamW steps beside the CPU
// run (losses within 1e-2), and a run resumed from its checkpoint equal bit
// for bit to the uninterrupted one (the bf16 copy's rounding seed restored).
#include <gtest/gtest.h>

#include <filesystem>

#include "gpu_test_util.h"
#include "train/train_util.h"

namespace llmdion {
namespace {

class CudaTraining : public ::testing::Test {
 protected:
  void SetUp() override { write_synthetic_shards(dir_); }
  test::ScratchDir dir_;
};

TEST_F(CudaTraining, twenty_steps_follow_the_cpu_run_and_resume_bit_for_bit) {
  LLMDION_REQUIRE_GPU();
  std::string out;
  const std::string config = tiny_config(dir_, "cpu");
  // Head size 32: the smallest the flash kernels take.
  const std::string steps = " --set train.steps=20 --set train.ckpt_keep=0 --set model.d_model=64";
  ASSERT_EQ(train(config, steps + " --set run.device=cpu", &out), 0) << out;
  const std::string gpu = " --set run.device=cuda --set run.out_dir=" + (dir_ / "gpu");
  ASSERT_EQ(train(config, steps + gpu, &out), 0) << out;
  EXPECT_NE(out.find("memory: cuda ("), std::string::npos) << out;
  const std::vector<std::string> cpu_rows = deterministic_rows(dir_ / "cpu/loss.csv");
  const std::vector<std::string> gpu_rows = deterministic_rows(dir_ / "gpu/loss.csv");
  ASSERT_EQ(cpu_rows.size(), 21u);
  ASSERT_EQ(gpu_rows.size(), 21u);
  for (size_t row = 1; row < cpu_rows.size(); row++)
    EXPECT_NEAR(column(gpu_rows[row], 3), column(cpu_rows[row], 3), 1e-2) << "train loss, step " << row - 1;
  EXPECT_LT(column(gpu_rows[20], 3), column(gpu_rows[1], 3) - 0.5) << "the GPU run did not learn";

  // Resume from the step-10 checkpoint: steps 10-19 again, bit for bit.
  std::filesystem::remove_all(dir_ / "gpu/checkpoints/step_00000020");
  ASSERT_EQ(train(config, steps + gpu + " --resume", &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(deterministic_rows(dir_ / "gpu/loss.csv"), gpu_rows);
}

}  // namespace
}  // namespace llmdion
