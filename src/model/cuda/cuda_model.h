// The CUDA backend of Model (model.h): GPT-2's block in bf16 on one GPU.
#pragma once

#include <memory>

#include "model/model.h"

namespace llmdion {

// Throws, naming the option, for a shape this backend does not run yet (it
// runs GPT-2's block: LayerNorm, learned positions, GELU, no qk-norm; any
// heads, kv heads, biases and tying).
std::unique_ptr<Model> make_cuda_model(const GptShape& shape, int64_t batch_size, int64_t seq_len);

}  // namespace llmdion
