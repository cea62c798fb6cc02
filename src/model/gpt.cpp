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

GptLayout gpt_layout(const GptShape& s) {
  GptLayout layout;
  const int64_t C = s.d_model, H = s.mlp_hidden;
  auto add = [&](std::string name, ParamRole role, std::vector<int64_t> shape) {
    ParamTensor t{std::move(name), role, std::move(shape), layout.num_params};
    layout.num_params += t.numel();
    layout.tensors.push_back(t);
    return t.offset;
  };
  layout.num_params = 0;
  layout.wte = add("wte", ParamRole::kEmbedding, {s.padded_vocab, C});
  layout.wpe = add("wpe", ParamRole::kEmbedding, {s.seq_len, C});
  for (int l = 0; l < s.n_layer; l++) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    BlockOffsets b;
    b.ln1_w = add(p + "ln1.weight", ParamRole::kNorm, {C});
    b.ln1_b = s.bias ? add(p + "ln1.bias", ParamRole::kBias, {C}) : -1;
    b.qkv_w = add(p + "attn.q.weight", ParamRole::kMatrix, {C, C});
    add(p + "attn.k.weight", ParamRole::kMatrix, {C, C});
    add(p + "attn.v.weight", ParamRole::kMatrix, {C, C});
    b.qkv_b = -1;
    if (s.bias) {
      b.qkv_b = add(p + "attn.q.bias", ParamRole::kBias, {C});
      add(p + "attn.k.bias", ParamRole::kBias, {C});
      add(p + "attn.v.bias", ParamRole::kBias, {C});
    }
    b.attn_out_w = add(p + "attn.o.weight", ParamRole::kMatrix, {C, C});
    b.attn_out_b = s.bias ? add(p + "attn.o.bias", ParamRole::kBias, {C}) : -1;
    b.ln2_w = add(p + "ln2.weight", ParamRole::kNorm, {C});
    b.ln2_b = s.bias ? add(p + "ln2.bias", ParamRole::kBias, {C}) : -1;
    b.fc_w = add(p + "mlp.fc.weight", ParamRole::kMatrix, {H, C});
    b.fc_b = s.bias ? add(p + "mlp.fc.bias", ParamRole::kBias, {H}) : -1;
    b.proj_w = add(p + "mlp.proj.weight", ParamRole::kMatrix, {C, H});
    b.proj_b = s.bias ? add(p + "mlp.proj.bias", ParamRole::kBias, {C}) : -1;
    layout.blocks.push_back(b);
  }
  layout.lnf_w = add("lnf.weight", ParamRole::kNorm, {C});
  layout.lnf_b = s.bias ? add("lnf.bias", ParamRole::kBias, {C}) : -1;
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
