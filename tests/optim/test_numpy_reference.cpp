// Muon, Dion2 and Dion against the float64 numpy reference written from their
// equations (matrix_optimizer_reference.py), fed the same weights and gradient
// sequence: weights and momentum after ten steps within 1e-5 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "matrix_problem.h"
#include "test_util.h"

namespace llmdion {
namespace {

struct Case {
  std::string name;
  OptimConfig config;
};

std::vector<Case> reference_cases() {
  OptimConfig base;
  base.lr = 0.05;
  base.weight_decay = 0.01;
  auto with = [&](const std::string& matrix, auto&& edit) {
    OptimConfig c = base;
    c.matrix = matrix;
    edit(c);
    return c;
  };
  return {
      {"muon", with("muon", [](OptimConfig&) {})},
      {"muon_nesterov_polar_express", with("muon", [](OptimConfig& c) { c.nesterov = true, c.ortho = "polar_express"; })},
      {"normuon_rms_scale", with("muon", [](OptimConfig& c) { c.normalize = "neuron", c.scale = "rms", c.weight_decay = 0.1; })},
      {"dion2_l1_shorter", with("dion2", [](OptimConfig&) {})},
      {"dion2_random_rows", with("dion2", [](OptimConfig& c) { c.select = "random", c.alpha = 0.5, c.select_dim = "rows"; })},
      {"dion2_full_decay_cols", with("dion2", [](OptimConfig& c) { c.decay = "full", c.select_dim = "cols"; })},
      {"dion2_normuon_eighth", with("dion2", [](OptimConfig& c) { c.normalize = "neuron", c.alpha = 0.125; })},
      {"dion_half_rank", with("dion", [](OptimConfig& c) { c.rank_frac = 0.5; })},
      {"dion_full_rank_no_scale", with("dion", [](OptimConfig& c) { c.rank_frac = 1.0, c.scale = "none"; })},
  };
}

std::string case_json(const Case& c, const test::MatrixProblem& problem, const std::vector<double>& lr_scales) {
  const OptimConfig& o = c.config;
  std::ostringstream j;
  j.precision(17);
  j << "{\"optimizer\": \"" << o.matrix << "\", \"seed\": 1337, \"shapes\": [";
  for (size_t i = 0; i < problem.matrices.size(); i++)
    j << (i ? ", " : "") << "[" << problem.matrices[i].rows << ", " << problem.matrices[i].cols << "]";
  j << "], \"lr_scales\": [";
  for (size_t t = 0; t < lr_scales.size(); t++) j << (t ? ", " : "") << lr_scales[t];
  j << "], \"config\": {\"lr\": " << o.lr << ", \"weight_decay\": " << o.weight_decay << ", \"mu\": " << o.mu
    << ", \"nesterov\": " << (o.nesterov ? "true" : "false") << ", \"scale\": \"" << o.scale << "\", \"ortho\": \""
    << o.ortho << "\", \"ortho_steps\": " << o.ortho_steps << ", \"alpha\": " << o.alpha << ", \"select\": \""
    << o.select << "\", \"select_dim\": \"" << o.select_dim << "\", \"decay\": \"" << o.decay
    << "\", \"rank_frac\": " << o.rank_frac << ", \"normalize\": \"" << o.normalize << "\", \"beta2\": " << o.beta2
    << ", \"eps\": " << o.eps << "}}";
  return j.str();
}

void append(std::ofstream& out, const std::vector<float>& values) {
  out.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * sizeof(float)));
}

double relative_error(const float* ours, const double* reference, int64_t n) {
  double diff2 = 0, ref2 = 0;
  for (int64_t i = 0; i < n; i++) diff2 += (ours[i] - reference[i]) * (ours[i] - reference[i]), ref2 += reference[i] * reference[i];
  return std::sqrt(diff2 / ref2);
}

TEST(MatrixOptimizers, ten_steps_match_a_float64_numpy_reference) {
  if (test::run_command("/usr/bin/python3 -c 'import numpy'") != 0) GTEST_SKIP() << "numpy is not installed";
  const std::vector<double> lr_scales = {0.5, 1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4};
  // A wide and a tall matrix: row and column selection, both Gram sides.
  const test::MatrixProblem problem({{24, 40}, {48, 20}, {24, 40}}, int64_t(lr_scales.size()), 7);  // a repeated shape: one batch
  for (const Case& c : reference_cases()) {
    SCOPED_TRACE(c.name);
    test::MatrixOptimizerRun run(c.config, problem);
    test::ScratchDir dir;
    {
      std::ofstream inputs(dir / "inputs.bin", std::ios::binary);
      append(inputs, problem.weights);
      for (const auto& g : problem.grads) append(inputs, g);
      if (c.config.matrix == "dion") append(inputs, run.state("dion.Q"));  // its seeded start
    }
    test::write_text(dir / "case.json", case_json(c, problem, lr_scales));
    for (size_t t = 0; t < lr_scales.size(); t++) run.step(problem.grads[t], lr_scales[t], int64_t(t) + 1);

    std::string out;
    ASSERT_EQ(test::run_command("/usr/bin/python3 " + test::kSourceDir + "/tests/optim/matrix_optimizer_reference.py " +
                                dir.path.string(), &out), 0) << out;
    std::vector<double> reference(size_t(2 * problem.numel));
    std::ifstream(dir / "reference.bin", std::ios::binary)
        .read(reinterpret_cast<char*>(reference.data()), std::streamsize(reference.size() * sizeof(double)));
    const std::vector<float> momentum = run.state(c.config.matrix + ".momentum");
    ASSERT_EQ(int64_t(momentum.size()), problem.numel);

    const double weight_error = relative_error(run.weights.data(), reference.data(), problem.numel);
    const double momentum_error = relative_error(momentum.data(), reference.data() + problem.numel, problem.numel);
    // The change of the weights, judged on its own scale too.
    std::vector<float> change(size_t(problem.numel));
    std::vector<double> reference_change(size_t(problem.numel));
    for (int64_t i = 0; i < problem.numel; i++)
      change[i] = run.weights[i] - problem.weights[i], reference_change[i] = reference[i] - problem.weights[i];
    const double change_error = relative_error(change.data(), reference_change.data(), problem.numel);
    std::printf("%-28s weights %.2e  momentum %.2e  weight change %.2e\n", c.name.c_str(), weight_error,
                momentum_error, change_error);
    EXPECT_LT(weight_error, 1e-5);
    EXPECT_LT(momentum_error, 1e-5);
    EXPECT_LT(change_error, 1e-5);
  }
}

}  // namespace
}  // namespace llmdion
