// Dion's properties: at full rank it tracks Muon on a quadratic, its update is
// built from an orthonormal P, and an ill-conditioned P falls back from
// Cholesky-QR to Householder QR without changing the result.
#include <gtest/gtest.h>

#include <cmath>

#include "matrix_problem.h"

namespace llmdion {
namespace {

// Minimizes f(W) = 1/2 ||W - W*||_F^2 (gradient W - W*) from W = 0; returns f after each step.
std::vector<double> quadratic_losses(const OptimConfig& config, int64_t rows, int64_t cols, int64_t steps) {
  const test::MatrixProblem problem({{rows, cols}}, 0, 31);
  const std::vector<float> target = problem.weights;
  test::MatrixProblem start = problem;
  std::fill(start.weights.begin(), start.weights.end(), 0.0f);
  test::MatrixOptimizerRun run(config, start);
  std::vector<double> losses;
  std::vector<float> grad(target.size());
  for (int64_t t = 0; t < steps; t++) {
    for (size_t i = 0; i < grad.size(); i++) grad[i] = run.weights[i] - target[i];
    run.step(grad, 1.0 - double(t) / double(steps), t + 1);  // linear decay, so both settle
    double loss = 0;
    for (size_t i = 0; i < grad.size(); i++) loss += 0.5 * double(run.weights[i] - target[i]) * (run.weights[i] - target[i]);
    losses.push_back(loss);
  }
  return losses;
}

TEST(Dion, full_rank_tracks_muon_on_a_quadratic) {
  OptimConfig muon;
  muon.matrix = "muon";
  muon.lr = 0.02;
  muon.weight_decay = 0;
  OptimConfig dion = muon;
  dion.matrix = "dion";
  dion.rank_frac = 1.0;
  const int64_t steps = 200;
  const std::vector<double> a = quadratic_losses(muon, 32, 48, steps), b = quadratic_losses(dion, 32, 48, steps);
  double worst = 0;
  for (int64_t t = 0; t < steps; t++) worst = std::max(worst, std::fabs(a[t] - b[t]) / a[0]);
  std::printf("f(W_0) %.4f; after %lld steps: Muon %.3e, full-rank Dion %.3e; max |difference| %.3e of f(W_0)\n", a[0],
              static_cast<long long>(steps), a.back(), b.back(), worst);
  // Measured: both reduce f by over 99.99%; the curves differ by at most 9.6%
  // of f(W_0), near step 10, with Dion ahead: until its power iteration has
  // settled on M's singular vectors, the column-normalized Q is not orthogonal
  // and P Q^T is a little longer than the polar factor. Bound: 12%.
  EXPECT_LT(a.back(), 1e-3 * a[0]);
  EXPECT_LT(b.back(), 1e-3 * a[0]);
  EXPECT_LT(worst, 0.12);
}

TEST(Dion, low_rank_still_descends_and_keeps_its_rank) {
  OptimConfig dion;
  dion.matrix = "dion";
  dion.lr = 0.02;
  dion.weight_decay = 0;
  dion.rank_frac = 0.25;
  const std::vector<double> losses = quadratic_losses(dion, 32, 48, 200);
  EXPECT_LT(losses.back(), 0.05 * losses.front());
  const test::MatrixProblem problem({{32, 48}}, 0, 1);
  test::MatrixOptimizerRun run(dion, problem);
  EXPECT_EQ(static_cast<Dion&>(*run.optimizer).rank(0), 8);
  EXPECT_EQ(run.state("dion.Q").size(), 48u * 8u);
}

TEST(Dion, rank_deficient_momentum_falls_back_to_householder_qr) {
  // A rank-1 gradient makes P = M Q rank 1: Cholesky-QR must give way.
  OptimConfig dion;
  dion.matrix = "dion";
  dion.lr = 0.02;
  dion.rank_frac = 0.5;
  test::MatrixProblem problem({{16, 24}}, 1, 3);
  const std::vector<float> u = test::normal_values(16, 5, 1.0f), v = test::normal_values(24, 6, 1.0f);
  for (int64_t r = 0; r < 16; r++)
    for (int64_t c = 0; c < 24; c++) problem.grads[0][r * 24 + c] = u[r] * v[c];
  test::MatrixOptimizerRun run(dion, problem);
  run.step(problem.grads[0], 1.0, 1);
  EXPECT_EQ(static_cast<Dion&>(*run.optimizer).qr_fallbacks(), 1);
  for (float w : run.weights) ASSERT_TRUE(std::isfinite(w));
  // P spans u, so P R^T = P P^T M captures all of the rank-1 momentum and the
  // error feedback leaves mu M.
  const std::vector<float> momentum = run.state("dion.momentum");
  double diff2 = 0, norm2 = 0;
  for (int64_t i = 0; i < 16 * 24; i++) {
    const double expected = dion.mu * problem.grads[0][i];
    diff2 += (momentum[i] - expected) * (momentum[i] - expected), norm2 += expected * expected;
  }
  EXPECT_LT(std::sqrt(diff2 / norm2), 1e-5);
}

}  // namespace
}  // namespace llmdion
