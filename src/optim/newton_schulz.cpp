#include "optim/newton_schulz.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace llmdion {

std::vector<std::array<float, 3>> ortho_coefficients(const Orthonormalizer& ortho) {
  if (ortho.kind == "newton_schulz") return std::vector<std::array<float, 3>>(size_t(ortho.steps), {3.4445f, -4.7750f, 2.0315f});
  // Polar Express, degree 5; later steps repeat the last (converged) polynomial.
  static const double kPolarExpress[8][3] = {
      {8.28721201814563, -23.595886519098837, 17.300387312530933},
      {4.107059111542203, -2.9478499167379106, 0.5448431082926601},
      {3.9486908534822946, -2.908902115962949, 0.5518191394370137},
      {3.3184196573706015, -2.488488024314874, 0.51004894012372},
      {2.300652019954817, -1.6689039845747493, 0.4188073119525673},
      {1.891301407787398, -1.2679958271945868, 0.37680408948524835},
      {1.8750014808534479, -1.2500016453999487, 0.3750001645474248},
      {1.875, -1.25, 0.375},
  };
  std::vector<std::array<float, 3>> steps;
  for (int64_t t = 0; t < ortho.steps; t++) {
    const double* abc = kPolarExpress[std::min<int64_t>(t, 7)];
    const double safety = t < 7 ? 1.01 : 1.0;  // the last polynomial is used as it is
    steps.push_back({float(abc[0] / safety), float(abc[1] / std::pow(safety, 3)), float(abc[2] / std::pow(safety, 5))});
  }
  return steps;
}

OrthoWorkspace::OrthoWorkspace(MatrixOps& ops, int64_t max_numel, int64_t max_short, int64_t max_count)
    : x(ops.allocate(max_numel * max_count)),
      x_next(ops.allocate(max_numel * max_count)),
      gram(ops.allocate(max_short * max_short * max_count)),
      poly(ops.allocate(max_short * max_short * max_count)) {}

void orthonormalize(MatrixOps& ops, const Orthonormalizer& ortho, int64_t rows, int64_t cols, const float* in,
                    float* out, OrthoWorkspace& work) {
  orthonormalize_batch(ops, ortho, rows, cols, 1, in, out, work);
}

void orthonormalize_batch(MatrixOps& ops, const Orthonormalizer& ortho, int64_t rows, int64_t cols, int64_t count,
                          const float* in, float* out, OrthoWorkspace& work) {
  const bool tall = rows > cols;
  const int64_t s = tall ? cols : rows, l = tall ? rows : cols;  // each X is s x l, s <= l
  const int64_t n = rows * cols, gram = s * s;
  if (tall)
    for (int64_t i = 0; i < count; i++) ops.transpose(rows, cols, in + i * n, work.x + i * n);
  else
    ops.copy(count * n, in, work.x);

  const double margin = ortho.kind == "polar_express" ? 1.01 : 1.0;
  for (int64_t i = 0; i < count; i++) {
    const double norm = std::sqrt(ops.sum_squares(n, work.x + i * n));
    ops.scale(n, float(1.0 / (margin * norm + ortho.eps)), work.x + i * n);
  }

  float* x = work.x;
  float* x_next = work.x_next;
  const bool bf16 = ortho.bf16_products;
  for (const auto& [a, b, c] : ortho_coefficients(ortho)) {
    ops.syrk_batched(s, l, 1.0f, x, n, 0.0f, work.gram, gram, count, bf16);         // A = X X^T
    ops.axpby(count * gram, b, work.gram, 0.0f, work.poly);                          // B = b A
    ops.syrk_batched(s, s, c, work.gram, gram, 1.0f, work.poly, gram, count, bf16);  // B += c A A^T (= c A^2)
    ops.axpby(count * n, a, x, 0.0f, x_next);                                        // X' = a X
    ops.gemm_batched(false, false, s, l, s, 1.0f, work.poly, gram, x, n, 1.0f, x_next, n, count, bf16);  // += B X
    std::swap(x, x_next);
  }
  if (tall)
    for (int64_t i = 0; i < count; i++) ops.transpose(s, l, x + i * n, out + i * n);
  else
    ops.copy(count * n, x, out);
}

}  // namespace llmdion
