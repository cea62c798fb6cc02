// A matrix parameter as the matrix optimizers see it, and the one rule that
// scales their orthonormalized updates to the matrix's shape.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

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

// Decoupled weight decay, on every entry of a matrix: W *= this factor, with
// lr the scheduled (unscaled) learning rate. Every rank computes it the same way.
inline float weight_decay_factor(float lr, double weight_decay) { return 1.0f - lr * float(weight_decay); }

}  // namespace llmdion
