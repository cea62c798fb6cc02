// The optimizer of one rank among several (ZeRO-1 style, shard_plan.h): it
// holds the state of, and updates, only this rank's matrices and AdamW
// pieces; then every rank's updated values are all-gathered, so all ranks end
// the step with the same whole weights. With one rank it is the plain optimizer.
//
// Dion2 sends only what changed (the Dion2 paper, section 3.2): for each of
// its matrices the owner sends the k selected rows or columns and their
// indices; every other rank applies the decay W *= 1 - lr wd itself (the same
// float operation, so the weights stay bit-identical) and writes the slices.
// The weight traffic of a Dion2 matrix is alpha of Muon's.
//
// Gradients travel the other way by reduce-scatter over a buffer laid out by
// owner: each rank receives the sum of only the gradients it updates, in fp32
// or (dist.grad_dtype: bf16) in bf16, half the bytes. It goes in buckets, one
// per stretch the backward reports final (the head, each block, the
// embeddings), each started as soon as it is reported, so the gradients of a
// layer travel while the backward of the layers below runs.
#pragma once

#include <functional>
#include <memory>
#include <span>

#include "config/config.h"
#include "dist/comm.h"
#include "model/gpt.h"
#include "optim/optimizer.h"

namespace llmdion {

struct DistributedOptimizer {
  std::unique_ptr<Optimizer> optimizer;
  // For the model's last backward of a step (Model::backward's GradientsReady):
  // starts the reduction of each stretch of gradients it reports final, so it
  // overlaps the rest of the backward. Empty with one rank.
  std::function<void(std::span<const float> grads, int64_t from)> gradients_ready;
  // Averages over the ranks the gradients this rank's optimizer reads and
  // returns the global norm of the averaged gradient (sum over ranks of each
  // rank's share). Empty with one rank: the gradients are already whole.
  std::function<double(std::span<float>)> reduce_gradients;
};

DistributedOptimizer make_distributed_optimizer(const Config& config, const GptLayout& layout, Comm& comm);

}  // namespace llmdion
