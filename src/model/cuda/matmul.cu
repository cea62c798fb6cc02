#include "model/cuda/matmul.h"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"

namespace llmdion::cuda {
namespace {

// One cuBLASLt product, column-major: D = alpha op(A) op(B) + beta D, op(A) m x k, op(B) k x n,
// D m x n of type d_type (A and B bf16), with an optional epilogue and its bias / aux operands.
struct LtProduct {
  bool transpose_a, transpose_b;
  int m, n, k;
  const void* a;
  int lda;
  const void* b;
  int ldb;
  void* d;
  int ldd;
  cudaDataType_t d_type;
  float beta;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  void* aux = nullptr;  // GELU's pre-activation, ld m
};

// The largest power of two (up to 256) dividing the address: the alignment cuBLASLt may assume.
uint32_t alignment_of(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

// The heuristic's algorithm is chosen once per shape, epilogue and alignment: every step repeats them.
void run_product(cublasLtHandle_t handle, void* workspace, size_t workspace_bytes, const LtProduct& p,
                 std::map<std::array<int64_t, 14>, cublasLtMatmulAlgo_t>& algos, cudaStream_t stream) {
  cublasLtMatmulDesc_t desc;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_a = p.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = p.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &p.epilogue, sizeof(p.epilogue)));
  if (p.bias) {
    const cudaDataType_t bias_type = CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof(p.bias)));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  if (p.aux) {
    const int64_t aux_ld = p.m;  // the aux matrix is D's shape and type (bf16)
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p.aux, sizeof(p.aux)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)));
  }
  // Stored shapes: A is m x k (k x m when transposed), B k x n (n x k when transposed).
  cublasLtMatrixLayout_t layout_a, layout_b, layout_d;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout_a, CUDA_R_16BF, p.transpose_a ? p.k : p.m,
                                          p.transpose_a ? p.m : p.k, p.lda));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout_b, CUDA_R_16BF, p.transpose_b ? p.n : p.k,
                                          p.transpose_b ? p.k : p.n, p.ldb));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout_d, p.d_type, p.m, p.n, p.ldd));
  const std::array<int64_t, 14> key = {p.transpose_a, p.transpose_b, p.m, p.n, p.k, p.lda, p.ldb, p.ldd, p.d_type,
                                        p.epilogue, p.bias != nullptr, alignment_of(p.a), alignment_of(p.b),
                                        alignment_of(p.d)};
  auto algo = algos.find(key);
  if (algo == algos.end()) {
    cublasLtMatmulPreference_t preference;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &workspace_bytes, sizeof(workspace_bytes)));
    // Activations of odd widths sit at any even address: only algorithms that take them.
    const std::pair<cublasLtMatmulPreferenceAttributes_t, const void*> alignments[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p.a}, {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p.b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, p.d}, {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, p.d}};
    for (const auto& [attribute, pointer] : alignments) {
      const uint32_t alignment = alignment_of(pointer);
      CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &alignment, sizeof(alignment)));
    }
    cublasLtMatmulHeuristicResult_t heuristic;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, desc, layout_a, layout_b, layout_d, layout_d, preference, 1,
                                                &heuristic, &found));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
    if (found == 0)
      throw std::runtime_error("cuBLASLt has no algorithm for a " + std::to_string(p.m) + " x " +
                               std::to_string(p.n) + " x " + std::to_string(p.k) + " bf16 product with epilogue " +
                               std::to_string(int(p.epilogue)));
    algo = algos.emplace(key, heuristic.algo).first;
  }
  const float alpha = 1.0f;
  CUBLAS_CHECK(cublasLtMatmul(handle, desc, &alpha, p.a, layout_a, p.b, layout_b, &p.beta, p.d, layout_d, p.d,
                              layout_d, &algo->second, workspace, workspace_bytes, stream));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(layout_a));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(layout_b));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(layout_d));
  CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
}

// out[n, j] += bias[j]: the bias epilogue's work where the bias is not 16-byte aligned.
__global__ void add_bias_kernel(bf16* out, const bf16* bias, int N, int OC) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < int64_t(N) * OC) out[i] = __float2bfloat16(__bfloat162float(out[i]) + __bfloat162float(bias[i % OC]));
}

}  // namespace

Matmul::Matmul() {
  CUBLAS_CHECK(cublasLtCreate(&handle_));
  CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

Matmul::~Matmul() {
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

void Matmul::forward(bf16* out, bf16* pre_gelu, const bf16* inp, const bf16* weight, const bf16* bias, int N, int C,
                     int OC, cudaStream_t stream) {
  if (pre_gelu && OC % 8 != 0)
    throw std::invalid_argument("the GELU epilogue needs a width divisible by 8, not " + std::to_string(OC));
  LtProduct p{true, false, OC, N, C, weight, C, inp, C, out, OC, CUDA_R_16BF, 0.0f};
  // The epilogue reads the bias 16 bytes at a time (tensors of odd widths shift those after them).
  const bool bias_epilogue = bias && all_aligned_16({bias});
  if (bias && !bias_epilogue && pre_gelu)
    throw std::invalid_argument("the GELU epilogue needs a 16-byte aligned bias");
  if (pre_gelu) {
    p.epilogue = bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    p.aux = pre_gelu;
  } else if (bias_epilogue) {
    p.epilogue = CUBLASLT_EPILOGUE_BIAS;
  }
  if (bias_epilogue) p.bias = bias;
  run_product(handle_, workspace_, workspace_bytes_, p, algos_, stream);
  if (bias && !bias_epilogue) {
    const int64_t n = int64_t(N) * OC;
    add_bias_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(out, bias, N, OC);
    CUDA_CHECK_LAUNCH();
  }
}

void Matmul::backward_input(bf16* dinp, const bf16* dout, const bf16* weight, const bf16* pre_gelu, int N, int C,
                            int OC, cudaStream_t stream) {
  if (pre_gelu && C % 8 != 0)
    throw std::invalid_argument("the GELU-derivative epilogue needs a width divisible by 8, not " + std::to_string(C));
  LtProduct p{false, false, C, N, OC, weight, C, dout, OC, dinp, C, CUDA_R_16BF, 0.0f};
  if (pre_gelu) {
    p.epilogue = CUBLASLT_EPILOGUE_DGELU;
    p.aux = const_cast<bf16*>(pre_gelu);
  }
  run_product(handle_, workspace_, workspace_bytes_, p, algos_, stream);
}

void Matmul::backward_weight(float* dweight, const bf16* dout, const bf16* inp, int N, int C, int OC,
                             cudaStream_t stream) {
  LtProduct p{false, true, C, OC, N, inp, C, dout, OC, dweight, C, CUDA_R_32F, 1.0f};
  run_product(handle_, workspace_, workspace_bytes_, p, algos_, stream);
}

}  // namespace llmdion::cuda
