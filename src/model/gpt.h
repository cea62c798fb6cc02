// The GPT-2 model, independent of the device: its shape, and the table of its
// parameters laid out in one contiguous buffer (so gradients reduce in one call),
// each tensor named, shaped and given the role the optimizers group it by.
//
// Block (pre-LayerNorm, Radford et al. 2019):
//   x = wte[token] + wpe[position]
//   for each layer:  x = x + Wo · attention(q, k, v of LN1(x))      q = Wq·LN1(x) + bq, ...
//                    x = x + Wproj · gelu_tanh(Wfc · LN2(x) + bfc) + bproj
//   logits = Whead · LNf(x)          (Whead = wte when tied_embeddings)
// The vocabulary is padded to a multiple of 128 (as llm.c does): padded rows
// are zero, never sampled and never trained.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace llmdion {

struct GptShape {
  int n_layer = 4;
  int n_head = 4;
  int d_model = 128;       // C
  int seq_len = 256;       // maximum T (rows of wpe)
  int vocab_size = 50257;  // V
  int padded_vocab = 50304;  // Vp, V rounded up to a multiple of 128
  int mlp_hidden = 512;    // mlp_ratio * C
  bool tied_embeddings = true;
  bool bias = true;        // biases in every linear layer and LayerNorm
};

// Vp: the vocabulary rounded up to a multiple of 128.
inline int padded_vocab_size(int vocab_size) { return (vocab_size + 127) / 128 * 128; }

enum class ParamRole { kEmbedding, kMatrix, kHead, kNorm, kBias };
const char* role_name(ParamRole role);

struct ParamTensor {
  std::string name;             // e.g. "blocks.3.attn.q.weight"
  ParamRole role;
  std::vector<int64_t> shape;   // matrices: {fan_out, fan_in}
  int64_t offset;               // into the flat parameter buffer
  int64_t numel() const;
};

// Offsets of one block's tensors; -1 where the shape has none (bias: false).
struct BlockOffsets {
  int64_t ln1_w, ln1_b;
  int64_t qkv_w, qkv_b;   // q, k, v matrices (and biases) stored back to back
  int64_t attn_out_w, attn_out_b;
  int64_t ln2_w, ln2_b;
  int64_t fc_w, fc_b;
  int64_t proj_w, proj_b;
};

struct GptLayout {
  std::vector<ParamTensor> tensors;
  int64_t wte, wpe;
  std::vector<BlockOffsets> blocks;
  int64_t lnf_w, lnf_b;
  int64_t head_w;          // == wte when tied
  int64_t num_params;      // the buffer's length, padding rows included
};

GptLayout gpt_layout(const GptShape& shape);

// Parameters the model really has: padded vocabulary rows excluded.
int64_t count_trained_params(const GptShape& shape, const GptLayout& layout);

// GPT-2's initialization, seeded: matrices and embeddings ~ N(0, 0.02), the two
// residual projections (attn.o, mlp.proj) ~ N(0, 0.02 / sqrt(2 n_layer)),
// LayerNorm weights 1, biases and padded vocabulary rows 0.
void gpt_init(const GptShape& shape, const GptLayout& layout, uint64_t seed, std::span<float> params);

}  // namespace llmdion
