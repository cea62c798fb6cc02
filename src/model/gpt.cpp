#include "model/gpt.h"

#include <cmath>

#include "core/rng.h"

namespace llmdion {

const char* role_name(ParamRole role) {
  switch (role) {
    case ParamRole::kEmbedding: return "embedding";
    case ParamRole::kMatrix: return "matrix";
    case ParamRole::kHead: return "head";
    case ParamRole::kNorm: return "norm";
    case ParamRole::kBias: return "bias";
  }
  return "?";
}

int64_t ParamTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

GptShape shape_from_config(const ModelConfig& m) {
  GptShape s;
  s.n_layer = int(m.n_layer), s.n_head = int(m.n_head), s.d_model = int(m.d_model), s.seq_len = int(m.seq_len);
  s.n_kv_head = int(m.n_kv_head);
  s.vocab_size = int(m.vocab_size), s.padded_vocab = padded_vocab_size(s.vocab_size);
  s.mlp = m.mlp == "swiglu" ? MlpKind::kSwiglu : m.mlp == "relu2" ? MlpKind::kRelu2 : MlpKind::kGelu;
  if (m.ffn_hidden > 0) s.mlp_hidden = int(m.ffn_hidden);
  else if (s.mlp == MlpKind::kSwiglu) s.mlp_hidden = int((8 * m.d_model / 3 + 255) / 256 * 256);
  else s.mlp_hidden = int(m.mlp_ratio * m.d_model);
  s.norm = m.norm == "rmsnorm" ? NormKind::kRmsNorm : NormKind::kLayerNorm;
  s.norm_affine = m.norm_affine, s.rope = m.pos == "rope", s.rope_theta = m.rope_theta, s.qk_norm = m.qk_norm;
  s.tied_embeddings = m.tied_embeddings, s.bias = m.bias;
  return s;
}

std::string describe_shape(const GptShape& s) {
  const char* mlp = s.mlp == MlpKind::kSwiglu ? "swiglu" : s.mlp == MlpKind::kRelu2 ? "relu2" : "gelu";
  return std::to_string(s.n_layer) + " layers, " + std::to_string(s.n_head) + " heads (" +
         std::to_string(s.kv_heads()) + " kv), d_model " + std::to_string(s.d_model) + ", " + mlp + " MLP " +
         std::to_string(s.mlp_hidden) + ", " + (s.norm == NormKind::kRmsNorm ? "rmsnorm" : "layernorm") +
         (s.norm_affine ? "" : " (no scale)") + ", " + (s.rope ? "rope" : "learned positions") +
         (s.qk_norm ? ", qk-norm" : "") + ", seq_len " + std::to_string(s.seq_len) + ", vocab " +
         std::to_string(s.vocab_size) + " (padded " + std::to_string(s.padded_vocab) + "), " +
         (s.tied_embeddings ? "tied" : "untied") + " head, " + (s.bias ? "biases" : "no biases");
}

bool GptShape::gpt2() const {
  return norm == NormKind::kLayerNorm && norm_affine && bias && !rope && !qk_norm && mlp == MlpKind::kGelu &&
         kv_heads() == n_head;
}

GptLayout gpt_layout(const GptShape& s) {
  GptLayout layout;
  const int64_t C = s.d_model, H = s.mlp_hidden, KV = s.kv_width();
  const bool norm_bias = s.norm_affine && s.bias && s.norm == NormKind::kLayerNorm;
  auto add = [&](std::string name, ParamRole role, std::vector<int64_t> shape) {
    ParamTensor t{std::move(name), role, std::move(shape), layout.num_params};
    layout.num_params += t.numel();
    layout.tensors.push_back(t);
    return t.offset;
  };
  layout.num_params = 0;
  layout.wte = add("wte", ParamRole::kEmbedding, {s.padded_vocab, C});
  layout.wpe = s.rope ? -1 : add("wpe", ParamRole::kEmbedding, {s.seq_len, C});
  auto norm = [&](const std::string& name, int64_t& weight, int64_t& shift) {
    weight = s.norm_affine ? add(name + ".weight", ParamRole::kNorm, {C}) : -1;
    shift = norm_bias ? add(name + ".bias", ParamRole::kBias, {C}) : -1;
  };
  // Matrices (and their biases) stored back to back, each its own tensor.
  auto linear = [&](const std::vector<std::pair<std::string, int64_t>>& parts, int64_t fan_in, int64_t& weight,
                    int64_t& bias) {
    weight = -1, bias = -1;
    for (const auto& [name, fan_out] : parts) {
      const int64_t w = add(name + ".weight", ParamRole::kMatrix, {fan_out, fan_in});
      if (weight < 0) weight = w;
    }
    if (!s.bias) return;
    for (const auto& [name, fan_out] : parts) {
      const int64_t b = add(name + ".bias", ParamRole::kBias, {fan_out});
      if (bias < 0) bias = b;
    }
  };
  for (int l = 0; l < s.n_layer; l++) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    layout.block_starts.push_back(layout.num_params);
    BlockOffsets b;
    norm(p + "ln1", b.ln1_w, b.ln1_b);
    linear({{p + "attn.q", C}, {p + "attn.k", KV}, {p + "attn.v", KV}}, C, b.qkv_w, b.qkv_b);
    linear({{p + "attn.o", C}}, C, b.attn_out_w, b.attn_out_b);
    norm(p + "ln2", b.ln2_w, b.ln2_b);
    if (s.mlp == MlpKind::kSwiglu) linear({{p + "mlp.gate", H}, {p + "mlp.up", H}}, C, b.fc_w, b.fc_b);
    else linear({{p + "mlp.fc", H}}, C, b.fc_w, b.fc_b);
    linear({{p + "mlp.proj", C}}, H, b.proj_w, b.proj_b);
    layout.blocks.push_back(b);
  }
  layout.block_starts.push_back(layout.num_params);
  norm("lnf", layout.lnf_w, layout.lnf_b);
  layout.head_w = s.tied_embeddings ? layout.wte : add("lm_head.weight", ParamRole::kHead, {s.padded_vocab, C});
  return layout;
}

int64_t count_trained_params(const GptShape& s, const GptLayout& layout) {
  const int64_t padding_rows = int64_t(s.padded_vocab - s.vocab_size) * s.d_model;
  return layout.num_params - padding_rows * (s.tied_embeddings ? 1 : 2);
}

void gpt_init(const GptShape& s, const GptLayout& layout, uint64_t seed, std::span<float> params) {
  SplitMix64 rng{derive_seed({seed, 0x1417})};
  // Box-Muller: two uniforms in (0, 1] give one standard normal.
  auto normal = [&] {
    const double u1 = (double(rng.next() >> 11) + 1.0) / 9007199254740992.0;
    const double u2 = double(rng.next() >> 11) / 9007199254740992.0;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  };
  const double residual_std = 0.02 / std::sqrt(2.0 * s.n_layer);
  for (const ParamTensor& t : layout.tensors) {
    float* p = params.data() + t.offset;
    const bool residual_projection = t.name.ends_with("attn.o.weight") || t.name.ends_with("mlp.proj.weight");
    switch (t.role) {
      case ParamRole::kNorm:
        for (int64_t i = 0; i < t.numel(); i++) p[i] = 1.0f;
        break;
      case ParamRole::kBias:
        for (int64_t i = 0; i < t.numel(); i++) p[i] = 0.0f;
        break;
      default: {
        const double std = residual_projection ? residual_std : 0.02;
        for (int64_t i = 0; i < t.numel(); i++) p[i] = float(std * normal());
      }
    }
    if (t.offset == layout.wte || t.role == ParamRole::kHead)  // padded vocabulary rows
      for (int64_t i = int64_t(s.vocab_size) * s.d_model; i < t.numel(); i++) p[i] = 0.0f;
  }
}

}  // namespace llmdion
