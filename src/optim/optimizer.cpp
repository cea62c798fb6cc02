#include "optim/optimizer.h"

#include "optim/adamw.h"

namespace llmdion {

std::unique_ptr<Optimizer> make_optimizer(const Config& config, const GptLayout& layout) {
  const OptimConfig& o = config.optim;
  const ScalarOptConfig& s = config.scalar_opt;
  AdamWGroup matrices{"matrices", {}, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
  AdamWGroup scalars{"embeddings, head, norms, biases", {}, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay};
  for (const ParamTensor& t : layout.tensors)
    (t.role == ParamRole::kMatrix ? matrices : scalars).params.push_back({t.name, t.offset, t.numel()});
  return std::make_unique<AdamW>(std::vector<AdamWGroup>{matrices, scalars});
}

}  // namespace llmdion
