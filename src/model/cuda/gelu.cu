// GELU, tanh form, the bf16 twin of cpu/gelu.cpp, in fp32 per element:
//   gelu(x)  = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// The backward may run in place (dinp == dout).
#include "model/cuda/elementwise.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;

struct Gelu {
  __device__ float operator()(float x) const {
    return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
  }
};

struct GeluBackward {  // (x, dout) -> gelu'(x) dout
  __device__ float operator()(float x, float d) const {
    const float th = tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x));
    return d * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kSqrt2OverPi * (1.0f + float(3 * 0.044715) * x * x));
  }
};

}  // namespace

void gelu_forward(bf16* out, const bf16* inp, int64_t n, cudaStream_t stream) {
  map_elements(out, inp, n, Gelu{}, stream);
}

void gelu_backward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, cudaStream_t stream) {
  map_elements2(dinp, inp, dout, n, GeluBackward{}, stream);
}

}  // namespace llmdion::cuda
