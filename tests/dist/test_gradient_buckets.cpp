// The gradients' reduce-scatter in buckets (sharded_optimizer.h), seen from
// rank 0 of two through a Comm that stands in for rank 1 (which contributes
// zeros): every bucket's reduce-scatter starts inside the backward, as soon as
// the stretch it covers is reported final, none is left for the end, and what
// comes back is rank 0's own gradient halved for exactly the parts rank 0
// updates (shard_plan.h), in fp32 and in bf16.
#include <gtest/gtest.h>

#include <cmath>
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

TEST(GradientBuckets, start_during_the_backward_and_return_the_mean_of_exactly_this_ranks_parts) {
  GptShape s;
  s.n_layer = 3, s.n_head = 2, s.d_model = 32, s.seq_len = 8, s.vocab_size = 300;
  s.padded_vocab = padded_vocab_size(s.vocab_size), s.mlp_hidden = 128, s.tied_embeddings = false;
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

}  // namespace
}  // namespace llmdion
