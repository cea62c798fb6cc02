// Weights for the Hugging Face ecosystem: a folder with config.json and
// model.safetensors (fp32, the standard tensor names and layouts), written as
// DIR.partial and renamed when complete.
//   learned positions -> GPT2LMHeadModel: Conv1D weights transposed to [in, out],
//                        q, k, v fused into c_attn; a missing bias or norm scale
//                        goes out as zeros or ones (the same function)
//   rope              -> LlamaForCausalLM: q/k/v/o_proj and gate/up/down_proj as
//                        ours ([out, in]; both rotate half-split pairs), GQA included
// What neither class has (qk-norm, a relu^2 MLP: the paper's GPT; layernorm with
// rope, ...) is listed: the tensors still go out under those names, config.json
// names no architecture and says what did not map.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "model/gpt.h"

namespace llmdion {

// What of `shape` no Hugging Face class holds; empty when the export loads as is.
std::vector<std::string> hf_unmapped(const GptShape& shape);

// Writes the folder; returns hf_unmapped(shape).
std::vector<std::string> write_hf_folder(const std::string& dir, const GptShape& shape, const GptLayout& layout,
                                         std::span<const float> params);

}  // namespace llmdion
