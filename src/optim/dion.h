// Dion (Ahn et al. 2025, arXiv 2504.05295; single-device form) on each matrix
// W (m = fan_out x n = fan_in), rank r = ceil(rank_frac * min(m, n)), with a
// right factor Q (n x r) kept between steps and started from a seeded normal:
//   M += G
//   P = orthonormalize(M Q)        one power-iteration step; Cholesky-QR, Householder QR as fallback
//   R = M^T P
//   M -= (1 - mu) P R^T            error feedback: only the captured part decays (Dion2 paper, eq. 4)
//   Q = column_normalize(R)
//   W *= 1 - lr wd;   W -= lr * scale(m, n) * P Q^T
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "config/config.h"
#include "optim/matrix_ops.h"
#include "optim/matrix_param.h"
#include "optim/optimizer.h"

namespace llmdion {

// The rank r of an m x n matrix's low-rank factors: ceil(rank_frac * min(m, n)), at least 1.
inline int64_t dion_rank(double rank_frac, int64_t rows, int64_t cols) {
  return std::clamp<int64_t>(int64_t(std::ceil(rank_frac * double(std::min(rows, cols)))), 1, std::min(rows, cols));
}

class Dion final : public Optimizer {
 public:
  // seed: the run's seed, for the initial Q.
  Dion(const OptimConfig& config, std::vector<MatrixParam> matrices, MatrixOps& ops, uint64_t seed);
  using Optimizer::step;
  void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count,
            const ParamsUpdated& updated) override;
  std::vector<OptimizerState> state() override;
  std::string describe() const override;
  int64_t rank(size_t i) const { return rank_[i]; }
  // Steps whose Cholesky-QR failed and fell back to Householder QR.
  int64_t qr_fallbacks() const { return qr_fallbacks_; }

 private:
  OptimConfig config_;
  std::vector<MatrixParam> matrices_;
  MatrixOps& ops_;
  std::vector<int64_t> rank_, momentum_offset_, q_offset_;
  int64_t momentum_total_ = 0, q_total_ = 0, qr_fallbacks_ = 0;
  float *momentum_, *q_;
  float *p_, *r_, *gram_;
};

}  // namespace llmdion
