// CPU training step speed: forward, backward and AdamW for a few GPT-2 shapes,
// median over steps after warmup, printed as a table.
//   bench_train_step [steps]
// The first row is the shape of llm.c's CPU reference timing (train_gpt2.c,
// GPT-2 with 4 layers, 4 heads, d_model 128, vocab 50257, B 4, T 64).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "config/config.h"
#include "core/rng.h"
#include "model/model.h"
#include "optim/optimizer.h"

using namespace llmdion;

namespace {

struct Case {
  const char* name;
  int n_layer, n_head, d_model, seq_len;
  int64_t B, T;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 40;
  const std::vector<Case> cases = {
      {"llm.c CPU reference shape", 4, 4, 128, 64, 4, 64},
      {"configs/default.yaml", 4, 4, 128, 256, 4, 256},
      {"6 layers, d 256", 6, 8, 256, 256, 4, 256},
  };
  std::printf("| shape | L | C | B x T | forward ms | backward ms | AdamW ms | step ms | tokens/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const Case& c : cases) {
    GptShape s;
    s.n_layer = c.n_layer, s.n_head = c.n_head, s.d_model = c.d_model, s.seq_len = c.seq_len;
    s.vocab_size = 50257, s.padded_vocab = padded_vocab_size(s.vocab_size), s.mlp_hidden = 4 * c.d_model;
    std::unique_ptr<Model> model = make_model(Device::kCpu, s, c.B, c.T);
    std::vector<float> params(model->layout().num_params);
    gpt_init(s, model->layout(), 1, params);
    model->copy_params_from_host(params);
    Config config;
    std::unique_ptr<Optimizer> optimizer = make_optimizer(config, model->layout());
    SplitMix64 rng{42};
    std::vector<int32_t> inputs(c.B * c.T), targets(c.B * c.T);
    std::vector<double> fwd, bwd, opt, total;
    for (int step = 0; step < steps + 3; step++) {
      for (int64_t i = 0; i < c.B * c.T; i++) inputs[i] = int32_t(rng.below(50257)), targets[i] = int32_t(rng.below(50257));
      const auto t0 = std::chrono::steady_clock::now();
      model->zero_grads();
      model->forward(inputs.data(), targets.data());
      const auto t1 = std::chrono::steady_clock::now();
      model->backward(1.0f);
      const auto t2 = std::chrono::steady_clock::now();
      optimizer->step(model->params(), model->grads(), 1.0, step + 1);
      const auto t3 = std::chrono::steady_clock::now();
      if (step < 3) continue;  // warmup
      fwd.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      bwd.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
      opt.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
      total.push_back(std::chrono::duration<double, std::milli>(t3 - t0).count());
    }
    const double step_ms = median(total);
    std::printf("| %s | %d | %d | %lld x %lld | %.1f | %.1f | %.1f | %.1f | %.0f |\n", c.name, c.n_layer, c.d_model,
                static_cast<long long>(c.B), static_cast<long long>(c.T), median(fwd), median(bwd), median(opt), step_ms,
                double(c.B * c.T) * 1000.0 / step_ms);
  }
  std::printf("\n%d threads, median of %d steps after 3 warmup steps\n", omp_get_max_threads(), steps);
  return 0;
}
