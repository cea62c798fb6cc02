// One thread per element:
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//   w -= lr * (m / c1 / (sqrt(v / c2) + eps) + weight_decay * w)
// Written as the CPU loop writes it (and without fused multiply-adds), so the
// two backends agree to rounding of sqrt alone.
#include "optim/cuda/adamw.h"

#include "core/cuda/check.h"

namespace llmdion::cuda {

__device__ __forceinline__ void adamw_element(float& w, float g, float& m, float& v, const AdamWStep& s) {
  m = __fadd_rn(__fmul_rn(s.beta1, m), __fmul_rn(1.0f - s.beta1, g));
  v = __fadd_rn(__fmul_rn(s.beta2, v), __fmul_rn(__fmul_rn(1.0f - s.beta2, g), g));
  const float m_hat = __fdiv_rn(m, s.correction1), v_hat = __fdiv_rn(v, s.correction2);
  const float update = __fadd_rn(__fdiv_rn(m_hat, __fadd_rn(__fsqrt_rn(v_hat), s.eps)), __fmul_rn(s.weight_decay, w));
  w = __fsub_rn(w, __fmul_rn(s.lr, update));
}

__global__ void adamw_kernel(float* w, const float* grad, float* m, float* v, int64_t n, AdamWStep s) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) adamw_element(w[i], grad[i], m[i], v[i], s);
}

void adamw_update(float* w, const float* grad, float* m, float* v, int64_t n, const AdamWStep& step,
                  cudaStream_t stream) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  adamw_kernel<<<unsigned((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(w, grad, m, v, n, step);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llmdion::cuda
