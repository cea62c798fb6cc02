// The overlapped collectives of the sharded optimizer (sharded_optimizer.h),
// seen from rank 0 of two through a Comm that stands in for rank 1 (which
// contributes zeros). Gradients: every bucket's reduce-scatter starts inside
// the backward, as soon as the stretch it covers is reported final, none is
// left for the end, and what comes back is rank 0's own gradient halved for
// exactly the parts rank 0 updates (shard_plan.h), in fp32 and in bf16.
// Weights: the gather of each matrix shape starts inside the step, once this
// rank's matrices of that shape are updated and before the next shape's are.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <stdexcept>

#include "core/bf16.h"
#include "dist/shard_plan.h"
#include "dist/sharded_optimizer.h"
#include "model/model.h"

namespace llmdion {
namespace {

class RankZeroOfTwo final : public Comm {
 public:
  int starts = 0, waits = 0;
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  void all_reduce_sum(std::span<float>) override {}  // + rank 1's zeros
  void all_reduce_sum(std::span<double>) override {}
  void all_reduce_sum(std::span<bf16>) override {}
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, std::span<const int64_t>) override {
    std::copy(in.begin(), in.begin() + long(out.size()), out.begin());  // block 0 + zeros
  }
  void reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out, std::span<const int64_t>) override {
    std::copy(in.begin(), in.begin() + long(out.size()), out.begin());
  }
  void start_reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                std::span<const int64_t> counts) override {
    starts++, reduce_scatter_sum(in, out, counts);
  }
  void start_reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out,
                                std::span<const int64_t> counts) override {
    starts++, reduce_scatter_sum(in, out, counts);
  }
  std::function<void()> on_start_all_gather;
  void start_all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t>) override {
    if (on_start_all_gather) on_start_all_gather();
    std::copy(mine.begin(), mine.end(), all.begin());  // block 0; rank 1's blocks keep what they held
  }
  void wait_all() override { waits++; }
  void all_gather(std::span<const float>, std::span<float>, std::span<const int64_t>) override { unused(); }
  void all_gather(std::span<const bf16>, std::span<bf16>, std::span<const int64_t>) override { unused(); }
  void broadcast(std::span<float>, int) override { unused(); }
  void broadcast(std::span<bf16>, int) override { unused(); }
  void broadcast(std::string&, int) override { unused(); }
  void all_to_all(std::span<const float>, std::span<const int64_t>, std::span<float>,
                  std::span<const int64_t>) override {
    unused();
  }
  void all_to_all(std::span<const bf16>, std::span<const int64_t>, std::span<bf16>,
                  std::span<const int64_t>) override {
    unused();
  }
  void barrier() override {}
  [[noreturn]] void abort(int) override { throw std::logic_error("abort"); }

 private:
  [[noreturn]] static void unused() { throw std::logic_error("a collective the gradients' reduction does not use"); }
};

GptShape small_shape() {
  GptShape s;
  s.n_layer = 3, s.n_head = 2, s.d_model = 32, s.seq_len = 8, s.vocab_size = 300;
  s.padded_vocab = padded_vocab_size(s.vocab_size), s.mlp_hidden = 128, s.tied_embeddings = false;
  return s;
}

TEST(GradientBuckets, start_during_the_backward_and_return_the_mean_of_exactly_this_ranks_parts) {
  const GptShape s = small_shape();
  for (const char* grad_dtype : {"fp32", "bf16"}) {
    SCOPED_TRACE(grad_dtype);
    std::unique_ptr<Model> model = make_model(Device::kCpu, s, 2, s.seq_len);
    std::vector<float> params(size_t(model->layout().num_params));
    gpt_init(s, model->layout(), 5, params);
    model->copy_params_from_host(params);
    Config config;
    config.optim.matrix = "muon";
    config.dist.grad_dtype = grad_dtype;
    RankZeroOfTwo comm;
    DistributedOptimizer distributed = make_distributed_optimizer(config, model->layout(), comm);
    std::vector<int32_t> tokens(size_t(2 * s.seq_len));
    for (size_t i = 0; i < tokens.size(); i++) tokens[i] = int32_t(i * 37 % 300);
    model->zero_grads();
    model->forward(tokens.data(), tokens.data());
    std::vector<int> starts_at_report;
    model->backward(1.0f, [&](int64_t from) {
      distributed.gradients_ready(model->grads(), from);
      starts_at_report.push_back(comm.starts);
    });
    const int starts_in_backward = comm.starts;
    const std::vector<float> own(model->grads().begin(), model->grads().end());
    const double norm = distributed.reduce_gradients(model->grads());

    EXPECT_EQ(comm.starts, starts_in_backward) << "a bucket was left for the end";
    EXPECT_EQ(comm.waits, 1);
    ASSERT_EQ(starts_at_report.size(), size_t(s.n_layer + 2));
    EXPECT_GT(starts_at_report.front(), 0) << "the head's bucket did not start at its report";
    for (size_t r = 1; r < starts_at_report.size(); r++)
      EXPECT_GT(starts_at_report[r], starts_at_report[r - 1]) << "report " << r << " started no bucket";

    std::vector<bool> mine(own.size(), false);
    const ShardPlan plan = plan_shards(model->layout(), true, 2);
    for (size_t i = 0; i < model->layout().tensors.size(); i++)
      if (plan.matrix_owner[i] == 0) {
        const ParamTensor& t = model->layout().tensors[i];
        std::fill(mine.begin() + t.offset, mine.begin() + t.offset + t.numel(), true);
      }
    for (const AdamwPiece& piece : plan.adamw[0])
      std::fill(mine.begin() + piece.slice.offset, mine.begin() + piece.slice.offset + piece.slice.numel, true);
    const std::span<const float> reduced = model->grads();
    double sum_squares = 0;
    for (size_t i = 0; i < own.size(); i++) {
      const float sent = config.dist.grad_dtype == "bf16" ? to_float(round_to_bf16(own[i])) : own[i];
      const float want = mine[i] ? sent * 0.5f : own[i];
      ASSERT_EQ(reduced[i], want) << "gradient " << i << (mine[i] ? " (this rank's)" : " (another rank's)");
      if (mine[i]) sum_squares += double(want) * want;
    }
    EXPECT_NEAR(norm, std::sqrt(sum_squares), 1e-6 * norm);
  }
}

TEST(WeightGathers, each_shape_starts_inside_the_step_before_the_next_shape_is_updated) {
  const GptShape s = small_shape();
  std::unique_ptr<Model> model = make_model(Device::kCpu, s, 2, s.seq_len);
  const GptLayout& layout = model->layout();
  std::vector<float> initial(size_t(layout.num_params));
  gpt_init(s, layout, 5, initial);
  model->copy_params_from_host(initial);
  Config config;
  config.optim.matrix = "muon";
  RankZeroOfTwo comm;
  DistributedOptimizer distributed = make_distributed_optimizer(config, layout, comm);
  std::vector<std::vector<float>> at_start;
  comm.on_start_all_gather = [&] { at_start.emplace_back(model->params().begin(), model->params().end()); };
  std::vector<float> grads(initial.size());
  for (size_t i = 0; i < grads.size(); i++) grads[i] = float(i % 7) * 1e-3f - 3e-3f;
  std::copy(grads.begin(), grads.end(), model->grads().begin());
  distributed.optimizer->step(model->params(), model->grads(), 1.0, 1);

  // Rank 0's matrices by shape, in the order the rounds go: (rows, cols), then AdamW's round.
  const ShardPlan plan = plan_shards(layout, true, 2);
  std::map<std::pair<int64_t, int64_t>, std::vector<const ParamTensor*>> mine;
  std::map<std::pair<int64_t, int64_t>, bool> shapes;
  for (size_t i = 0; i < layout.tensors.size(); i++)
    if (plan.matrix_owner[i] >= 0) {
      const ParamTensor& t = layout.tensors[i];
      shapes[{t.shape[0], t.shape[1]}] = true;
      if (plan.matrix_owner[i] == 0) mine[{t.shape[0], t.shape[1]}].push_back(&t);
    }
  ASSERT_EQ(at_start.size(), shapes.size() + 1) << "one gather per shape and one for AdamW";
  ASSERT_GE(mine.size(), 2u) << "rank 0 should own matrices of several shapes";
  const std::span<const float> final_params = model->params();
  size_t round = 0;
  for (const auto& [shape, present] : shapes) {
    for (const auto& [other_shape, tensors] : mine)
      for (const ParamTensor* t : tensors)
        for (int64_t k = 0; k < t->numel(); k++) {
          const size_t i = size_t(t->offset + k);
          const float want = other_shape <= shape ? final_params[i] : initial[i];
          ASSERT_EQ(at_start[round][i], want) << "gather " << round << ": " << t->name
                                              << (other_shape <= shape ? " not yet updated" : " already updated");
        }
    round++;
  }
}

}  // namespace
}  // namespace llmdion
