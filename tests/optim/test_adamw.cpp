// AdamW against PyTorch's torch.optim.AdamW (float64) over several steps, with
// two groups of different hyperparameters, and its state buffers named.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/rng.h"
#include "optim/adamw.h"
#include "test_util.h"

namespace llmdion {
namespace {

TEST(AdamW, five_steps_match_pytorch_adamw_in_float64) {
  if (test::run_command("/usr/bin/python3 -c 'import torch'") != 0) GTEST_SKIP() << "torch is not installed";
  const int64_t n = 64, steps = 5;
  SplitMix64 rng{3};
  auto uniform = [&] { return float(double(rng.next() >> 11) / 9007199254740992.0 * 2 - 1); };
  std::vector<float> params(n);
  for (float& p : params) p = uniform();
  std::vector<std::vector<float>> grads(steps, std::vector<float>(n));
  for (auto& g : grads)
    for (float& x : g) x = uniform() * 0.1f;
  // Group 1: the first 40 values (two slices); group 2: the rest.
  AdamW adamw({{"a", {{"x", 0, 24}, {"y", 24, 16}}, 1e-2, 0.9, 0.95, 1e-8, 0.1},
               {"b", {{"z", 40, 24}}, 3e-3, 0.8, 0.999, 1e-6, 0.0}},
              Device::kCpu);
  std::vector<float> ours = params;
  const std::vector<double> lr_scale = {1.0, 0.5, 0.25, 1.0, 0.75};
  for (int64_t t = 0; t < steps; t++) adamw.step(ours, grads[t], lr_scale[t], t + 1);

  std::ostringstream script;
  script.precision(17);
  script << "import torch\ntorch.set_default_dtype(torch.float64)\n";
  auto list = [&](const std::vector<float>& v, int64_t begin, int64_t end) {
    std::ostringstream s;
    s.precision(17);
    s << "[";
    for (int64_t i = begin; i < end; i++) s << double(v[i]) << ",";
    s << "]";
    return s.str();
  };
  script << "a = torch.tensor(" << list(params, 0, 40) << ", requires_grad=True)\n";
  script << "b = torch.tensor(" << list(params, 40, n) << ", requires_grad=True)\n";
  script << "opt = torch.optim.AdamW([{'params': [a], 'lr': 1e-2, 'betas': (0.9, 0.95), 'eps': 1e-8, "
            "'weight_decay': 0.1}, {'params': [b], 'lr': 3e-3, 'betas': (0.8, 0.999), 'eps': 1e-6, "
            "'weight_decay': 0.0}])\n";
  for (int64_t t = 0; t < steps; t++) {
    script << "a.grad = torch.tensor(" << list(grads[t], 0, 40) << ")\n";
    script << "b.grad = torch.tensor(" << list(grads[t], 40, n) << ")\n";
    script << "opt.param_groups[0]['lr'] = 1e-2 * " << lr_scale[t] << "\n";
    script << "opt.param_groups[1]['lr'] = 3e-3 * " << lr_scale[t] << "\n";
    script << "opt.step()\n";
  }
  script << "print(' '.join(repr(float(x)) for x in torch.cat([a, b]).detach()))\n";
  test::ScratchDir dir;
  test::write_text(dir / "adamw.py", script.str());
  std::string out;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + (dir / "adamw.py"), &out), 0) << out;
  std::istringstream values(out);
  double diff2 = 0, change2 = 0;
  for (int64_t i = 0; i < n; i++) {
    double reference;
    ASSERT_TRUE(values >> reference) << out;
    diff2 += (ours[i] - reference) * (ours[i] - reference);
    change2 += (reference - params[i]) * (reference - params[i]);
  }
  // Relative to the size of the update itself, not of the weights.
  EXPECT_LT(std::sqrt(diff2 / change2), 1e-5);
}

TEST(AdamW, zero_gradient_and_zero_weight_stay_zero) {
  // The padded vocabulary rows rely on this.
  AdamW adamw({{"g", {{"p", 0, 4}}, 1e-2, 0.9, 0.95, 1e-8, 0.1}}, Device::kCpu);
  std::vector<float> params = {0, 0, 0, 0}, grads = {0, 0, 0, 0};
  for (int t = 1; t <= 3; t++) adamw.step(params, grads, 1.0, t);
  EXPECT_EQ(params, (std::vector<float>{0, 0, 0, 0}));
  ASSERT_EQ(adamw.state().size(), 2u);
  EXPECT_EQ(adamw.state()[0].name, "adamw.m");
  EXPECT_EQ(adamw.state()[1].data.size(), 4u);
}

}  // namespace
}  // namespace llmdion
