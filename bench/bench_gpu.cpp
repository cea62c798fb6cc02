// GPU speed, printed as markdown tables (scripts/gpu_check.sh collects them):
//   1. Training steps (forward, backward, gradient norm, optimizer, bf16
//      rounding): GPT-2 124M at T 1024 beside llm.c's published 8xH100 run
//      (524288 tokens in 140 ms over 8 GPUs: ~468K tokens/s per H100), and the
//      Dion2 paper's 300M GPT (configs/paper_300m_*.yaml); tokens/s and MFU.
//   2. The optimizer step over the paper 300M's parameters: AdamW, Muon, Dion,
//      Dion2 at alpha 0.5 / 0.25 / 0.125, and one block at d_model 4096.
//   3. Newton-Schulz TFLOP/s against a large cuBLAS bf16 GEMM on the same GPU.
//   4. Causal attention, flash kernels (without and with RoPE inside) vs the
//      batched-GEMM reference path.
//   bench_gpu [gpt2_micro_batch] [steps]        (run from the repository root)
// MFU counts 6 N + 12 L C T FLOPs per token (PaLM's count, as llm.c reports
// it) against 989 TFLOP/s dense bf16, the H100 SXM's and the H200's peak.
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
#include "model/cpu/kernels.h"
#include "model/cuda/kernels.h"
#include "model/model.h"
#include "optim/newton_schulz.h"
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

// Median milliseconds of `steps` calls after 2 warmup calls.
template <typename Fn>
double median_ms(int steps, Fn&& fn) {
  std::vector<double> ms;
  for (int i = 0; i < steps + 2; i++) {
    const double t = time_ms(fn);
    if (i >= 2) ms.push_back(t);
  }
  return median(ms);
}

Config gpt2_124m_config() {
  Config c;
  c.model.n_layer = 12, c.model.n_head = 12, c.model.d_model = 768, c.model.seq_len = 1024;
  return c;
}

Config paper_300m_config(const std::string& matrix) {
  return load_config("configs/paper_300m_" + matrix + ".yaml",
                     {"run.device=cuda", "optim.ortho_precision=" + std::string(matrix == "adamw" ? "fp32" : "bf16")});
}

void print_training_header() {
  std::printf("| model, optimizer | B x T | forward ms | backward ms | norm + optimizer + rounding ms | step ms | "
              "tokens/s | MFU | vs llm.c GPT-2 (468K tokens/s) |\n|---|---|---|---|---|---|---|---|---|\n");
}

void bench_training(const std::string& name, Config config, int64_t B, int steps) {
  config.run.device = "cuda";
  const GptShape s = shape_from_config(config.model);
  const int64_t T = s.seq_len;
  std::unique_ptr<Model> model = make_model(Device::kCuda, s, B, T);
  std::vector<float> params(model->layout().num_params);
  gpt_init(s, model->layout(), 1, params);
  model->copy_params_from_host(params);
  model->params_changed(0);
  std::unique_ptr<Optimizer> optimizer = make_optimizer(config, model->layout());
  SplitMix64 rng{42};
  std::vector<int32_t> inputs(B * T), targets(B * T);
  std::vector<double> fwd, bwd, opt, total;
  for (int step = 0; step < steps + 3; step++) {
    for (int64_t i = 0; i < B * T; i++)
      inputs[i] = int32_t(rng.below(uint64_t(s.vocab_size))), targets[i] = int32_t(rng.below(uint64_t(s.vocab_size)));
    double f = 0, b = 0, o = 0;
    const double all = time_ms([&] {
      f = time_ms([&] {
        model->zero_grads();
        model->forward(inputs.data(), targets.data());
      });
      b = time_ms([&] { model->backward(1.0f); });
      o = time_ms([&] {
        model->grad_norm();
        optimizer->step(model->params(), model->grads(), 1.0, step + 1);
        model->params_changed(uint64_t(step + 1));
      });
    });
    if (step < 3) continue;  // warmup
    fwd.push_back(f), bwd.push_back(b), opt.push_back(o), total.push_back(all);
  }
  const int64_t n_params = count_trained_params(s, model->layout());
  const double flops_per_token = 6.0 * double(n_params) + 12.0 * s.n_layer * s.d_model * double(T);
  const double step_ms = median(total), tokens_per_s = double(B * T) * 1000.0 / step_ms;
  std::printf("| %s | %lld x %lld | %.1f | %.1f | %.1f | %.1f | %.0f | %.1f%% | %.2fx |\n", name.c_str(),
              static_cast<long long>(B), static_cast<long long>(T), median(fwd), median(bwd), median(opt), step_ms,
              tokens_per_s, 100.0 * flops_per_token * tokens_per_s / kPeakBf16Flops,
              tokens_per_s / kLlmcTokensPerSecond);
}

// The optimizer step over `layout`'s parameters with random gradients.
double optimizer_step_ms(const Config& config, const GptShape& s, int steps) {
  const GptLayout layout = gpt_layout(s);
  DeviceBuffer params(Device::kCuda, size_t(layout.num_params)), grads(Device::kCuda, size_t(layout.num_params));
  std::vector<float> host(size_t(layout.num_params));
  gpt_init(s, layout, 1, host);
  copy_from_host(Device::kCuda, host, params.data());
  SplitMix64 rng{3};
  for (float& g : host) g = float(double(rng.next() >> 11) / 9007199254740992.0 - 0.5) * 1e-3f;
  copy_from_host(Device::kCuda, host, grads.data());
  std::unique_ptr<Optimizer> optimizer = make_optimizer(config, layout);
  int64_t update = 0;
  return median_ms(steps, [&] { optimizer->step(params.span(), grads.span(), 1.0, ++update); });
}

void bench_optimizers(int steps) {
  struct Variant {
    const char* name;
    const char* matrix;
    double alpha;
    const char* precision;
  };
  const Variant variants[] = {{"AdamW", "adamw", 0, "fp32"},          {"Muon, fp32 products", "muon", 0, "fp32"},
                              {"Muon", "muon", 0, "bf16"},             {"Dion (rank 1/4)", "dion", 0, "fp32"},
                              {"Dion2 alpha 0.5", "dion2", 0.5, "bf16"}, {"Dion2 alpha 0.25", "dion2", 0.25, "bf16"},
                              {"Dion2 alpha 0.125", "dion2", 0.125, "bf16"}};
  // The paper 300M's parameters, then one block's matrices at d_model 4096 (the paper's Figure 1 regime).
  GptShape block = shape_from_config(paper_300m_config("adamw").model);
  block.n_layer = 1, block.d_model = 4096, block.n_head = 32, block.mlp_hidden = 4 * 4096, block.vocab_size = 128;
  block.padded_vocab = 128, block.seq_len = 128;
  for (const auto& [title, shape] : {std::pair{std::string("paper 300M"), shape_from_config(paper_300m_config("adamw").model)},
                                     std::pair{std::string("one paper block, d_model 4096"), block}}) {
    std::printf("| optimizer step, %s | ms | vs Muon (bf16 products) |\n|---|---|---|\n", title.c_str());
    double muon_ms = 0;
    for (const Variant& v : variants) {
      Config config;
      config.run.device = "cuda", config.optim.matrix = v.matrix, config.optim.ortho_precision = v.precision;
      if (v.alpha > 0) config.optim.alpha = v.alpha;
      const double ms = optimizer_step_ms(config, shape, steps);
      if (std::string(v.name) == "Muon") muon_ms = ms;
      std::printf("| %s | %.2f | %s |\n", v.name, ms,
                  muon_ms > 0 ? (std::to_string(ms / muon_ms).substr(0, 4) + "x").c_str() : "");
    }
    std::printf("\n");
  }
}

// Newton-Schulz on an s x l matrix: per step 4 s^2 l + 2 s^3 FLOPs counted as
// dense GEMMs (the two symmetric products do less work, so this is the speed in
// GEMM-equivalent FLOP/s); against a bf16 GEMM of 8192^3 through cuBLAS, the
// same library the products use. Then the Gram product X X^T alone, symmetric
// (syrk_batched) against dense: where the symmetry pays.
void bench_newton_schulz(int steps) {
  std::unique_ptr<MatrixOps> ops = make_matrix_ops("cuda");
  const int64_t g = 8192;
  float* a = ops->allocate(g * g);
  float* b = ops->allocate(g * g);
  float* c = ops->allocate(g * g);
  const double gemm_tflops = 2.0 * double(g) * g * g / median_ms(steps, [&] {
    ops->gemm_bf16(false, false, g, g, g, 1.0f, a, b, 0.0f, c);
  }) * 1e-9;
  std::printf("| Newton-Schulz x5, bf16 products | ms | TFLOP/s | of the bf16 GEMM (%.0f TFLOP/s, incl. rounding "
              "the operands) |\n|---|---|---|---|\n", gemm_tflops);
  for (const auto& [s, l] : {std::pair<int64_t, int64_t>{1024, 4096}, {4096, 4096}, {4096, 16384}}) {
    std::vector<float> host(size_t(s * l));
    SplitMix64 rng{9};
    for (float& x : host) x = float(double(rng.next() >> 11) / 9007199254740992.0 - 0.5);
    float* in = ops->allocate(s * l);
    float* out = ops->allocate(s * l);
    ops->copy_from_host(host, in);
    OrthoWorkspace work(*ops, s * l, s);
    const Orthonormalizer ortho{"newton_schulz", 5, true};
    const double ms = median_ms(steps, [&] { orthonormalize(*ops, ortho, s, l, in, out, work); });
    const double tflops = 5.0 * (4.0 * double(s) * s * l + 2.0 * double(s) * s * s) / ms * 1e-9;
    std::printf("| %lld x %lld | %.2f | %.0f | %.0f%% |\n", static_cast<long long>(s), static_cast<long long>(l), ms,
                tflops, 100.0 * tflops / gemm_tflops);
  }
  std::printf("\n| Gram X X^T, bf16 operands | symmetric ms | dense ms | dense / symmetric |\n|---|---|---|---|\n");
  for (const auto& [s, l] : {std::pair<int64_t, int64_t>{1024, 4096}, {4096, 4096}, {4096, 16384}}) {
    float* x = ops->allocate(s * l);
    float* gram = ops->allocate(s * s);
    const double symmetric = median_ms(steps, [&] { ops->syrk_batched(s, l, 1.0f, x, 0, 0.0f, gram, 0, 1, true); });
    const double dense = median_ms(steps, [&] { ops->gemm_bf16(false, true, s, s, l, 1.0f, x, x, 0.0f, gram); });
    std::printf("| %lld x %lld | %.2f | %.2f | %.2f |\n", static_cast<long long>(s), static_cast<long long>(l),
                symmetric, dense, dense / symmetric);
  }
  std::printf("\n");
}

void bench_attention(int B, int T, int NH, int hs, int repeats) {
  const int64_t N = int64_t(B) * T, C = int64_t(NH) * hs;
  using cuda::bf16;
  bf16 *qkv, *out, *dout, *dqkv;
  float *lse, *probs, *scratch, *rope_cos, *rope_sin;
  const int64_t scratch_floats = std::max(cuda::attention_backward_scratch_floats(B, T, NH, NH, hs),
                                          cuda::attention_reference_scratch_floats(B, T, NH, NH, hs));
  CUDA_CHECK(cudaMalloc(&qkv, N * 3 * C * sizeof(bf16)));
  CUDA_CHECK(cudaMalloc(&dqkv, N * 3 * C * sizeof(bf16)));
  CUDA_CHECK(cudaMalloc(&out, N * C * sizeof(bf16)));
  CUDA_CHECK(cudaMalloc(&dout, N * C * sizeof(bf16)));
  CUDA_CHECK(cudaMalloc(&lse, int64_t(B) * NH * T * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&probs, int64_t(B) * NH * T * T * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&scratch, scratch_floats * sizeof(float)));
  std::vector<float> cos_table(size_t(T) * hs / 2), sin_table(cos_table.size());
  cpu::rope_tables(cos_table.data(), sin_table.data(), T, hs, 10000.0);
  CUDA_CHECK(cudaMalloc(&rope_cos, cos_table.size() * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&rope_sin, sin_table.size() * sizeof(float)));
  CUDA_CHECK(cudaMemcpy(rope_cos, cos_table.data(), cos_table.size() * sizeof(float), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(rope_sin, sin_table.data(), sin_table.size() * sizeof(float), cudaMemcpyHostToDevice));
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
  const double flash_f =
      median_ms(repeats, [&] { cuda::attention_forward(out, lse, qkv, nullptr, nullptr, B, T, NH, NH, hs, 0); });
  const double flash_b = median_ms(repeats, [&] {
    cuda::attention_backward(dqkv, scratch, dout, out, qkv, nullptr, nullptr, lse, B, T, NH, NH, hs, 0);
  });
  const double rope_f =
      median_ms(repeats, [&] { cuda::attention_forward(out, lse, qkv, rope_cos, rope_sin, B, T, NH, NH, hs, 0); });
  const double rope_b = median_ms(repeats, [&] {
    cuda::attention_backward(dqkv, scratch, dout, out, qkv, rope_cos, rope_sin, lse, B, T, NH, NH, hs, 0);
  });
  const double ref_f = median_ms(repeats, [&] {
    cuda::attention_reference_forward(out, probs, scratch, qkv, B, T, NH, NH, hs, handle, 0);
  });
  const double ref_b = median_ms(repeats, [&] {
    cuda::attention_reference_backward(dqkv, scratch, dout, qkv, probs, B, T, NH, NH, hs, handle, 0);
  });
  // Causal attention: 2 products of T x T x hs per head forward, over half the square (x 0.5), 2.5x that backward.
  const double fwd_flops = 4.0 * B * NH * double(T) * T * hs * 0.5;
  std::printf("| attention B %d T %d heads %d hs %d | forward ms | backward ms | forward TFLOP/s | backward TFLOP/s |\n"
              "|---|---|---|---|---|\n", B, T, NH, hs);
  std::printf("| flash kernels | %.2f | %.2f | %.1f | %.1f |\n", flash_f, flash_b, fwd_flops / flash_f * 1e-9,
              2.5 * fwd_flops / flash_b * 1e-9);
  std::printf("| flash kernels, RoPE inside | %.2f | %.2f | %.1f | %.1f |\n", rope_f, rope_b,
              fwd_flops / rope_f * 1e-9, 2.5 * fwd_flops / rope_b * 1e-9);
  std::printf("| batched GEMM reference | %.2f | %.2f | %.1f | %.1f |\n\n", ref_f, ref_b, fwd_flops / ref_f * 1e-9,
              2.5 * fwd_flops / ref_b * 1e-9);
  CUBLAS_CHECK(cublasDestroy(handle));
  for (void* p : {(void*)qkv, (void*)dqkv, (void*)out, (void*)dout, (void*)lse, (void*)probs, (void*)scratch,
                  (void*)staging, (void*)rope_cos, (void*)rope_sin})
    CUDA_CHECK(cudaFree(p));
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t gpt2_batch = argc > 1 ? std::atoll(argv[1]) : 16;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 10;
  try {
    print_training_header();
    bench_training("GPT-2 124M, AdamW", gpt2_124m_config(), gpt2_batch, steps);
    for (const char* matrix : {"adamw", "dion2"}) {
      const Config config = paper_300m_config(matrix);
      bench_training(std::string("paper 300M, ") + matrix, config, config.train.micro_batch, steps);
    }
    std::printf("\n");
    bench_optimizers(steps);
    bench_newton_schulz(steps);
    bench_attention(8, 1024, 12, 64, steps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
