// The GPT family, independent of the device: its shape, and the table of its
// parameters laid out in one contiguous buffer (so gradients reduce in one call),
// each tensor named, shaped and given the role the optimizers group it by.
//
// One pre-norm block with options (model.arch picks a preset of them):
//   x = wte[token] (+ wpe[position] with learned positions)
//   for each layer:
//     h = Norm1(x);  q = Wq h, k = Wk h, v = Wv h          (+ biases; k, v: n_kv_head heads)
//     q, k = RoPE(q, k) (rope);  q, k = RMSNorm per head (qk_norm)
//     x = x + Wo attention(q, k, v)                         (causal; query head i reads kv head i / group)
//     h = Norm2(x)
//     x = x + Wproj act(Wfc h)          act: gelu_tanh (gpt2) or relu^2 (paper)
//     x = x + Wproj (silu(Wgate h) * Wup h)                 (swiglu, llama)
//   logits = Whead NormF(x)          (Whead = wte when tied_embeddings)
// Norm: LayerNorm (mean and variance) or RMSNorm (root mean square), each with a
// learned scale when norm_affine (and a learned shift for LayerNorm with bias).
// The vocabulary is padded to a multiple of 128 (as llm.c does): padded rows
// are zero, never sampled and never trained.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"

namespace llmdion {

enum class NormKind { kLayerNorm, kRmsNorm };
enum class MlpKind { kGelu, kRelu2, kSwiglu };

struct GptShape {
  int n_layer = 4;
  int n_head = 4;
  int n_kv_head = 0;       // heads of k and v (0: n_head); fewer than n_head: grouped-query attention
  int d_model = 128;       // C
  int seq_len = 256;       // maximum T (rows of wpe)
  int vocab_size = 50257;  // V
  int padded_vocab = 50304;  // Vp, V rounded up to a multiple of 128
  int mlp_hidden = 512;    // H, the MLP's inner width
  bool tied_embeddings = true;
  bool bias = true;        // biases in every linear layer (and LayerNorm's shift)
  NormKind norm = NormKind::kLayerNorm;
  bool norm_affine = true; // learned norm scale
  bool rope = false;       // rotary positions instead of the learned wpe table
  double rope_theta = 10000;
  bool qk_norm = false;    // parameter-free RMSNorm of each head's q and k
  MlpKind mlp = MlpKind::kGelu;

  int head_size() const { return d_model / n_head; }
  int kv_heads() const { return n_kv_head > 0 ? n_kv_head : n_head; }
  int kv_width() const { return kv_heads() * head_size(); }  // columns of k (and of v)
  bool gpt2() const;       // exactly GPT-2's block (what llm.c checkpoints hold)
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

// Offsets of one block's tensors; -1 where the shape has none (no bias, no norm scale).
struct BlockOffsets {
  int64_t ln1_w, ln1_b;
  int64_t qkv_w, qkv_b;   // q, k, v matrices (and biases) stored back to back
  int64_t attn_out_w, attn_out_b;
  int64_t ln2_w, ln2_b;
  int64_t fc_w, fc_b;     // swiglu: gate and up matrices back to back
  int64_t proj_w, proj_b;
};

struct GptLayout {
  std::vector<ParamTensor> tensors;
  int64_t wte, wpe;        // wpe: -1 with rope
  std::vector<BlockOffsets> blocks;
  int64_t lnf_w, lnf_b;
  int64_t head_w;          // == wte when tied
  int64_t num_params;      // the buffer's length, padding rows included
  // block_starts[l]: the offset of block l's first tensor; block_starts[n_layer]:
  // the first offset past the blocks (the final norm and an untied head).
  std::vector<int64_t> block_starts;
};

// Called during a backward each time a stretch of the gradients is complete:
// every gradient at an offset >= from is final for this backward (on a GPU,
// once the work queued so far on the model's stream is done). The backward
// finishes the gradients from the end of the layout: the head and final norm
// (from = block_starts[n_layer]), then each block from the last
// (block_starts[l]), then the embeddings (0).
using GradientsReady = std::function<void(int64_t from)>;

// The shape a model config asks for (model.arch's preset already applied).
GptShape shape_from_config(const ModelConfig& model);
// One line: arch options and sizes, for logs.
std::string describe_shape(const GptShape& shape);

GptLayout gpt_layout(const GptShape& shape);

// Parameters the model really has: padded vocabulary rows excluded.
int64_t count_trained_params(const GptShape& shape, const GptLayout& layout);

// GPT-2's initialization for every arch, seeded: matrices and embeddings
// ~ N(0, 0.02), the two residual projections (attn.o, mlp.proj) ~ N(0, 0.02 /
// sqrt(2 n_layer)), norm scales 1, biases and padded vocabulary rows 0.
void gpt_init(const GptShape& shape, const GptLayout& layout, uint64_t seed, std::span<float> params);

}  // namespace llmdion
