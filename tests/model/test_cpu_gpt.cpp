// The CPU GPT family against independent references: central finite
// differences on the float64 path for GPT-2 and every block option (rmsnorm,
// norms without scale, rope, qk-norm, relu^2, swiglu, grouped-query and
// multi-query attention), and the float32 path against the float64 one.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "core/rng.h"
#include "gradient_check.h"
#include "model/cpu/cpu_gpt.h"
#include "core/safetensors.h"
#include "model/hf_export.h"
#include "test_util.h"

namespace llmdion {
namespace {

GptShape tiny_shape(bool tied, bool bias) {
  GptShape s;
  s.n_layer = 2, s.n_head = 2, s.d_model = 8, s.seq_len = 6, s.vocab_size = 50;
  s.padded_vocab = padded_vocab_size(s.vocab_size);
  s.mlp_hidden = 4 * s.d_model;
  s.tied_embeddings = tied, s.bias = bias;
  return s;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
};

Batch random_batch(const GptShape& s, int64_t B, int64_t T, uint64_t seed) {
  SplitMix64 rng{seed};
  Batch b;
  for (int64_t i = 0; i < B * T; i++) {
    b.inputs.push_back(int32_t(rng.below(s.vocab_size)));
    b.targets.push_back(int32_t(rng.below(s.vocab_size)));
  }
  return b;
}

// GPT-2 init, then every parameter perturbed so that LayerNorm weights, biases
// and the rest all carry distinct, nonzero values (padding rows stay zero).
std::vector<float> test_params(const GptShape& s, const GptLayout& layout, uint64_t seed) {
  std::vector<float> p(layout.num_params);
  gpt_init(s, layout, seed, p);
  SplitMix64 rng{seed + 1};
  for (const ParamTensor& t : layout.tensors) {
    const bool vocab_rows = t.offset == layout.wte || t.role == ParamRole::kHead;
    for (int64_t i = 0; i < t.numel(); i++) {
      if (vocab_rows && i >= int64_t(s.vocab_size) * s.d_model) continue;
      p[t.offset + i] += float((double(rng.next() >> 11) / 9007199254740992.0 - 0.5) * 0.2);
    }
  }
  return p;
}

struct Variant {
  std::string name;
  GptShape shape;
};

// GPT-2 with and without tying and biases, then each block option.
std::vector<Variant> variants() {
  std::vector<Variant> out;
  for (bool tied : {true, false})
    for (bool bias : {true, false})
      out.push_back({std::string(tied ? "gpt2_tied" : "gpt2_untied") + (bias ? "_bias" : "_nobias"), tiny_shape(tied, bias)});
  GptShape paper = tiny_shape(false, false);
  paper.norm = NormKind::kRmsNorm, paper.norm_affine = false, paper.rope = true, paper.qk_norm = true;
  paper.mlp = MlpKind::kRelu2;
  out.push_back({"paper", paper});
  GptShape llama = tiny_shape(false, false);
  llama.d_model = 16, llama.n_head = 4, llama.n_kv_head = 2, llama.mlp_hidden = 24;
  llama.norm = NormKind::kRmsNorm, llama.rope = true, llama.rope_theta = 500, llama.mlp = MlpKind::kSwiglu;
  out.push_back({"llama_gqa", llama});
  GptShape mqa = tiny_shape(true, true);
  mqa.n_kv_head = 1, mqa.norm_affine = false, mqa.qk_norm = true;
  out.push_back({"gpt2_mqa_unscaled_norms_qk_norm", mqa});
  return out;
}

class CpuGptGradients : public ::testing::TestWithParam<Variant> {};

TEST_P(CpuGptGradients, every_tensor_matches_central_differences_in_float64) {
  const GptShape s = GetParam().shape;
  const int64_t B = 2, T = 5;
  cpu::CpuGpt<double> model(s, B, T);
  const std::vector<float> init = test_params(s, model.layout(), 3);
  model.params.assign(init.begin(), init.end());
  const Batch batch = random_batch(s, B, T, 9);
  model.forward(batch.inputs.data(), batch.targets.data());
  model.backward(1.0);
  const std::vector<double> analytic = model.grads;

  const double h = 1e-5;
  SplitMix64 pick{17};
  for (const ParamTensor& t : model.layout().tensors) {
    // Up to 24 entries per tensor, chosen at random (the first and last always).
    std::vector<int64_t> entries = {0, t.numel() - 1};
    for (int k = 0; k < 22 && k < t.numel(); k++) entries.push_back(int64_t(pick.below(uint64_t(t.numel()))));
    double diff2 = 0, ref2 = 0;
    for (int64_t e : entries) {
      double& w = model.params[t.offset + e];
      const double saved = w;
      w = saved + h;
      const double plus = model.forward(batch.inputs.data(), batch.targets.data());
      w = saved - h;
      const double minus = model.forward(batch.inputs.data(), batch.targets.data());
      w = saved;
      const double numeric = (plus - minus) / (2 * h);
      diff2 += (numeric - analytic[t.offset + e]) * (numeric - analytic[t.offset + e]);
      ref2 += numeric * numeric;
    }
    if (ref2 < 1e-24) {  // a gradient that is zero in exact arithmetic (attn.k.bias: softmax ignores it)
      EXPECT_LT(std::sqrt(diff2), 1e-12) << t.name;
      continue;
    }
    EXPECT_LT(std::sqrt(diff2 / ref2), 1e-6) << t.name << ": |fd - analytic| / |fd| over " << entries.size()
                                             << " entries";
  }
  // Padded vocabulary rows never receive gradient.
  for (int64_t i = int64_t(s.vocab_size) * s.d_model; i < int64_t(s.padded_vocab) * s.d_model; i++)
    ASSERT_EQ(analytic[model.layout().wte + i], 0.0) << "wte padding entry " << i;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuGptGradients, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param.name; });

TEST_P(CpuGptGradients, float32_path_matches_float64_path_within_1e_5) {
  GptShape s = GetParam().shape;
  s.n_layer = 3, s.d_model = 32, s.n_head = 4, s.mlp_hidden = 96, s.seq_len = 16, s.vocab_size = 300;
  s.n_kv_head = s.n_kv_head > 0 ? 2 : 0;
  s.padded_vocab = padded_vocab_size(s.vocab_size);
  const int64_t B = 3, T = 16;
  cpu::CpuGpt<float> f32(s, B, T);
  cpu::CpuGpt<double> f64(s, B, T);
  f32.params = test_params(s, f32.layout(), 5);
  f64.params.assign(f32.params.begin(), f32.params.end());
  const Batch batch = random_batch(s, B, T, 2);
  const float loss32 = f32.forward(batch.inputs.data(), batch.targets.data());
  const double loss64 = f64.forward(batch.inputs.data(), batch.targets.data());
  EXPECT_LT(std::fabs(loss32 - loss64) / loss64, 1e-6) << loss32 << " vs " << loss64;
  f32.backward(1.0f);
  f64.backward(1.0);
  test::expect_gradients_match(f32.layout(), f32.grads.data(), f64.grads.data(), 1e-5);
}

// The backward's reports of finished gradients (gpt.h): the head and final
// norm, each block from the last, the embeddings, in that order; at each
// report every gradient at or past `from` already holds its final value, and
// with tied embeddings the head's share of wte is not reported before the end.
TEST_P(CpuGptGradients, reports_each_stretch_of_gradients_once_it_is_final) {
  const GptShape s = GetParam().shape;
  const int64_t B = 2, T = 5;
  cpu::CpuGpt<float> model(s, B, T);
  model.params = test_params(s, model.layout(), 6);
  const Batch batch = random_batch(s, B, T, 3);
  model.forward(batch.inputs.data(), batch.targets.data());
  std::vector<int64_t> reported;
  std::vector<std::vector<float>> snapshots;
  model.backward(1.0f, [&](int64_t from) {
    reported.push_back(from);
    snapshots.push_back(model.grads);
  });
  const std::vector<int64_t>& starts = model.layout().block_starts;
  std::vector<int64_t> expected(starts.rbegin(), starts.rend());
  expected.push_back(0);
  ASSERT_EQ(reported, expected);
  for (size_t r = 0; r < reported.size(); r++)
    for (int64_t i = reported[r]; i < int64_t(model.grads.size()); i++)
      ASSERT_EQ(snapshots[r][size_t(i)], model.grads[size_t(i)]) << "report " << r << " (from " << reported[r]
                                                                   << "): gradient " << i << " changed later";
  // Before the last report the embeddings' gradients are still moving.
  const int64_t wte = model.layout().wte, n = model.layout().tensors[0].numel();
  EXPECT_NE(std::vector<float>(snapshots[reported.size() - 2].begin() + wte, snapshots[reported.size() - 2].begin() + wte + n),
            std::vector<float>(model.grads.begin() + wte, model.grads.begin() + wte + n));
}

// The memory estimate's activation count is what the model allocates, for every block option.
TEST_P(CpuGptGradients, planned_activations_are_what_the_model_holds) {
  const GptShape& s = GetParam().shape;
  for (const auto& [B, T] : {std::pair<int64_t, int64_t>{1, 4}, {3, 6}}) {
    cpu::CpuGpt<float> model(s, B, T);
    EXPECT_EQ(cpu::planned_activation_floats(s, B, T, omp_get_max_threads()), model.activation_floats());
  }
}

// The Hugging Face export (model/hf_export.h) read back by an independent
// float64 implementation of GPT2LMHeadModel / LlamaForCausalLM
// (hf_reference.py): its logits equal ours. Shapes no class holds (the paper's
// GPT, qk-norm) are exported with what did not map named in config.json.
TEST_P(CpuGptGradients, hugging_face_export_reproduces_the_logits) {
  if (test::run_command("/usr/bin/python3 -c 'import torch, numpy'") != 0) GTEST_SKIP() << "torch is not installed";
  const GptShape& s = GetParam().shape;
  const GptLayout layout = gpt_layout(s);
  cpu::CpuGpt<float> model(s, 1, s.seq_len);
  const std::vector<float> params = test_params(s, layout, 11);
  std::copy(params.begin(), params.end(), model.params.begin());
  const Batch batch = random_batch(s, 1, s.seq_len, 12);
  model.forward(batch.inputs.data(), nullptr);
  test::ScratchDir dir;
  const std::vector<std::string> gaps = write_hf_folder(dir / "hf", s, layout, params);
  const std::string config = test::read_text(dir / "hf/config.json");
  if (!gaps.empty()) {
    // Every value of ours went out under some name (what a user converting by hand needs).
    const TensorFile file = read_safetensors(dir / "hf/model.safetensors");
    int64_t exported = 0;
    for (const auto& [name, tensor] : file.tensors) exported += int64_t(tensor.values.size());
    EXPECT_GE(exported, count_trained_params(s, layout)) << config;
    EXPECT_NE(config.find("\"llm_dion_not_mapped\": [\"" + gaps[0]), std::string::npos) << config;
    EXPECT_NE(config.find("\"architectures\": [],"), std::string::npos) << config;
    return;
  }
  std::vector<float> logits;
  for (int64_t t = 0; t < s.seq_len; t++)
    logits.insert(logits.end(), model.outputs() + t * s.padded_vocab, model.outputs() + t * s.padded_vocab + s.vocab_size);
  test::write_text(dir / "tokens.bin", std::string(reinterpret_cast<const char*>(batch.inputs.data()),
                                                   batch.inputs.size() * sizeof(int32_t)));
  test::write_text(dir / "logits.bin",
                   std::string(reinterpret_cast<const char*>(logits.data()), logits.size() * sizeof(float)));
  std::string out;
  EXPECT_EQ(test::run_command("/usr/bin/python3 " + test::kSourceDir + "/tests/model/hf_reference.py " + (dir / "hf") +
                                  " " + (dir / "tokens.bin") + " " + (dir / "logits.bin") + " 1e-4", &out), 0)
      << out << config;
  std::printf("%s", out.c_str());
}

// A block of no Hugging Face class's (learned positions, swiglu, grouped-query
// attention): every tensor still goes out, the gaps named.
TEST(CpuGpt, hugging_face_export_of_a_mixed_block_names_what_does_not_map) {
  GptShape s = tiny_shape(false, true);
  s.mlp = MlpKind::kSwiglu, s.n_kv_head = 1;
  const GptLayout layout = gpt_layout(s);
  test::ScratchDir dir;
  const std::vector<std::string> gaps = write_hf_folder(dir / "hf", s, layout, test_params(s, layout, 3));
  ASSERT_EQ(gaps.size(), 2u);
  const std::string config = test::read_text(dir / "hf/config.json");
  EXPECT_NE(config.find("a non-gelu MLP with learned positions"), std::string::npos) << config;
  EXPECT_NE(config.find("grouped-query attention (GPT-2 has none)"), std::string::npos) << config;
  const TensorFile file = read_safetensors(dir / "hf/model.safetensors");
  for (const char* name : {"model.embed_positions.weight", "model.layers.1.mlp.gate_proj.weight",
                           "model.layers.0.input_layernorm.bias", "model.layers.0.self_attn.k_proj.bias"})
    EXPECT_EQ(file.tensors.count(name), 1u) << name;
}

TEST(CpuGpt, same_inputs_give_bitwise_same_loss_and_gradients) {
  const GptShape s = tiny_shape(false, true);
  cpu::CpuGpt<float> a(s, 2, 6), b(s, 2, 6);
  a.params = b.params = test_params(s, a.layout(), 8);
  const Batch batch = random_batch(s, 2, 6, 4);
  EXPECT_EQ(a.forward(batch.inputs.data(), batch.targets.data()), b.forward(batch.inputs.data(), batch.targets.data()));
  a.backward(1.0f);
  b.backward(1.0f);
  EXPECT_EQ(a.grads, b.grads);
}

TEST(CpuGpt, backward_accumulates_across_micro_batches) {
  const GptShape s = tiny_shape(true, false);
  cpu::CpuGpt<double> model(s, 2, 6);
  const std::vector<float> init = test_params(s, model.layout(), 1);
  model.params.assign(init.begin(), init.end());
  const Batch first = random_batch(s, 2, 6, 10), second = random_batch(s, 2, 6, 11);
  model.forward(first.inputs.data(), first.targets.data());
  model.backward(0.5);
  model.forward(second.inputs.data(), second.targets.data());
  model.backward(0.5);
  const std::vector<double> accumulated = model.grads;
  std::fill(model.grads.begin(), model.grads.end(), 0.0);
  model.forward(first.inputs.data(), first.targets.data());
  model.backward(1.0);
  const std::vector<double> only_first = model.grads;
  std::fill(model.grads.begin(), model.grads.end(), 0.0);
  model.forward(second.inputs.data(), second.targets.data());
  model.backward(1.0);
  for (size_t i = 0; i < accumulated.size(); i++)
    ASSERT_NEAR(accumulated[i], 0.5 * (only_first[i] + model.grads[i]), 1e-12) << "parameter " << i;
}

}  // namespace
}  // namespace llmdion
