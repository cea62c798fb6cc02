#include "dist/sharded_optimizer.h"

#include <algorithm>
#include <sstream>

#include "dist/shard_plan.h"
#include "optim/matrix_param.h"

namespace llmdion {
namespace {

// A stretch of the flat parameter buffer.
struct Region {
  int64_t offset, length;
};

class ShardedOptimizer final : public Optimizer {
 public:
  ShardedOptimizer(Comm& comm, std::unique_ptr<Optimizer> local, std::vector<std::vector<Region>> regions)
      : comm_(comm), local_(std::move(local)), regions_(std::move(regions)) {
    for (const auto& rank_regions : regions_) {
      int64_t n = 0;
      for (const Region& r : rank_regions) n += r.length;
      counts_.push_back(n);
    }
    send_.resize(size_t(counts_[size_t(comm_.rank())]));
    int64_t total = 0;
    for (int64_t c : counts_) total += c;
    receive_.resize(size_t(total));
  }

  void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count) override {
    local_->step(params, grads, lr_scale, update_count);
    // Pack this rank's updated values, gather everyone's, unpack the others'.
    int64_t at = 0;
    for (const Region& r : regions_[size_t(comm_.rank())])
      std::copy_n(params.data() + r.offset, r.length, send_.data() + at), at += r.length;
    comm_.all_gather(send_, receive_, counts_);
    at = 0;
    for (int rank = 0; rank < comm_.world_size(); rank++) {
      for (const Region& r : regions_[size_t(rank)]) {
        if (rank != comm_.rank()) std::copy_n(receive_.data() + at, r.length, params.data() + r.offset);
        at += r.length;
      }
    }
  }
  std::vector<OptimizerState> state() override { return local_->state(); }
  std::string describe() const override {
    std::ostringstream out;
    out << local_->describe() << " [rank " << comm_.rank() << " of " << comm_.world_size() << ": updates "
        << counts_[size_t(comm_.rank())] << " values and holds their state]";
    return out.str();
  }

 private:
  Comm& comm_;
  std::unique_ptr<Optimizer> local_;
  std::vector<std::vector<Region>> regions_;  // per rank, in the order its values are packed
  std::vector<int64_t> counts_;
  std::vector<float> send_, receive_;
};

}  // namespace

std::unique_ptr<Optimizer> make_distributed_optimizer(const Config& config, const GptLayout& layout, Comm& comm) {
  if (comm.world_size() == 1) return make_optimizer(config, layout);
  const bool matrix_optimizer = config.optim.matrix != "adamw";
  const ShardPlan plan = plan_shards(layout, matrix_optimizer, comm.world_size());
  std::vector<std::vector<Region>> regions(size_t(comm.world_size()));
  std::vector<MatrixParam> matrices;
  std::vector<ParamSlice> matrix_slices, other_slices;
  for (size_t i = 0; i < layout.tensors.size(); i++) {
    const ParamTensor& t = layout.tensors[i];
    const int owner = plan.matrix_owner[i];
    if (owner < 0) continue;
    regions[size_t(owner)].push_back({t.offset, t.numel()});
    if (owner == comm.rank()) matrices.push_back({t.name, t.offset, t.shape[0], t.shape[1]});
  }
  for (int rank = 0; rank < comm.world_size(); rank++)
    for (const AdamwPiece& piece : plan.adamw[size_t(rank)]) {
      regions[size_t(rank)].push_back({piece.slice.offset, piece.slice.numel});
      if (rank != comm.rank()) continue;
      (layout.tensors[piece.tensor].role == ParamRole::kMatrix ? matrix_slices : other_slices).push_back(piece.slice);
    }
  return std::make_unique<ShardedOptimizer>(
      comm, make_optimizer_over(config, std::move(matrices), std::move(matrix_slices), std::move(other_slices)),
      std::move(regions));
}

}  // namespace llmdion
