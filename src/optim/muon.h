// Muon (Jordan et al. 2024) on each matrix W (fan_out x fan_in):
//   M = mu M + G
//   O = NS(M), or NS(G + mu M) with nesterov       (newton_schulz.h)
//   O = normalize_neurons(O)                        (NorMuon, optim.normalize: neuron)
//   W *= 1 - lr wd;   W -= lr * scale(fan_out, fan_in) * O   (scale: matrix_param.h)
// Matrices of one shape are orthonormalized together (orthonormalize_batch).
#pragma once

#include <memory>
#include <vector>

#include "config/config.h"
#include "optim/matrix_ops.h"
#include "optim/matrix_param.h"
#include "optim/newton_schulz.h"
#include "optim/optimizer.h"

namespace llmdion {

class Muon final : public Optimizer {
 public:
  Muon(const OptimConfig& config, std::vector<MatrixParam> matrices, MatrixOps& ops);
  using Optimizer::step;
  void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count,
            const ParamsUpdated& updated) override;
  std::vector<OptimizerState> state() override;
  std::string describe() const override;

 private:
  OptimConfig config_;
  std::vector<MatrixParam> matrices_;
  MatrixOps& ops_;
  Orthonormalizer ortho_;
  std::vector<int64_t> state_offset_;  // per matrix: where its momentum starts
  std::vector<int64_t> row_offset_;    // per matrix: where its per-row second moments start
  int64_t total_ = 0, total_rows_ = 0;
  float* momentum_;
  float* second_moment_ = nullptr;     // NorMuon only
  std::vector<std::vector<size_t>> shape_groups_;  // the matrices of each shape, in order
  float *directions_, *updates_;                  // one shape group's inputs and outputs of NS, back to back
  std::unique_ptr<OrthoWorkspace> work_;
};

}  // namespace llmdion
