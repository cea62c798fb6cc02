// The CUDA backend's layer kernels, one family per .cu file, each the bf16
// twin of the CPU kernel of the same name (src/model/cpu/kernels.h), which its
// gpu test compares it with. Host functions taking device pointers; every
// launch goes on `stream` and is checked.
//
// Precision: activations and their gradients are bf16, row-major [N = B*T
// rows, width]; every sum and statistic is computed in fp32; parameter
// gradients are fp32 and accumulate (+=), so micro-batches add up. Nothing
// uses float atomics: results are bitwise reproducible. Null weights, biases
// and gradients mean what they mean in the CPU twin (scale 1, no shift, not learned).
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace llmdion::cuda {

using bf16 = __nv_bfloat16;

// ---- embedding.cu: out[b,t] = wte[token[b,t]] + wpe[t] ----------------------
void embedding_forward(bf16* out, const int32_t* tokens, const bf16* wte, const bf16* wpe, int B, int T, int C,
                       cudaStream_t stream);

// The positions of a micro-batch grouped by token id, built on the host from
// the tokens it already holds, so the backward sums each token's rows in
// position order without atomics. Device arrays of the sizes noted.
struct TokenBuckets {
  const int32_t* tokens;     // [count] distinct token ids
  const int32_t* starts;     // [count + 1] where each token's positions start in `positions`
  const int32_t* positions;  // [N] positions b*T + t, ascending within a token
  int count;
};
// Host side: fills the three arrays (distinct ascending tokens, starts, positions).
void group_positions_by_token(const int32_t* tokens, int N, std::vector<int32_t>& distinct,
                              std::vector<int32_t>& starts, std::vector<int32_t>& positions);

// dwte[token] += sum of dout over its positions; dwpe[t] += sum_b dout[b,t] (dwpe null: none)
void embedding_backward(float* dwte, float* dwpe, const bf16* dout, const TokenBuckets& buckets, int B, int T, int C,
                        cudaStream_t stream);

// ---- layernorm.cu ------------------------------------------------------------
// out = (x - mean) * rstd * w + b per row, rstd = 1/sqrt(var + 1e-5); mean, rstd fp32 [N]
void layernorm_forward(bf16* out, float* mean, float* rstd, const bf16* inp, const bf16* weight, const bf16* bias,
                       int N, int C, cudaStream_t stream);
// Fused with the residual add that precedes it: residual_out = residual + branch, then out = LN(residual_out).
void residual_layernorm_forward(bf16* residual_out, bf16* out, float* mean, float* rstd, const bf16* residual,
                                const bf16* branch, const bf16* weight, const bf16* bias, int N, int C,
                                cudaStream_t stream);
// dinp += dLN/dx (dinp is the residual stream's gradient: the add is the
// residual's backward), dweight += sum_n dout * xhat, dbias += sum_n dout.
// The weight sums go through `scratch` (layernorm_backward_scratch_floats) in a fixed order.
void layernorm_backward(bf16* dinp, float* dweight, float* dbias, float* scratch, const bf16* dout, const bf16* inp,
                        const bf16* weight, const float* mean, const float* rstd, int N, int C, cudaStream_t stream);
int64_t layernorm_backward_scratch_floats(int N, int C);

// ---- rmsnorm.cu --------------------------------------------------------------
// out = x * rstd * w per row, rstd = 1/sqrt(mean(x^2) + 1e-5) fp32 [N] (weight null: scale 1)
void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int C, cudaStream_t stream);
// Fused with the residual add that precedes it: residual_out = bf16(residual + branch) (residual_out may be
// residual), then out = RMSNorm(residual_out).
void residual_rmsnorm_forward(bf16* residual_out, bf16* out, float* rstd, const bf16* residual, const bf16* branch,
                              const bf16* weight, int N, int C, cudaStream_t stream);
// dinp += dRMSNorm/dx, dweight += sum_n dout * x * rstd (dweight null: not learned),
// the weight sums through `scratch` (rmsnorm_backward_scratch_floats) in a fixed order.
void rmsnorm_backward(bf16* dinp, float* dweight, float* scratch, const bf16* dout, const bf16* inp,
                      const bf16* weight, const float* rstd, int N, int C, cudaStream_t stream);
int64_t rmsnorm_backward_scratch_floats(int N, int C);
// qk-norm: RMSNorm without a scale, in place on the `heads` heads of hs values at
// the start of each row (rows `stride` apart); rstd fp32 [N, heads]. The backward
// turns d, the gradient of the normalized y (which stays in place of x), into the
// gradient of x, in place.
void head_rmsnorm_forward(bf16* x, float* rstd, int N, int heads, int hs, int stride, cudaStream_t stream);
void head_rmsnorm_backward(bf16* d, const bf16* y, const float* rstd, int N, int heads, int hs, int stride,
                           cudaStream_t stream);

// ---- gelu.cu: gelu(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) ---------
void gelu_forward(bf16* out, const bf16* inp, int64_t n, cudaStream_t stream);
// dinp = gelu'(inp) * dout; dinp may be dout (in place)
void gelu_backward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, cudaStream_t stream);

// ---- relu2.cu: relu2(x) = max(x, 0)^2 ------------------------------------------
void relu2_forward(bf16* out, const bf16* inp, int64_t n, cudaStream_t stream);
// dinp = 2 max(inp, 0) * dout; dinp may be dout (in place)
void relu2_backward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, cudaStream_t stream);

// ---- swiglu.cu: out[N, H] = silu(gate) * up over rows [gate | up] of width 2H --
void swiglu_forward(bf16* out, const bf16* gate_up, int N, int H, cudaStream_t stream);
// d_gate_up [N, 2H] = (d gate | d up), overwritten.
void swiglu_backward(bf16* d_gate_up, const bf16* gate_up, const bf16* dout, int N, int H, cudaStream_t stream);

// ---- column_sums.cu: sums[j] += sum_n x[n, j] (bias gradients) -----------------
void add_column_sums(float* sums, float* scratch, const bf16* x, int N, int width, cudaStream_t stream);
int64_t column_sums_scratch_floats(int N, int width);

// ---- cross_entropy.cu: the classifier, fused ---------------------------------
// Per row n of Vp logits: loss[n] = logsumexp(logits[n, :V]) - logits[n, target[n]].
// With write_dlogits, the row is overwritten by its gradient dloss * (softmax - onehot(target))
// over the first V columns and 0 over the padding, so no probabilities are stored.
void fused_classifier(bf16* logits, float* losses, const int32_t* targets, float dloss, int N, int V, int Vp,
                      bool write_dlogits, cudaStream_t stream);
// out[0] = sum_n losses[n] / N, summed in a fixed order by one block.
void mean_of(float* out, const float* values, int n, cudaStream_t stream);

// ---- rope.cu: rotary positions, the half-split form ----------------------------
// In place on the `heads` heads of hs values at the start of each row (rows
// `stride` apart, position n % T): each pair (x_j, x_{j+hs/2}) turns by the
// angle of cos_table, sin_table, fp32 [T, hs/2] as cpu::rope_tables makes them;
// inverse turns back (the backward). The attention kernels turn q and k
// themselves when given the tables (below), to the same bits; this separate
// turn is the unfused path they are tested against.
void rope_rotate(bf16* x, const float* cos_table, const float* sin_table, int N, int T, int heads, int hs, int stride,
                 bool inverse, cudaStream_t stream);

// ---- attention.cu: causal attention, flash style -------------------------------
// qkv rows [q (NH heads) | k (NKV heads) | v (NKV heads)] of hs values each;
// query head h reads kv head h / (NH / NKV) (grouped-query attention when
// NKV < NH); out [N, NH * hs]. Never stores the T x T scores: keeps each
// query's log-sum-exp, lse [B, NH, T], for the backward, which recomputes the
// probabilities tile by tile. RoPE inside: with rope_cos, rope_sin (fp32
// [T, hs/2] as cpu::rope_tables makes them, 16-byte aligned; null: none), q and
// k are turned by their positions as the kernels read them (qkv is left as
// it is), and the backward's dq, dk turned back: the result, bit for bit, of
// rope_rotate on q and k, attention without tables, rope_rotate back on dq, dk.
void attention_forward(bf16* out, float* lse, const bf16* qkv, const float* rope_cos, const float* rope_sin, int B,
                       int T, int NH, int NKV, int hs, cudaStream_t stream);
// dqkv = (dq | dk | dv), overwritten. scratch: attention_backward_scratch_floats.
void attention_backward(bf16* dqkv, float* scratch, const bf16* dout, const bf16* out, const bf16* qkv,
                        const float* rope_cos, const float* rope_sin, const float* lse, int B, int T, int NH, int NKV,
                        int hs, cudaStream_t stream);
int64_t attention_backward_scratch_floats(int B, int T, int NH, int NKV, int hs);

// attention_reference.cu: the same through fp32 batched GEMMs (cuBLAS, on
// `handle`, whose stream the caller has set) and a row softmax, storing the
// probabilities [B, NH, T, T]: simple, kept as the in-GPU reference the flash
// kernels are tested against. scratch: attention_reference_scratch_floats.
void attention_reference_forward(bf16* out, float* probs, float* scratch, const bf16* qkv, int B, int T, int NH,
                                 int NKV, int hs, cublasHandle_t handle, cudaStream_t stream);
void attention_reference_backward(bf16* dqkv, float* scratch, const bf16* dout, const bf16* qkv, const float* probs,
                                  int B, int T, int NH, int NKV, int hs, cublasHandle_t handle, cudaStream_t stream);
int64_t attention_reference_scratch_floats(int B, int T, int NH, int NKV, int hs);

// ---- precision.cu ------------------------------------------------------------
// bf16 copy of fp32 master weights by stochastic rounding: each value rounds up
// with probability equal to its distance from the lower bf16 neighbour. The
// random bits are a hash of (seed, index): the same seed gives the same copy,
// which is what keeps a resumed run bitwise equal (the seed is derived from
// the run seed and the update count, both saved in checkpoints).
void round_to_bf16_stochastic(bf16* out, const float* in, int64_t n, uint64_t seed, cudaStream_t stream);
void round_to_bf16_nearest(bf16* out, const float* in, int64_t n, cudaStream_t stream);
void widen_to_float(float* out, const bf16* in, int64_t n, cudaStream_t stream);

// ---- vector_math.cu: over fp32 parameter-sized buffers -------------------------
// out[0] = sum x^2 in fp64, through `partials` (sum_squares_partials(n) doubles) in a fixed order.
void sum_squares(double* out, double* partials, const float* x, int64_t n, cudaStream_t stream);
int64_t sum_squares_partials(int64_t n);
void scale_in_place(float* x, float factor, int64_t n, cudaStream_t stream);

}  // namespace llmdion::cuda
