#include "dist/sharded_optimizer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "dist/shard_plan.h"
#include "optim/dion2.h"
#include "optim/matrix_param.h"
#include "optim/selection.h"

namespace llmdion {
namespace {

// A part of the weights one rank updates: a stretch of the flat buffer sent
// whole, or (slices > 0) a Dion2 matrix of which only its `slices` selected
// rows or columns are sent: the list of their indices, then their values.
struct Part {
  int64_t offset, length;        // the stretch; a sliced matrix's is rows * cols
  int64_t rows = 0, cols = 0;
  SliceDim dim = SliceDim::kRows;
  int64_t slices = 0;
  int64_t message() const {
    return slices == 0 ? length : slices + slices * (dim == SliceDim::kRows ? cols : rows);
  }
};

// The weights' all-gather goes in rounds: one per matrix shape, in the order
// the matrix optimizer steps its shape groups (shape_groups(): (rows, cols)
// order), then one for the AdamW pieces, which step last. Round k carries every
// rank's parts of its kind. A rank starts a round once the step has updated all
// its own parts of it (ParamsUpdated) and every earlier round has started, so
// the weights of one shape travel while the next shape is orthonormalized; all
// ranks start the rounds in the same order.
class ShardedOptimizer final : public Optimizer {
 public:
  ShardedOptimizer(Comm& comm, std::shared_ptr<MatrixOps> ops, std::unique_ptr<Optimizer> local,
                   const std::vector<std::vector<Part>>& parts, const OptimConfig& config)
      : comm_(comm), ops_(std::move(ops)), local_(std::move(local)), config_(config) {
    const int ranks = comm_.world_size(), me = comm_.rank();
    // A part's round: its matrix shape, or after every shape for AdamW's (rows 0).
    auto kind = [](const Part& p) {
      constexpr int64_t kLast = std::numeric_limits<int64_t>::max();
      return p.rows == 0 ? std::pair{kLast, kLast} : std::pair{p.rows, p.cols};
    };
    std::map<std::pair<int64_t, int64_t>, Round> by_kind;
    for (int r = 0; r < ranks; r++)
      for (const Part& p : parts[size_t(r)]) {
        Round& round = by_kind[kind(p)];
        round.parts.resize(size_t(ranks)), round.counts.resize(size_t(ranks), 0);
        round.parts[size_t(r)].push_back(p), round.counts[size_t(r)] += p.message();
      }
    int64_t send_at = 0, receive_at = 0;
    for (auto& [key, round] : by_kind) {
      round.send_at = send_at, round.receive_at = receive_at;
      send_at += round.counts[size_t(me)];
      receive_at += std::accumulate(round.counts.begin(), round.counts.end(), int64_t(0));
      for (const Part& p : round.parts[size_t(me)]) round_of_offset_[p.offset] = rounds_.size();
      rounds_.push_back(std::move(round));
    }
    sent_per_step_ = send_at;
    send_ = ops_->allocate(send_at);
    receive_ = ops_->allocate(receive_at);
  }

  using Optimizer::step;
  void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count,
            const ParamsUpdated&) override {
    const size_t me = size_t(comm_.rank());
    for (Round& round : rounds_) round.waiting = int64_t(round.parts[me].size());
    size_t next = 0;  // the first round not started
    auto start_ready_rounds = [&] {
      for (; next < rounds_.size() && rounds_[next].waiting == 0; next++) start(rounds_[next], params.data());
    };
    start_ready_rounds();  // rounds with nothing of this rank's
    local_->step(params, grads, lr_scale, update_count, [&](int64_t offset) {
      const auto found = round_of_offset_.find(offset);
      if (found == round_of_offset_.end()) return;  // not sent (compressed sync's matrices)
      rounds_[found->second].waiting--;
      start_ready_rounds();
    });
    for (; next < rounds_.size(); next++) start(rounds_[next], params.data());
    comm_.wait_all();
    // Dion2's decay, as Dion2::step computes it.
    const float keep = weight_decay_factor(float(config_.lr * lr_scale), config_.weight_decay);
    for (const Round& round : rounds_) {
      const float* in = receive_ + round.receive_at;
      for (size_t rank = 0; rank < round.parts.size(); rank++)
        for (const Part& p : round.parts[rank]) {
          if (rank != me) unpack(p, in, params.data(), keep);
          in += p.message();
        }
    }
  }
  std::vector<OptimizerState> state() override { return local_->state(); }
  std::string describe() const override {
    std::ostringstream out;
    out << local_->describe() << " [rank " << comm_.rank() << " of " << comm_.world_size() << ": sends "
        << sent_per_step_ << " values a step of what it updates in " << rounds_.size()
        << " gathers, and holds their state]";
    return out.str();
  }

 private:
  struct Round {
    std::vector<std::vector<Part>> parts;  // per rank
    std::vector<int64_t> counts;           // per rank: its parts' messages
    int64_t send_at = 0, receive_at = 0;   // this rank's block in send_; the round in receive_
    int64_t waiting = 0;                   // this rank's parts of it the step has yet to update
  };

  void start(const Round& round, const float* params) {
    float* out = send_ + round.send_at;
    for (const Part& p : round.parts[size_t(comm_.rank())]) out = pack(p, params, out);
    const int64_t total = std::accumulate(round.counts.begin(), round.counts.end(), int64_t(0));
    comm_.start_all_gather({send_ + round.send_at, size_t(round.counts[size_t(comm_.rank())])},
                           {receive_ + round.receive_at, size_t(total)}, round.counts);
  }

  // A whole part as it is; a sliced one as its indices, then gather_slices' block of the selected slices.
  float* pack(const Part& p, const float* params, float* out) {
    if (p.slices == 0) {
      ops_->copy(p.length, params + p.offset, out);
      return out + p.length;
    }
    const SliceSelection* selection = local_->changed_slices(p.offset);
    if (!selection || int64_t(selection->indices.size()) != p.slices)
      throw std::logic_error("the matrix optimizer did not report its selected slices");
    indices_.assign(selection->indices.begin(), selection->indices.end());  // exact below 2^24
    ops_->copy_from_host(indices_, out);
    ops_->gather_slices(p.dim, p.rows, p.cols, params + p.offset, selection->indices, out + p.slices);
    return out + p.message();
  }

  // Another rank's part into the weights: whole, or (Dion2) the decay every
  // entry gets, then the selected slices set to the owner's values.
  void unpack(const Part& p, const float* in, float* params, float keep) {
    float* w = params + p.offset;
    if (p.slices == 0) {
      ops_->copy(p.length, in, w);
      return;
    }
    indices_.resize(size_t(p.slices));
    ops_->copy_to_host(in, indices_);
    selected_.assign(indices_.begin(), indices_.end());
    ops_->scale(p.length, keep, w);
    ops_->set_slices(p.dim, p.rows, p.cols, w, selected_, 1.0f, in + p.slices);
  }

  Comm& comm_;
  std::shared_ptr<MatrixOps> ops_;  // the weights' backend: packing and unpacking run where they live
  std::unique_ptr<Optimizer> local_;
  OptimConfig config_;
  std::vector<Round> rounds_;
  std::unordered_map<int64_t, size_t> round_of_offset_;  // this rank's parts
  int64_t sent_per_step_ = 0;
  float *send_ = nullptr, *receive_ = nullptr;
  std::vector<float> indices_;     // a sliced part's indices, as they travel
  std::vector<int64_t> selected_;  // and as the ops take them
};

// The reduce-scatter of gradients, each rank keeping the mean of the parts it
// updates, in buckets by where the backward finishes them (GradientsReady,
// gpt.h): bucket k holds the parts at offsets in [froms[k], froms[k - 1]).
// As the backward reports a stretch final, its buckets are packed (every
// rank's parts, in rank order) and their reduce-scatter started, so they
// travel while the backward of the layers below runs; finish() starts any
// bucket not yet reported, waits for all, averages and returns the global
// norm. Gradients that stay local (the matrices under compressed sync,
// averaged later only where selected) count in the norm with each rank's own
// values: their sum over ranks is not the averaged gradient's norm, but a NaN
// or Inf anywhere shows in it. in_bf16: the gradients travel rounded to bf16.
class GradientReduceScatter {
 public:
  GradientReduceScatter(Comm& comm, std::shared_ptr<MatrixOps> ops, const std::vector<std::vector<Part>>& parts,
                        std::vector<int64_t> froms, std::vector<ParamSlice> local, bool in_bf16)
      : comm_(comm), ops_(std::move(ops)), local_(std::move(local)), in_bf16_(in_bf16) {
    const int ranks = comm_.world_size();
    int64_t send_total = 0, mine_total = 0;
    for (size_t k = 0; k < froms.size(); k++) {
      Bucket bucket{froms[k], std::vector<std::vector<Part>>(size_t(ranks)), std::vector<int64_t>(size_t(ranks), 0),
                    send_total, mine_total};
      const int64_t until = k == 0 ? std::numeric_limits<int64_t>::max() : froms[k - 1];
      for (int r = 0; r < ranks; r++)
        for (const Part& p : parts[size_t(r)])
          if (p.offset >= froms[k] && p.offset < until) bucket.parts[size_t(r)].push_back(p), bucket.counts[size_t(r)] += p.length;
      send_total += std::accumulate(bucket.counts.begin(), bucket.counts.end(), int64_t(0));
      mine_total += bucket.counts[size_t(comm_.rank())];
      buckets_.push_back(std::move(bucket));
    }
    mine_count_ = mine_total;
    if (in_bf16_) send_bf16_ = ops_->allocate_bf16(send_total), mine_bf16_ = ops_->allocate_bf16(mine_total);
    else send_ = ops_->allocate(send_total);
    mine_ = ops_->allocate(mine_total);
  }

  // The backward's report: every gradient at or past `from` is final.
  void ready(std::span<const float> grads, int64_t from) {
    for (Bucket& bucket : buckets_)
      if (!bucket.started && bucket.from >= from) start(bucket, grads);
  }

  double finish(std::span<float> grads) {
    for (Bucket& bucket : buckets_)
      if (!bucket.started) start(bucket, grads);
    comm_.wait_all();
    for (Bucket& bucket : buckets_) bucket.started = false;
    if (in_bf16_) ops_->copy_from_bf16(mine_count_, mine_bf16_, mine_);
    // The mean over ranks, in place; its squares in one sum; then into the gradients.
    ops_->scale(mine_count_, 1.0f / float(comm_.world_size()), mine_);
    double sum_squares = ops_->sum_squares(mine_count_, mine_);
    for (const Bucket& bucket : buckets_) {
      const float* in = mine_ + bucket.mine_at;
      for (const Part& p : bucket.parts[size_t(comm_.rank())]) {
        ops_->copy(p.length, in, grads.data() + p.offset);
        in += p.length;
      }
    }
    for (const ParamSlice& slice : local_) sum_squares += ops_->sum_squares(slice.numel, grads.data() + slice.offset);
    return std::sqrt(comm_.sum_over_ranks(sum_squares));
  }

 private:
  struct Bucket {
    int64_t from;
    std::vector<std::vector<Part>> parts;  // per rank
    std::vector<int64_t> counts;           // per rank: the values of its parts
    int64_t send_at, mine_at;              // where the bucket lies in the send and receive buffers
    bool started = false;
  };

  void start(Bucket& bucket, std::span<const float> grads) {
    bucket.started = true;
    const int64_t total = std::accumulate(bucket.counts.begin(), bucket.counts.end(), int64_t(0));
    if (total == 0) return;
    int64_t at = bucket.send_at;
    for (const std::vector<Part>& rank_parts : bucket.parts)
      for (const Part& p : rank_parts) {
        if (in_bf16_) ops_->copy_to_bf16(p.length, grads.data() + p.offset, send_bf16_ + at);
        else ops_->copy(p.length, grads.data() + p.offset, send_ + at);
        at += p.length;
      }
    const size_t mine = size_t(bucket.counts[size_t(comm_.rank())]);
    if (in_bf16_)
      comm_.start_reduce_scatter_sum({send_bf16_ + bucket.send_at, size_t(total)}, {mine_bf16_ + bucket.mine_at, mine},
                                     bucket.counts);
    else
      comm_.start_reduce_scatter_sum({send_ + bucket.send_at, size_t(total)}, {mine_ + bucket.mine_at, mine},
                                     bucket.counts);
  }

  Comm& comm_;
  std::shared_ptr<MatrixOps> ops_;
  std::vector<Bucket> buckets_;
  std::vector<ParamSlice> local_;
  bool in_bf16_;
  int64_t mine_count_ = 0;
  float* send_ = nullptr;                             // fp32: the packed parts
  bf16 *send_bf16_ = nullptr, *mine_bf16_ = nullptr;  // bf16: the packed parts, and this rank's sums
  float* mine_ = nullptr;                             // this rank's sums, then their mean
};

}  // namespace

DistributedOptimizer make_distributed_optimizer(const Config& config, const GptLayout& layout, Comm& comm) {
  if (comm.world_size() == 1) return {make_optimizer(config, layout), {}, {}};
  const bool matrix_optimizer = config.optim.matrix != "adamw";
  const ShardPlan plan = plan_shards(layout, matrix_optimizer, comm.world_size());
  std::vector<std::vector<Part>> parts(size_t(comm.world_size()));
  std::vector<MatrixParam> matrices;
  std::vector<ParamSlice> matrix_slices, other_slices;
  // Compressed sync: every rank steps every matrix from its own momentum, with
  // the selected slices averaged; nothing of the matrices is sent afterwards.
  const bool compressed = config.optim.sync == "selected";
  const std::shared_ptr<MatrixOps> ops = make_matrix_ops(config.run.device);
  std::function<void(std::span<float>)> average;
  if (compressed)
    average = [&comm, ops](std::span<float> values) {
      comm.all_reduce_sum(values);
      ops->scale(int64_t(values.size()), 1.0f / float(comm.world_size()), values.data());
    };
  for (size_t i = 0; i < layout.tensors.size(); i++) {
    const ParamTensor& t = layout.tensors[i];
    const int owner = plan.matrix_owner[i];
    if (owner < 0) continue;
    if (compressed) {
      matrices.push_back({t.name, t.offset, t.shape[0], t.shape[1]});
      continue;
    }
    Part part{t.offset, t.numel(), t.shape[0], t.shape[1]};
    if (config.optim.matrix == "dion2") {
      part.dim = dion2_select_dim(config.optim.select_dim, part.rows, part.cols);
      part.slices = selected_count(config.optim.alpha, part.dim == SliceDim::kRows ? part.rows : part.cols);
    }
    parts[size_t(owner)].push_back(part);
    if (owner == comm.rank()) matrices.push_back({t.name, t.offset, t.shape[0], t.shape[1]});
  }
  for (int rank = 0; rank < comm.world_size(); rank++)
    for (const AdamwPiece& piece : plan.adamw[size_t(rank)]) {
      parts[size_t(rank)].push_back({piece.slice.offset, piece.slice.numel});
      if (rank != comm.rank()) continue;
      (layout.tensors[piece.tensor].role == ParamRole::kMatrix ? matrix_slices : other_slices).push_back(piece.slice);
    }
  // Gradients: the owner of a part needs its whole gradient, sliced or not.
  std::vector<ParamSlice> local;  // compressed sync: the matrices, whose gradients are never averaged whole
  if (compressed)
    for (const MatrixParam& m : matrices) local.push_back({m.name, m.offset, m.rows * m.cols});
  // The stretches the backward reports final, in its order: the head, each block from the last, the embeddings.
  std::vector<int64_t> froms(layout.block_starts.rbegin(), layout.block_starts.rend());
  froms.push_back(0);
  auto reducer = std::make_shared<GradientReduceScatter>(comm, ops, parts, std::move(froms), std::move(local),
                                                         config.dist.grad_dtype == "bf16");
  return {std::make_unique<ShardedOptimizer>(
              comm, ops,
              make_optimizer_over(config, std::move(matrices), std::move(matrix_slices), std::move(other_slices),
                                  std::move(average)),
              std::move(parts), config.optim),
          [reducer](std::span<const float> grads, int64_t from) { reducer->ready(grads, from); },
          [reducer](std::span<float> grads) { return reducer->finish(grads); }};
}

}  // namespace llmdion
