// The Optimizer interface, and how parameters are grouped by role: matrices go
// to the matrix optimizer (optim section), embeddings, head, norms and biases to
// AdamW (scalar_opt section).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "model/gpt.h"
#include "optim/matrix_ops.h"
#include "optim/matrix_param.h"

namespace llmdion {

// A named piece of optimizer state (a moment buffer, ...), saved in checkpoints.
struct OptimizerState {
  std::string name;
  std::span<float> data;
};

// Whole rows or columns of a matrix, in ascending order.
struct SliceSelection {
  SliceDim dim;
  std::vector<int64_t> indices;
};

// Called by a step as it finishes each parameter it updates (a matrix, or an
// AdamW slice), with the parameter's offset: its new values are final (on a
// GPU, once the work queued so far is done), so they can travel to the other
// ranks while the step goes on.
using ParamsUpdated = std::function<void(int64_t offset)>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of params from grads. lr_scale is the schedule's multiplier;
  // update_count is the 1-based number of this update (for bias corrections).
  virtual void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count,
                    const ParamsUpdated& updated) = 0;
  void step(std::span<float> params, std::span<const float> grads, double lr_scale, int64_t update_count) {
    step(params, grads, lr_scale, update_count, nullptr);
  }
  virtual std::vector<OptimizerState> state() = 0;
  virtual std::string describe() const = 0;
  // The slices of the matrix at `offset` that the last step changed beyond
  // the decay W *= 1 - lr * weight_decay that every entry gets (Dion2: its
  // selected rows or columns); null when any entry may have changed. Ranks
  // that do not own the matrix apply the decay themselves and receive only these.
  virtual const SliceSelection* changed_slices(int64_t /*offset*/) const { return nullptr; }
};

// A tensor's place in the flat buffers.
struct ParamSlice {
  std::string name;
  int64_t offset, numel;
};

// Builds the optimizer the config asks for over the model's parameters.
std::unique_ptr<Optimizer> make_optimizer(const Config& config, const GptLayout& layout);

// The same over some of them (one rank's share): `matrices` for the matrix
// optimizer (none when optim.matrix is adamw), AdamW over `matrix_slices` with
// the optim section's settings and over `other_slices` with scalar_opt's.
// average_over_ranks: Dion2's compressed sync (optim.sync: selected), else empty.
std::unique_ptr<Optimizer> make_optimizer_over(const Config& config, std::vector<MatrixParam> matrices,
                                               std::vector<ParamSlice> matrix_slices,
                                               std::vector<ParamSlice> other_slices,
                                               std::function<void(std::span<float>)> average_over_ranks = {});

}  // namespace llmdion
