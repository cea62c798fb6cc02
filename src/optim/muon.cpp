#include "optim/muon.h"

#include <algorithm>
#include <sstream>

#include "optim/normuon.h"

namespace llmdion {

Muon::Muon(const OptimConfig& config, std::vector<MatrixParam> matrices, MatrixOps& ops)
    : config_(config), matrices_(std::move(matrices)), ops_(ops), ortho_{config.ortho, config.ortho_steps, config.ortho_precision == "bf16"} {
  int64_t max_numel = 0, max_short = 0;
  for (const MatrixParam& p : matrices_) {
    state_offset_.push_back(total_), total_ += p.numel();
    row_offset_.push_back(total_rows_), total_rows_ += p.rows;
    max_numel = std::max(max_numel, p.numel()), max_short = std::max(max_short, std::min(p.rows, p.cols));
  }
  momentum_ = ops_.allocate(total_);
  if (config_.normalize == "neuron") second_moment_ = ops_.allocate(total_rows_);
  nesterov_input_ = config_.nesterov ? ops_.allocate(max_numel) : nullptr;
  update_ = ops_.allocate(max_numel);
  work_ = std::make_unique<OrthoWorkspace>(ops_, max_numel, max_short);
}

void Muon::step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t) {
  const float lr = float(config_.lr * lr_scale), mu = float(config_.mu);
  for (size_t i = 0; i < matrices_.size(); i++) {
    const MatrixParam& p = matrices_[i];
    const int64_t n = p.numel();
    float* w = params.data() + p.offset;
    const float* g = grads.data() + p.offset;
    float* m = momentum_ + state_offset_[i];

    ops_.scale(n, mu, m);             // M = mu M + G
    ops_.axpby(n, 1.0f, g, 1.0f, m);
    const float* direction = m;
    if (config_.nesterov) {           // G + mu M
      ops_.copy(n, g, nesterov_input_);
      ops_.axpby(n, mu, m, 1.0f, nesterov_input_);
      direction = nesterov_input_;
    }
    orthonormalize(ops_, ortho_, p.rows, p.cols, direction, update_, *work_);
    if (second_moment_)
      normalize_neurons(ops_, p.rows, p.cols, update_, {}, second_moment_ + row_offset_[i], float(config_.beta2),
                        float(config_.eps));
    ops_.scale(n, weight_decay_factor(lr, config_.weight_decay), w);
    ops_.axpby(n, -lr * update_scale(config_.scale, p.rows, p.cols), update_, 1.0f, w);
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
