// The CUDA backend of Model (model.h): the GPT family in bf16 on one GPU.
#pragma once

#include <memory>

#include "model/model.h"

namespace llmdion {

// Every block option of model/gpt.h; throws, naming it, for a head size the
// flash attention kernels do not take (they take 32, 64 and 128).
std::unique_ptr<Model> make_cuda_model(const GptShape& shape, int64_t batch_size, int64_t seq_len);

// The GPU memory such a model takes (its one allocation and cuBLASLt's
// workspace), from its plan, allocating nothing; throws as make_cuda_model does
// for a head size the kernels lack.
int64_t cuda_model_bytes(const GptShape& shape, int64_t batch_size, int64_t seq_len);

}  // namespace llmdion
