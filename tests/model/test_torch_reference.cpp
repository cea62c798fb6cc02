// The CPU GPT family against PyTorch (float64, tests/model/gpt_torch_reference.py):
// logits, loss and every parameter's gradient, norm-wise relative error < 1e-5,
// for GPT-2 (tied with biases, untied without), the paper GPT and LLaMA with GQA.
// Where torch is installed the reference is regenerated from this test's own
// weights and batch; elsewhere the stored file under tests/model/reference/ is used.
// LLMDION_STORE_REFERENCE=1 ./test_model --gtest_filter='*Torch*' rewrites the stored files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "gradient_check.h"
#include "model/cpu/cpu_gpt.h"
#include "test_util.h"

namespace llmdion {
namespace {

struct Reference {
  GptShape shape;
  int64_t B = 0, T = 0;
  std::vector<float> params;
  std::vector<int32_t> inputs, targets;
  std::vector<double> logits, grads;
  double loss = 0;
};

std::string case_bytes(const GptShape& s, int64_t B, int64_t T, const std::vector<float>& params,
                       const std::vector<int32_t>& inputs, const std::vector<int32_t>& targets) {
  const int32_t flags = (s.norm == NormKind::kRmsNorm ? 1 : 0) | (s.norm_affine ? 2 : 0) | (s.rope ? 4 : 0) |
                       (s.qk_norm ? 8 : 0) | (s.mlp == MlpKind::kRelu2 ? 16 : 0) | (s.mlp == MlpKind::kSwiglu ? 32 : 0);
  const int32_t header[16] = {20241123,     2,          s.n_layer,         s.n_head, s.d_model, s.seq_len,
                              s.vocab_size, s.padded_vocab, s.mlp_hidden,  s.tied_embeddings, s.bias, int32_t(B),
                              int32_t(T),   s.kv_heads(), flags,           int32_t(s.rope_theta)};
  std::string bytes(reinterpret_cast<const char*>(header), sizeof(header));
  bytes.append(reinterpret_cast<const char*>(params.data()), params.size() * 4);
  bytes.append(reinterpret_cast<const char*>(inputs.data()), inputs.size() * 4);
  bytes.append(reinterpret_cast<const char*>(targets.data()), targets.size() * 4);
  return bytes;
}

Reference parse_reference(const std::string& bytes) {
  Reference r;
  int32_t h[16];
  std::memcpy(h, bytes.data(), sizeof(h));
  r.shape.n_layer = h[2], r.shape.n_head = h[3], r.shape.d_model = h[4], r.shape.seq_len = h[5];
  r.shape.vocab_size = h[6], r.shape.padded_vocab = h[7], r.shape.mlp_hidden = h[8];
  r.shape.tied_embeddings = h[9], r.shape.bias = h[10];
  r.B = h[11], r.T = h[12];
  r.shape.n_kv_head = h[13], r.shape.rope_theta = h[15];
  r.shape.norm = h[14] & 1 ? NormKind::kRmsNorm : NormKind::kLayerNorm;
  r.shape.norm_affine = h[14] & 2, r.shape.rope = h[14] & 4, r.shape.qk_norm = h[14] & 8;
  r.shape.mlp = h[14] & 16 ? MlpKind::kRelu2 : h[14] & 32 ? MlpKind::kSwiglu : MlpKind::kGelu;
  const int64_t P = gpt_layout(r.shape).num_params, N = r.B * r.T, V = r.shape.vocab_size;
  size_t at = sizeof(h);
  auto take = [&](auto& vec, size_t count) {
    using T = typename std::decay_t<decltype(vec)>::value_type;
    vec.resize(count);
    std::memcpy(vec.data(), bytes.data() + at, count * sizeof(T));
    at += count * sizeof(T);
  };
  take(r.params, P);
  take(r.inputs, N);
  take(r.targets, N);
  take(r.logits, N * V);
  std::vector<double> loss;
  take(loss, 1);
  r.loss = loss[0];
  take(r.grads, P);
  EXPECT_EQ(at, bytes.size()) << "reference file length";
  return r;
}

struct Variant {
  std::string name;
  GptShape shape;
};

std::vector<Variant> variants() {
  GptShape base;
  base.n_layer = 2, base.n_head = 2, base.d_model = 16, base.seq_len = 8, base.vocab_size = 100;
  base.padded_vocab = padded_vocab_size(base.vocab_size), base.mlp_hidden = 64;
  GptShape untied = base;
  untied.tied_embeddings = false, untied.bias = false;
  GptShape paper = untied;
  paper.norm = NormKind::kRmsNorm, paper.norm_affine = false, paper.rope = true, paper.qk_norm = true;
  paper.mlp = MlpKind::kRelu2;
  GptShape llama = untied;
  llama.n_head = 4, llama.n_kv_head = 2, llama.mlp_hidden = 48, llama.norm = NormKind::kRmsNorm, llama.rope = true;
  llama.rope_theta = 500, llama.mlp = MlpKind::kSwiglu;
  return {{"gpt2_tied_bias", base}, {"gpt2_untied_nobias", untied}, {"paper", paper}, {"llama_gqa", llama}};
}

class TorchReference : public ::testing::TestWithParam<Variant> {
 protected:
  // A fresh reference from torch when it can run, else the stored one.
  Reference load(const Variant& variant) {
    const std::string stored = test::kSourceDir + "/tests/model/reference/" + variant.name + ".bin";
    if (test::run_command("/usr/bin/python3 -c 'import torch'") != 0) {
      if (!std::filesystem::exists(stored)) ADD_FAILURE() << "no torch and no stored reference " << stored;
      return parse_reference(test::read_text(stored));
    }
    const GptShape& s = variant.shape;
    const int64_t B = 3, T = 8;
    const GptLayout layout = gpt_layout(s);
    std::vector<float> params(layout.num_params);
    gpt_init(s, layout, 21, params);
    SplitMix64 rng{77};
    for (const ParamTensor& t : layout.tensors) {  // make norms and biases nontrivial
      if (t.role != ParamRole::kNorm && t.role != ParamRole::kBias) continue;
      for (int64_t i = 0; i < t.numel(); i++) params[t.offset + i] += float(double(rng.below(1000)) / 5000.0 - 0.1);
    }
    std::vector<int32_t> inputs, targets;
    for (int64_t i = 0; i < B * T; i++) {
      inputs.push_back(int32_t(rng.below(s.vocab_size)));
      targets.push_back(int32_t(rng.below(s.vocab_size)));
    }
    test::ScratchDir dir;
    test::write_text(dir / "case.bin", case_bytes(s, B, T, params, inputs, targets));
    std::string output;
    const int rc = test::run_command("/usr/bin/python3 " + test::kSourceDir + "/tests/model/gpt_torch_reference.py " +
                                         (dir / "case.bin") + " " + (dir / "reference.bin"),
                                     &output);
    EXPECT_EQ(rc, 0) << output;
    if (std::getenv("LLMDION_STORE_REFERENCE"))
      std::filesystem::copy_file(dir / "reference.bin", stored, std::filesystem::copy_options::overwrite_existing);
    return parse_reference(test::read_text(dir / "reference.bin"));
  }
};

TEST_P(TorchReference, logits_loss_and_every_gradient_match_pytorch_float64) {
  const Reference ref = load(GetParam());
  ASSERT_FALSE(ref.params.empty());
  cpu::CpuGpt<float> model(ref.shape, ref.B, ref.T);
  model.params = ref.params;
  const int64_t N = ref.B * ref.T, V = ref.shape.vocab_size, Vp = ref.shape.padded_vocab;

  model.forward(ref.inputs.data(), nullptr);
  std::vector<float> logits;  // our [N, Vp] logits without the padding columns, as torch's [N, V]
  for (int64_t n = 0; n < N; n++) logits.insert(logits.end(), model.outputs() + n * Vp, model.outputs() + n * Vp + V);
  EXPECT_LT(test::relative_error(logits.data(), ref.logits.data(), N * V), 1e-5) << "logits";
  const float loss = model.forward(ref.inputs.data(), ref.targets.data());
  EXPECT_LT(std::fabs(loss - ref.loss) / ref.loss, 1e-6) << loss << " vs torch " << ref.loss;
  model.backward(1.0f);
  test::expect_gradients_match(model.layout(), model.grads.data(), ref.grads.data(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, TorchReference, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace llmdion
