// GPT-2 on one GPU (the block of model/gpt.h with LayerNorm, learned
// positions and GELU), the CPU backend's twin (model/cpu/cpu_gpt.cpp):
//   fp32 master weights and gradients (what the optimizers update), a bf16
//   copy of the weights that every kernel reads, bf16 activations, fp32
//   statistics, sums and losses.
// Forward, per layer l (x_l the residual stream, kernels.h and matmul.h):
//   ln1 = LN(x_l)                          (fused with the previous add, below)
//   qkv = ln1 Wqkv^T + b;  y = attention(qkv)
//   mid = x_l + (y Wo^T + b);  ln2 = LN(mid)          one kernel
//   act = gelu(pre = ln2 Wfc^T + b)                   one cuBLASLt epilogue
//   x_{l+1} = mid + (act Wproj^T + b);  ln1 of l+1 (or the final LN) = LN(x_{l+1})   one kernel
// The backward walks the same steps in reverse; each LayerNorm backward adds
// into the residual stream's gradient d_res, which is the residual add's
// backward. All activation memory is planned at construction and printed;
// a step allocates nothing.
#include "model/cuda/cuda_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/cuda/check.h"
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
  ~Arena() { cudaFree(base_); }

 private:
  void* base_ = nullptr;
  int64_t bytes_ = 0;
};

class CudaModel final : public Model {
 public:
  CudaModel(const GptShape& shape, int64_t B, int64_t T);
  Device device() const override { return Device::kCuda; }
  const GptShape& shape() const override { return shape_; }
  const GptLayout& layout() const override { return layout_; }
  int64_t batch_size() const override { return B_; }
  int64_t seq_len() const override { return T_; }
  float forward(const int32_t* inputs, const int32_t* targets) override;
  void backward(float loss_scale) override;
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
  bool gelu_epilogue_;  // cuBLASLt's GELU epilogues need H % 8 == 0 (and with it, aligned tensors)
  cuda::Matmul matmul_;
  Arena arena_;
  std::string memory_plan_;
  // Parameters: fp32 master, their gradients, the bf16 compute copy.
  float* params_;
  float* grads_;
  bf16* weights_;
  // Saved activations; per-layer arrays hold n_layer slices. W = q|k|v width.
  bf16 *residual_, *ln1_, *qkv_, *attn_y_, *mid_, *ln2_, *pre_gelu_, *act_, *lnf_, *logits_;
  float *ln1_mean_, *ln1_rstd_, *ln2_mean_, *ln2_rstd_, *lnf_mean_, *lnf_rstd_, *lse_, *losses_, *mean_loss_;
  // Backward scratch, reused by every layer, and the step's inputs.
  bf16 *branch_, *d_res_, *d_ln_, *d_qkv_, *d_y_, *d_fc_, *d_act_;
  float* scratch_;
  double *norm_partials_, *norm_;
  int32_t *tokens_, *targets_, *bucket_tokens_, *bucket_starts_, *bucket_positions_;
  std::vector<int32_t> distinct_, starts_, positions_;
  int bucket_count_ = 0;
  bool have_targets_ = false;
  std::vector<uint16_t> row_bits_;
  std::vector<float> row_;

  template <typename T>
  static void download(T* host, const T* device, size_t n) {
    CUDA_CHECK(cudaMemcpy(host, device, n * sizeof(T), cudaMemcpyDeviceToHost));
  }
  const bf16* w(int64_t offset) const { return offset < 0 ? nullptr : weights_ + offset; }
  float* g(int64_t offset) const { return offset < 0 ? nullptr : grads_ + offset; }
  void mlp_forward(int64_t l);
};

void check_supported(const GptShape& s) {
  std::string missing;
  if (s.norm != NormKind::kLayerNorm) missing = "model.norm: rmsnorm";
  else if (s.rope) missing = "model.pos: rope";
  else if (s.qk_norm) missing = "model.qk_norm: true";
  else if (s.mlp != MlpKind::kGelu) missing = std::string("model.mlp: ") + (s.mlp == MlpKind::kRelu2 ? "relu2" : "swiglu");
  if (!missing.empty())
    throw std::invalid_argument("run.device cuda runs GPT-2's block (layernorm, learned positions, gelu) so far; " +
                                missing + " runs on run.device: cpu");
  const int hs = s.head_size();
  if (hs != 32 && hs != 64 && hs != 128)
    throw std::invalid_argument("run.device cuda's attention takes a head size (d_model / n_head) of 32, 64 or 128, not " +
                                std::to_string(hs));
}

CudaModel::CudaModel(const GptShape& shape, int64_t B, int64_t T)
    : shape_(shape), layout_(gpt_layout(shape)), B_(B), T_(T), gelu_epilogue_(shape.mlp_hidden % 8 == 0 && shape.d_model % 8 == 0) {
  check_supported(shape);
  if (T > shape.seq_len)
    throw std::invalid_argument("sequence length " + std::to_string(T) + " exceeds the model's " +
                                std::to_string(shape.seq_len));
  const int64_t N = B * T, C = shape.d_model, L = shape.n_layer, H = shape.mlp_hidden, NH = shape.n_head;
  const int64_t NKV = shape.kv_heads(), hs = shape.head_size(), W = C + 2 * shape.kv_width();
  const int64_t Vp = shape.padded_vocab, P = layout_.num_params;
  if (N * std::max<int64_t>(Vp, 4 * C) >= (int64_t(1) << 31))
    throw std::invalid_argument("micro-batch too large for 32-bit indexing: B*T*Vp must stay below 2^31");

  params_ = arena_.take<float>(P), grads_ = arena_.take<float>(P), weights_ = arena_.take<bf16>(P);
  const int64_t param_bytes = arena_.bytes();
  residual_ = arena_.take<bf16>((L + 1) * N * C), ln1_ = arena_.take<bf16>(L * N * C);
  qkv_ = arena_.take<bf16>(L * N * W), attn_y_ = arena_.take<bf16>(L * N * C), mid_ = arena_.take<bf16>(L * N * C);
  ln2_ = arena_.take<bf16>(L * N * C), pre_gelu_ = arena_.take<bf16>(L * N * H), act_ = arena_.take<bf16>(L * N * H);
  lnf_ = arena_.take<bf16>(N * C), logits_ = arena_.take<bf16>(N * Vp);
  ln1_mean_ = arena_.take<float>(L * N), ln1_rstd_ = arena_.take<float>(L * N);
  ln2_mean_ = arena_.take<float>(L * N), ln2_rstd_ = arena_.take<float>(L * N);
  lnf_mean_ = arena_.take<float>(N), lnf_rstd_ = arena_.take<float>(N);
  lse_ = arena_.take<float>(L * B * NH * T), losses_ = arena_.take<float>(N), mean_loss_ = arena_.take<float>(1);
  const int64_t activation_bytes = arena_.bytes() - param_bytes;
  branch_ = arena_.take<bf16>(N * C), d_res_ = arena_.take<bf16>(N * C), d_ln_ = arena_.take<bf16>(N * C);
  d_qkv_ = arena_.take<bf16>(N * W), d_y_ = arena_.take<bf16>(N * C);
  d_fc_ = arena_.take<bf16>(N * H), d_act_ = arena_.take<bf16>(N * H);
  const int64_t widest = std::max({W, H, C});
  scratch_ = arena_.take<float>(std::max({cuda::layernorm_backward_scratch_floats(int(N), int(C)),
                                          cuda::column_sums_scratch_floats(int(N), int(widest)),
                                          cuda::attention_backward_scratch_floats(int(B), int(T), int(NH), int(NKV),
                                                                                  int(hs))}));
  norm_partials_ = arena_.take<double>(cuda::sum_squares_partials(P)), norm_ = arena_.take<double>(1);
  tokens_ = arena_.take<int32_t>(N), targets_ = arena_.take<int32_t>(N);
  bucket_tokens_ = arena_.take<int32_t>(N), bucket_starts_ = arena_.take<int32_t>(N + 1);
  bucket_positions_ = arena_.take<int32_t>(N);
  const int64_t scratch_bytes = arena_.bytes() - param_bytes - activation_bytes;
  arena_.place(params_, grads_, weights_, residual_, ln1_, qkv_, attn_y_, mid_, ln2_, pre_gelu_, act_, lnf_, logits_,
               ln1_mean_, ln1_rstd_, ln2_mean_, ln2_rstd_, lnf_mean_, lnf_rstd_, lse_, losses_, mean_loss_, branch_,
               d_res_, d_ln_, d_qkv_, d_y_, d_fc_, d_act_, scratch_, norm_partials_, norm_, tokens_, targets_,
               bucket_tokens_, bucket_starts_, bucket_positions_);
  CUDA_CHECK(cudaMemset(grads_, 0, P * sizeof(float)));
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

// act = gelu(ln2 Wfc^T + b), keeping the pre-activation for the backward.
void CudaModel::mlp_forward(int64_t l) {
  const int64_t N = B_ * T_, C = shape_.d_model, H = shape_.mlp_hidden;
  const BlockOffsets& o = layout_.blocks[l];
  bf16* pre = pre_gelu_ + l * N * H;
  bf16* act = act_ + l * N * H;
  if (gelu_epilogue_) {
    matmul_.forward(act, pre, ln2_ + l * N * C, w(o.fc_w), w(o.fc_b), int(N), int(C), int(H), 0);
  } else {
    matmul_.forward(pre, nullptr, ln2_ + l * N * C, w(o.fc_w), w(o.fc_b), int(N), int(C), int(H), 0);
    cuda::gelu_forward(act, pre, N * H, 0);
  }
}

float CudaModel::forward(const int32_t* inputs, const int32_t* targets) {
  const int N = int(B_ * T_), C = shape_.d_model, H = shape_.mlp_hidden, NH = shape_.n_head, NKV = shape_.kv_heads();
  const int B = int(B_), T = int(T_), hs = shape_.head_size(), W = C + 2 * shape_.kv_width();
  const int L = shape_.n_layer, V = shape_.vocab_size, Vp = shape_.padded_vocab;
  CUDA_CHECK(cudaMemcpy(tokens_, inputs, N * sizeof(int32_t), cudaMemcpyHostToDevice));
  have_targets_ = targets != nullptr;
  if (targets) {
    CUDA_CHECK(cudaMemcpy(targets_, targets, N * sizeof(int32_t), cudaMemcpyHostToDevice));
    // The embedding backward's grouping of positions by token, made while the tokens are on the host.
    cuda::group_positions_by_token(inputs, N, distinct_, starts_, positions_);
    bucket_count_ = int(distinct_.size());
    CUDA_CHECK(cudaMemcpy(bucket_tokens_, distinct_.data(), distinct_.size() * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(bucket_starts_, starts_.data(), starts_.size() * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(bucket_positions_, positions_.data(), positions_.size() * 4, cudaMemcpyHostToDevice));
  }

  cuda::embedding_forward(residual_, tokens_, w(layout_.wte), w(layout_.wpe), B, T, C, 0);
  cuda::layernorm_forward(ln1_, ln1_mean_, ln1_rstd_, residual_, w(layout_.blocks[0].ln1_w),
                          w(layout_.blocks[0].ln1_b), N, C, 0);
  for (int l = 0; l < L; l++) {
    const BlockOffsets& o = layout_.blocks[l];
    const int64_t nc = int64_t(l) * N * C;
    bf16* qkv = qkv_ + int64_t(l) * N * W;
    bf16* y = attn_y_ + nc;
    matmul_.forward(qkv, nullptr, ln1_ + nc, w(o.qkv_w), w(o.qkv_b), N, C, W, 0);
    cuda::attention_forward(y, lse_ + int64_t(l) * B * NH * T, qkv, B, T, NH, NKV, hs, 0);
    matmul_.forward(branch_, nullptr, y, w(o.attn_out_w), w(o.attn_out_b), N, C, C, 0);
    cuda::residual_layernorm_forward(mid_ + nc, ln2_ + nc, ln2_mean_ + int64_t(l) * N, ln2_rstd_ + int64_t(l) * N,
                                     residual_ + nc, branch_, w(o.ln2_w), w(o.ln2_b), N, C, 0);
    mlp_forward(l);
    matmul_.forward(branch_, nullptr, act_ + int64_t(l) * N * H, w(o.proj_w), w(o.proj_b), N, H, C, 0);
    // x_{l+1} = mid + branch, normalized by the next layer's ln1 or by the final LayerNorm.
    const bool last = l + 1 == L;
    const int64_t next_w = last ? layout_.lnf_w : layout_.blocks[l + 1].ln1_w;
    const int64_t next_b = last ? layout_.lnf_b : layout_.blocks[l + 1].ln1_b;
    cuda::residual_layernorm_forward(residual_ + nc + int64_t(N) * C, last ? lnf_ : ln1_ + nc + int64_t(N) * C,
                                     last ? lnf_mean_ : ln1_mean_ + int64_t(l + 1) * N,
                                     last ? lnf_rstd_ : ln1_rstd_ + int64_t(l + 1) * N, mid_ + nc, branch_, w(next_w),
                                     w(next_b), N, C, 0);
  }
  matmul_.forward(logits_, nullptr, lnf_, w(layout_.head_w), nullptr, N, C, Vp, 0);
  if (!targets) return 0;
  cuda::fused_classifier(logits_, losses_, targets_, 0.0f, N, V, Vp, false, 0);
  cuda::mean_of(mean_loss_, losses_, N, 0);
  float loss = 0;
  download(&loss, mean_loss_, 1);
  return loss;
}

void CudaModel::backward(float loss_scale) {
  if (!have_targets_) throw std::logic_error("backward needs a forward with targets");
  const int N = int(B_ * T_), C = shape_.d_model, H = shape_.mlp_hidden, NH = shape_.n_head, NKV = shape_.kv_heads();
  const int B = int(B_), T = int(T_), hs = shape_.head_size(), W = C + 2 * shape_.kv_width();
  const int L = shape_.n_layer, V = shape_.vocab_size, Vp = shape_.padded_vocab;

  // Head: the logits become their gradient (loss_scale / N) * (softmax - onehot).
  cuda::fused_classifier(logits_, losses_, targets_, loss_scale / float(N), N, V, Vp, true, 0);
  matmul_.backward_input(d_ln_, logits_, w(layout_.head_w), nullptr, N, C, Vp, 0);
  matmul_.backward_weight(g(layout_.head_w), logits_, lnf_, N, C, Vp, 0);
  CUDA_CHECK(cudaMemsetAsync(d_res_, 0, int64_t(N) * C * sizeof(bf16), 0));
  cuda::layernorm_backward(d_res_, g(layout_.lnf_w), g(layout_.lnf_b), scratch_, d_ln_, residual_ + int64_t(L) * N * C,
                           w(layout_.lnf_w), lnf_mean_, lnf_rstd_, N, C, 0);

  for (int l = L - 1; l >= 0; l--) {
    const BlockOffsets& o = layout_.blocks[l];
    const int64_t nc = int64_t(l) * N * C, nh = int64_t(l) * N * H;
    const bf16* qkv = qkv_ + int64_t(l) * N * W;
    // MLP: d_fc = (d_res Wproj) * gelu'(pre).
    if (gelu_epilogue_) {
      matmul_.backward_input(d_fc_, d_res_, w(o.proj_w), pre_gelu_ + nh, N, H, C, 0);
    } else {
      matmul_.backward_input(d_act_, d_res_, w(o.proj_w), nullptr, N, H, C, 0);
      cuda::gelu_backward(d_fc_, pre_gelu_ + nh, d_act_, int64_t(N) * H, 0);
    }
    matmul_.backward_weight(g(o.proj_w), d_res_, act_ + nh, N, H, C, 0);
    if (o.proj_b >= 0) cuda::add_column_sums(g(o.proj_b), scratch_, d_res_, N, C, 0);
    matmul_.backward_input(d_ln_, d_fc_, w(o.fc_w), nullptr, N, C, H, 0);
    matmul_.backward_weight(g(o.fc_w), d_fc_, ln2_ + nc, N, C, H, 0);
    if (o.fc_b >= 0) cuda::add_column_sums(g(o.fc_b), scratch_, d_fc_, N, H, 0);
    cuda::layernorm_backward(d_res_, g(o.ln2_w), g(o.ln2_b), scratch_, d_ln_, mid_ + nc, w(o.ln2_w),
                             ln2_mean_ + int64_t(l) * N, ln2_rstd_ + int64_t(l) * N, N, C, 0);
    // Attention.
    matmul_.backward_input(d_y_, d_res_, w(o.attn_out_w), nullptr, N, C, C, 0);
    matmul_.backward_weight(g(o.attn_out_w), d_res_, attn_y_ + nc, N, C, C, 0);
    if (o.attn_out_b >= 0) cuda::add_column_sums(g(o.attn_out_b), scratch_, d_res_, N, C, 0);
    cuda::attention_backward(d_qkv_, scratch_, d_y_, attn_y_ + nc, qkv, lse_ + int64_t(l) * B * NH * T, B, T, NH, NKV,
                             hs, 0);
    matmul_.backward_input(d_ln_, d_qkv_, w(o.qkv_w), nullptr, N, C, W, 0);
    matmul_.backward_weight(g(o.qkv_w), d_qkv_, ln1_ + nc, N, C, W, 0);
    if (o.qkv_b >= 0) cuda::add_column_sums(g(o.qkv_b), scratch_, d_qkv_, N, W, 0);
    cuda::layernorm_backward(d_res_, g(o.ln1_w), g(o.ln1_b), scratch_, d_ln_, residual_ + nc, w(o.ln1_w),
                             ln1_mean_ + int64_t(l) * N, ln1_rstd_ + int64_t(l) * N, N, C, 0);
  }
  const cuda::TokenBuckets buckets{bucket_tokens_, bucket_starts_, bucket_positions_, bucket_count_};
  cuda::embedding_backward(g(layout_.wte), g(layout_.wpe), d_res_, buckets, B, T, C, 0);
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

}  // namespace llmdion
