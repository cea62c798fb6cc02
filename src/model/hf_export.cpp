#include "model/hf_export.h"

#include <spdlog/fmt/fmt.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/safetensors.h"

namespace llmdion {
namespace {

namespace fs = std::filesystem;

// Hugging Face tensors: a name, a shape and the values (copied, transposed or
// concatenated from ours as the target class lays them out).
struct HfTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

class HfWriter {
 public:
  HfWriter(const GptLayout& layout, std::span<const float> params) : layout_(layout), params_(params) {}

  // Our tensor by name, its first `rows` rows (the vocabulary without padding).
  std::vector<float> take(const std::string& name, int64_t rows = -1) const {
    const ParamTensor& t = find(name);
    const int64_t n = rows < 0 ? t.numel() : rows * t.shape[1];
    return {params_.begin() + t.offset, params_.begin() + t.offset + n};
  }
  bool has(const std::string& name) const {
    for (const ParamTensor& t : layout_.tensors)
      if (t.name == name) return true;
    return false;
  }
  // A norm's scale (ones where the norm has none), a bias (zeros where there is none).
  std::vector<float> scale_or_ones(const std::string& name, int64_t n) const {
    return has(name) ? take(name) : std::vector<float>(n, 1.0f);
  }
  std::vector<float> bias_or_zeros(const std::string& name, int64_t n) const {
    return has(name) ? take(name) : std::vector<float>(n, 0.0f);
  }
  std::vector<HfTensor> tensors;

 private:
  const ParamTensor& find(const std::string& name) const {
    for (const ParamTensor& t : layout_.tensors)
      if (t.name == name) return t;
    throw std::logic_error("no tensor " + name);
  }
  const GptLayout& layout_;
  std::span<const float> params_;
};

// W [rows, cols] -> W^T [cols, rows] (GPT-2's Conv1D stores weights as [in, out]).
std::vector<float> transpose(const std::vector<float>& w, int64_t rows, int64_t cols) {
  std::vector<float> out(w.size());
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  return out;
}

// GPT2LMHeadModel (transformers' modeling_gpt2): transformer.wte/wpe, per block
// ln_1, attn.c_attn (q|k|v fused), attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj as
// Conv1D ([in, out]), ln_f; the head tied to wte unless tie_word_embeddings is false.
std::string gpt2_tensors(const GptShape& s, HfWriter& w, bool loadable) {
  const int64_t C = s.d_model, H = s.mlp_hidden, V = s.vocab_size;
  w.tensors.push_back({"transformer.wte.weight", {V, C}, w.take("wte", V)});
  w.tensors.push_back({"transformer.wpe.weight", {s.seq_len, C}, w.take("wpe")});
  const auto norm = [&](const std::string& ours, const std::string& theirs) {
    w.tensors.push_back({theirs + ".weight", {C}, w.scale_or_ones(ours + ".weight", C)});
    w.tensors.push_back({theirs + ".bias", {C}, w.bias_or_zeros(ours + ".bias", C)});
  };
  // Our [out, in] parts stacked on out (q|k|v: 3C wide, less with grouped-query k and v), transposed.
  const auto conv1d = [&](const std::vector<std::string>& ours, const std::string& theirs, int64_t in) {
    std::vector<float> weight, bias;
    for (const std::string& part : ours) {
      const std::vector<float> p = w.take(part + ".weight"), b = w.bias_or_zeros(part + ".bias", int64_t(p.size()) / in);
      weight.insert(weight.end(), p.begin(), p.end());
      bias.insert(bias.end(), b.begin(), b.end());
    }
    const int64_t out = int64_t(weight.size()) / in;
    w.tensors.push_back({theirs + ".weight", {in, out}, transpose(weight, out, in)});
    w.tensors.push_back({theirs + ".bias", {out}, bias});
  };
  for (int l = 0; l < s.n_layer; l++) {
    const std::string p = "blocks." + std::to_string(l) + ".", h = "transformer.h." + std::to_string(l) + ".";
    norm(p + "ln1", h + "ln_1");
    conv1d({p + "attn.q", p + "attn.k", p + "attn.v"}, h + "attn.c_attn", C);
    conv1d({p + "attn.o"}, h + "attn.c_proj", C);
    norm(p + "ln2", h + "ln_2");
    conv1d({p + "mlp.fc"}, h + "mlp.c_fc", C);
    conv1d({p + "mlp.proj"}, h + "mlp.c_proj", H);
  }
  norm("lnf", "transformer.ln_f");
  if (!s.tied_embeddings) w.tensors.push_back({"lm_head.weight", {V, C}, w.take("lm_head.weight", V)});
  return fmt::format(R"({{
  "architectures": [{}],
  "model_type": "{}",
  "vocab_size": {},
  "n_positions": {},
  "n_ctx": {},
  "n_embd": {},
  "n_layer": {},
  "n_head": {},
  "n_inner": {},
  "activation_function": "gelu_new",
  "layer_norm_epsilon": 1e-05,
  "resid_pdrop": 0.0,
  "embd_pdrop": 0.0,
  "attn_pdrop": 0.0,
  "tie_word_embeddings": {},
  "bos_token_id": 50256,
  "eos_token_id": 50256,
  "torch_dtype": "float32"
}}
)", loadable ? "\"GPT2LMHeadModel\"" : "", loadable ? "gpt2" : "llm.dion", V, s.seq_len, s.seq_len, C,
                     s.n_layer, s.n_head, H, s.tied_embeddings ? "true" : "false");
}

// LlamaForCausalLM (transformers' modeling_llama): model.embed_tokens, per layer
// input_layernorm, self_attn.{q,k,v,o}_proj ([out, in], as ours; rotate_half
// RoPE, as ours), post_attention_layernorm, mlp.{gate,up,down}_proj, model.norm,
// lm_head. The paper's GPT goes out under the same names where they apply.
std::string llama_tensors(const GptShape& s, HfWriter& w, bool loadable) {
  const int64_t C = s.d_model, H = s.mlp_hidden, V = s.vocab_size, KV = s.kv_width();
  w.tensors.push_back({"model.embed_tokens.weight", {V, C}, w.take("wte", V)});
  if (!s.rope) w.tensors.push_back({"model.embed_positions.weight", {s.seq_len, C}, w.take("wpe")});  // not Llama's
  const auto norm = [&](const std::string& ours, const std::string& theirs) {
    w.tensors.push_back({theirs + ".weight", {C}, w.scale_or_ones(ours + ".weight", C)});
    if (w.has(ours + ".bias")) w.tensors.push_back({theirs + ".bias", {C}, w.take(ours + ".bias")});  // not Llama's
  };
  const auto linear = [&](const std::string& ours, const std::string& theirs, int64_t out, int64_t in) {
    w.tensors.push_back({theirs + ".weight", {out, in}, w.take(ours + ".weight")});
    if (s.bias) w.tensors.push_back({theirs + ".bias", {out}, w.take(ours + ".bias")});
  };
  for (int l = 0; l < s.n_layer; l++) {
    const std::string p = "blocks." + std::to_string(l) + ".", h = "model.layers." + std::to_string(l) + ".";
    norm(p + "ln1", h + "input_layernorm");
    linear(p + "attn.q", h + "self_attn.q_proj", C, C);
    linear(p + "attn.k", h + "self_attn.k_proj", KV, C);
    linear(p + "attn.v", h + "self_attn.v_proj", KV, C);
    linear(p + "attn.o", h + "self_attn.o_proj", C, C);
    norm(p + "ln2", h + "post_attention_layernorm");
    if (s.mlp == MlpKind::kSwiglu) {
      linear(p + "mlp.gate", h + "mlp.gate_proj", H, C);
      linear(p + "mlp.up", h + "mlp.up_proj", H, C);
    } else {
      linear(p + "mlp.fc", h + "mlp.up_proj", H, C);
    }
    linear(p + "mlp.proj", h + "mlp.down_proj", C, H);
  }
  norm("lnf", "model.norm");
  w.tensors.push_back({"lm_head.weight", {V, C}, w.take(s.tied_embeddings ? "wte" : "lm_head.weight", V)});
  return fmt::format(R"({{
  "architectures": [{}],
  "model_type": "{}",
  "vocab_size": {},
  "hidden_size": {},
  "intermediate_size": {},
  "num_hidden_layers": {},
  "num_attention_heads": {},
  "num_key_value_heads": {},
  "head_dim": {},
  "max_position_embeddings": {},
  "rope_theta": {},
  "rms_norm_eps": 1e-05,
  "hidden_act": "{}",
  "attention_bias": {},
  "mlp_bias": {},
  "tie_word_embeddings": false,
  "bos_token_id": 50256,
  "eos_token_id": 50256,
  "torch_dtype": "float32"
}}
)", loadable ? "\"LlamaForCausalLM\"" : "", loadable ? "llama" : "llm.dion", V, C, H, s.n_layer, s.n_head,
                     s.kv_heads(), s.head_size(), s.seq_len, s.rope_theta, s.mlp == MlpKind::kSwiglu ? "silu" : "relu2",
                     s.bias ? "true" : "false", s.bias ? "true" : "false");
}

}  // namespace

std::vector<std::string> hf_unmapped(const GptShape& s) {
  std::vector<std::string> gaps;
  const bool gpt2_like = !s.rope;
  if (gpt2_like) {
    if (s.norm != NormKind::kLayerNorm) gaps.push_back("rmsnorm with learned positions (GPT-2 has layernorm)");
    if (s.mlp != MlpKind::kGelu) gaps.push_back("a non-gelu MLP with learned positions (GPT-2 has gelu)");
    if (s.kv_heads() != s.n_head) gaps.push_back("grouped-query attention (GPT-2 has none)");
  } else {
    if (s.norm != NormKind::kRmsNorm) gaps.push_back("layernorm with rope (Llama has rmsnorm)");
    if (s.mlp != MlpKind::kSwiglu)
      gaps.push_back(std::string(s.mlp == MlpKind::kRelu2 ? "the relu^2" : "the gelu") + " MLP (Llama has swiglu)");
  }
  if (s.qk_norm) gaps.push_back("qk-norm (neither GPT-2 nor Llama normalizes q and k)");
  return gaps;
}

std::vector<std::string> write_hf_folder(const std::string& dir, const GptShape& s, const GptLayout& layout,
                                         std::span<const float> params) {
  const std::vector<std::string> gaps = hf_unmapped(s);
  HfWriter writer(layout, params);
  // GPT-2's names where its block is (gaps aside), Llama's for everything else.
  const bool gpt2_names = !s.rope && s.mlp != MlpKind::kSwiglu;
  std::string config = gpt2_names ? gpt2_tensors(s, writer, gaps.empty()) : llama_tensors(s, writer, gaps.empty());
  if (!gaps.empty()) {  // said in config.json too, so the folder explains itself
    std::string list;
    for (const std::string& g : gaps) list += (list.empty() ? "\"" : ", \"") + g + "\"";
    config.insert(config.rfind('}'), "  ,\"llm_dion_not_mapped\": [" + list + "]\n");
  }
  const fs::path partial = dir + ".partial";
  fs::remove_all(partial);
  fs::create_directories(partial);
  std::vector<TensorView> views;
  for (const HfTensor& t : writer.tensors) views.push_back({t.name, t.shape, t.values});
  write_safetensors((partial / "model.safetensors").string(), views, {{"format", "pt"}});
  write_file_atomic((partial / "config.json").string(), [&](std::ostream& out) { out << config; });
  fs::remove_all(dir);
  fs::rename(partial, dir);
  return gaps;
}

}  // namespace llmdion
