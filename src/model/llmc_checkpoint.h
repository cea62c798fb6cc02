// llm.c's GPT-2 checkpoint (train_gpt2.c, version 3: fp32, padded vocabulary),
// read and written so weights move between llm.c and llm.dion:
//   int32[256] header: 20240326, 3, maxT, V, L, NH, C, Vp, rest 0
//   float32 tensors, each for all layers at once, in this order:
//     wte[Vp,C] wpe[maxT,C] ln1w[L,C] ln1b[L,C] qkvw[L,3C,C] qkvb[L,3C] attprojw[L,C,C]
//     attprojb[L,C] ln2w[L,C] ln2b[L,C] fcw[L,4C,C] fcb[L,4C] fcprojw[L,C,4C] fcprojb[L,C] lnfw[C] lnfb[C]
// It covers GPT-2 exactly: tied embeddings, biases, an MLP of 4 x C.
#pragma once

#include <span>
#include <string>

#include "model/gpt.h"

namespace llmdion {

constexpr int32_t kLlmcCheckpointMagic = 20240326, kLlmcCheckpointVersion = 3;

// The model shape stored in an llm.c checkpoint. Throws std::runtime_error.
GptShape read_llmc_shape(const std::string& path);

// Throws unless `path` is an llm.c checkpoint of exactly `shape` (its header alone).
void check_llmc_checkpoint(const std::string& path, const GptShape& shape);

// Loads the weights into params (laid out by gpt_layout(shape)); the file's
// shape must equal `shape`, else a clear error names both.
void read_llmc_checkpoint(const std::string& path, const GptShape& shape, std::span<float> params);

// Throws, naming path, for shapes llm.c's format cannot hold.
void check_llmc_compatible(const GptShape& shape, const std::string& path);

// Writes params as an llm.c checkpoint (atomically). Throws for shapes llm.c
// cannot hold (untied head, no biases, MLP ratio other than 4).
void write_llmc_checkpoint(const std::string& path, const GptShape& shape, std::span<const float> params);

}  // namespace llmdion
