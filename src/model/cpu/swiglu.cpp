// SwiGLU (Shazeer 2020), LLaMA's MLP: over rows [gate | up] of width 2H,
//   out = silu(gate) * up,   silu(g) = g sigmoid(g)
//   d gate = dout * up * sigmoid(g) (1 + g (1 - sigmoid(g))),   d up = dout * silu(g)
#include <cmath>

#include "model/cpu/kernels.h"

namespace llmdion::cpu {

template <typename Real>
void swiglu_forward(Real* out, const Real* gate_up, int64_t N, int64_t H) {
  #pragma omp parallel for
  for (int64_t n = 0; n < N; n++)
    for (int64_t i = 0; i < H; i++) {
      const Real g = gate_up[n * 2 * H + i], u = gate_up[n * 2 * H + H + i];
      out[n * H + i] = g / (Real(1) + std::exp(-g)) * u;
    }
}

template <typename Real>
void swiglu_backward(Real* d_gate_up, const Real* gate_up, const Real* dout, int64_t N, int64_t H) {
  #pragma omp parallel for
  for (int64_t n = 0; n < N; n++)
    for (int64_t i = 0; i < H; i++) {
      const Real g = gate_up[n * 2 * H + i], u = gate_up[n * 2 * H + H + i], d = dout[n * H + i];
      const Real sig = Real(1) / (Real(1) + std::exp(-g));
      d_gate_up[n * 2 * H + i] = d * u * sig * (Real(1) + g * (Real(1) - sig));
      d_gate_up[n * 2 * H + H + i] = d * g * sig;
    }
}

template void swiglu_forward<float>(float*, const float*, int64_t, int64_t);
template void swiglu_forward<double>(double*, const double*, int64_t, int64_t);
template void swiglu_backward<float>(float*, const float*, const float*, int64_t, int64_t);
template void swiglu_backward<double>(double*, const double*, const double*, int64_t, int64_t);

}  // namespace llmdion::cpu
