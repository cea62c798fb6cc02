// Every matmul of the CUDA model, on cuBLASLt: bf16 operands, fp32 accumulation.
// Row-major [rows, cols] tensors are column-major [cols, rows] to cuBLAS, so
//   forward          out[N,OC]  = inp[N,C] W[OC,C]^T + bias   is  out^T = W^T(col) inp^T
//   input gradient   dinp[N,C]  = dout[N,OC] W[OC,C]           is  dinp^T = W(col) dout^T
//   weight gradient  dW[OC,C]  += dout^T inp                   is  dW^T += inp^T(col) dout
// The weight gradient lands in fp32 and accumulates (beta = 1). The epilogues
// fuse the bias add and GELU (forward, keeping the pre-activation) and GELU's
// derivative (input gradient) into the product where the shapes allow it.
#pragma once

#include <cublasLt.h>

#include <array>
#include <cstdint>
#include <map>

#include "model/cuda/kernels.h"

namespace llmdion::cuda {

class Matmul {
 public:
  static constexpr size_t kWorkspaceBytes = 32 << 20;  // cuBLASLt's, on the GPU
  Matmul();
  ~Matmul();
  Matmul(const Matmul&) = delete;
  Matmul& operator=(const Matmul&) = delete;

  // out = inp W^T + bias (bias may be null). With pre_gelu non-null: pre_gelu
  // = inp W^T + bias and out = gelu(pre_gelu) (needs OC % 8 == 0).
  void forward(bf16* out, bf16* pre_gelu, const bf16* inp, const bf16* weight, const bf16* bias, int N, int C,
               int OC, cudaStream_t stream);
  // dinp = dout W; with pre_gelu non-null, dinp = (dout W) * gelu'(pre_gelu) (needs C % 8 == 0).
  void backward_input(bf16* dinp, const bf16* dout, const bf16* weight, const bf16* pre_gelu, int N, int C, int OC,
                      cudaStream_t stream);
  // dweight += dout^T inp, in fp32.
  void backward_weight(float* dweight, const bf16* dout, const bf16* inp, int N, int C, int OC, cudaStream_t stream);

 private:
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = kWorkspaceBytes;
  std::map<std::array<int64_t, 14>, cublasLtMatmulAlgo_t> algos_;  // the heuristic's choice per product kind
};

}  // namespace llmdion::cuda
