// train_gpt with run.device: cuda end to end, for GPT-2 with AdamW, the
// paper's block with Dion2 and LLaMA's with Muon: 20 steps beside the CPU run
// (losses within 1e-2), and a run resumed from its checkpoint equal bit for
// bit to the uninterrupted one (the bf16 copy's rounding seed restored).
#include <gtest/gtest.h>

#include <cstdio>
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

// 20 steps of `options` on the CPU and on the GPU: train losses within 1e-2,
// the GPU run learning; then the GPU run resumed from its step-10 checkpoint
// repeats steps 10-19 bit for bit. (On the host execution layer 8 steps,
// resumed from step 4: the same checks at a fifth of the cost.)
void follows_the_cpu_run_and_resumes_bit_for_bit(const test::ScratchDir& dir, const std::string& name,
                                                 const std::string& options) {
  const int steps = test::kEmulated ? 8 : 20;
  const double learned = test::kEmulated ? 0.1 : 0.5;
  std::string out;
  const std::string config = tiny_config(dir, name);
  // Head size 32: the smallest the flash kernels take.
  const std::string run = " --set train.steps=" + std::to_string(steps) + " --set train.ckpt_every=" +
                          std::to_string(steps / 2) + " --set train.eval_every=" + std::to_string(steps / 2) +
                          " --set train.ckpt_keep=0 --set model.d_model=64 " + options;
  ASSERT_EQ(train(config, run + " --set run.device=cpu", &out), 0) << out;
  const std::string gpu = " --set run.device=cuda --set run.out_dir=" + (dir / (name + "_gpu"));
  ASSERT_EQ(train(config, run + gpu, &out), 0) << out;
  EXPECT_NE(out.find("memory: cuda ("), std::string::npos) << out;
  const std::vector<std::string> cpu_rows = deterministic_rows(dir / (name + "/loss.csv"));
  const std::vector<std::string> gpu_rows = deterministic_rows(dir / (name + "_gpu/loss.csv"));
  ASSERT_EQ(cpu_rows.size(), size_t(steps + 1));
  ASSERT_EQ(gpu_rows.size(), size_t(steps + 1));
  for (size_t row = 1; row < cpu_rows.size(); row++)
    EXPECT_NEAR(column(gpu_rows[row], 3), column(cpu_rows[row], 3), 1e-2) << name << ": train loss, step " << row - 1;
  EXPECT_LT(column(gpu_rows[steps], 3), column(gpu_rows[1], 3) - learned) << name << ": the GPU run did not learn";

  char last[32];
  std::snprintf(last, sizeof(last), "step_%08d", steps);
  std::filesystem::remove_all(dir / (name + "_gpu/checkpoints/" + last));
  std::filesystem::remove(dir / (name + "_gpu/done.yaml"));  // an interrupted run: not finished
  ASSERT_EQ(train(config, run + gpu + " --resume", &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(deterministic_rows(dir / (name + "_gpu/loss.csv")), gpu_rows) << name;
}

TEST_F(CudaTraining, gpt2_with_adamw) {
  LLMDION_REQUIRE_GPU();
  follows_the_cpu_run_and_resumes_bit_for_bit(dir_, "adamw", "");
}

// Random selection: the same slices on both devices, whatever the rounding.
TEST_F(CudaTraining, paper_block_with_dion2) {
  LLMDION_REQUIRE_GPU();
  follows_the_cpu_run_and_resumes_bit_for_bit(
      dir_, "dion2", "--set model.arch=paper --set optim.matrix=dion2 --set optim.select=random --set optim.lr=0.02");
}

TEST_F(CudaTraining, llama_block_with_muon) {
  LLMDION_REQUIRE_GPU();
  follows_the_cpu_run_and_resumes_bit_for_bit(
      dir_, "muon", "--set model.arch=llama --set model.n_kv_head=1 --set optim.matrix=muon --set optim.lr=0.02");
}

}  // namespace
}  // namespace llmdion
