#include "dist/shard_plan.h"

#include <algorithm>

namespace llmdion {

ShardPlan plan_shards(const GptLayout& layout, bool matrix_optimizer, int world) {
  ShardPlan plan;
  plan.matrix_owner.assign(layout.tensors.size(), -1);
  plan.adamw.resize(size_t(world));

  // Matrices: largest orthonormalization cost first, each to the least-loaded rank.
  std::vector<size_t> matrices;
  for (size_t i = 0; i < layout.tensors.size(); i++)
    if (matrix_optimizer && layout.tensors[i].role == ParamRole::kMatrix) matrices.push_back(i);
  auto cost = [&](size_t i) {
    const int64_t m = layout.tensors[i].shape[0], n = layout.tensors[i].shape[1];
    return double(m) * double(n) * double(std::min(m, n));
  };
  std::stable_sort(matrices.begin(), matrices.end(), [&](size_t a, size_t b) { return cost(a) > cost(b); });
  std::vector<double> load(size_t(world), 0.0);
  for (size_t i : matrices) {
    const int rank = int(std::min_element(load.begin(), load.end()) - load.begin());
    plan.matrix_owner[i] = rank;
    load[size_t(rank)] += cost(i);
  }

  // AdamW: contiguous ranges of the concatenated elements.
  int64_t total = 0;
  for (size_t i = 0; i < layout.tensors.size(); i++)
    if (plan.matrix_owner[i] < 0) total += layout.tensors[i].numel();
  int64_t position = 0;  // in the concatenation
  for (size_t i = 0; i < layout.tensors.size(); i++) {
    const ParamTensor& t = layout.tensors[i];
    if (plan.matrix_owner[i] >= 0) continue;
    for (int r = 0; r < world; r++) {
      const int64_t begin = total * r / world, end = total * (r + 1) / world;
      const int64_t from = std::max(begin, position), to = std::min(end, position + t.numel());
      if (from < to) plan.adamw[size_t(r)].push_back({i, {t.name, t.offset + (from - position), to - from}});
    }
    position += t.numel();
  }
  return plan;
}

}  // namespace llmdion
