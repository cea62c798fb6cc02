// The shard plan: every parameter is updated by exactly one rank; matrices go
// whole to one owner with the orthonormalization cost balanced; AdamW
// elements split into near-equal contiguous ranges.
#include <gtest/gtest.h>

#include <algorithm>

#include "dist/shard_plan.h"

namespace llmdion {
namespace {

GptShape paper_like() {
  GptShape s;
  s.n_layer = 6, s.n_head = 4, s.d_model = 64, s.seq_len = 32, s.vocab_size = 500;
  s.padded_vocab = padded_vocab_size(s.vocab_size), s.mlp_hidden = 256, s.tied_embeddings = false;
  return s;
}

TEST(ShardPlan, every_value_has_exactly_one_updating_rank) {
  const GptLayout layout = gpt_layout(paper_like());
  for (bool matrix_optimizer : {true, false})
    for (int world : {1, 2, 3, 4, 7}) {
      const ShardPlan plan = plan_shards(layout, matrix_optimizer, world);
      std::vector<int> updates(size_t(layout.num_params), 0);
      for (size_t i = 0; i < layout.tensors.size(); i++) {
        const ParamTensor& t = layout.tensors[i];
        EXPECT_EQ(plan.matrix_owner[i] >= 0, matrix_optimizer && t.role == ParamRole::kMatrix) << t.name;
        if (plan.matrix_owner[i] >= 0)
          for (int64_t k = 0; k < t.numel(); k++) updates[size_t(t.offset + k)]++;
      }
      std::vector<int64_t> adamw_values(size_t(world), 0);
      for (int r = 0; r < world; r++)
        for (const AdamwPiece& piece : plan.adamw[size_t(r)]) {
          EXPECT_EQ(piece.slice.name, layout.tensors[piece.tensor].name);
          adamw_values[size_t(r)] += piece.slice.numel;
          for (int64_t k = 0; k < piece.slice.numel; k++) updates[size_t(piece.slice.offset + k)]++;
        }
      EXPECT_TRUE(std::all_of(updates.begin(), updates.end(), [](int u) { return u == 1; }))
          << "world " << world << (matrix_optimizer ? " with" : " without") << " a matrix optimizer";
      const auto [low, high] = std::minmax_element(adamw_values.begin(), adamw_values.end());
      EXPECT_LE(*high - *low, 1) << "AdamW ranges are not balanced";
    }
}

TEST(ShardPlan, matrix_owners_balance_the_orthonormalization_cost) {
  const GptLayout layout = gpt_layout(paper_like());
  for (int world : {2, 3, 4}) {
    const ShardPlan plan = plan_shards(layout, true, world);
    std::vector<double> load(size_t(world), 0.0);
    double largest = 0;
    for (size_t i = 0; i < layout.tensors.size(); i++) {
      if (plan.matrix_owner[i] < 0) continue;
      const double m = double(layout.tensors[i].shape[0]), n = double(layout.tensors[i].shape[1]);
      load[size_t(plan.matrix_owner[i])] += m * n * std::min(m, n);
      largest = std::max(largest, m * n * std::min(m, n));
    }
    const auto [low, high] = std::minmax_element(load.begin(), load.end());
    // Greedy largest-first: no rank exceeds another by more than one matrix.
    EXPECT_LE(*high - *low, largest) << "world " << world;
  }
}

}  // namespace
}  // namespace llmdion
