// Text samples during training: from <|endoftext|>, each next token drawn from
// the k most likely under the model, p_i = softmax(logits over the top k)_i,
// with a seeded generator, so the same step and seed give the same text.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "model/model.h"

namespace llmdion {

// `model` must have batch size 1; returns up to `count` new token ids (fewer
// when the context is full).
std::vector<uint32_t> sample_tokens(Model& model, uint32_t eot_id, int64_t count, int64_t top_k, SplitMix64& rng);

}  // namespace llmdion
