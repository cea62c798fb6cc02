// The model as the trainer sees it, whatever the device: forward and backward
// on one micro-batch, and the flat parameter and gradient buffers the
// optimizers update. make_model() is the one place that decides the backend.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/device.h"
#include "core/rng.h"
#include "model/gpt.h"

namespace llmdion {

class Model {
 public:
  virtual ~Model() = default;
  virtual Device device() const = 0;
  virtual const GptShape& shape() const = 0;
  virtual const GptLayout& layout() const = 0;
  virtual int64_t batch_size() const = 0;
  virtual int64_t seq_len() const = 0;

  // Mean cross-entropy of the B*T next-token predictions (token ids on the
  // host). With targets null, only the logits are computed (see logits_row()).
  virtual float forward(const int32_t* inputs, const int32_t* targets) = 0;
  // grads += loss_scale * d(mean loss of the last forward)/d(params), calling
  // ready (if given) as stretches of the gradients become final (gpt.h), so
  // their communication can start while the backward goes on.
  virtual void backward(float loss_scale, const GradientsReady& ready) = 0;
  void backward(float loss_scale) { backward(loss_scale, nullptr); }
  // The Vp logits of row n (= b*T + t) of the last forward without targets, on the host.
  virtual const float* logits_row(int64_t n) = 0;

  // The fp32 parameters and their gradients, in layout order, in the backend's
  // memory. After anything writes params, params_changed() must follow.
  virtual std::span<float> params() = 0;
  virtual std::span<float> grads() = 0;
  virtual void zero_grads() = 0;
  // The compute copy of the weights follows params (cuda: bf16 by stochastic
  // rounding, the same for the same seed; cpu: computes on params itself).
  virtual void params_changed(uint64_t rounding_seed) = 0;
  // The global gradient norm sqrt(sum g^2), summed in a fixed order; and grads *= factor.
  virtual double grad_norm() = 0;
  virtual void scale_grads(float factor) = 0;
  // Host copies, for checkpoints and interop.
  virtual void copy_params_to_host(std::span<float> out) const = 0;
  virtual void copy_params_from_host(std::span<const float> in) = 0;
  virtual void copy_grads_to_host(std::span<float> out) const = 0;

  virtual std::string describe_memory() const = 0;
};

// The seed of params_changed() after `update_count` updates of a run seeded
// `run_seed`: a resumed run (or build/generate) rounds the loaded weights to
// bf16 (cuda) exactly as the uninterrupted run did.
inline uint64_t weight_rounding_seed(int64_t run_seed, int64_t update_count) {
  return derive_seed({uint64_t(run_seed), 0x5eedb16, uint64_t(update_count)});
}

std::unique_ptr<Model> make_model(Device device, const GptShape& shape, int64_t batch_size, int64_t seq_len);

}  // namespace llmdion
