// NorMuon's neuron-wise normalization (Li et al. 2025), applied to an
// orthonormalized update O before the step (optim.normalize: neuron):
//   v_i = beta2 v_i + (1 - beta2) mean_j O_ij^2      (one second moment per output row)
//   O_ij <- O_ij / (sqrt(v_i) + eps)
//   O <- O * ||O_before||_F / ||O||_F               (the update keeps its Frobenius norm)
#pragma once

#include <cstdint>
#include <span>

#include "optim/matrix_ops.h"
#include "optim/optimizer.h"

namespace llmdion {

// update: rows x cols; its row i belongs to output row row_of[i] of the
// matrix (row_of empty: row i). second_moment: one value per output row.
void normalize_neurons(MatrixOps& ops, int64_t rows, int64_t cols, float* update, std::span<const int64_t> row_of,
                       float* second_moment, float beta2, float eps);

// The checkpointed state of Muon or Dion2: "<name>.momentum", and with NorMuon
// (second_moment not null) "<name>.neuron_second_moment".
std::vector<OptimizerState> momentum_state(const std::string& name, float* momentum, int64_t numel,
                                           float* second_moment, int64_t rows);

}  // namespace llmdion
