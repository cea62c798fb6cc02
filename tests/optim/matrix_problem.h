// A test problem for the matrix optimizers: matrices of given shapes back to
// back in one flat buffer, seeded weights and a seeded gradient sequence, and
// a way to run any matrix optimizer over it on the CPU.
#pragma once

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "optim/dion.h"
#include "optim/dion2.h"
#include "optim/matrix_ops.h"
#include "optim/muon.h"

namespace llmdion::test {

inline std::vector<float> normal_values(int64_t n, uint64_t seed, float std) {
  SplitMix64 rng{seed};
  std::vector<float> out(static_cast<size_t>(n));
  for (float& x : out) {
    const double u1 = (double(rng.next() >> 11) + 1.0) * 0x1.0p-53, u2 = double(rng.next() >> 11) * 0x1.0p-53;
    x = float(std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
  }
  return out;
}

struct MatrixProblem {
  std::vector<MatrixParam> matrices;
  int64_t numel = 0;
  std::vector<float> weights;
  std::vector<std::vector<float>> grads;  // one flat gradient per step

  MatrixProblem(const std::vector<std::pair<int64_t, int64_t>>& shapes, int64_t steps, uint64_t seed) {
    for (size_t i = 0; i < shapes.size(); i++) {
      std::string name = "w";
      name += std::to_string(i);
      matrices.push_back({name, numel, shapes[i].first, shapes[i].second});
      numel += shapes[i].first * shapes[i].second;
    }
    weights = normal_values(numel, derive_seed({seed, 1}), 0.05f);
    for (int64_t t = 0; t < steps; t++) grads.push_back(normal_values(numel, derive_seed({seed, 2, uint64_t(t)}), 0.01f));
  }
};

// One of Muon, Dion2, Dion (config.matrix) over the problem's matrices.
struct MatrixOptimizerRun {
  std::unique_ptr<MatrixOps> ops = make_matrix_ops("cpu");
  std::unique_ptr<Optimizer> optimizer;
  std::vector<float> weights;

  MatrixOptimizerRun(const OptimConfig& config, const MatrixProblem& problem, uint64_t seed = 1337)
      : weights(problem.weights) {
    if (config.matrix == "muon") optimizer = std::make_unique<Muon>(config, problem.matrices, *ops);
    else if (config.matrix == "dion2") optimizer = std::make_unique<Dion2>(config, problem.matrices, *ops, seed);
    else optimizer = std::make_unique<Dion>(config, problem.matrices, *ops, seed);
  }
  void step(const std::vector<float>& grads, double lr_scale, int64_t update_count) {
    optimizer->step(weights, grads, lr_scale, update_count);
  }
  std::vector<float> state(const std::string& name) {
    for (const OptimizerState& s : optimizer->state())
      if (s.name == name) return {s.data.begin(), s.data.end()};
    return {};
  }
};

}  // namespace llmdion::test
