#include "optim/optimizer.h"

#include "optim/adamw.h"
#include "optim/dion.h"
#include "optim/dion2.h"
#include "optim/matrix_ops.h"
#include "optim/muon.h"

namespace llmdion {
namespace {

// A matrix optimizer and the AdamW of the other parameters, stepped in turn.
class OptimizerGroups final : public Optimizer {
 public:
  OptimizerGroups(std::unique_ptr<MatrixOps> ops, std::unique_ptr<Optimizer> matrices, std::unique_ptr<Optimizer> rest)
      : ops_(std::move(ops)), matrices_(std::move(matrices)), rest_(std::move(rest)) {}
  using Optimizer::step;
  void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count,
            const ParamsUpdated& updated) override {
    matrices_->step(params, grads, lr_scale, update_count, updated);
    rest_->step(params, grads, lr_scale, update_count, updated);
  }
  std::vector<OptimizerState> state() override {
    std::vector<OptimizerState> s = matrices_->state();
    for (OptimizerState& r : rest_->state()) s.push_back(r);
    return s;
  }
  std::string describe() const override { return matrices_->describe() + "; " + rest_->describe(); }
  const SliceSelection* changed_slices(int64_t offset) const override { return matrices_->changed_slices(offset); }

 private:
  std::unique_ptr<MatrixOps> ops_;  // outlives the optimizers that use it
  std::unique_ptr<Optimizer> matrices_, rest_;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const Config& config, const GptLayout& layout) {
  std::vector<MatrixParam> matrices;
  std::vector<ParamSlice> matrix_slices, other_slices;
  for (const ParamTensor& t : layout.tensors) {
    if (t.role != ParamRole::kMatrix) other_slices.push_back({t.name, t.offset, t.numel()});
    else if (config.optim.matrix == "adamw") matrix_slices.push_back({t.name, t.offset, t.numel()});
    else matrices.push_back({t.name, t.offset, t.shape[0], t.shape[1]});
  }
  return make_optimizer_over(config, std::move(matrices), std::move(matrix_slices), std::move(other_slices));
}

std::unique_ptr<Optimizer> make_optimizer_over(const Config& config, std::vector<MatrixParam> matrices,
                                               std::vector<ParamSlice> matrix_slices,
                                               std::vector<ParamSlice> other_slices,
                                               std::function<void(std::span<float>)> average_over_ranks) {
  const OptimConfig& o = config.optim;
  const ScalarOptConfig& s = config.scalar_opt;
  const Device device = resolve_device(config.run.device);
  AdamWGroup scalars{"embeddings, head, norms, biases", std::move(other_slices), s.lr, s.beta1, s.beta2, s.eps,
                     s.weight_decay};
  if (o.matrix == "adamw") {
    AdamWGroup matrix_group{"matrices", std::move(matrix_slices), o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
    return std::make_unique<AdamW>(std::vector<AdamWGroup>{matrix_group, scalars}, device);
  }
  std::unique_ptr<MatrixOps> ops = make_matrix_ops(config.run.device);
  const uint64_t seed = uint64_t(config.run.seed);
  std::unique_ptr<Optimizer> matrix_optimizer;
  if (o.matrix == "muon") matrix_optimizer = std::make_unique<Muon>(o, std::move(matrices), *ops);
  else if (o.matrix == "dion2")
    matrix_optimizer = std::make_unique<Dion2>(o, std::move(matrices), *ops, seed, std::move(average_over_ranks));
  else if (o.matrix == "dion") matrix_optimizer = std::make_unique<Dion>(o, std::move(matrices), *ops, seed);
  else throw std::runtime_error("unknown matrix optimizer '" + o.matrix + "' (optim.matrix)");
  return std::make_unique<OptimizerGroups>(std::move(ops), std::move(matrix_optimizer),
                                           std::make_unique<AdamW>(std::vector<AdamWGroup>{scalars}, device));
}

}  // namespace llmdion
