// AdamW's element-wise update on the GPU: the same formula, in the same fp32
// operation order, as the CPU loop in optim/adamw.cpp (see adamw.h), over
// fp32 master weights, gradients and moments in device memory.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace llmdion::cuda {

struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  float correction1, correction2;  // 1 - beta^t
};

void adamw_update(float* w, const float* grad, float* m, float* v, int64_t n, const AdamWStep& step,
                  cudaStream_t stream);

}  // namespace llmdion::cuda
