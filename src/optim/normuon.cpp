#include "optim/normuon.h"

#include <cmath>

namespace llmdion {

void normalize_neurons(MatrixOps& ops, int64_t rows, int64_t cols, float* update, std::span<const int64_t> row_of,
                       float* second_moment, float beta2, float eps) {
  const int64_t n = rows * cols;
  const double norm_before = std::sqrt(ops.sum_squares(n, update));
  ops.normalize_rows(rows, cols, update, row_of, second_moment, beta2, eps);
  const double norm_after = std::sqrt(ops.sum_squares(n, update));
  if (norm_after > 0) ops.scale(n, float(norm_before / norm_after), update);
}

std::vector<OptimizerState> momentum_state(const std::string& name, float* momentum, int64_t numel,
                                           float* second_moment, int64_t rows) {
  std::vector<OptimizerState> s = {{name + ".momentum", {momentum, size_t(numel)}}};
  if (second_moment) s.push_back({name + ".neuron_second_moment", {second_moment, size_t(rows)}});
  return s;
}

}  // namespace llmdion
