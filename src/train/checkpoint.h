// Checkpoints: everything a run needs to continue exactly where it stopped.
//
// out_dir/checkpoints/step_00000100/   (100 steps completed)
//   model.safetensors      fp32 weights by tensor name; wte/lm_head keep their
//                          padded rows (metadata vocab_size says how many are real)
//   optimizer.safetensors  the optimizer's state buffers (e.g. adamw.m, adamw.v); with
//                          several ranks, optimizer.rank<r>.safetensors: rank r's shard
//   state.yaml             step, tokens, optimizer update count, data position,
//                          seed, model shape, config hash and the resolved config
//   COMPLETE               written last: a folder without it is never read; it
//                          holds state.yaml's checksum (the tensors carry theirs)
// The folder is built as step_00000100.partial/ and renamed when complete.
// On load every checksum is checked and the weights and state must be finite:
// a damaged checkpoint is named, with the file and tensor, and never loaded.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/dataloader.h"
#include "dist/comm.h"
#include "model/model.h"
#include "optim/optimizer.h"

namespace llmdion {

struct TrainState {
  int64_t step = 0;          // steps completed
  int64_t tokens = 0;        // training tokens consumed
  int64_t update_count = 0;  // optimizer updates applied (skipped steps excluded)
  DataPosition data;         // the train loader's position
  uint64_t seed = 0;         // run.seed: data order and samples derive from it
  std::string config_yaml;   // the resolved config of the run (read back on load)
  int ranks = 1;             // the world size: optimizer state is sharded over that many ranks
  double seconds = 0;        // wall time of training so far, over every resume
};

// Writes a checkpoint of `state` and deletes all but the newest train.ckpt_keep (0: keep all).
// Called by every rank: each writes its shard of the optimizer state
// (optimizer.safetensors alone, optimizer.rank<r>.safetensors among several),
// rank 0 the weights, state.yaml and, last, COMPLETE. Returns its folder.
// Throws on every rank, writing nothing, when the ranks' weights differ in any bit.
std::string save_checkpoint(const std::string& out_dir, Model& model, Optimizer& optimizer, const TrainState& state,
                            const Config& config, Comm& comm);

// A checkpoint whose files are unreadable, truncated, fail their checksums or
// hold NaN or Inf: the message names the folder, the file and the tensor.
struct CheckpointDamaged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The complete checkpoint folders under out_dir, newest first.
std::vector<std::string> complete_checkpoints(const std::string& out_dir);

// A complete checkpoint's training state and config; throws CheckpointDamaged
// if state.yaml is damaged, std::runtime_error if its model shape differs from
// `shape` (when given).
TrainState read_checkpoint_state(const std::string& folder, const GptShape* shape);
// The weights of model.safetensors in `layout`'s order, checked (checksums,
// finite values); throws CheckpointDamaged or, for a missing tensor, std::runtime_error.
std::vector<float> read_checkpoint_weights(const std::string& folder, const GptLayout& layout);
// Restores the weights and this rank's optimizer state; throws CheckpointDamaged
// when a file is damaged, std::runtime_error when a tensor or a state buffer is
// missing or of another size.
void load_checkpoint_tensors(const std::string& folder, Model& model, Optimizer& optimizer, const Comm& comm);

}  // namespace llmdion
