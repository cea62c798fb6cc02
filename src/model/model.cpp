#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "model/cpu/cpu_gpt.h"
#ifdef LLMDION_WITH_CUDA
#include "model/cuda/cuda_model.h"
#endif

namespace llmdion {
namespace {

class CpuModel final : public Model {
 public:
  CpuModel(const GptShape& shape, int64_t B, int64_t T) : gpt_(shape, B, T) {}
  Device device() const override { return Device::kCpu; }
  const GptShape& shape() const override { return gpt_.shape(); }
  const GptLayout& layout() const override { return gpt_.layout(); }
  int64_t batch_size() const override { return gpt_.batch_size(); }
  int64_t seq_len() const override { return gpt_.seq_len(); }
  float forward(const int32_t* inputs, const int32_t* targets) override { return gpt_.forward(inputs, targets); }
  using Model::backward;
  void backward(float loss_scale, const GradientsReady& ready) override { gpt_.backward(loss_scale, ready); }
  const float* logits_row(int64_t n) override { return gpt_.outputs() + n * gpt_.shape().padded_vocab; }
  std::span<float> params() override { return gpt_.params; }
  std::span<float> grads() override { return gpt_.grads; }
  void zero_grads() override { std::fill(gpt_.grads.begin(), gpt_.grads.end(), 0.0f); }
  void params_changed(uint64_t) override {}
  double grad_norm() override {
    // Fixed chunks summed in order: the same norm whatever the thread count.
    constexpr int64_t kChunk = 1 << 16;
    const int64_t n = int64_t(gpt_.grads.size()), chunks = (n + kChunk - 1) / kChunk;
    std::vector<double>& partial = norm_partials_;
    partial.resize(chunks);  // allocates on the first call only
    #pragma omp parallel for
    for (int64_t c = 0; c < chunks; c++) {
      double sum = 0;
      for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); i++) sum += double(gpt_.grads[i]) * gpt_.grads[i];
      partial[c] = sum;
    }
    double total = 0;
    for (double p : partial) total += p;
    return std::sqrt(total);
  }
  void scale_grads(float factor) override {
    #pragma omp parallel for
    for (int64_t i = 0; i < int64_t(gpt_.grads.size()); i++) gpt_.grads[i] *= factor;
  }
  void copy_grads_to_host(std::span<float> out) const override {
    std::copy(gpt_.grads.begin(), gpt_.grads.end(), out.begin());
  }
  void copy_params_to_host(std::span<float> out) const override {
    std::copy(gpt_.params.begin(), gpt_.params.end(), out.begin());
  }
  void copy_params_from_host(std::span<const float> in) override {
    std::copy(in.begin(), in.end(), gpt_.params.begin());
  }
  std::string describe_memory() const override {
    const double mb = 1.0 / (1 << 20);
    return "cpu: parameters + gradients " + std::to_string(int64_t(2 * gpt_.params.size() * 4 * mb)) +
           " MiB, activations " + std::to_string(int64_t(gpt_.activation_floats() * 4 * mb)) + " MiB";
  }

 private:
  cpu::CpuGpt<float> gpt_;
  std::vector<double> norm_partials_;
};

}  // namespace

std::unique_ptr<Model> make_model(Device device, const GptShape& shape, int64_t batch_size, int64_t seq_len) {
#ifdef LLMDION_WITH_CUDA
  if (device == Device::kCuda) return make_cuda_model(shape, batch_size, seq_len);
#endif
  if (device == Device::kCpu) return std::make_unique<CpuModel>(shape, batch_size, seq_len);
  throw std::invalid_argument(std::string("the ") + device_name(device) + " backend is not built in this binary");
}

}  // namespace llmdion
