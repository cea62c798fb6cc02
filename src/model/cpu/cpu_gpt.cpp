#include "model/cpu/cpu_gpt.h"

#include <omp.h>

#include <algorithm>
#include <stdexcept>

#include "model/cpu/kernels.h"

namespace llmdion::cpu {

template <typename Real>
CpuGpt<Real>::CpuGpt(const GptShape& shape, int64_t batch_size, int64_t seq_len)
    : shape_(shape), layout_(gpt_layout(shape)), B_(batch_size), T_(seq_len) {
  if (seq_len > shape.seq_len)
    throw std::invalid_argument("sequence length " + std::to_string(seq_len) + " exceeds the model's " +
                                std::to_string(shape.seq_len));
  const int64_t N = B_ * T_, C = shape.d_model, L = shape.n_layer, H = shape.mlp_hidden;
  const int64_t NH = shape.n_head, NKV = shape.kv_heads(), hs = shape.head_size(), Vp = shape.padded_vocab;
  const int64_t W = C + 2 * shape.kv_width(), F = shape.mlp == MlpKind::kSwiglu ? 2 * H : H;
  const bool layernorm = shape.norm == NormKind::kLayerNorm;
  params.assign(layout_.num_params, 0);
  grads.assign(layout_.num_params, 0);
  inputs_.resize(N);
  targets_.resize(N);
  residual_.resize((L + 1) * N * C);
  ln1_.resize(L * N * C), ln1_mean_.resize(layernorm ? L * N : 0), ln1_rstd_.resize(L * N);
  qkv_.resize(L * N * W), qk_rstd_.resize(shape.qk_norm ? L * N * (NH + NKV) : 0);
  attn_probs_.resize(L * B_ * NH * T_ * T_), attn_y_.resize(L * N * C);
  residual_mid_.resize(L * N * C);
  ln2_.resize(L * N * C), ln2_mean_.resize(layernorm ? L * N : 0), ln2_rstd_.resize(L * N);
  fc_.resize(L * N * F), act_.resize(L * N * H);
  lnf_.resize(N * C), lnf_mean_.resize(layernorm ? N : 0), lnf_rstd_.resize(N);
  logits_.resize(N * Vp), losses_.resize(N);
  if (shape.rope) {
    rope_cos_.resize(T_ * hs / 2), rope_sin_.resize(T_ * hs / 2);
    rope_tables(rope_cos_.data(), rope_sin_.data(), T_, hs, shape.rope_theta);
  }
  d_residual_.resize(N * C), d_ln_.resize(N * C), d_qkv_.resize(N * W), d_attn_y_.resize(N * C);
  d_fc_.resize(N * F), d_act_.resize(N * H), d_attn_scratch_.resize(int64_t(omp_get_max_threads()) * T_ * T_);
}

int64_t planned_activation_floats(const GptShape& shape, int64_t B, int64_t T, int64_t threads) {
  const int64_t N = B * T, C = shape.d_model, L = shape.n_layer, H = shape.mlp_hidden;
  const int64_t NH = shape.n_head, NKV = shape.kv_heads(), hs = shape.head_size(), Vp = shape.padded_vocab;
  const int64_t W = C + 2 * shape.kv_width(), F = shape.mlp == MlpKind::kSwiglu ? 2 * H : H;
  const int64_t stats = shape.norm == NormKind::kLayerNorm ? 2 : 1;  // mean (layernorm) and rstd per row
  return (L + 1) * N * C                                  // residual
         + L * N * (C + stats)                            // ln1 and its statistics
         + L * N * W + (shape.qk_norm ? L * N * (NH + NKV) : 0)  // qkv, qk-norm's rstd
         + L * B * NH * T * T + 2 * L * N * C              // attention probabilities, y, residual_mid
         + L * N * (C + stats) + L * N * (F + H)          // ln2 and its statistics, fc, act
         + N * (C + stats) + N * Vp + N                   // lnf, logits, losses
         + (shape.rope ? T * hs : 0)                      // rope cos, sin
         + N * (3 * C + W + F + H) + threads * T * T;     // backward scratch
}

template <typename Real>
int64_t CpuGpt<Real>::activation_floats() const {
  int64_t n = 0;
  for (const std::vector<Real>* v : {&residual_, &ln1_, &ln1_mean_, &ln1_rstd_, &qkv_, &qk_rstd_, &attn_probs_,
                                     &attn_y_, &residual_mid_, &ln2_, &ln2_mean_, &ln2_rstd_, &fc_, &act_, &lnf_,
                                     &lnf_mean_, &lnf_rstd_, &logits_, &losses_, &rope_cos_, &rope_sin_, &d_residual_,
                                     &d_ln_, &d_qkv_, &d_attn_y_, &d_fc_, &d_act_, &d_attn_scratch_})
    n += int64_t(v->size());
  return n;
}

// LayerNorm or RMSNorm of N rows of C; weight and bias are offsets (-1: none).
template <typename Real>
void CpuGpt<Real>::norm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, int64_t weight,
                                int64_t bias) const {
  const int64_t N = B_ * T_, C = shape_.d_model;
  const Real* w = weight < 0 ? nullptr : params.data() + weight;
  if (shape_.norm == NormKind::kLayerNorm)
    layernorm_forward(out, mean, rstd, inp, w, bias < 0 ? nullptr : params.data() + bias, N, C);
  else
    rmsnorm_forward(out, rstd, inp, w, N, C);
}

template <typename Real>
void CpuGpt<Real>::norm_backward(Real* dinp, const Real* dout, const Real* inp, int64_t weight, int64_t bias,
                                 const Real* mean, const Real* rstd) {
  const int64_t N = B_ * T_, C = shape_.d_model;
  const Real* w = weight < 0 ? nullptr : params.data() + weight;
  Real* dw = weight < 0 ? nullptr : grads.data() + weight;
  if (shape_.norm == NormKind::kLayerNorm)
    layernorm_backward(dinp, dw, bias < 0 ? nullptr : grads.data() + bias, dout, inp, w, mean, rstd, N, C);
  else
    rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
}

template <typename Real>
Real CpuGpt<Real>::forward(const int32_t* inputs, const int32_t* targets) {
  const int64_t N = B_ * T_, C = shape_.d_model, H = shape_.mlp_hidden, NH = shape_.n_head, NKV = shape_.kv_heads();
  const int64_t hs = shape_.head_size(), W = C + 2 * shape_.kv_width();
  const int64_t F = shape_.mlp == MlpKind::kSwiglu ? 2 * H : H, V = shape_.vocab_size, Vp = shape_.padded_vocab;
  const Real* p = params.data();
  auto at = [&](int64_t offset) { return offset < 0 ? nullptr : p + offset; };
  std::copy(inputs, inputs + N, inputs_.begin());
  if (targets) std::copy(targets, targets + N, targets_.begin());
  auto stats = [&](std::vector<Real>& v, int64_t l) { return v.empty() ? nullptr : v.data() + l * N; };

  embedding_forward(residual_.data(), inputs, p + layout_.wte, at(layout_.wpe), B_, T_, C);
  for (int64_t l = 0; l < shape_.n_layer; l++) {
    const BlockOffsets& w = layout_.blocks[l];
    const Real* x = residual_.data() + l * N * C;
    Real* ln1 = ln1_.data() + l * N * C;
    Real* qkv = qkv_.data() + l * N * W;
    Real* y = attn_y_.data() + l * N * C;
    Real* mid = residual_mid_.data() + l * N * C;
    Real* ln2 = ln2_.data() + l * N * C;
    Real* fc = fc_.data() + l * N * F;
    Real* act = act_.data() + l * N * H;
    Real* next = residual_.data() + (l + 1) * N * C;

    norm_forward(ln1, stats(ln1_mean_, l), ln1_rstd_.data() + l * N, x, w.ln1_w, w.ln1_b);
    matmul_forward(qkv, ln1, p + w.qkv_w, at(w.qkv_b), N, C, W, false);
    if (shape_.rope)  // q and k heads are contiguous: NH + NKV heads from the row start
      rope_rotate(qkv, rope_cos_.data(), rope_sin_.data(), N, T_, NH + NKV, hs, W, false);
    if (shape_.qk_norm) head_rmsnorm_forward(qkv, qk_rstd_.data() + l * N * (NH + NKV), N, NH + NKV, hs, W);
    attention_forward(y, attn_probs_.data() + l * B_ * NH * T_ * T_, qkv, B_, T_, NH, NKV, hs);
    std::copy(x, x + N * C, mid);
    matmul_forward(mid, y, p + w.attn_out_w, at(w.attn_out_b), N, C, C, true);
    norm_forward(ln2, stats(ln2_mean_, l), ln2_rstd_.data() + l * N, mid, w.ln2_w, w.ln2_b);
    matmul_forward(fc, ln2, p + w.fc_w, at(w.fc_b), N, C, F, false);
    switch (shape_.mlp) {
      case MlpKind::kGelu: gelu_forward(act, fc, N * H); break;
      case MlpKind::kRelu2: relu2_forward(act, fc, N * H); break;
      case MlpKind::kSwiglu: swiglu_forward(act, fc, N, H); break;
    }
    std::copy(mid, mid + N * C, next);
    matmul_forward(next, act, p + w.proj_w, at(w.proj_b), N, H, C, true);
  }
  const Real* last = residual_.data() + shape_.n_layer * N * C;
  norm_forward(lnf_.data(), lnf_mean_.empty() ? nullptr : lnf_mean_.data(), lnf_rstd_.data(), last, layout_.lnf_w,
               layout_.lnf_b);
  matmul_forward(logits_.data(), lnf_.data(), p + layout_.head_w, static_cast<const Real*>(nullptr), N, C, Vp, false);
  if (!targets) return 0;
  softmax_cross_entropy_forward(losses_.data(), logits_.data(), targets, N, V, Vp);
  double total = 0;  // in row order: the same sum on every run
  for (int64_t n = 0; n < N; n++) total += double(losses_[n]);
  return Real(total / double(N));
}

template <typename Real>
void CpuGpt<Real>::backward(Real loss_scale, const GradientsReady& ready) {
  const int64_t N = B_ * T_, C = shape_.d_model, H = shape_.mlp_hidden, NH = shape_.n_head, NKV = shape_.kv_heads();
  const int64_t hs = shape_.head_size(), W = C + 2 * shape_.kv_width();
  const int64_t F = shape_.mlp == MlpKind::kSwiglu ? 2 * H : H, V = shape_.vocab_size, Vp = shape_.padded_vocab;
  const Real* p = params.data();
  Real* g = grads.data();
  auto grad_at = [&](int64_t offset) { return offset < 0 ? nullptr : g + offset; };
  auto stats = [&](std::vector<Real>& v, int64_t l) { return v.empty() ? nullptr : v.data() + l * N; };
  Real* d_res = d_residual_.data();
  const size_t scratch = size_t(omp_get_max_threads()) * size_t(T_ * T_);  // one T x T per thread
  if (d_attn_scratch_.size() < scratch) d_attn_scratch_.resize(scratch);  // only if threads were added

  // Head: dlogits overwrites the probabilities.
  softmax_cross_entropy_backward(logits_.data(), targets_.data(), loss_scale / Real(N), N, V, Vp);
  matmul_backward(d_ln_.data(), g + layout_.head_w, static_cast<Real*>(nullptr), logits_.data(), lnf_.data(),
                  p + layout_.head_w, N, C, Vp);
  std::fill(d_residual_.begin(), d_residual_.end(), Real(0));
  const Real* last = residual_.data() + shape_.n_layer * N * C;
  norm_backward(d_res, d_ln_.data(), last, layout_.lnf_w, layout_.lnf_b, lnf_mean_.empty() ? nullptr : lnf_mean_.data(),
                lnf_rstd_.data());
  if (ready) ready(layout_.block_starts[shape_.n_layer]);

  // Blocks, last to first; d_res holds d loss / d (this block's output).
  for (int64_t l = shape_.n_layer - 1; l >= 0; l--) {
    const BlockOffsets& w = layout_.blocks[l];
    const Real* x = residual_.data() + l * N * C;
    const Real* ln1 = ln1_.data() + l * N * C;
    const Real* qkv = qkv_.data() + l * N * W;
    const Real* y = attn_y_.data() + l * N * C;
    const Real* mid = residual_mid_.data() + l * N * C;
    const Real* ln2 = ln2_.data() + l * N * C;
    const Real* fc = fc_.data() + l * N * F;
    const Real* act = act_.data() + l * N * H;

    matmul_backward(d_act_.data(), g + w.proj_w, grad_at(w.proj_b), d_res, act, p + w.proj_w, N, H, C);
    switch (shape_.mlp) {
      case MlpKind::kGelu: gelu_backward(d_fc_.data(), fc, d_act_.data(), N * H); break;
      case MlpKind::kRelu2: relu2_backward(d_fc_.data(), fc, d_act_.data(), N * H); break;
      case MlpKind::kSwiglu: swiglu_backward(d_fc_.data(), fc, d_act_.data(), N, H); break;
    }
    matmul_backward(d_ln_.data(), g + w.fc_w, grad_at(w.fc_b), d_fc_.data(), ln2, p + w.fc_w, N, C, F);
    norm_backward(d_res, d_ln_.data(), mid, w.ln2_w, w.ln2_b, stats(ln2_mean_, l), ln2_rstd_.data() + l * N);
    matmul_backward(d_attn_y_.data(), g + w.attn_out_w, grad_at(w.attn_out_b), d_res, y, p + w.attn_out_w, N, C, C);
    attention_backward(d_qkv_.data(), d_attn_scratch_.data(), d_attn_y_.data(), qkv,
                       attn_probs_.data() + l * B_ * NH * T_ * T_, B_, T_, NH, NKV, hs);
    if (shape_.qk_norm)
      head_rmsnorm_backward(d_qkv_.data(), qkv, qk_rstd_.data() + l * N * (NH + NKV), N, NH + NKV, hs, W);
    if (shape_.rope) rope_rotate(d_qkv_.data(), rope_cos_.data(), rope_sin_.data(), N, T_, NH + NKV, hs, W, true);
    matmul_backward(d_ln_.data(), g + w.qkv_w, grad_at(w.qkv_b), d_qkv_.data(), ln1, p + w.qkv_w, N, C, W);
    norm_backward(d_res, d_ln_.data(), x, w.ln1_w, w.ln1_b, stats(ln1_mean_, l), ln1_rstd_.data() + l * N);
    if (ready) ready(layout_.block_starts[l]);
  }
  embedding_backward(g + layout_.wte, grad_at(layout_.wpe), d_res, inputs_.data(), B_, T_, C);
  if (ready) ready(0);
}

template class CpuGpt<float>;
template class CpuGpt<double>;

}  // namespace llmdion::cpu
