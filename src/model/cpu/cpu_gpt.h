// The GPT family's forward and backward on the CPU for one fixed micro-batch shape B x T,
// in fp32 (training) or fp64 (gradient checks). All activation memory is
// planned at construction; a step allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "model/gpt.h"

namespace llmdion::cpu {

template <typename Real>
class CpuGpt {
 public:
  CpuGpt(const GptShape& shape, int64_t batch_size, int64_t seq_len);

  // Forward pass. With targets: returns the mean cross-entropy over the B*T
  // positions and leaves the probabilities in outputs(). Without (targets null):
  // returns 0 and leaves the raw logits in outputs().
  Real forward(const int32_t* inputs, const int32_t* targets);
  // Backward of the last forward (which had targets): grads += loss_scale * d(mean loss)/d(params).
  void backward(Real loss_scale, const GradientsReady& ready = nullptr);

  const GptShape& shape() const { return shape_; }
  const GptLayout& layout() const { return layout_; }
  int64_t batch_size() const { return B_; }
  int64_t seq_len() const { return T_; }
  // [B*T, Vp] of the last forward: probabilities or logits (see forward), until
  // backward overwrites them with the logits' gradient.
  const Real* outputs() const { return logits_.data(); }
  int64_t activation_floats() const;  // what this model holds: planned_activation_floats(), allocated

  std::vector<Real> params, grads;  // flat buffers in layout order

 private:
  GptShape shape_;
  GptLayout layout_;
  int64_t B_, T_;
  std::vector<int32_t> inputs_, targets_;
  // Saved activations; per-layer tensors hold n_layer slices. Widths: C model,
  // W = q|k|v, F = the MLP's first matmul (H, or 2H gate|up for swiglu), H.
  std::vector<Real> residual_;        // (L+1) x N x C: block inputs, then the final residual
  std::vector<Real> ln1_, ln1_mean_, ln1_rstd_;
  std::vector<Real> qkv_;             // L x N x W, after qk-norm and rotary positions
  std::vector<Real> qk_rstd_;         // L x N x (NH + NKV): qk-norm's per-head rstd
  std::vector<Real> attn_probs_, attn_y_;
  std::vector<Real> residual_mid_;    // L x N x C: after the attention branch
  std::vector<Real> ln2_, ln2_mean_, ln2_rstd_, fc_, act_;
  std::vector<Real> lnf_, lnf_mean_, lnf_rstd_, logits_, losses_;
  std::vector<Real> rope_cos_, rope_sin_;  // T x hs/2
  // Backward scratch, reused by every layer.
  std::vector<Real> d_residual_, d_ln_, d_qkv_, d_attn_y_, d_fc_, d_act_, d_attn_scratch_;

  void norm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, int64_t weight, int64_t bias) const;
  void norm_backward(Real* dinp, const Real* dout, const Real* inp, int64_t weight, int64_t bias, const Real* mean,
                     const Real* rstd);
};

// The activations and backward scratch a CpuGpt of `shape` at B x T holds,
// in Reals, with `threads` OpenMP threads: the constructor's sizes, before any
// allocation (the trainer's memory estimate).
int64_t planned_activation_floats(const GptShape& shape, int64_t B, int64_t T, int64_t threads);

extern template class CpuGpt<float>;
extern template class CpuGpt<double>;

}  // namespace llmdion::cpu
