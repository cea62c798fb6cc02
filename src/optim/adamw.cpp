#include "optim/adamw.h"

#include <cmath>
#include <sstream>

#ifdef LLMDION_WITH_CUDA
#include "optim/cuda/adamw.h"
#endif

namespace llmdion {

AdamW::AdamW(std::vector<AdamWGroup> groups, Device device) : groups_(std::move(groups)), device_(device) {
  int64_t total = 0;
  for (const AdamWGroup& g : groups_)
    for (const ParamSlice& p : g.params) state_offset_.push_back(total), total += p.numel;
  m_ = DeviceBuffer(device, total);
  v_ = DeviceBuffer(device, total);
}

void AdamW::step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t t,
                 const ParamsUpdated& updated) {
  size_t slice = 0;
  for (const AdamWGroup& g : groups_) {
    const float lr = float(g.lr * lr_scale), beta1 = float(g.beta1), beta2 = float(g.beta2);
    const float eps = float(g.eps), weight_decay = float(g.weight_decay);
    const float correction1 = 1.0f - std::pow(beta1, float(t)), correction2 = 1.0f - std::pow(beta2, float(t));
    for (const ParamSlice& p : g.params) {
      float* w = params.data() + p.offset;
      const float* grad = grads.data() + p.offset;
      float* m = m_.data() + state_offset_[slice];
      float* v = v_.data() + state_offset_[slice];
      slice++;
#ifdef LLMDION_WITH_CUDA
      if (device_ == Device::kCuda) {
        cuda::adamw_update(w, grad, m, v, p.numel, {lr, beta1, beta2, eps, weight_decay, correction1, correction2}, 0);
        if (updated) updated(p.offset);
        continue;
      }
#endif
      #pragma omp parallel for
      for (int64_t i = 0; i < p.numel; i++) {
        m[i] = beta1 * m[i] + (1.0f - beta1) * grad[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * grad[i] * grad[i];
        const float m_hat = m[i] / correction1, v_hat = v[i] / correction2;
        w[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * w[i]);
      }
      if (updated) updated(p.offset);
    }
  }
}

std::vector<OptimizerState> AdamW::state() { return {{"adamw.m", m_.span()}, {"adamw.v", v_.span()}}; }

std::string AdamW::describe() const {
  std::ostringstream out;
  for (const AdamWGroup& g : groups_) {
    int64_t n = 0;
    for (const ParamSlice& p : g.params) n += p.numel;
    out << (out.tellp() > 0 ? "; " : "") << g.name << ": AdamW over " << g.params.size() << " tensors (" << n
        << " values), lr " << g.lr << ", betas " << g.beta1 << "/" << g.beta2 << ", eps " << g.eps
        << ", weight decay " << g.weight_decay;
  }
  return out.str();
}

}  // namespace llmdion
