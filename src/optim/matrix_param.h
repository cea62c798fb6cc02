// A matrix parameter as the matrix optimizers see it, and the one rule that
// scales their orthonormalized updates to the matrix's shape.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace llmdion {

struct MatrixParam {
  std::string name;
  int64_t offset;  // into the flat parameter and gradient buffers
  int64_t rows;    // fan_out
  int64_t cols;    // fan_in
  int64_t numel() const { return rows * cols; }
};

// The factor on lr for an update O with unit spectral norm of a fan_out x
// fan_in matrix, always from the full matrix's shape (Dion2 included):
//   spectral: sqrt(fan_out / fan_in), so ||dW||_{RMS->RMS} = lr (Dion2 paper, eq. 1)
//   rms:      0.2 sqrt(max(fan_out, fan_in)), an update RMS like AdamW's (Liu et al. 2025)
//   none:     1
inline float update_scale(const std::string& rule, int64_t fan_out, int64_t fan_in) {
  if (rule == "spectral") return float(std::sqrt(double(fan_out) / double(fan_in)));
  if (rule == "rms") return float(0.2 * std::sqrt(double(std::max(fan_out, fan_in))));
  return 1.0f;
}

// The matrices of each shape (their indices), the shapes in (rows, cols) order:
// Muon and Dion2 orthonormalize a group as one batch, and step the groups in
// this order on every rank alike (the sharded optimizer's weight gathers follow it).
inline std::vector<std::vector<size_t>> shape_groups(const std::vector<MatrixParam>& matrices) {
  std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> by_shape;
  for (size_t i = 0; i < matrices.size(); i++) by_shape[{matrices[i].rows, matrices[i].cols}].push_back(i);
  std::vector<std::vector<size_t>> groups;
  for (auto& [shape, group] : by_shape) groups.push_back(std::move(group));
  return groups;
}

// Decoupled weight decay, on every entry of a matrix: W *= this factor, with
// lr the scheduled (unscaled) learning rate. Every rank computes it the same way.
inline float weight_decay_factor(float lr, double weight_decay) { return 1.0f - lr * float(weight_decay); }

}  // namespace llmdion
