// cuBLASLt on the emulated device (cuBLAS Library, "Using the cuBLASLt API").
// cublasLtMatmul computes, column-major,
//   x = alpha op(A) op(B) + beta C (+ bias[i], for row i of D, with a BIAS epilogue),
//   D = x (DEFAULT, BIAS), GELU(x) (GELU*; with GELU_AUX* x itself is stored into the aux matrix),
//       or x GELU'(aux) (DGELU),
// where GELU is the tanh approximation of "cublasLtEpilogue_t" (note 5). As in
// cuBLAS, x is accumulated in float64 and each output rounded once to its type
// (D's, the aux matrix's) to nearest even, and C is not read where beta is 0.
// The arguments are checked on the calling thread and the work queued on
// `stream`. What the reference says has no algorithm, the heuristic refuses
// (CUBLAS_STATUS_NOT_SUPPORTED, no result) and cublasLtMatmul does too:
// - types outside "cublasLtMatmul()"'s table for CUBLAS_COMPUTE_32F(_PEDANTIC)
//   and scale type CUDA_R_32F (A, B bf16 with C, D bf16 or fp32; or all fp32;
//   C and D of one type), the bias's type other than its column there (D's);
// - an aux leading dimension not divisible by 8 or below D's rows, an aux type
//   set ("EPILOGUE_AUX_LD", "EPILOGUE_AUX_DATA_TYPE": INVALID_VALUE in cublasLtMatmul);
// - a MIN_ALIGNMENT preference below its matrix's element size, or a bias or
//   aux pointer not aligned to its elements (the heuristic "depend[s] on its
//   value to determine expected pointer alignment"): no algorithm reads
//   misaligned elements.
// The algorithm returned requires the alignments its preferences named (the
// default 256 bytes); cublasLtMatmul refuses pointers aligned to fewer
// ("cublasLtMatmulAlgoCheck": "The algo will fail if ... the buffers are not
// correctly aligned"). It needs no workspace.
#include <cublasLt.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dense.h"
#include "emu/runtime.h"

struct cublasLtContext {};

struct cublasLtMatmulDescOpaque_t {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: D's type
  void* aux = nullptr;
  int64_t aux_ld = 0;
  int32_t aux_type = -1;  // -1: D's type
};

struct cublasLtMatrixLayoutOpaque_t {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};

struct cublasLtMatmulPreferenceOpaque_t {
  uint64_t max_workspace_bytes = 0;
  uint32_t min_alignment[4] = {256, 256, 256, 256};  // A, B, C, D
};

namespace {

constexpr uint64_t kAlgoTag = 0x656d75616c676f31;  // marks an algorithm the heuristic returned

cublasStatus_t fail(cublasStatus_t status, const char* call, const std::string& why) {
  std::fprintf(stderr, "emu: %s: %s\n", call, why.c_str());
  return status;
}

bool adds_bias(uint32_t e) {
  return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}
bool stores_aux(uint32_t e) { return e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS; }
bool applies_gelu(uint32_t e) { return e == CUBLASLT_EPILOGUE_GELU || e == CUBLASLT_EPILOGUE_GELU_BIAS || stores_aux(e); }
bool uses_aux(uint32_t e) { return stores_aux(e) || e == CUBLASLT_EPILOGUE_DGELU; }
bool is_epilogue(uint32_t e) { return e == CUBLASLT_EPILOGUE_DEFAULT || adds_bias(e) || applies_gelu(e) || uses_aux(e); }

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) and its derivative.
constexpr double kGeluScale = 0.7978845608028654, kGeluCubic = 0.044715;
double gelu(double x) { return 0.5 * x * (1.0 + std::tanh(kGeluScale * (x + kGeluCubic * x * x * x))); }
double gelu_derivative(double x) {
  const double t = std::tanh(kGeluScale * (x + kGeluCubic * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kGeluScale * (1.0 + 3.0 * kGeluCubic * x * x);
}

bool aligned(const void* pointer, uint64_t bytes) { return reinterpret_cast<uintptr_t>(pointer) % bytes == 0; }

std::string shape(const cublasLtMatrixLayoutOpaque_t& x) {
  return std::to_string(x.rows) + " x " + std::to_string(x.cols) + " (ld " + std::to_string(x.ld) + ")";
}

// One product as the descriptor and layouts describe it.
struct Product {
  bool transpose_a, transpose_b;
  int64_t m, n, k;
  cudaDataType_t ab_type, d_type;
  uint32_t epilogue;
};

// The descriptor and layouts checked against the reference: SUCCESS and the
// product, or the status cublasLtMatmul returns and why.
cublasStatus_t describe(const char* call, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                        cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, Product* out) {
  if (!desc || !a || !b || !c || !d) return fail(CUBLAS_STATUS_INVALID_VALUE, call, "a descriptor or layout is null");
  if ((desc->compute != CUBLAS_COMPUTE_32F && desc->compute != CUBLAS_COMPUTE_32F_PEDANTIC) || desc->scale != CUDA_R_32F)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, call,
                "compute type " + std::to_string(int(desc->compute)) + " with scale type " +
                    emu::dense::type_name(desc->scale) + " is not emulated (CUBLAS_COMPUTE_32F(_PEDANTIC), CUDA_R_32F is)");
  const bool listed = a->type == b->type && c->type == d->type &&
                      ((a->type == CUDA_R_32F && d->type == CUDA_R_32F) ||
                       (a->type == CUDA_R_16BF && (d->type == CUDA_R_16BF || d->type == CUDA_R_32F)));
  if (!listed)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, call,
                std::string("A ") + emu::dense::type_name(a->type) + ", B " + emu::dense::type_name(b->type) + ", C " +
                    emu::dense::type_name(c->type) + ", D " + emu::dense::type_name(d->type) +
                    ": not in the table of types for CUBLAS_COMPUTE_32F (A, B bf16 with C, D bf16 or fp32; or all fp32)");
  for (const int32_t op : {desc->transa, desc->transb})
    if (op != CUBLAS_OP_N && op != CUBLAS_OP_T && op != CUBLAS_OP_C)
      return fail(CUBLAS_STATUS_INVALID_VALUE, call, "TRANSA or TRANSB is not N, T or C");
  const bool ta = desc->transa != CUBLAS_OP_N, tb = desc->transb != CUBLAS_OP_N;
  const uint64_t m = d->rows, n = d->cols, k = ta ? a->rows : a->cols;
  if ((ta ? a->cols : a->rows) != m || (tb ? b->cols : b->rows) != k || (tb ? b->rows : b->cols) != n)
    return fail(CUBLAS_STATUS_INVALID_VALUE, call,
                "op(A) of " + shape(*a) + " times op(B) of " + shape(*b) + " is not D's " + shape(*d));
  if (c->rows != m || c->cols != n) return fail(CUBLAS_STATUS_INVALID_VALUE, call, "C " + shape(*c) + " is not D's shape");
  const std::pair<const char*, cublasLtMatrixLayout_t> stored[] = {{"A", a}, {"B", b}, {"D", d}};
  for (auto [name, x] : stored)
    if (x->ld < std::max<int64_t>(1, int64_t(x->rows)))
      return fail(CUBLAS_STATUS_INVALID_VALUE, call, std::string(name) + " " + shape(*x) + ": ld below its rows");
  if (c->ld != 0 && c->ld < int64_t(c->rows))  // 0 broadcasts C's first column
    return fail(CUBLAS_STATUS_INVALID_VALUE, call, "C " + shape(*c) + ": ld below its rows (and not 0)");
  if (!is_epilogue(desc->epilogue))
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, call, "epilogue " + std::to_string(desc->epilogue) + " is not emulated");
  if (adds_bias(desc->epilogue) && desc->bias_type != -1 && desc->bias_type != d->type)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, call,
                std::string("bias type ") + emu::dense::type_name(cudaDataType_t(desc->bias_type)) + " with D " +
                    emu::dense::type_name(d->type) + ": the table's bias type is D's");
  if (uses_aux(desc->epilogue)) {
    if (desc->aux_ld % 8 != 0 || desc->aux_ld < int64_t(m))
      return fail(CUBLAS_STATUS_INVALID_VALUE, call,
                  "EPILOGUE_AUX_LD = " + std::to_string(desc->aux_ld) +
                      ": must be divisible by 8 and be no less than D's rows, " + std::to_string(m));
    if (desc->aux_type != -1)
      return fail(CUBLAS_STATUS_INVALID_VALUE, call, "EPILOGUE_AUX_DATA_TYPE is set: outside fp8 it must stay -1");
  }
  *out = {ta, tb, int64_t(m), int64_t(n), int64_t(k), a->type, d->type, desc->epilogue};
  return CUBLAS_STATUS_SUCCESS;
}

template <typename T>
cublasStatus_t set(const char* call, T* field, const void* buf, size_t bytes) {
  if (!buf || bytes != sizeof(T))
    return fail(CUBLAS_STATUS_INVALID_VALUE, call,
                "buf is null or sizeInBytes " + std::to_string(bytes) + " is not the attribute's " + std::to_string(sizeof(T)));
  std::memcpy(field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  if (!handle) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate", "lightHandle is null");
  *handle = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}

// "will implicitly call cudaDeviceSynchronize()"
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  if (!handle) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtDestroy", "lightHandle is null");
  emu::synchronize_device();
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType) {
  if (!matmulDesc) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescCreate", "matmulDesc is null");
  *matmulDesc = new cublasLtMatmulDescOpaque_t{computeType, scaleType};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
  delete matmulDesc;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t sizeInBytes) {
  const char* call = "cublasLtMatmulDescSetAttribute";
  if (!desc) return fail(CUBLAS_STATUS_INVALID_VALUE, call, "matmulDesc is null");
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return set(call, &desc->transa, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set(call, &desc->transb, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set(call, &desc->epilogue, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set(call, &desc->bias, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: return set(call, &desc->aux, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: return set(call, &desc->aux_ld, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE: return set(call, &desc->aux_type, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return set(call, &desc->bias_type, buf, sizeInBytes);
  }
  return fail(CUBLAS_STATUS_INVALID_VALUE, call, "attribute " + std::to_string(int(attr)) + " is not emulated");
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (!matLayout) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatrixLayoutCreate", "matLayout is null");
  *matLayout = new cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
  delete matLayout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  if (!pref) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceCreate", "pref is null");
  *pref = new cublasLtMatmulPreferenceOpaque_t;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t sizeInBytes) {
  const char* call = "cublasLtMatmulPreferenceSetAttribute";
  if (!pref) return fail(CUBLAS_STATUS_INVALID_VALUE, call, "pref is null");
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return set(call, &pref->max_workspace_bytes, buf, sizeInBytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return set(call, &pref->min_alignment[0], buf, sizeInBytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return set(call, &pref->min_alignment[1], buf, sizeInBytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return set(call, &pref->min_alignment[2], buf, sizeInBytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return set(call, &pref->min_alignment[3], buf, sizeInBytes);
  }
  return fail(CUBLAS_STATUS_INVALID_VALUE, call, "attribute " + std::to_string(int(attr)) + " is not emulated");
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int* returnAlgoCount) {
  const char* call = "cublasLtMatmulAlgoGetHeuristic";
  if (!lightHandle) return fail(CUBLAS_STATUS_NOT_INITIALIZED, call, "lightHandle is null");
  if (requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount || !preference)
    return fail(CUBLAS_STATUS_INVALID_VALUE, call,
                "requestedAlgoCount must be > 0, and the results, their count and the preference not null");
  *returnAlgoCount = 0;
  Product product;
  if (describe(call, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, &product) != CUBLAS_STATUS_SUCCESS)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, call, "no algorithm for that");
  const cublasLtMatrixLayout_t layouts[] = {Adesc, Bdesc, Cdesc, Ddesc};
  for (int i = 0; i < 4; i++) {
    const size_t element = emu::dense::element_bytes(layouts[i]->type);
    if (preference->min_alignment[i] < element)
      return fail(CUBLAS_STATUS_NOT_SUPPORTED, call,
                  std::string("MIN_ALIGNMENT_") + "ABCD"[i] + "_BYTES = " + std::to_string(preference->min_alignment[i]) +
                      " is below its " + std::to_string(element) + "-byte elements: no algorithm");
  }
  const size_t d_element = emu::dense::element_bytes(product.d_type);
  if ((adds_bias(product.epilogue) && !aligned(operationDesc->bias, d_element)) ||
      (uses_aux(product.epilogue) && !aligned(operationDesc->aux, d_element)))
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, call, "the bias or aux pointer is not aligned to its elements: no algorithm");
  cublasLtMatmulHeuristicResult_t& result = heuristicResultsArray[0];
  result = {};
  result.algo.data[0] = kAlgoTag;
  for (int i = 0; i < 4; i++) result.algo.data[1 + i] = preference->min_alignment[i];
  result.workspaceSize = 0;
  result.state = CUBLAS_STATUS_SUCCESS;
  result.wavesCount = 1.0f;
  *returnAlgoCount = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void* alpha,
                              const void* A, cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc,
                              const void* beta, const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspaceSizeInBytes, cudaStream_t stream) {
  const char* call = "cublasLtMatmul";
  using emu::dense::in_device_memory, emu::dense::element_bytes;
  if (!lightHandle) return fail(CUBLAS_STATUS_NOT_INITIALIZED, call, "lightHandle is null");
  Product p;
  if (const cublasStatus_t status = describe(call, computeDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
      status != CUBLAS_STATUS_SUCCESS)
    return status;
  if (!alpha || !beta) return fail(CUBLAS_STATUS_INVALID_VALUE, call, "alpha or beta is null");
  if (!emu::dense::on_host(call, "alpha", alpha) || !emu::dense::on_host(call, "beta", beta))
    return CUBLAS_STATUS_INVALID_VALUE;
  // "in-place matrix multiplication (C == D and Cdesc == Ddesc)"
  if (C == D && Cdesc->ld != Ddesc->ld)
    return fail(CUBLAS_STATUS_INVALID_VALUE, call, "C is D, but Cdesc is not Ddesc");
  const void* bias = computeDesc->bias;
  void* aux = computeDesc->aux;
  if (adds_bias(p.epilogue) && !bias) return fail(CUBLAS_STATUS_INVALID_VALUE, call, "the epilogue adds a bias, but BIAS_POINTER is null");
  if (uses_aux(p.epilogue) && !aux) return fail(CUBLAS_STATUS_INVALID_VALUE, call, "the epilogue needs EPILOGUE_AUX_POINTER, which is null");
  if (algo && algo->data[0] != kAlgoTag)
    return fail(CUBLAS_STATUS_INVALID_VALUE, call, "algo is not one cublasLtMatmulAlgoGetHeuristic returned");
  const void* pointers[] = {A, B, C, D};
  for (int i = 0; i < 4; i++) {
    const uint64_t required = algo ? algo->data[1 + i] : 256;  // null: the default preferences' algorithm
    if (!aligned(pointers[i], required))
      return fail(CUBLAS_STATUS_INVALID_VALUE, call,
                  std::string(1, "ABCD"[i]) + " is not aligned to the " + std::to_string(required) +
                      " bytes the algorithm was chosen for (MIN_ALIGNMENT_" + "ABCD"[i] + "_BYTES)");
  }
  if (workspaceSizeInBytes > 0 && (!aligned(workspace, 256) || !emu::is_device_memory(workspace, workspaceSizeInBytes)))
    return fail(CUBLAS_STATUS_INVALID_VALUE, call, "the workspace must be 256-byte aligned device memory of workspaceSizeInBytes");
  const double scale_ab = *static_cast<const float*>(alpha), scale_c = *static_cast<const float*>(beta);
  const cublasLtMatrixLayoutOpaque_t a = *Adesc, b = *Bdesc, c = *Cdesc, d = *Ddesc;
  const int64_t aux_ld = computeDesc->aux_ld;
  const bool reads = p.k > 0;
  if ((reads && !in_device_memory(call, "A", A, a.rows, a.cols, a.ld, element_bytes(a.type))) ||
      (reads && !in_device_memory(call, "B", B, b.rows, b.cols, b.ld, element_bytes(b.type))) ||
      (scale_c != 0 && !in_device_memory(call, "C", C, c.rows, c.cols, c.ld, element_bytes(c.type))) ||
      !in_device_memory(call, "D", D, p.m, p.n, d.ld, element_bytes(d.type)) ||
      (adds_bias(p.epilogue) && !in_device_memory(call, "the bias", bias, p.m, 1, p.m, element_bytes(d.type))) ||
      (uses_aux(p.epilogue) && !in_device_memory(call, "the aux matrix", aux, p.m, p.n, aux_ld, element_bytes(d.type))))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (p.m == 0 || p.n == 0) return CUBLAS_STATUS_SUCCESS;
  emu::enqueue(stream, call, [=] {
    using emu::dense::load, emu::dense::store;
    const std::vector<double> ab = emu::dense::product({A, a.type, int64_t(a.rows), int64_t(a.cols), a.ld}, p.transpose_a,
                                                       {B, b.type, int64_t(b.rows), int64_t(b.cols), b.ld}, p.transpose_b);
    for (int64_t j = 0; j < p.n; j++)
      for (int64_t i = 0; i < p.m; i++) {
        double x = scale_ab * ab[size_t(i + j * p.m)];
        if (scale_c != 0) x += scale_c * load(C, c.type, i + j * c.ld);
        if (adds_bias(p.epilogue)) x += load(bias, p.d_type, i);
        if (stores_aux(p.epilogue)) store(aux, p.d_type, i + j * aux_ld, x);
        if (applies_gelu(p.epilogue)) x = gelu(x);
        if (p.epilogue == CUBLASLT_EPILOGUE_DGELU) x *= gelu_derivative(load(aux, p.d_type, i + j * aux_ld));
        store(D, p.d_type, i + j * d.ld, x);
      }
  });
  return CUBLAS_STATUS_SUCCESS;
}
