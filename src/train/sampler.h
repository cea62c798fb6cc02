// Text from a model: after <|endoftext|> and a prompt's tokens, each next token
// is drawn from the k most likely under the model,
//   p_i = softmax(logits over the top k / temperature)_i,
// with a seeded generator, so the same weights, prompt and seed give the same
// text (the trainer's samples, build/generate).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/rng.h"
#include "model/model.h"

namespace llmdion {

// `model` must have batch size 1; returns up to `count` new token ids (fewer
// when the context of seq_len tokens is full).
std::vector<uint32_t> sample_tokens(Model& model, uint32_t eot_id, std::span<const uint32_t> prompt, int64_t count,
                                    int64_t top_k, double temperature, SplitMix64& rng);

// The seed of the trainer's sample after step `step` of a run seeded `run_seed`.
uint64_t sample_seed(uint64_t run_seed, int64_t step);

}  // namespace llmdion
