// GPU speed, printed as markdown tables (scripts/gpu_check.sh collects them):
//   1. GPT-2 124M training steps (forward, backward, AdamW, bf16 rounding) at
//      T 1024: tokens/s and MFU, beside llm.c's published 8xH100 run
//      (524288 tokens in 140 ms over 8 GPUs: ~468K tokens/s per H100).
//   2. The optimizer step over GPT-2 124M's parameters: AdamW, Muon, Dion,
//      Dion2 at alpha 0.5 / 0.25 / 0.125 (fp32 MatrixOps on cuBLAS).
//   3. Causal attention, flash kernels vs the batched-GEMM reference path.
//   bench_gpu [micro_batch] [steps]
// MFU counts 6 N + 12 L C T FLOPs per token (PaLM's count, as llm.c reports
// it) against the H100 SXM's 989 TFLOP/s dense bf16.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/cuda/check.h"
#include "core/device.h"
#include "core/rng.h"
#include "model/cuda/kernels.h"
#include "model/model.h"
#include "optim/optimizer.h"

using namespace llmdion;

namespace {

constexpr double kPeakBf16Flops = 989e12;
constexpr double kLlmcTokensPerSecond = 524288.0 / 0.140 / 8;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Milliseconds of fn on the GPU, by events.
template <typename Fn>
double time_ms(Fn&& fn) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  CUDA_CHECK(cudaEventRecord(start, 0));
  fn();
  CUDA_CHECK(cudaEventRecord(stop, 0));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return ms;
}

GptShape gpt2_124m() {
  GptShape s;
  s.n_layer = 12, s.n_head = 12, s.d_model = 768, s.seq_len = 1024, s.vocab_size = 50257;
  s.padded_vocab = padded_vocab_size(s.vocab_size), s.mlp_hidden = 3072;
  return s;
}

void bench_training(int64_t B, int steps) {
  const GptShape s = gpt2_124m();
  const int64_t T = 1024;
  std::unique_ptr<Model> model = make_model(Device::kCuda, s, B, T);
  std::printf("memory: %s\n\n", model->describe_memory().c_str());
  std::vector<float> params(model->layout().num_params);
  gpt_init(s, model->layout(), 1, params);
  model->copy_params_from_host(params);
  model->params_changed(0);
  Config config;
  config.run.device = "cuda";
  std::unique_ptr<Optimizer> adamw = make_optimizer(config, model->layout());
  SplitMix64 rng{42};
  std::vector<int32_t> inputs(B * T), targets(B * T);
  std::vector<double> fwd, bwd, opt, total;
  for (int step = 0; step < steps + 3; step++) {
    for (int64_t i = 0; i < B * T; i++) inputs[i] = int32_t(rng.below(50257)), targets[i] = int32_t(rng.below(50257));
    double f = 0, b = 0, o = 0;
    const double all = time_ms([&] {
      f = time_ms([&] {
        model->zero_grads();
        model->forward(inputs.data(), targets.data());
      });
      b = time_ms([&] { model->backward(1.0f); });
      o = time_ms([&] {
        model->grad_norm();
        adamw->step(model->params(), model->grads(), 1.0, step + 1);
        model->params_changed(uint64_t(step + 1));
      });
    });
    if (step < 3) continue;  // warmup
    fwd.push_back(f), bwd.push_back(b), opt.push_back(o), total.push_back(all);
  }
  const int64_t n_params = count_trained_params(s, model->layout());
  const double flops_per_token = 6.0 * double(n_params) + 12.0 * s.n_layer * s.d_model * double(T);
  const double step_ms = median(total), tokens_per_s = double(B * T) * 1000.0 / step_ms;
  std::printf("| model | B x T | forward ms | backward ms | norm + AdamW + rounding ms | step ms | tokens/s | MFU | "
              "vs llm.c (468K tokens/s) |\n|---|---|---|---|---|---|---|---|---|\n");
  std::printf("| GPT-2 124M | %lld x %lld | %.1f | %.1f | %.1f | %.1f | %.0f | %.1f%% | %.2fx |\n\n",
              static_cast<long long>(B), static_cast<long long>(T), median(fwd), median(bwd), median(opt), step_ms,
              tokens_per_s, 100.0 * flops_per_token * tokens_per_s / kPeakBf16Flops,
              tokens_per_s / kLlmcTokensPerSecond);
}

void bench_optimizers(int steps) {
  const GptShape s = gpt2_124m();
  const GptLayout layout = gpt_layout(s);
  DeviceBuffer params(Device::kCuda, size_t(layout.num_params)), grads(Device::kCuda, size_t(layout.num_params));
  std::vector<float> host(size_t(layout.num_params));
  gpt_init(s, layout, 1, host);
  copy_from_host(Device::kCuda, host, params.data());
  SplitMix64 rng{3};
  for (float& g : host) g = float(double(rng.next() >> 11) / 9007199254740992.0 - 0.5) * 1e-3f;
  copy_from_host(Device::kCuda, host, grads.data());
  struct Variant {
    const char* name;
    const char* matrix;
    double alpha;
  };
  const Variant variants[] = {{"AdamW", "adamw", 0}, {"Muon", "muon", 0}, {"Dion (rank 1/4)", "dion", 0},
                              {"Dion2 alpha 0.5", "dion2", 0.5}, {"Dion2 alpha 0.25", "dion2", 0.25},
                              {"Dion2 alpha 0.125", "dion2", 0.125}};
  std::printf("| optimizer over GPT-2 124M | step ms | vs Muon |\n|---|---|---|\n");
  double muon_ms = 0;
  for (const Variant& v : variants) {
    Config config;
    config.run.device = "cuda", config.optim.matrix = v.matrix;
    if (v.alpha > 0) config.optim.alpha = v.alpha;
    std::unique_ptr<Optimizer> optimizer = make_optimizer(config, layout);
    std::vector<double> ms;
    for (int step = 0; step < steps + 2; step++) {
      const double t = time_ms([&] { optimizer->step(params.span(), grads.span(), 1.0, step + 1); });
      if (step >= 2) ms.push_back(t);
    }
    const double step_ms = median(ms);
    if (std::string(v.matrix) == "muon") muon_ms = step_ms;
    std::printf("| %s | %.2f | %s |\n", v.name, step_ms,
                muon_ms > 0 ? (std::to_string(step_ms / muon_ms).substr(0, 4) + "x").c_str() : "");
  }
  std::printf("\n");
}

void bench_attention(int B, int T, int NH, int hs, int repeats) {
  const int64_t N = int64_t(B) * T, C = int64_t(NH) * hs;
  using cuda::bf16;
  bf16 *qkv, *out, *dout, *dqkv;
  float *lse, *probs, *scratch;
  const int64_t scratch_floats = std::max(cuda::attention_backward_scratch_floats(B, T, NH, NH, hs),
                                          cuda::attention_reference_scratch_floats(B, T, NH, NH, hs));
  CUDA_CHECK(cudaMalloc(&qkv, N * 3 * C * sizeof(bf16)));
  CUDA_CHECK(cudaMalloc(&dqkv, N * 3 * C * sizeof(bf16)));
  CUDA_CHECK(cudaMalloc(&out, N * C * sizeof(bf16)));
  CUDA_CHECK(cudaMalloc(&dout, N * C * sizeof(bf16)));
  CUDA_CHECK(cudaMalloc(&lse, int64_t(B) * NH * T * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&probs, int64_t(B) * NH * T * T * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&scratch, scratch_floats * sizeof(float)));
  std::vector<float> host(N * 3 * C);
  SplitMix64 rng{7};
  for (float& x : host) x = float(double(rng.next() >> 11) / 9007199254740992.0 - 0.5);
  float* staging;
  CUDA_CHECK(cudaMalloc(&staging, host.size() * sizeof(float)));
  CUDA_CHECK(cudaMemcpy(staging, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
  cuda::round_to_bf16_nearest(qkv, staging, int64_t(host.size()), 0);
  cuda::round_to_bf16_nearest(dout, staging, N * C, 0);
  cublasHandle_t handle;
  CUBLAS_CHECK(cublasCreate(&handle));
  std::vector<double> flash_f, flash_b, ref_f, ref_b;
  for (int r = 0; r < repeats + 2; r++) {
    const double ff = time_ms([&] { cuda::attention_forward(out, lse, qkv, B, T, NH, NH, hs, 0); });
    const double fb = time_ms([&] { cuda::attention_backward(dqkv, scratch, dout, out, qkv, lse, B, T, NH, NH, hs, 0); });
    const double rf = time_ms([&] { cuda::attention_reference_forward(out, probs, scratch, qkv, B, T, NH, NH, hs, handle, 0); });
    const double rb = time_ms([&] { cuda::attention_reference_backward(dqkv, scratch, dout, qkv, probs, B, T, NH, NH, hs, handle, 0); });
    if (r < 2) continue;
    flash_f.push_back(ff), flash_b.push_back(fb), ref_f.push_back(rf), ref_b.push_back(rb);
  }
  // Causal attention: 2 products of T x T x hs per head forward, over half the square (x 0.5), 2.5x that backward.
  const double fwd_flops = 4.0 * B * NH * double(T) * T * hs * 0.5;
  std::printf("| attention B %d T %d heads %d hs %d | forward ms | backward ms | forward TFLOP/s | backward TFLOP/s |\n"
              "|---|---|---|---|---|\n", B, T, NH, hs);
  for (int path = 0; path < 2; path++) {
    const double f = median(path == 0 ? flash_f : ref_f), b = median(path == 0 ? flash_b : ref_b);
    std::printf("| %s | %.2f | %.2f | %.1f | %.1f |\n", path == 0 ? "flash kernels" : "batched GEMM reference", f, b,
                fwd_flops / f * 1e-9, 2.5 * fwd_flops / b * 1e-9);
  }
  std::printf("\n");
  CUBLAS_CHECK(cublasDestroy(handle));
  for (void* p : {(void*)qkv, (void*)dqkv, (void*)out, (void*)dout, (void*)lse, (void*)probs, (void*)scratch,
                  (void*)staging})
    CUDA_CHECK(cudaFree(p));
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t B = argc > 1 ? std::atoll(argv[1]) : 16;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 10;
  try {
    bench_training(B, steps);
    bench_optimizers(steps);
    bench_attention(8, 1024, 12, 64, 10);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
