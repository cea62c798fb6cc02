// The GPT family of model/gpt.h on one GPU, the CPU backend's twin
// (model/cpu/cpu_gpt.cpp), every block option included:
//   fp32 master weights and gradients (what the optimizers update), a bf16
//   copy of the weights that every kernel reads, bf16 activations, fp32
//   statistics, sums and losses.
// Forward, per layer l (x_l the residual stream, Norm LayerNorm or RMSNorm,
// kernels.h and matmul.h):
//   ln1 = Norm(x_l)                        (fused with the previous add, below)
//   qkv = ln1 Wqkv^T + b;  qk-norm of q, k in place;  y = attention(RoPE(q), RoPE(k), v)
//                                          (the rotation inside the attention kernels)
//   mid = x_l + (y Wo^T + b);  ln2 = Norm(mid)        one kernel
//   act = gelu(fc = ln2 Wfc^T + b)                    one cuBLASLt epilogue (GELU)
//   act = relu2(fc) or silu(gate) * up                a kernel after the matmul
//   x_{l+1} = mid + (act Wproj^T + b);  Norm of l+1's ln1 (or the final one)   one kernel
// The backward walks the same steps in reverse; each norm's backward adds
// into the residual stream's gradient d_res, which is the residual add's
// backward. All activation memory is planned at construction and printed;
// a step allocates nothing.
#include "model/cuda/cuda_model.h"

#include <algorithm>
#include <memory>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "model/cpu/kernels.h"
#include "model/cuda/kernels.h"
#include "model/cuda/matmul.h"

namespace llmdion {
namespace {

using cuda::bf16;

// One device allocation carved into the arrays of the plan, each 256-byte aligned.
class Arena {
 public:
  template <typename T>
  T* take(int64_t count) {
    const int64_t offset = bytes_;
    bytes_ += (std::max<int64_t>(count, 1) * int64_t(sizeof(T)) + 255) / 256 * 256;
    return reinterpret_cast<T*>(offset);  // an offset until place() rebases it
  }
  int64_t bytes() const { return bytes_; }
  // Allocates the whole plan and turns every taken offset into a pointer.
  template <typename... Ptrs>
  void place(Ptrs*&... ptrs) {
    CUDA_CHECK(cudaMalloc(&base_, size_t(bytes_)));
    ((ptrs = reinterpret_cast<Ptrs*>(static_cast<char*>(base_) + reinterpret_cast<intptr_t>(ptrs))), ...);
  }
  ~Arena() {
    if (base_) cudaFree(base_);
  }

 private:
  void* base_ = nullptr;
  int64_t bytes_ = 0;
};

class CudaModel final : public Model {
 public:
  // With plan_only, the memory plan alone: nothing is allocated or asked of the GPU.
  CudaModel(const GptShape& shape, int64_t B, int64_t T, bool plan_only = false);
  int64_t planned_bytes() const { return arena_.bytes() + int64_t(cuda::Matmul::kWorkspaceBytes); }
  Device device() const override { return Device::kCuda; }
  const GptShape& shape() const override { return shape_; }
  const GptLayout& layout() const override { return layout_; }
  int64_t batch_size() const override { return B_; }
  int64_t seq_len() const override { return T_; }
  float forward(const int32_t* inputs, const int32_t* targets) override;
  using Model::backward;
  void backward(float loss_scale, const GradientsReady& ready) override;
  const float* logits_row(int64_t n) override;
  std::span<float> params() override { return {params_, size_t(layout_.num_params)}; }
  std::span<float> grads() override { return {grads_, size_t(layout_.num_params)}; }
  void zero_grads() override { CUDA_CHECK(cudaMemsetAsync(grads_, 0, layout_.num_params * sizeof(float), 0)); }
  void params_changed(uint64_t rounding_seed) override {
    cuda::round_to_bf16_stochastic(weights_, params_, layout_.num_params, rounding_seed, 0);
  }
  double grad_norm() override;
  void scale_grads(float factor) override { cuda::scale_in_place(grads_, factor, layout_.num_params, 0); }
  void copy_params_to_host(std::span<float> out) const override { download(out.data(), params_, out.size()); }
  void copy_params_from_host(std::span<const float> in) override {
    CUDA_CHECK(cudaMemcpy(params_, in.data(), in.size_bytes(), cudaMemcpyHostToDevice));
  }
  void copy_grads_to_host(std::span<float> out) const override { download(out.data(), grads_, out.size()); }
  std::string describe_memory() const override { return memory_plan_; }

 private:
  GptShape shape_;
  GptLayout layout_;
  int64_t B_, T_;
  bool layernorm_;      // else RMSNorm
  bool gelu_epilogue_;  // GELU in cuBLASLt's epilogues: needs H % 8 == 0 (and with it, aligned tensors)
  std::unique_ptr<cuda::Matmul> matmul_;  // created once the plan is placed
  Arena arena_;
  std::string memory_plan_;
  // Parameters: fp32 master, their gradients, the bf16 compute copy.
  float* params_;
  float* grads_;
  bf16* weights_;
  // Saved activations; per-layer arrays hold n_layer slices. W = q|k|v width,
  // F = the MLP's first matmul (H, or 2H gate|up for swiglu).
  bf16 *residual_, *ln1_, *qkv_, *attn_y_, *mid_, *ln2_, *fc_, *act_, *lnf_, *logits_;
  float *ln1_mean_, *ln1_rstd_, *ln2_mean_, *ln2_rstd_, *lnf_mean_, *lnf_rstd_, *qk_rstd_, *lse_, *losses_, *mean_loss_;
  float *rope_cos_, *rope_sin_;  // T x hs/2
  // Backward scratch, reused by every layer, and the step's inputs.
  bf16 *branch_, *d_res_, *d_ln_, *d_qkv_, *d_y_, *d_fc_, *d_act_;
  float* scratch_;
  double *norm_partials_, *norm_;
  int32_t *tokens_, *targets_, *bucket_tokens_, *bucket_starts_, *bucket_positions_;
  std::vector<int32_t> inputs_, distinct_, starts_, positions_;  // the last forward's tokens and their grouping
  bool have_targets_ = false;
  std::vector<uint16_t> row_bits_;
  std::vector<float> row_;

  template <typename T>
  static void download(T* host, const T* device, size_t n) {
    CUDA_CHECK(cudaMemcpy(host, device, n * sizeof(T), cudaMemcpyDeviceToHost));
  }
  const bf16* w(int64_t offset) const { return offset < 0 ? nullptr : weights_ + offset; }
  float* g(int64_t offset) const { return offset < 0 ? nullptr : grads_ + offset; }
  // The RoPE tables for the attention kernels; null without rope (no rotation).
  const float* rope_cos() const { return shape_.rope ? rope_cos_ : nullptr; }
  const float* rope_sin() const { return shape_.rope ? rope_sin_ : nullptr; }
  void norm_forward(bf16* out, float* mean, float* rstd, const bf16* inp, int64_t weight, int64_t bias);
  void residual_norm_forward(bf16* residual_out, bf16* out, float* mean, float* rstd, const bf16* residual,
                             int64_t weight, int64_t bias);
  void norm_backward(const bf16* dout, const bf16* inp, int64_t weight, int64_t bias, const float* mean,
                     const float* rstd);
  void mlp_forward(int64_t l);
  void mlp_backward(int64_t l);
};

// The flash attention kernels' head sizes, checked before anything is allocated.
void check_supported(const GptShape& s) {
  const int hs = s.head_size();
  if (hs != 32 && hs != 64 && hs != 128)
    throw std::invalid_argument("run.device cuda's attention takes a head size (d_model / n_head) of 32, 64 or 128, not " +
                                std::to_string(hs));
}

CudaModel::CudaModel(const GptShape& shape, int64_t B, int64_t T, bool plan_only)
    : shape_(shape),
      layout_(gpt_layout(shape)),
      B_(B),
      T_(T),
      layernorm_(shape.norm == NormKind::kLayerNorm),
      gelu_epilogue_(shape.mlp == MlpKind::kGelu && shape.mlp_hidden % 8 == 0) {
  check_supported(shape);
  if (T > shape.seq_len)
    throw std::invalid_argument("sequence length " + std::to_string(T) + " exceeds the model's " +
                                std::to_string(shape.seq_len));
  const int64_t N = B * T, C = shape.d_model, L = shape.n_layer, H = shape.mlp_hidden, NH = shape.n_head;
  const int64_t NKV = shape.kv_heads(), hs = shape.head_size(), W = C + 2 * shape.kv_width();
  const int64_t F = shape.mlp == MlpKind::kSwiglu ? 2 * H : H, Vp = shape.padded_vocab, P = layout_.num_params;

  params_ = arena_.take<float>(P), grads_ = arena_.take<float>(P), weights_ = arena_.take<bf16>(P);
  const int64_t param_bytes = arena_.bytes();
  const int64_t stats = layernorm_ ? L * N : 0, qk_heads = shape.qk_norm ? NH + NKV : 0;
  residual_ = arena_.take<bf16>((L + 1) * N * C), ln1_ = arena_.take<bf16>(L * N * C);
  qkv_ = arena_.take<bf16>(L * N * W), attn_y_ = arena_.take<bf16>(L * N * C), mid_ = arena_.take<bf16>(L * N * C);
  ln2_ = arena_.take<bf16>(L * N * C), fc_ = arena_.take<bf16>(L * N * F), act_ = arena_.take<bf16>(L * N * H);
  lnf_ = arena_.take<bf16>(N * C), logits_ = arena_.take<bf16>(N * Vp);
  ln1_mean_ = arena_.take<float>(stats), ln1_rstd_ = arena_.take<float>(L * N);
  ln2_mean_ = arena_.take<float>(stats), ln2_rstd_ = arena_.take<float>(L * N);
  lnf_mean_ = arena_.take<float>(layernorm_ ? N : 0), lnf_rstd_ = arena_.take<float>(N);
  qk_rstd_ = arena_.take<float>(L * N * qk_heads);
  lse_ = arena_.take<float>(L * B * NH * T), losses_ = arena_.take<float>(N), mean_loss_ = arena_.take<float>(1);
  rope_cos_ = arena_.take<float>(shape.rope ? T * hs / 2 : 0), rope_sin_ = arena_.take<float>(shape.rope ? T * hs / 2 : 0);
  const int64_t activation_bytes = arena_.bytes() - param_bytes;
  branch_ = arena_.take<bf16>(N * C), d_res_ = arena_.take<bf16>(N * C), d_ln_ = arena_.take<bf16>(N * C);
  d_qkv_ = arena_.take<bf16>(N * W), d_y_ = arena_.take<bf16>(N * C);
  d_fc_ = arena_.take<bf16>(N * F), d_act_ = arena_.take<bf16>(N * H);
  scratch_ = arena_.take<float>(std::max(
      {layernorm_ ? cuda::layernorm_backward_scratch_floats(int(N), int(C))
                  : cuda::rmsnorm_backward_scratch_floats(int(N), int(C)),
       cuda::column_sums_scratch_floats(int(N), int(std::max({W, F, C}))),
       cuda::attention_backward_scratch_floats(int(B), int(T), int(NH), int(NKV), int(hs))}));
  norm_partials_ = arena_.take<double>(cuda::sum_squares_partials(P)), norm_ = arena_.take<double>(1);
  tokens_ = arena_.take<int32_t>(N), targets_ = arena_.take<int32_t>(N);
  bucket_tokens_ = arena_.take<int32_t>(N), bucket_starts_ = arena_.take<int32_t>(N + 1);
  bucket_positions_ = arena_.take<int32_t>(N);
  const int64_t scratch_bytes = arena_.bytes() - param_bytes - activation_bytes;
  if (plan_only) return;
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (size_t(arena_.bytes()) > free_bytes)
    throw std::runtime_error(
        "the model needs " + std::to_string(arena_.bytes() >> 20) + " MiB on the GPU (parameters, gradients and bf16 "
        "copy " + std::to_string(param_bytes >> 20) + ", activations of " + std::to_string(B) + " x " +
        std::to_string(T) + " tokens " + std::to_string(activation_bytes >> 20) + ", backward scratch " +
        std::to_string(scratch_bytes >> 20) + ") and " + std::to_string(free_bytes >> 20) + " MiB are free: lower "
        "train.micro_batch (train.batch_tokens stays, with more micro-steps)");
  arena_.place(params_, grads_, weights_, residual_, ln1_, qkv_, attn_y_, mid_, ln2_, fc_, act_, lnf_, logits_,
               ln1_mean_, ln1_rstd_, ln2_mean_, ln2_rstd_, lnf_mean_, lnf_rstd_, qk_rstd_, lse_, losses_, mean_loss_,
               rope_cos_, rope_sin_, branch_, d_res_, d_ln_, d_qkv_, d_y_, d_fc_, d_act_, scratch_, norm_partials_,
               norm_, tokens_, targets_, bucket_tokens_, bucket_starts_, bucket_positions_);
  matmul_ = std::make_unique<cuda::Matmul>();
  CUDA_CHECK(cudaMemset(grads_, 0, P * sizeof(float)));
  if (shape.rope) {  // the CPU backend's tables, so both rotate by the same fp32 angles
    std::vector<float> cos_table(T * hs / 2), sin_table(T * hs / 2);
    cpu::rope_tables(cos_table.data(), sin_table.data(), T, hs, shape.rope_theta);
    CUDA_CHECK(cudaMemcpy(rope_cos_, cos_table.data(), cos_table.size() * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(rope_sin_, sin_table.data(), sin_table.size() * 4, cudaMemcpyHostToDevice));
  }
  cudaDeviceProp prop{};
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  const double mib = 1.0 / (1 << 20);
  memory_plan_ = std::string("cuda (") + prop.name + ", " + std::to_string(int64_t(prop.totalGlobalMem * mib)) +
                 " MiB): parameters, gradients and bf16 copy " + std::to_string(int64_t(param_bytes * mib)) +
                 " MiB, activations " + std::to_string(int64_t(activation_bytes * mib)) + " MiB, backward scratch " +
                 std::to_string(int64_t(scratch_bytes * mib)) + " MiB, in one allocation of " +
                 std::to_string(int64_t(arena_.bytes() * mib)) + " MiB";
  row_bits_.resize(Vp), row_.resize(Vp);
}

// LayerNorm or RMSNorm of the N rows; weight and bias are offsets (-1: none).
void CudaModel::norm_forward(bf16* out, float* mean, float* rstd, const bf16* inp, int64_t weight, int64_t bias) {
  const int N = int(B_ * T_), C = shape_.d_model;
  if (layernorm_) cuda::layernorm_forward(out, mean, rstd, inp, w(weight), w(bias), N, C, 0);
  else cuda::rmsnorm_forward(out, rstd, inp, w(weight), N, C, 0);
}

// residual_out = residual + branch_, then its norm.
void CudaModel::residual_norm_forward(bf16* residual_out, bf16* out, float* mean, float* rstd, const bf16* residual,
                                      int64_t weight, int64_t bias) {
  const int N = int(B_ * T_), C = shape_.d_model;
  if (layernorm_)
    cuda::residual_layernorm_forward(residual_out, out, mean, rstd, residual, branch_, w(weight), w(bias), N, C, 0);
  else
    cuda::residual_rmsnorm_forward(residual_out, out, rstd, residual, branch_, w(weight), N, C, 0);
}

// d_res += the norm's input gradient; its weight (and bias) gradients accumulate.
void CudaModel::norm_backward(const bf16* dout, const bf16* inp, int64_t weight, int64_t bias, const float* mean,
                              const float* rstd) {
  const int N = int(B_ * T_), C = shape_.d_model;
  if (layernorm_)
    cuda::layernorm_backward(d_res_, g(weight), g(bias), scratch_, dout, inp, w(weight), mean, rstd, N, C, 0);
  else
    cuda::rmsnorm_backward(d_res_, g(weight), scratch_, dout, inp, w(weight), rstd, N, C, 0);
}

// act = gelu(fc), relu2(fc) or silu(gate) * up, with fc = ln2 Wfc^T + b kept for the backward.
void CudaModel::mlp_forward(int64_t l) {
  const int64_t N = B_ * T_, C = shape_.d_model, H = shape_.mlp_hidden;
  const int64_t F = shape_.mlp == MlpKind::kSwiglu ? 2 * H : H;
  const BlockOffsets& o = layout_.blocks[l];
  bf16* fc = fc_ + l * N * F;
  bf16* act = act_ + l * N * H;
  if (gelu_epilogue_) {
    matmul_->forward(act, fc, ln2_ + l * N * C, w(o.fc_w), w(o.fc_b), int(N), int(C), int(H), 0);
    return;
  }
  matmul_->forward(fc, nullptr, ln2_ + l * N * C, w(o.fc_w), w(o.fc_b), int(N), int(C), int(F), 0);
  switch (shape_.mlp) {
    case MlpKind::kGelu: cuda::gelu_forward(act, fc, N * H, 0); break;
    case MlpKind::kRelu2: cuda::relu2_forward(act, fc, N * H, 0); break;
    case MlpKind::kSwiglu: cuda::swiglu_forward(act, fc, int(N), int(H), 0); break;
  }
}

// d_fc from d_res (the gradient of the block's output, through Wproj and the activation).
void CudaModel::mlp_backward(int64_t l) {
  const int64_t N = B_ * T_, C = shape_.d_model, H = shape_.mlp_hidden;
  const int64_t F = shape_.mlp == MlpKind::kSwiglu ? 2 * H : H;
  const BlockOffsets& o = layout_.blocks[l];
  const bf16* fc = fc_ + l * N * F;
  if (gelu_epilogue_) {  // d_fc = (d_res Wproj) * gelu'(fc), in the product's epilogue
    matmul_->backward_input(d_fc_, d_res_, w(o.proj_w), fc, int(N), int(H), int(C), 0);
    return;
  }
  matmul_->backward_input(d_act_, d_res_, w(o.proj_w), nullptr, int(N), int(H), int(C), 0);
  switch (shape_.mlp) {
    case MlpKind::kGelu: cuda::gelu_backward(d_fc_, fc, d_act_, N * H, 0); break;
    case MlpKind::kRelu2: cuda::relu2_backward(d_fc_, fc, d_act_, N * H, 0); break;
    case MlpKind::kSwiglu: cuda::swiglu_backward(d_fc_, fc, d_act_, int(N), int(H), 0); break;
  }
}

float CudaModel::forward(const int32_t* inputs, const int32_t* targets) {
  const int N = int(B_ * T_), C = shape_.d_model, H = shape_.mlp_hidden, NH = shape_.n_head, NKV = shape_.kv_heads();
  const int B = int(B_), T = int(T_), hs = shape_.head_size(), W = C + 2 * shape_.kv_width();
  const int L = shape_.n_layer, V = shape_.vocab_size, Vp = shape_.padded_vocab;
  CUDA_CHECK(cudaMemcpy(tokens_, inputs, N * sizeof(int32_t), cudaMemcpyHostToDevice));
  inputs_.assign(inputs, inputs + N);  // for the embedding backward's grouping
  have_targets_ = targets != nullptr;
  if (targets) CUDA_CHECK(cudaMemcpy(targets_, targets, N * sizeof(int32_t), cudaMemcpyHostToDevice));
  auto stat = [&](float* v, int l) { return layernorm_ ? v + int64_t(l) * N : nullptr; };

  cuda::embedding_forward(residual_, tokens_, w(layout_.wte), w(layout_.wpe), B, T, C, 0);
  norm_forward(ln1_, stat(ln1_mean_, 0), ln1_rstd_, residual_, layout_.blocks[0].ln1_w, layout_.blocks[0].ln1_b);
  for (int l = 0; l < L; l++) {
    const BlockOffsets& o = layout_.blocks[l];
    const int64_t nc = int64_t(l) * N * C;
    bf16* qkv = qkv_ + int64_t(l) * N * W;
    bf16* y = attn_y_ + nc;
    matmul_->forward(qkv, nullptr, ln1_ + nc, w(o.qkv_w), w(o.qkv_b), N, C, W, 0);
    // qk-norm before the rotation, which the attention kernels apply as they read q and k (the CPU model
    // rotates first; both orders are the same function): qk-norm has no weights, it divides a head by its
    // own rms, and the rotation R keeps each pair's length, so the head's rms, hence
    // norm(R x) = R x / rms(R x) = R x / rms(x) = R norm(x), and for the backward J_norm(R x) = R J_norm(x) R^T.
    // Only where the bf16 roundings fall differs.
    if (shape_.qk_norm)  // q and k heads are contiguous: NH + NKV heads from the row start
      cuda::head_rmsnorm_forward(qkv, qk_rstd_ + int64_t(l) * N * (NH + NKV), N, NH + NKV, hs, W, 0);
    cuda::attention_forward(y, lse_ + int64_t(l) * B * NH * T, qkv, rope_cos(), rope_sin(), B, T, NH, NKV, hs, 0);
    matmul_->forward(branch_, nullptr, y, w(o.attn_out_w), w(o.attn_out_b), N, C, C, 0);
    residual_norm_forward(mid_ + nc, ln2_ + nc, stat(ln2_mean_, l), ln2_rstd_ + int64_t(l) * N, residual_ + nc,
                          o.ln2_w, o.ln2_b);
    mlp_forward(l);
    matmul_->forward(branch_, nullptr, act_ + int64_t(l) * N * H, w(o.proj_w), w(o.proj_b), N, H, C, 0);
    // x_{l+1} = mid + branch, normalized by the next layer's ln1 or by the final norm.
    if (l + 1 < L)
      residual_norm_forward(residual_ + nc + int64_t(N) * C, ln1_ + nc + int64_t(N) * C, stat(ln1_mean_, l + 1),
                            ln1_rstd_ + int64_t(l + 1) * N, mid_ + nc, layout_.blocks[l + 1].ln1_w,
                            layout_.blocks[l + 1].ln1_b);
    else
      residual_norm_forward(residual_ + nc + int64_t(N) * C, lnf_, stat(lnf_mean_, 0), lnf_rstd_, mid_ + nc,
                            layout_.lnf_w, layout_.lnf_b);
  }
  matmul_->forward(logits_, nullptr, lnf_, w(layout_.head_w), nullptr, N, C, Vp, 0);
  if (!targets) return 0;
  cuda::fused_classifier(logits_, losses_, targets_, 0.0f, N, V, Vp, false, 0);
  cuda::mean_of(mean_loss_, losses_, N, 0);
  float loss = 0;
  download(&loss, mean_loss_, 1);
  return loss;
}

void CudaModel::backward(float loss_scale, const GradientsReady& ready) {
  if (!have_targets_) throw std::logic_error("backward needs a forward with targets");
  const int N = int(B_ * T_), C = shape_.d_model, H = shape_.mlp_hidden, NH = shape_.n_head, NKV = shape_.kv_heads();
  const int B = int(B_), T = int(T_), hs = shape_.head_size(), W = C + 2 * shape_.kv_width();
  const int L = shape_.n_layer, V = shape_.vocab_size, Vp = shape_.padded_vocab;
  const int F = shape_.mlp == MlpKind::kSwiglu ? 2 * H : H;
  auto stat = [&](const float* v, int l) { return layernorm_ ? v + int64_t(l) * N : nullptr; };

  // Head: the logits become their gradient (loss_scale / N) * (softmax - onehot).
  cuda::fused_classifier(logits_, losses_, targets_, loss_scale / float(N), N, V, Vp, true, 0);
  matmul_->backward_input(d_ln_, logits_, w(layout_.head_w), nullptr, N, C, Vp, 0);
  matmul_->backward_weight(g(layout_.head_w), logits_, lnf_, N, C, Vp, 0);
  CUDA_CHECK(cudaMemsetAsync(d_res_, 0, int64_t(N) * C * sizeof(bf16), 0));
  norm_backward(d_ln_, residual_ + int64_t(L) * N * C, layout_.lnf_w, layout_.lnf_b, stat(lnf_mean_, 0), lnf_rstd_);
  if (ready) ready(layout_.block_starts[L]);  // final once the kernels queued so far are done

  for (int l = L - 1; l >= 0; l--) {
    const BlockOffsets& o = layout_.blocks[l];
    const int64_t nc = int64_t(l) * N * C;
    const bf16* qkv = qkv_ + int64_t(l) * N * W;
    // MLP.
    mlp_backward(l);
    matmul_->backward_weight(g(o.proj_w), d_res_, act_ + int64_t(l) * N * H, N, H, C, 0);
    if (o.proj_b >= 0) cuda::add_column_sums(g(o.proj_b), scratch_, d_res_, N, C, 0);
    matmul_->backward_input(d_ln_, d_fc_, w(o.fc_w), nullptr, N, C, F, 0);
    matmul_->backward_weight(g(o.fc_w), d_fc_, ln2_ + nc, N, C, F, 0);
    if (o.fc_b >= 0) cuda::add_column_sums(g(o.fc_b), scratch_, d_fc_, N, F, 0);
    norm_backward(d_ln_, mid_ + nc, o.ln2_w, o.ln2_b, stat(ln2_mean_, l), ln2_rstd_ + int64_t(l) * N);
    // Attention (its dq, dk turned back by the kernels), then qk-norm's backward on the unturned q, k.
    matmul_->backward_input(d_y_, d_res_, w(o.attn_out_w), nullptr, N, C, C, 0);
    matmul_->backward_weight(g(o.attn_out_w), d_res_, attn_y_ + nc, N, C, C, 0);
    if (o.attn_out_b >= 0) cuda::add_column_sums(g(o.attn_out_b), scratch_, d_res_, N, C, 0);
    cuda::attention_backward(d_qkv_, scratch_, d_y_, attn_y_ + nc, qkv, rope_cos(), rope_sin(),
                             lse_ + int64_t(l) * B * NH * T, B, T, NH, NKV, hs, 0);
    if (shape_.qk_norm)
      cuda::head_rmsnorm_backward(d_qkv_, qkv, qk_rstd_ + int64_t(l) * N * (NH + NKV), N, NH + NKV, hs, W, 0);
    matmul_->backward_input(d_ln_, d_qkv_, w(o.qkv_w), nullptr, N, C, W, 0);
    matmul_->backward_weight(g(o.qkv_w), d_qkv_, ln1_ + nc, N, C, W, 0);
    if (o.qkv_b >= 0) cuda::add_column_sums(g(o.qkv_b), scratch_, d_qkv_, N, W, 0);
    norm_backward(d_ln_, residual_ + nc, o.ln1_w, o.ln1_b, stat(ln1_mean_, l), ln1_rstd_ + int64_t(l) * N);
    if (ready) ready(layout_.block_starts[l]);
  }
  // The positions of each token, grouped on the host where the tokens are.
  cuda::group_positions_by_token(inputs_.data(), N, distinct_, starts_, positions_);
  CUDA_CHECK(cudaMemcpy(bucket_tokens_, distinct_.data(), distinct_.size() * 4, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(bucket_starts_, starts_.data(), starts_.size() * 4, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(bucket_positions_, positions_.data(), positions_.size() * 4, cudaMemcpyHostToDevice));
  const cuda::TokenBuckets buckets{bucket_tokens_, bucket_starts_, bucket_positions_, int(distinct_.size())};
  cuda::embedding_backward(g(layout_.wte), g(layout_.wpe), d_res_, buckets, B, T, C, 0);
  if (ready) ready(0);
}

const float* CudaModel::logits_row(int64_t n) {
  const int64_t Vp = shape_.padded_vocab;
  download(reinterpret_cast<bf16*>(row_bits_.data()), logits_ + n * Vp, size_t(Vp));
  for (int64_t j = 0; j < Vp; j++) {
    uint32_t bits = uint32_t(row_bits_[j]) << 16;
    std::memcpy(&row_[j], &bits, 4);
  }
  return row_.data();
}

double CudaModel::grad_norm() {
  cuda::sum_squares(norm_, norm_partials_, grads_, layout_.num_params, 0);
  double sum = 0;
  download(&sum, norm_, 1);
  return std::sqrt(sum);
}

}  // namespace

std::unique_ptr<Model> make_cuda_model(const GptShape& shape, int64_t batch_size, int64_t seq_len) {
  return std::make_unique<CudaModel>(shape, batch_size, seq_len);
}

int64_t cuda_model_bytes(const GptShape& shape, int64_t batch_size, int64_t seq_len) {
  return CudaModel(shape, batch_size, seq_len, true).planned_bytes();
}

}  // namespace llmdion
