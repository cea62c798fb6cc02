// Who updates what when several ranks train one model (ZeRO-1 style: the
// optimizer state is split, the weights are whole on every rank).
//   Matrices of the matrix optimizer (Muon, Dion, Dion2) need whole matrices:
//   each has one owner, chosen greedily to balance the orthonormalization cost
//   m n min(m, n) (largest first, to the least-loaded rank, ties to the lower
//   rank); its momentum (and Dion's Q) lives only there.
//   AdamW's parameters are element-wise: their concatenation in layout order
//   is cut into world contiguous ranges of near-equal length.
// After each step every rank's updated values reach all ranks (sharded_optimizer.h).
#pragma once

#include <vector>

#include "model/gpt.h"
#include "optim/optimizer.h"

namespace llmdion {

// A piece of an AdamW tensor: the tensor's index in the layout and the elements.
struct AdamwPiece {
  size_t tensor;
  ParamSlice slice;
};

struct ShardPlan {
  std::vector<int> matrix_owner;                // per layout tensor: owner of a matrix-optimizer matrix, else -1
  std::vector<std::vector<AdamwPiece>> adamw;   // per rank: its pieces of the AdamW tensors, in layout order
};

// matrix_optimizer: whether matrices go to a matrix optimizer (false: AdamW takes them too).
ShardPlan plan_shards(const GptLayout& layout, bool matrix_optimizer, int world_size);

}  // namespace llmdion
