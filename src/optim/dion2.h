// Dion2 (Ahn, Amsel and Langford 2025, Algorithm 1) on each matrix W
// (fan_out x fan_in), selecting rows or columns (optim.select_dim):
//   M += G                                        line 2
//   K = Select_alpha(M)                           line 3 (selection.h: l1 | random)
//   O = NS(M[K])                                  line 4 (newton_schulz.h)
//   M[K] *= mu                                    line 5: the selective decay, eq. 2 (error feedback)
//   W *= 1 - lr wd                                every entry, selected or not
//   W[K] -= lr * scale(fan_out, fan_in) * O       line 6: the sparse update, scale from the full shape
// decay: full is the paper's ablation (section 4.2): M *= mu instead of M[K] *= mu.
// Compressed data-parallel sync (section 3.2, optim.sync: selected): each rank
// adds its own gradient to its own momentum, and only M[K] is averaged over
// the ranks before line 4. The momenta of the ranks differ, but their average
// is the fully synced momentum, so every rank computes the same update.
// normalize: neuron applies NorMuon (normuon.h) to O before the update.
// Matrices of one shape are orthonormalized as one batch.
#pragma once

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "config/config.h"
#include "optim/matrix_ops.h"
#include "optim/matrix_param.h"
#include "optim/newton_schulz.h"
#include "optim/optimizer.h"

namespace llmdion {

// The dimension Dion2 selects slices of in a rows x cols matrix (optim.select_dim).
SliceDim dion2_select_dim(const std::string& select_dim, int64_t rows, int64_t cols);

class Dion2 final : public Optimizer {
 public:
  // seed: the run's seed, for random selection. average_over_ranks, when
  // given, replaces a buffer by its mean over the ranks (compressed sync).
  Dion2(const OptimConfig& config, std::vector<MatrixParam> matrices, MatrixOps& ops, uint64_t seed,
        std::function<void(std::span<float>)> average_over_ranks = {});
  using Optimizer::step;
  void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count,
            const ParamsUpdated& updated) override;
  std::vector<OptimizerState> state() override;
  std::string describe() const override;
  const SliceSelection* changed_slices(int64_t offset) const override;
  // The slices of matrix i updated by the last step.
  SliceDim selected_dim(size_t i) const { return selections_[i].dim; }
  const std::vector<int64_t>& last_selected(size_t i) const { return selections_[i].indices; }

 private:
  // rows x cols of M[K] for matrix i.
  std::pair<int64_t, int64_t> submatrix_shape(size_t i) const;

  OptimConfig config_;
  std::vector<MatrixParam> matrices_;
  MatrixOps& ops_;
  uint64_t seed_;
  std::function<void(std::span<float>)> average_over_ranks_;
  Orthonormalizer ortho_;
  std::vector<int64_t> state_offset_, row_offset_;
  int64_t total_ = 0, total_rows_ = 0;
  float* momentum_;
  float* second_moment_ = nullptr;  // NorMuon only
  std::vector<std::vector<size_t>> shape_groups_;  // matrices of one shape, orthonormalized as one batch
  float *submatrices_, *updates_;                  // a group's M[K], back to back, and their O
  std::unique_ptr<OrthoWorkspace> work_;
  std::vector<float> slice_norms_;
  std::vector<SliceSelection> selections_;  // per matrix: its dimension and the last step's selection
};

}  // namespace llmdion
