// Dion2's defining properties (the Dion2 paper, Algorithm 1): a sparse update,
// a selective momentum decay, reproducible random selection, and alpha = 1
// being Muon without Nesterov, step for step.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "matrix_problem.h"
#include "optim/selection.h"

namespace llmdion {
namespace {

OptimConfig dion2_config(double alpha, const std::string& select) {
  OptimConfig c;
  c.matrix = "dion2";
  c.lr = 0.05;
  c.weight_decay = 0.0;
  c.alpha = alpha;
  c.select = select;
  return c;
}

bool contains(const std::vector<int64_t>& v, int64_t x) { return std::binary_search(v.begin(), v.end(), x); }

// The value of entry (r, c) of matrix `p` in a flat buffer.
float at(const std::vector<float>& flat, const MatrixParam& p, int64_t r, int64_t c) {
  return flat[p.offset + r * p.cols + c];
}

TEST(Dion2, alpha_one_equals_muon_without_nesterov_step_for_step) {
  const test::MatrixProblem problem({{24, 40}, {48, 20}, {1, 16}}, 8, 11);
  for (const std::string select : {"l1", "random"}) {
    OptimConfig muon_config = dion2_config(1.0, select);
    muon_config.matrix = "muon";
    muon_config.weight_decay = 0.01;
    OptimConfig dion2 = dion2_config(1.0, select);
    dion2.weight_decay = 0.01;
    test::MatrixOptimizerRun a(muon_config, problem), b(dion2, problem);
    for (int64_t t = 0; t < int64_t(problem.grads.size()); t++) {
      a.step(problem.grads[t], 1.0, t + 1);
      b.step(problem.grads[t], 1.0, t + 1);
      // Bitwise: the same arithmetic in the same order.
      ASSERT_EQ(a.weights, b.weights) << select << " selection, step " << t;
    }
  }
}

TEST(Dion2, only_selected_slices_of_the_weights_change) {
  const test::MatrixProblem problem({{16, 40}, {40, 12}}, 5, 3);
  for (const std::string select : {"l1", "random"}) {
    OptimConfig config = dion2_config(0.25, select);
    test::MatrixOptimizerRun run(config, problem);
    auto& dion2 = static_cast<Dion2&>(*run.optimizer);
    for (int64_t t = 0; t < 5; t++) {
      const std::vector<float> before = run.weights;
      run.step(problem.grads[t], 1.0, t + 1);
      for (size_t i = 0; i < problem.matrices.size(); i++) {
        const MatrixParam& p = problem.matrices[i];
        const bool rows = dion2.selected_dim(i) == SliceDim::kRows;
        EXPECT_EQ(rows, p.rows <= p.cols) << "select_dim shorter";
        const std::vector<int64_t>& selected = dion2.last_selected(i);
        ASSERT_EQ(int64_t(selected.size()), selected_count(0.25, rows ? p.rows : p.cols));
        int64_t changed = 0, unchanged_wrongly = 0, changed_wrongly = 0;
        for (int64_t r = 0; r < p.rows; r++)
          for (int64_t c = 0; c < p.cols; c++) {
            const bool is_selected = contains(selected, rows ? r : c);
            const bool differs = at(before, p, r, c) != at(run.weights, p, r, c);
            changed += differs;
            changed_wrongly += differs && !is_selected;
            unchanged_wrongly += !differs && is_selected;
          }
        EXPECT_EQ(changed_wrongly, 0) << select << " step " << t << " matrix " << i;
        EXPECT_EQ(unchanged_wrongly, 0) << select << " step " << t << " matrix " << i;
        EXPECT_EQ(changed, int64_t(selected.size()) * (rows ? p.cols : p.rows));
      }
    }
  }
}

TEST(Dion2, weight_decay_reaches_every_entry_selected_or_not) {
  const test::MatrixProblem problem({{16, 40}}, 1, 5);
  OptimConfig config = dion2_config(0.25, "l1");
  config.weight_decay = 0.1;
  test::MatrixOptimizerRun run(config, problem);
  run.step(problem.grads[0], 1.0, 1);
  const auto& selected = static_cast<Dion2&>(*run.optimizer).last_selected(0);
  const MatrixParam& p = problem.matrices[0];
  const float keep = 1.0f - float(config.lr) * float(config.weight_decay);
  for (int64_t r = 0; r < p.rows; r++) {
    if (contains(selected, r)) continue;
    for (int64_t c = 0; c < p.cols; c++) ASSERT_EQ(at(run.weights, p, r, c), at(problem.weights, p, r, c) * keep);
  }
}

TEST(Dion2, only_selected_slices_of_the_momentum_decay) {
  const test::MatrixProblem problem({{16, 40}, {40, 12}}, 4, 9);
  for (const std::string decay : {"selective", "full"}) {
    OptimConfig config = dion2_config(0.25, "l1");
    config.decay = decay;
    test::MatrixOptimizerRun run(config, problem);
    auto& dion2 = static_cast<Dion2&>(*run.optimizer);
    for (int64_t t = 0; t < 4; t++) {
      std::vector<float> accumulated = run.state("dion2.momentum");  // M + G, before any decay
      for (int64_t i = 0; i < problem.numel; i++) accumulated[i] += problem.grads[t][i];
      run.step(problem.grads[t], 1.0, t + 1);
      const std::vector<float> momentum = run.state("dion2.momentum");
      for (size_t i = 0; i < problem.matrices.size(); i++) {
        const MatrixParam& p = problem.matrices[i];
        const bool rows = dion2.selected_dim(i) == SliceDim::kRows;
        for (int64_t r = 0; r < p.rows; r++)
          for (int64_t c = 0; c < p.cols; c++) {
            const bool decays = decay == "full" || contains(dion2.last_selected(i), rows ? r : c);
            const float expected = decays ? at(accumulated, p, r, c) * float(config.mu) : at(accumulated, p, r, c);
            ASSERT_EQ(at(momentum, p, r, c), expected) << decay << " step " << t << " matrix " << i << " (" << r << ", " << c << ")";
          }
      }
    }
  }
}

TEST(Dion2, l1_selection_takes_the_slices_of_largest_l1_norm) {
  const test::MatrixProblem problem({{16, 40}, {40, 12}}, 1, 21);
  test::MatrixOptimizerRun run(dion2_config(0.25, "l1"), problem);
  run.step(problem.grads[0], 1.0, 1);
  auto& dion2 = static_cast<Dion2&>(*run.optimizer);
  for (size_t i = 0; i < problem.matrices.size(); i++) {
    const MatrixParam& p = problem.matrices[i];
    const bool rows = dion2.selected_dim(i) == SliceDim::kRows;
    const int64_t d = rows ? p.rows : p.cols;
    // The momentum before the decay is the first gradient.
    std::vector<double> norms(static_cast<size_t>(d), 0.0);
    for (int64_t r = 0; r < p.rows; r++)
      for (int64_t c = 0; c < p.cols; c++) norms[rows ? r : c] += std::fabs(at(problem.grads[0], p, r, c));
    std::vector<int64_t> order(static_cast<size_t>(d));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return norms[a] > norms[b]; });
    std::vector<int64_t> expected(order.begin(), order.begin() + selected_count(0.25, d));
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(dion2.last_selected(i), expected) << "matrix " << i;
  }
}

TEST(Dion2, random_selection_is_reproducible_by_seed_and_varies_by_step) {
  const test::MatrixProblem problem({{32, 64}}, 3, 4);
  auto selections = [&](uint64_t seed) {
    test::MatrixOptimizerRun run(dion2_config(0.25, "random"), problem, seed);
    std::vector<std::vector<int64_t>> out;
    for (int64_t t = 0; t < 3; t++) {
      run.step(problem.grads[t], 1.0, t + 1);
      out.push_back(static_cast<Dion2&>(*run.optimizer).last_selected(0));
    }
    return out;
  };
  const auto a = selections(1337), b = selections(1337), c = selections(1338);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a[0], a[1]);
  for (const auto& s : a) {
    EXPECT_EQ(s.size(), 8u);
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    EXPECT_EQ(std::adjacent_find(s.begin(), s.end()), s.end()) << "without replacement";
  }
}

TEST(Dion2, random_selection_is_uniform_over_slices) {
  // 20000 draws of 4 of 16: each slice is chosen 5000 times in expectation
  // (binomial sd ~61); 6 sd is a loose, seed-independent bound.
  std::vector<int64_t> counts(16, 0), selected;
  for (uint64_t draw = 0; draw < 20000; draw++) {
    select_random(16, 4, derive_seed({99, draw}), selected);
    for (int64_t s : selected) counts[s]++;
  }
  for (int64_t count : counts) EXPECT_NEAR(double(count), 5000.0, 6 * 61.2);
}

TEST(Dion2, selected_count_is_the_ceiling_of_alpha_d_at_least_one) {
  EXPECT_EQ(selected_count(0.25, 128), 32);
  EXPECT_EQ(selected_count(0.25, 10), 3);
  EXPECT_EQ(selected_count(0.125, 1), 1);
  EXPECT_EQ(selected_count(1e-9, 100), 1);
  EXPECT_EQ(selected_count(1.0, 7), 7);
}

}  // namespace
}  // namespace llmdion
