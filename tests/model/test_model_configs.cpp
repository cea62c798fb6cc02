// Every shipped config loads, and the paper's configs have the parameter counts
// of the Dion2 paper's Table 1 (304M and 1.01B), counted from the parameter
// table alone: no model is allocated.
#include <gtest/gtest.h>

#include <filesystem>

#include "config/config.h"
#include "model/gpt.h"
#include "model/llmc_checkpoint.h"
#include "test_util.h"

namespace llmdion {
namespace {

int64_t trained_params(const std::string& config_file) {
  const GptShape shape = shape_from_config(load_config(config_file).model);
  return count_trained_params(shape, gpt_layout(shape));
}

TEST(ModelConfigs, paper_configs_have_the_papers_parameter_counts) {
  for (const std::string optimizer : {"adamw", "muon", "dion", "dion2"}) {
    const int64_t small = trained_params(test::kSourceDir + "/configs/paper_300m_" + optimizer + ".yaml");
    const int64_t large = trained_params(test::kSourceDir + "/configs/paper_1b_" + optimizer + ".yaml");
    EXPECT_NEAR(double(small), 304e6, 0.5e6) << optimizer << ": " << small;
    EXPECT_NEAR(double(large), 1.01e9, 0.005e9) << optimizer << ": " << large;
  }
}

TEST(ModelConfigs, presets_give_each_arch_its_block) {
  const GptShape paper = shape_from_config(load_config(test::kSourceDir + "/configs/paper_300m_dion2.yaml").model);
  EXPECT_TRUE(paper.rope && paper.qk_norm && !paper.norm_affine && !paper.bias && !paper.tied_embeddings);
  EXPECT_EQ(paper.mlp, MlpKind::kRelu2);
  EXPECT_EQ(paper.mlp_hidden, 4096);
  const GptShape llama = shape_from_config(load_config(test::kSourceDir + "/configs/llama_300m_muon.yaml").model);
  EXPECT_TRUE(llama.rope && llama.norm_affine && !llama.qk_norm && !llama.bias && !llama.tied_embeddings);
  EXPECT_EQ(llama.mlp, MlpKind::kSwiglu);
  EXPECT_EQ(llama.mlp_hidden, 2816);  // 8/3 * 1024 rounded up to 256
  const GptShape gpt2 = shape_from_config(load_config(test::kSourceDir + "/configs/default.yaml").model);
  EXPECT_TRUE(gpt2.gpt2());
  // An explicit key wins over the preset.
  test::ScratchDir dir;
  test::write_text(dir / "x.yaml", "model:\n  arch: llama\n  mlp: relu2\n  n_head: 4\n  n_kv_head: 1\n");
  const GptShape mixed = shape_from_config(load_config(dir / "x.yaml", {"model.bias=true"}).model);
  EXPECT_EQ(mixed.mlp, MlpKind::kRelu2);
  EXPECT_EQ(mixed.norm, NormKind::kRmsNorm);
  EXPECT_TRUE(mixed.bias);
  EXPECT_EQ(mixed.kv_heads(), 1);
}

TEST(ModelConfigs, llmc_checkpoints_are_refused_for_other_archs_with_a_reason) {
  const GptShape paper = shape_from_config(load_config(test::kSourceDir + "/configs/paper_300m_dion2.yaml").model);
  try {
    check_llmc_compatible(paper, "x.bin");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("llm.c's checkpoint holds GPT-2 only"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("relu2"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_llmc_compatible(shape_from_config(load_config(test::kSourceDir + "/configs/default.yaml").model), "x.bin"));
}

TEST(ModelConfigs, every_shipped_config_loads) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::kSourceDir + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_config(entry.path().string())) << entry.path();
    count++;
  }
  EXPECT_GE(count, 19);
}

}  // namespace
}  // namespace llmdion
