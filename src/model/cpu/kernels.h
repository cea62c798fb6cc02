// The CPU backend's layer kernels, fp32 for training and fp64 for the gradient
// checks, one family per file. Activations are row-major [N = B*T rows, width].
// Backward kernels accumulate (+=) into parameter gradients, so micro-batches
// add up; every reduction runs in a fixed order, whatever the thread count.
#pragma once

#include <cstdint>

namespace llmdion::cpu {

// C = alpha * op(A) op(B) + beta * C, row-major, op = transpose when asked (BLAS).
template <typename Real>
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, Real alpha, const Real* a,
          int64_t lda, const Real* b, int64_t ldb, Real beta, Real* c, int64_t ldc);

// matmul.cpp: out[N,OC] (= or +=) inp[N,C] W[OC,C]^T + bias
template <typename Real>
void matmul_forward(Real* out, const Real* inp, const Real* weight, const Real* bias, int64_t N, int64_t C,
                    int64_t OC, bool accumulate);
template <typename Real>
void matmul_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp, const Real* weight,
                     int64_t N, int64_t C, int64_t OC);

// column_sums.cpp: sums[j] += sum_n x[n, j], in row order
template <typename Real>
void add_column_sums(Real* sums, const Real* x, int64_t N, int64_t width);

// embedding.cpp: out[b,t] = wte[token[b,t]] + wpe[t]  (wpe null: rotary positions)
template <typename Real>
void embedding_forward(Real* out, const int32_t* tokens, const Real* wte, const Real* wpe, int64_t B, int64_t T,
                       int64_t C);
template <typename Real>
void embedding_backward(Real* dwte, Real* dwpe, const Real* dout, const int32_t* tokens, int64_t B, int64_t T,
                        int64_t C);

// layernorm.cpp: out = (x - mean) * rstd * w + b per row, rstd = 1/sqrt(var + 1e-5)
// (weight null: scale 1; bias null: no shift; dweight null: not learned)
template <typename Real>
void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight, const Real* bias,
                       int64_t N, int64_t C);
template <typename Real>
void layernorm_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                        const Real* weight, const Real* mean, const Real* rstd, int64_t N, int64_t C);

// rmsnorm.cpp: out = x * rstd * w per row, rstd = 1/sqrt(mean(x^2) + 1e-5) (weight null: scale 1)
template <typename Real>
void rmsnorm_forward(Real* out, Real* rstd, const Real* inp, const Real* weight, int64_t N, int64_t C);
template <typename Real>
void rmsnorm_backward(Real* dinp, Real* dweight, const Real* dout, const Real* inp, const Real* weight,
                      const Real* rstd, int64_t N, int64_t C);
// In place on the `heads` heads of hs values at the start of each row (rows `stride` apart).
template <typename Real>
void head_rmsnorm_forward(Real* x, Real* rstd, int64_t N, int64_t heads, int64_t hs, int64_t stride);
// d (gradient of the normalized y) becomes the gradient of the input.
template <typename Real>
void head_rmsnorm_backward(Real* d, const Real* y, const Real* rstd, int64_t N, int64_t heads, int64_t hs,
                           int64_t stride);

// rope.cpp: rotary positions, in place on `heads` heads per row (rows `stride` apart, position n % T)
template <typename Real>
void rope_tables(Real* cos_table, Real* sin_table, int64_t T, int64_t hs, double theta);
template <typename Real>
void rope_rotate(Real* x, const Real* cos_table, const Real* sin_table, int64_t N, int64_t T, int64_t heads, int64_t hs,
                 int64_t stride, bool inverse);

// attention.cpp: causal attention over rows [q (NH heads) | k (NKV) | v (NKV)] of hs values each
template <typename Real>
void attention_forward(Real* out, Real* probs, const Real* qkv, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                       int64_t hs);
template <typename Real>
void attention_backward(Real* dqkv, Real* scratch, const Real* dout, const Real* qkv, const Real* probs, int64_t B,
                        int64_t T, int64_t NH, int64_t NKV, int64_t hs);

// gelu.cpp: gelu(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
template <typename Real>
void gelu_forward(Real* out, const Real* inp, int64_t n);
template <typename Real>
void gelu_backward(Real* dinp, const Real* inp, const Real* dout, int64_t n);

// relu2.cpp: max(x, 0)^2
template <typename Real>
void relu2_forward(Real* out, const Real* inp, int64_t n);
template <typename Real>
void relu2_backward(Real* dinp, const Real* inp, const Real* dout, int64_t n);

// swiglu.cpp: out[N, H] = silu(gate) * up over rows [gate | up] of width 2H
template <typename Real>
void swiglu_forward(Real* out, const Real* gate_up, int64_t N, int64_t H);
template <typename Real>
void swiglu_backward(Real* d_gate_up, const Real* gate_up, const Real* dout, int64_t N, int64_t H);

// cross_entropy.cpp: softmax over the first V of Vp logits, loss = -log p[target]
template <typename Real>
void softmax_cross_entropy_forward(Real* losses, Real* logits_to_probs, const int32_t* targets, int64_t N, int64_t V,
                                   int64_t Vp);
template <typename Real>
void softmax_cross_entropy_backward(Real* probs_to_dlogits, const int32_t* targets, Real dloss, int64_t N, int64_t V,
                                    int64_t Vp);

}  // namespace llmdion::cpu
