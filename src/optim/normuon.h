// NorMuon's neuron-wise normalization (Li et al. 2025), applied to an
// orthonormalized update O before the step (optim.normalize: neuron):
//   v_i = beta2 v_i + (1 - beta2) mean_j O_ij^2      (one second moment per output row)
//   O_ij <- O_ij / (sqrt(v_i) + eps)
//   O <- O * ||O_before||_F / ||O||_F               (the update keeps its Frobenius norm)
#pragma once

#include <cstdint>
#include <span>

#include "optim/matrix_ops.h"

namespace llmdion {

// update: rows x cols; its row i belongs to output row row_of[i] of the
// matrix (row_of empty: row i). second_moment: one value per output row.
void normalize_neurons(MatrixOps& ops, int64_t rows, int64_t cols, float* update, std::span<const int64_t> row_of,
                       float* second_moment, float beta2, float eps);

}  // namespace llmdion
