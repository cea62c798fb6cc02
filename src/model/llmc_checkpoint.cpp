#include "model/llmc_checkpoint.h"

#include <cstring>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <vector>

#include "core/atomic_file.h"

namespace llmdion {
namespace {

// Calls visit(offset, count) for each run of our buffer in llm.c's file order.
void for_each_llmc_run(const GptShape& s, const std::function<void(int64_t, int64_t)>& visit) {
  const GptLayout layout = gpt_layout(s);
  const int64_t C = s.d_model, H = s.mlp_hidden;
  visit(layout.wte, int64_t(s.padded_vocab) * C);
  visit(layout.wpe, int64_t(s.seq_len) * C);
  const std::vector<std::pair<int64_t BlockOffsets::*, int64_t>> per_layer = {
      {&BlockOffsets::ln1_w, C},          {&BlockOffsets::ln1_b, C},          {&BlockOffsets::qkv_w, 3 * C * C},
      {&BlockOffsets::qkv_b, 3 * C},      {&BlockOffsets::attn_out_w, C * C}, {&BlockOffsets::attn_out_b, C},
      {&BlockOffsets::ln2_w, C},          {&BlockOffsets::ln2_b, C},          {&BlockOffsets::fc_w, H * C},
      {&BlockOffsets::fc_b, H},           {&BlockOffsets::proj_w, C * H},     {&BlockOffsets::proj_b, C}};
  for (const auto& [member, count] : per_layer)
    for (const BlockOffsets& block : layout.blocks) visit(block.*member, count);
  visit(layout.lnf_w, C);
  visit(layout.lnf_b, C);
}

}  // namespace

void check_llmc_compatible(const GptShape& s, const std::string& path) {
  if (!s.gpt2() || !s.tied_embeddings || s.mlp_hidden != 4 * s.d_model)
    throw std::runtime_error("'" + path + "': llm.c's checkpoint holds GPT-2 only (model.arch gpt2: layernorm, " +
                             "learned positions, gelu MLP of 4 x d_model, biases, tied embeddings); this model has " +
                             describe_shape(s) + ". Its checkpoints (out_dir/checkpoints) hold every arch");
}

namespace {

std::string describe(const GptShape& s) {
  return "seq_len " + std::to_string(s.seq_len) + ", vocab " + std::to_string(s.vocab_size) + " (padded " +
         std::to_string(s.padded_vocab) + "), " + std::to_string(s.n_layer) + " layers, " +
         std::to_string(s.n_head) + " heads, d_model " + std::to_string(s.d_model);
}

}  // namespace

GptShape read_llmc_shape(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open llm.c checkpoint '" + path + "'");
  int32_t header[256];
  if (!in.read(reinterpret_cast<char*>(header), sizeof(header)))
    throw std::runtime_error("'" + path + "' is shorter than an llm.c checkpoint header");
  if (header[0] != kLlmcCheckpointMagic)
    throw std::runtime_error("'" + path + "' has magic " + std::to_string(header[0]) +
                             ", not an llm.c GPT-2 checkpoint (" + std::to_string(kLlmcCheckpointMagic) + ")");
  if (header[1] != kLlmcCheckpointVersion)
    throw std::runtime_error("'" + path + "' is llm.c checkpoint version " + std::to_string(header[1]) +
                             "; only version 3 (fp32, padded vocabulary) is read");
  GptShape s;
  s.seq_len = header[2], s.vocab_size = header[3], s.n_layer = header[4], s.n_head = header[5];
  s.d_model = header[6], s.padded_vocab = header[7];
  s.mlp_hidden = 4 * s.d_model, s.tied_embeddings = true, s.bias = true;
  return s;
}

void check_llmc_checkpoint(const std::string& path, const GptShape& shape) {
  const GptShape file_shape = read_llmc_shape(path);
  check_llmc_compatible(shape, path);
  if (file_shape.seq_len != shape.seq_len || file_shape.vocab_size != shape.vocab_size ||
      file_shape.padded_vocab != shape.padded_vocab || file_shape.n_layer != shape.n_layer ||
      file_shape.n_head != shape.n_head || file_shape.d_model != shape.d_model)
    throw std::runtime_error("'" + path + "' holds a model of " + describe(file_shape) + "; the config asks for " +
                             describe(shape));
}

void read_llmc_checkpoint(const std::string& path, const GptShape& shape, std::span<float> params) {
  check_llmc_checkpoint(path, shape);
  std::ifstream in(path, std::ios::binary);
  in.seekg(256 * sizeof(int32_t));
  int64_t expected = 0;
  for_each_llmc_run(shape, [&](int64_t offset, int64_t count) {
    in.read(reinterpret_cast<char*>(params.data() + offset), std::streamsize(count * sizeof(float)));
    expected += count;
  });
  if (!in) throw std::runtime_error("'" + path + "' is truncated: fewer than " + std::to_string(expected) + " weights");
  in.peek();
  if (!in.eof()) throw std::runtime_error("'" + path + "' has bytes after its " + std::to_string(expected) + " weights");
}

void write_llmc_checkpoint(const std::string& path, const GptShape& s, std::span<const float> params) {
  check_llmc_compatible(s, path);
  int32_t header[256] = {};
  header[0] = kLlmcCheckpointMagic, header[1] = kLlmcCheckpointVersion, header[2] = s.seq_len;
  header[3] = s.vocab_size, header[4] = s.n_layer, header[5] = s.n_head, header[6] = s.d_model;
  header[7] = s.padded_vocab;
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(header), sizeof(header));
    for_each_llmc_run(s, [&](int64_t offset, int64_t count) {
      out.write(reinterpret_cast<const char*>(params.data() + offset), std::streamsize(count * sizeof(float)));
    });
  });
}

}  // namespace llmdion
