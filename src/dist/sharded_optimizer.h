// The optimizer of one rank among several (ZeRO-1 style, shard_plan.h): it
// holds the state of, and updates, only this rank's matrices and AdamW
// pieces; then every rank's updated values are all-gathered, so all ranks end
// the step with the same whole weights. With one rank it is the plain optimizer.
#pragma once

#include <memory>

#include "config/config.h"
#include "dist/comm.h"
#include "model/gpt.h"
#include "optim/optimizer.h"

namespace llmdion {

std::unique_ptr<Optimizer> make_distributed_optimizer(const Config& config, const GptLayout& layout, Comm& comm);

}  // namespace llmdion
