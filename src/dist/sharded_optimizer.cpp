#include "dist/sharded_optimizer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <sstream>
#include <stdexcept>

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

// Per rank, the values its parts put in one collective: the weight messages,
// or (whole) the full stretches, as gradients travel.
std::vector<int64_t> block_counts(const std::vector<std::vector<Part>>& parts, bool whole) {
  std::vector<int64_t> counts;
  for (const auto& rank_parts : parts) {
    int64_t n = 0;
    for (const Part& p : rank_parts) n += whole ? p.length : p.message();
    counts.push_back(n);
  }
  return counts;
}

class ShardedOptimizer final : public Optimizer {
 public:
  ShardedOptimizer(Comm& comm, std::unique_ptr<Optimizer> local, std::vector<std::vector<Part>> parts,
                   const OptimConfig& config)
      : comm_(comm),
        local_(std::move(local)),
        parts_(std::move(parts)),
        config_(config),
        counts_(block_counts(parts_, false)),
        send_(size_t(counts_[size_t(comm_.rank())])),
        receive_(size_t(std::accumulate(counts_.begin(), counts_.end(), int64_t(0)))) {}

  void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count) override {
    local_->step(params, grads, lr_scale, update_count);
    float* out = send_.data();
    for (const Part& p : parts_[size_t(comm_.rank())]) out = pack(p, params.data(), out);
    comm_.all_gather(send_, receive_, counts_);
    // Dion2's decay, as Dion2::step computes it.
    const float keep = weight_decay_factor(float(config_.lr * lr_scale), config_.weight_decay);
    const float* in = receive_.data();
    for (int rank = 0; rank < comm_.world_size(); rank++)
      for (const Part& p : parts_[size_t(rank)]) {
        if (rank != comm_.rank()) unpack(p, in, params.data(), keep);
        in += p.message();
      }
  }
  std::vector<OptimizerState> state() override { return local_->state(); }
  std::string describe() const override {
    std::ostringstream out;
    out << local_->describe() << " [rank " << comm_.rank() << " of " << comm_.world_size() << ": sends "
        << counts_[size_t(comm_.rank())] << " values a step of what it updates, and holds their state]";
    return out.str();
  }

 private:
  float* pack(const Part& p, const float* params, float* out) const {
    if (p.slices == 0) return std::copy_n(params + p.offset, p.length, out);
    const SliceSelection* selection = local_->changed_slices(p.offset);
    if (!selection || int64_t(selection->indices.size()) != p.slices)
      throw std::logic_error("the matrix optimizer did not report its selected slices");
    for (int64_t index : selection->indices) *out++ = float(index);  // exact below 2^24
    const float* w = params + p.offset;
    for (int64_t index : selection->indices)
      for (int64_t j = 0; j < (p.dim == SliceDim::kRows ? p.cols : p.rows); j++)
        *out++ = p.dim == SliceDim::kRows ? w[index * p.cols + j] : w[j * p.cols + index];
    return out;
  }

  static void unpack(const Part& p, const float* in, float* params, float keep) {
    float* w = params + p.offset;
    if (p.slices == 0) {
      std::copy_n(in, p.length, w);
      return;
    }
    #pragma omp parallel for
    for (int64_t i = 0; i < p.length; i++) w[i] *= keep;
    const float* values = in + p.slices;
    const int64_t slice_length = p.dim == SliceDim::kRows ? p.cols : p.rows;
    for (int64_t s = 0; s < p.slices; s++) {
      const int64_t index = int64_t(in[s]);
      for (int64_t j = 0; j < slice_length; j++)
        (p.dim == SliceDim::kRows ? w[index * p.cols + j] : w[j * p.cols + index]) = values[s * slice_length + j];
    }
  }

  Comm& comm_;
  std::unique_ptr<Optimizer> local_;
  std::vector<std::vector<Part>> parts_;  // per rank, in the order its values are packed
  OptimConfig config_;
  std::vector<int64_t> counts_;
  std::vector<float> send_, receive_;
};

// The reduce-scatter of gradients: every rank's parts, whole, in rank order;
// each rank keeps the mean of its own and returns the global norm.
class GradientReduceScatter {
 public:
  GradientReduceScatter(Comm& comm, std::vector<std::vector<Part>> parts)
      : comm_(comm),
        parts_(std::move(parts)),
        counts_(block_counts(parts_, true)),
        send_(size_t(std::accumulate(counts_.begin(), counts_.end(), int64_t(0)))),
        mine_(size_t(counts_[size_t(comm_.rank())])) {}

  double operator()(std::span<float> grads) {
    float* out = send_.data();
    for (const auto& rank_parts : parts_)
      for (const Part& p : rank_parts) out = std::copy_n(grads.data() + p.offset, p.length, out);
    comm_.reduce_scatter_sum(send_, mine_, counts_);
    const float inverse = 1.0f / float(comm_.world_size());
    double sum_squares = 0;
    const float* in = mine_.data();
    for (const Part& p : parts_[size_t(comm_.rank())])
      for (int64_t i = 0; i < p.length; i++) {
        const float g = *in++ * inverse;
        grads[size_t(p.offset + i)] = g;
        sum_squares += double(g) * double(g);
      }
    return std::sqrt(comm_.sum_over_ranks(sum_squares));
  }

 private:
  Comm& comm_;
  std::vector<std::vector<Part>> parts_;
  std::vector<int64_t> counts_;
  std::vector<float> send_, mine_;
};

}  // namespace

DistributedOptimizer make_distributed_optimizer(const Config& config, const GptLayout& layout, Comm& comm) {
  if (comm.world_size() == 1) return {make_optimizer(config, layout), {}};
  const bool matrix_optimizer = config.optim.matrix != "adamw";
  const ShardPlan plan = plan_shards(layout, matrix_optimizer, comm.world_size());
  std::vector<std::vector<Part>> parts(size_t(comm.world_size()));
  std::vector<MatrixParam> matrices;
  std::vector<ParamSlice> matrix_slices, other_slices;
  // Compressed sync: every rank steps every matrix from its own momentum, with
  // the selected slices averaged; nothing of the matrices is sent afterwards.
  const bool compressed = config.optim.sync == "selected";
  std::function<void(std::span<float>)> average;
  if (compressed)
    average = [&comm](std::span<float> values) {
      comm.all_reduce_sum(values);
      for (float& v : values) v *= 1.0f / float(comm.world_size());
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
  auto reducer = std::make_shared<GradientReduceScatter>(comm, parts);
  return {std::make_unique<ShardedOptimizer>(
              comm,
              make_optimizer_over(config, std::move(matrices), std::move(matrix_slices), std::move(other_slices),
                                  std::move(average)),
              std::move(parts), config.optim),
          [reducer](std::span<float> grads) { return (*reducer)(grads); }};
}

}  // namespace llmdion
