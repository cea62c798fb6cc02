#include "optim/muon.h"

#include <algorithm>
#include <sstream>
#include <utility>

#include "optim/normuon.h"

namespace llmdion {

Muon::Muon(const OptimConfig& config, std::vector<MatrixParam> matrices, MatrixOps& ops)
    : config_(config),
      matrices_(std::move(matrices)),
      ops_(ops),
      ortho_{config.ortho, config.ortho_steps, config.ortho_precision == "bf16"} {
  int64_t max_numel = 0, max_short = 0, max_count = 0, max_group_numel = 0;
  for (size_t i = 0; i < matrices_.size(); i++) {
    const MatrixParam& p = matrices_[i];
    state_offset_.push_back(total_), total_ += p.numel();
    row_offset_.push_back(total_rows_), total_rows_ += p.rows;
    max_numel = std::max(max_numel, p.numel()), max_short = std::max(max_short, std::min(p.rows, p.cols));
  }
  shape_groups_ = shape_groups(matrices_);
  for (const std::vector<size_t>& group : shape_groups_) {
    max_count = std::max(max_count, int64_t(group.size()));
    max_group_numel = std::max(max_group_numel, int64_t(group.size()) * matrices_[group[0]].numel());
  }
  momentum_ = ops_.allocate(total_);
  if (config_.normalize == "neuron") second_moment_ = ops_.allocate(total_rows_);
  directions_ = ops_.allocate(max_group_numel);
  updates_ = ops_.allocate(max_group_numel);
  work_ = std::make_unique<OrthoWorkspace>(ops_, max_numel, max_short, max_count);
}

void Muon::step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t,
                const ParamsUpdated& updated) {
  const float lr = float(config_.lr * lr_scale), mu = float(config_.mu);
  for (const std::vector<size_t>& group : shape_groups_) {
    const int64_t rows = matrices_[group[0]].rows, cols = matrices_[group[0]].cols, n = rows * cols;
    for (size_t j = 0; j < group.size(); j++) {
      const MatrixParam& p = matrices_[group[j]];
      const float* g = grads.data() + p.offset;
      float* m = momentum_ + state_offset_[group[j]];
      float* direction = directions_ + int64_t(j) * n;
      ops_.scale(n, mu, m);             // M = mu M + G
      ops_.axpby(n, 1.0f, g, 1.0f, m);
      if (config_.nesterov) {           // NS input: G + mu M, or M
        ops_.copy(n, g, direction);
        ops_.axpby(n, mu, m, 1.0f, direction);
      } else {
        ops_.copy(n, m, direction);
      }
    }
    orthonormalize_batch(ops_, ortho_, rows, cols, int64_t(group.size()), directions_, updates_, *work_);
    for (size_t j = 0; j < group.size(); j++) {
      const MatrixParam& p = matrices_[group[j]];
      float* w = params.data() + p.offset;
      float* update = updates_ + int64_t(j) * n;
      if (second_moment_)
        normalize_neurons(ops_, rows, cols, update, {}, second_moment_ + row_offset_[group[j]], float(config_.beta2),
                          float(config_.eps));
      ops_.scale(n, weight_decay_factor(lr, config_.weight_decay), w);
      ops_.axpby(n, -lr * update_scale(config_.scale, rows, cols), update, 1.0f, w);
      if (updated) updated(p.offset);
    }
  }
}

std::vector<OptimizerState> Muon::state() {
  return momentum_state("muon", momentum_, total_, second_moment_, total_rows_);
}

std::string Muon::describe() const {
  std::ostringstream out;
  out << "matrices: " << (second_moment_ ? "NorMuon" : "Muon") << " over " << matrices_.size() << " matrices ("
      << total_ << " values), lr " << config_.lr << ", mu " << config_.mu << (config_.nesterov ? " (nesterov)" : "")
      << ", " << config_.ortho << " x " << config_.ortho_steps << (ortho_.bf16_products ? " (bf16 products)" : "") << ", scale " << config_.scale << ", weight decay "
      << config_.weight_decay;
  return out.str();
}

}  // namespace llmdion
