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

// embedding.cpp: out[b,t] = wte[token[b,t]] + wpe[t]
template <typename Real>
void embedding_forward(Real* out, const int32_t* tokens, const Real* wte, const Real* wpe, int64_t B, int64_t T,
                       int64_t C);
template <typename Real>
void embedding_backward(Real* dwte, Real* dwpe, const Real* dout, const int32_t* tokens, int64_t B, int64_t T,
                        int64_t C);

// layernorm.cpp: out = (x - mean) * rstd * w + b per row, rstd = 1/sqrt(var + 1e-5)
template <typename Real>
void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight, const Real* bias,
                       int64_t N, int64_t C);
template <typename Real>
void layernorm_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                        const Real* weight, const Real* mean, const Real* rstd, int64_t N, int64_t C);

// attention.cpp: causal multi-head attention over qkv[N, 3C] (q | k | v per row)
template <typename Real>
void attention_forward(Real* out, Real* probs, const Real* qkv, int64_t B, int64_t T, int64_t C, int64_t NH);
template <typename Real>
void attention_backward(Real* dqkv, Real* scratch, const Real* dout, const Real* qkv, const Real* probs, int64_t B,
                        int64_t T, int64_t C, int64_t NH);

// gelu.cpp: gelu(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
template <typename Real>
void gelu_forward(Real* out, const Real* inp, int64_t n);
template <typename Real>
void gelu_backward(Real* dinp, const Real* inp, const Real* dout, int64_t n);

// cross_entropy.cpp: softmax over the first V of Vp logits, loss = -log p[target]
template <typename Real>
void softmax_cross_entropy_forward(Real* losses, Real* logits_to_probs, const int32_t* targets, int64_t N, int64_t V,
                                   int64_t Vp);
template <typename Real>
void softmax_cross_entropy_backward(Real* probs_to_dlogits, const int32_t* targets, Real dloss, int64_t N, int64_t V,
                                    int64_t Vp);

}  // namespace llmdion::cpu
