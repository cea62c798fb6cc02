// AdamW (Loshchilov and Hutter 2019), per element, over groups with their own
// hyperparameters:
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//   m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)
//   w -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)
// (decoupled weight decay; written as llm.c writes it, so their losses match).
#pragma once

#include "core/device.h"
#include "optim/optimizer.h"

namespace llmdion {

struct AdamWGroup {
  std::string name;
  std::vector<ParamSlice> params;
  double lr, beta1, beta2, eps, weight_decay;
};

class AdamW final : public Optimizer {
 public:
  // params, grads and the moments live on `device` (cuda: optim/cuda/adamw.cu).
  AdamW(std::vector<AdamWGroup> groups, Device device);
  using Optimizer::step;
  void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count,
            const ParamsUpdated& updated) override;
  std::vector<OptimizerState> state() override;
  std::string describe() const override;

 private:
  std::vector<AdamWGroup> groups_;
  Device device_;
  DeviceBuffer m_, v_;                // moments of every owned element, group by group
  std::vector<int64_t> state_offset_; // per group, per slice: where its moments start
};

}  // namespace llmdion
