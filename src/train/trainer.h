// The training loop: one run from a resolved config.
//
// Per step: for each micro-step, the next micro-batch, forward, backward with
// loss scale 1/grad_accum (gradients add up); then the global gradient norm,
// a stop (or a skipped step) on NaN/Inf, clipping to train.grad_clip, the
// scheduled learning rate, and one optimizer update. Evaluations, samples and
// checkpoints follow at their cadence. SIGINT/SIGTERM finish the step,
// checkpoint and return.
//
// out_dir/loss.csv, one row per step (s = 0-based step index):
//   step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,opt_ms,tokens_per_s,comm_bytes
//   tokens = tokens seen after step s; lr = the matrix group's lr of step s;
//   val_loss after the step's update, at step 0, every train.eval_every steps
//   and at the end, else empty; opt_ms the optimizer step alone;
//   comm_bytes what rank 0 sent in the step, as dist/comm.h counts it (evaluation
//   included; 0 alone). Columns may be appended, never reordered.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

#include "config/config.h"
#include "dist/comm.h"
#include "optim/optimizer.h"

namespace llmdion {

// out_dir holds a run of another config (finished, or with checkpoints):
// nothing was written, and train_gpt exits with kExitAnotherRun, so that the
// sweep scripts tell it from a failure.
struct OutDirHoldsAnotherRun : std::runtime_error {
  using std::runtime_error::runtime_error;
};
constexpr int kExitAnotherRun = 3;

// Returns the process exit code. With several ranks (comm), each reads its
// share of every global batch; gradients and losses are averaged over ranks,
// so every rank takes the same optimizer step, and rank 0 writes the outputs.
//
// after_update, when given, is called after each optimizer update with the
// 0-based step and the optimizer, whose state it may read (a diagnostic such
// as bench/dion2_decay_probe.cpp); it must not change anything.
using AfterUpdate = std::function<void(int64_t step, Optimizer& optimizer, const GptLayout& layout)>;
int run_training(const Config& config, Comm& comm, const AfterUpdate& after_update = {});

// Prints the model, its parameter counts by role and the optimizer of each
// group to stdout, allocating no model.
void describe_run(const Config& config);

}  // namespace llmdion
