// Orthonormalization by odd matrix polynomials: the approximate polar factor
// U V^T of X = U S V^T that Muon and Dion2 step along (Dion2 paper, eq. 1 and
// Algorithm 1, line 4).
//
//   X_0 = X / (||X||_F + eps)      (every singular value in [0, 1])
//   A = X_t X_t^T,  X_{t+1} = a X_t + (b A + c A^2) X_t    (p(s) = a s + b s^3 + c s^5)
//
// newton_schulz: Jordan's quintic (a, b, c) = (3.4445, -4.7750, 2.0315) every
// step; it does not converge to 1 but lifts all singular values into a band
// around it in a few steps. polar_express (Amsel et al. 2025, Algorithm 1):
// per-step coefficients optimal in the worst case, divided by a 1.01 safety
// factor, with X_0 = X / (1.01 ||X||_F + eps). The iteration runs on the smaller
// Gram side: a tall X (rows > cols) is transposed first and back at the end.
// A and A^2 = A A^T are symmetric: both come from MatrixOps::syrk_batched,
// which skips the upper triangle where the backend can.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "optim/matrix_ops.h"

namespace llmdion {

struct Orthonormalizer {
  std::string kind = "newton_schulz";  // newton_schulz | polar_express
  int64_t steps = 5;
  bool bf16_products = false;          // the iteration's products on bf16 operands (MatrixOps::gemm_bf16)
  float eps = 1e-7f;
};

// (a, b, c) of each step.
std::vector<std::array<float, 3>> ortho_coefficients(const Orthonormalizer& ortho);

// Backend buffers for orthonormalizing up to max_count matrices at once, of
// up to max_numel values each, whose shorter side is at most max_short.
struct OrthoWorkspace {
  float *x, *x_next, *gram, *poly;
  OrthoWorkspace(MatrixOps& ops, int64_t max_numel, int64_t max_short, int64_t max_count = 1);
};

// out (rows x cols) = the approximate polar factor of in (rows x cols).
void orthonormalize(MatrixOps& ops, const Orthonormalizer& ortho, int64_t rows, int64_t cols, const float* in,
                    float* out, OrthoWorkspace& work);
// The same for `count` matrices of one shape stored back to back, each on its
// own (its own norm), their products batched: one call per product on the GPU.
void orthonormalize_batch(MatrixOps& ops, const Orthonormalizer& ortho, int64_t rows, int64_t cols, int64_t count,
                          const float* in, float* out, OrthoWorkspace& work);

}  // namespace llmdion
