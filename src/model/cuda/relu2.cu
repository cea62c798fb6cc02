// Squared ReLU, the bf16 twin of cpu/relu2.cpp, in fp32 per element:
//   relu2(x) = max(x, 0)^2,   relu2'(x) = 2 max(x, 0)
// The backward may run in place (dinp == dout).
#include "model/cuda/elementwise.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

struct Relu2 {
  __device__ float operator()(float x) const { return x > 0.0f ? x * x : 0.0f; }
};

struct Relu2Backward {  // (x, dout) -> relu2'(x) dout
  __device__ float operator()(float x, float d) const { return x > 0.0f ? 2.0f * x * d : 0.0f; }
};

}  // namespace

void relu2_forward(bf16* out, const bf16* inp, int64_t n, cudaStream_t stream) {
  map_elements(out, inp, n, Relu2{}, stream);
}

void relu2_backward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, cudaStream_t stream) {
  map_elements2(dinp, inp, dout, n, Relu2Backward{}, stream);
}

}  // namespace llmdion::cuda
