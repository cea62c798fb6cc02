// cuBLAS on the emulated device (cuBLAS Library: "cuBLAS Helper Function
// Reference", "cuBLAS Level-3 Function Reference", "BLAS-like Extension").
// Each call checks its arguments as the reference lists them, on the calling
// thread, and returns that status (with the reason on stderr); the
// computation is queued on the handle's stream and runs on the device thread
// in stream order. Column-major; alpha and beta are host scalars read at the
// call (CUBLAS_POINTER_MODE_HOST, the default); where beta is 0, C is not
// read ("if beta == 0 then C does not have to be a valid input"). Operands
// fp32 or bf16 with CUBLAS_COMPUTE_32F(_PEDANTIC): each product is accumulated
// in float64 and rounded once per output to nearest even, so every math and
// atomics mode gives the same, reproducible result. (The GPU accumulates in
// fp32, in an order of its own.) CUBLAS_OP_C is CUBLAS_OP_T on real data.
#include <cblas.h>
#include <cublas_v2.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "dense.h"
#include "emu/kernel.h"
#include "emu/runtime.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

using emu::dense::Stored;

cublasStatus_t fail(cublasStatus_t status, const char* call, const std::string& why) {
  std::fprintf(stderr, "emu: %s: %s\n", call, why.c_str());
  return status;
}
cublasStatus_t invalid(const char* call, const std::string& why) { return fail(CUBLAS_STATUS_INVALID_VALUE, call, why); }
cublasStatus_t not_initialized(const char* call) {
  return fail(CUBLAS_STATUS_NOT_INITIALIZED, call, "the handle is null (no cublasCreate)");
}

bool is_operation(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

std::string too_small(const char* ld, int value, int rows, const char* matrix) {
  return std::string(ld) + " = " + std::to_string(value) + " is less than max(1, " + std::to_string(rows) +
         "), the rows of " + matrix + " as stored";
}

// One GEMM of a batch, C = alpha op(A) op(B) + beta C, its shape and scalars fixed at the call.
struct Gemm {
  bool transpose_a, transpose_b;
  int m, n, k;
  double alpha, beta;
  cudaDataType_t a_type, b_type, c_type;
  int lda, ldb, ldc;

  Stored a(const void* data) const { return {data, a_type, transpose_a ? k : m, transpose_a ? m : k, lda}; }
  Stored b(const void* data) const { return {data, b_type, transpose_b ? n : k, transpose_b ? k : n, ldb}; }

  // A and B are read only when there is a product (k > 0), C only when beta is not 0; C is written.
  bool in_device_memory(const char* call, const void* a_data, const void* b_data, const void* c_data) const {
    using emu::dense::in_device_memory, emu::dense::element_bytes;
    const Stored sa = a(a_data), sb = b(b_data);
    const bool reads = k > 0;
    return (!reads || in_device_memory(call, "A", a_data, sa.rows, sa.cols, lda, element_bytes(a_type))) &&
           (!reads || in_device_memory(call, "B", b_data, sb.rows, sb.cols, ldb, element_bytes(b_type))) &&
           in_device_memory(call, "C", c_data, m, n, ldc, element_bytes(c_type));
  }

  void run(const void* a_data, const void* b_data, void* c_data) const {
    const std::vector<double> p = emu::dense::product(a(a_data), transpose_a, b(b_data), transpose_b);
    for (int64_t j = 0; j < n; j++)
      for (int64_t i = 0; i < m; i++) {
        const int64_t at = i + j * int64_t(ldc);
        const double ab = alpha * p[size_t(i + j * m)];
        emu::dense::store(c_data, c_type, at, beta == 0 ? ab : ab + beta * emu::dense::load(c_data, c_type, at));
      }
  }
};

// The checks cublas<t>gemm and cublasGemmEx list (INVALID_VALUE), then the scalars, read now.
cublasStatus_t make_gemm(const char* call, cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                         int m, int n, int k, const float* alpha, int lda, int ldb, const float* beta, int ldc,
                         cudaDataType_t a_type, cudaDataType_t b_type, cudaDataType_t c_type, Gemm* gemm) {
  if (!handle) return not_initialized(call);
  if (m < 0 || n < 0 || k < 0)
    return invalid(call, "m, n, k = " + std::to_string(m) + ", " + std::to_string(n) + ", " + std::to_string(k) +
                             ": each must be >= 0");
  if (!is_operation(transa) || !is_operation(transb)) return invalid(call, "transa or transb is not N, T or C");
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  if (lda < std::max(1, ta ? k : m)) return invalid(call, too_small("lda", lda, ta ? k : m, "A"));
  if (ldb < std::max(1, tb ? n : k)) return invalid(call, too_small("ldb", ldb, tb ? n : k, "B"));
  if (ldc < std::max(1, m)) return invalid(call, too_small("ldc", ldc, m, "C"));
  if (!alpha || !beta) return invalid(call, "alpha or beta is null");
  if (!emu::dense::on_host(call, "alpha", alpha) || !emu::dense::on_host(call, "beta", beta))
    return CUBLAS_STATUS_INVALID_VALUE;
  *gemm = {ta, tb, m, n, k, *alpha, *beta, a_type, b_type, c_type, lda, ldb, ldc};
  return CUBLAS_STATUS_SUCCESS;
}

// cublasGemmEx's table of types for CUBLAS_COMPUTE_32F(_PEDANTIC), scale type
// CUDA_R_32F: A and B bf16 with C bf16 or fp32, or all fp32 (its fp16 and int8
// rows are not emulated).
cublasStatus_t check_types(const char* call, cublasComputeType_t compute, cudaDataType_t a_type,
                           cudaDataType_t b_type, cudaDataType_t c_type) {
  if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, call,
                "compute type " + std::to_string(int(compute)) + " is not emulated (CUBLAS_COMPUTE_32F(_PEDANTIC) is)");
  const bool listed = a_type == b_type && ((a_type == CUDA_R_32F && c_type == CUDA_R_32F) ||
                                           (a_type == CUDA_R_16BF && (c_type == CUDA_R_16BF || c_type == CUDA_R_32F)));
  if (!listed)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, call,
                std::string("A ") + emu::dense::type_name(a_type) + ", B " + emu::dense::type_name(b_type) + ", C " +
                    emu::dense::type_name(c_type) +
                    ": not a combination emulated for CUBLAS_COMPUTE_32F (A and B bf16 with C bf16 or fp32, or all fp32)");
  return CUBLAS_STATUS_SUCCESS;
}

// `count` products, product i of A + i strideA, B + i strideB and C + i strideC
// (elements); a single GEMM is a batch of one.
cublasStatus_t strided(const char* call, cublasHandle_t handle, const Gemm& gemm, const void* a, long long stride_a,
                       const void* b, long long stride_b, void* c, long long stride_c, int count) {
  if (count < 0) return invalid(call, "batchCount = " + std::to_string(count) + " is negative");
  if (gemm.m == 0 || gemm.n == 0 || count == 0) return CUBLAS_STATUS_SUCCESS;
  const size_t a_bytes = emu::dense::element_bytes(gemm.a_type), b_bytes = emu::dense::element_bytes(gemm.b_type);
  const size_t c_bytes = emu::dense::element_bytes(gemm.c_type);
  auto a_of = [=](int i) { return static_cast<const char*>(a) + i * stride_a * static_cast<long long>(a_bytes); };
  auto b_of = [=](int i) { return static_cast<const char*>(b) + i * stride_b * static_cast<long long>(b_bytes); };
  auto c_of = [=](int i) { return static_cast<char*>(c) + i * stride_c * static_cast<long long>(c_bytes); };
  for (int i = 0; i < count; i++)
    if (!gemm.in_device_memory(call, a_of(i), b_of(i), c_of(i))) return CUBLAS_STATUS_INVALID_VALUE;
  emu::enqueue(handle->stream, call, [=] {
    for (int i = 0; i < count; i++) gemm.run(a_of(i), b_of(i), c_of(i));
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

// The meanings "cublasStatus_t" gives each status.
const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the cuBLAS library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "resource allocation failed inside the cuBLAS library";
    case CUBLAS_STATUS_INVALID_VALUE: return "an unsupported value or parameter was passed to the function";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "the function requires a feature absent from the device architecture";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal cuBLAS operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "the functionality requested requires some license";
  }
  return "unknown cuBLAS status";
}

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (!handle) return invalid("cublasCreate", "handle is null");
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

// "will implicitly call cudaDeviceSynchronize()"
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (!handle) return not_initialized("cublasDestroy");
  emu::synchronize_device();
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return not_initialized("cublasSetStream");
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

// Every mode computes the same here; only the value is checked.
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return not_initialized("cublasSetMathMode");
  const int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH && base != CUBLAS_PEDANTIC_MATH &&
      base != CUBLAS_TF32_TENSOR_OP_MATH)
    return invalid("cublasSetMathMode", "mode " + std::to_string(int(mode)) + " is not a cublasMath_t");
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetAtomicsMode(cublasHandle_t handle, cublasAtomicsMode_t mode) {
  if (!handle) return not_initialized("cublasSetAtomicsMode");
  if (mode != CUBLAS_ATOMICS_NOT_ALLOWED && mode != CUBLAS_ATOMICS_ALLOWED)
    return invalid("cublasSetAtomicsMode", "mode " + std::to_string(int(mode)) + " is not a cublasAtomicsMode_t");
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                           const float* beta, float* C, int ldc) {
  Gemm gemm;
  const cublasStatus_t status = make_gemm("cublasSgemm", handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc,
                                          CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, &gemm);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  return strided("cublasSgemm", handle, gemm, A, 0, B, 0, C, 0, 1);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType_t Atype, int lda, const void* B,
                            cudaDataType_t Btype, int ldb, const void* beta, void* C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t) {
  Gemm gemm;
  cublasStatus_t status = make_gemm("cublasGemmEx", handle, transa, transb, m, n, k, static_cast<const float*>(alpha),
                                    lda, ldb, static_cast<const float*>(beta), ldc, Atype, Btype, Ctype, &gemm);
  if (status == CUBLAS_STATUS_SUCCESS) status = check_types("cublasGemmEx", computeType, Atype, Btype, Ctype);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  return strided("cublasGemmEx", handle, gemm, A, 0, B, 0, C, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float* alpha, const float* A, int lda,
                                         long long int strideA, const float* B, int ldb, long long int strideB,
                                         const float* beta, float* C, int ldc, long long int strideC, int batchCount) {
  const char* call = "cublasSgemmStridedBatched";
  Gemm gemm;
  const cublasStatus_t status = make_gemm(call, handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc, CUDA_R_32F,
                                          CUDA_R_32F, CUDA_R_32F, &gemm);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  return strided(call, handle, gemm, A, strideA, B, strideB, C, strideC, batchCount);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void* alpha, const void* A, cudaDataType_t Atype,
                                          int lda, long long int strideA, const void* B, cudaDataType_t Btype, int ldb,
                                          long long int strideB, const void* beta, void* C, cudaDataType_t Ctype,
                                          int ldc, long long int strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t) {
  const char* call = "cublasGemmStridedBatchedEx";
  Gemm gemm;
  cublasStatus_t status = make_gemm(call, handle, transa, transb, m, n, k, static_cast<const float*>(alpha), lda, ldb,
                                    static_cast<const float*>(beta), ldc, Atype, Btype, Ctype, &gemm);
  if (status == CUBLAS_STATUS_SUCCESS) status = check_types(call, computeType, Atype, Btype, Ctype);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  return strided(call, handle, gemm, A, strideA, B, strideB, C, strideC, batchCount);
}

// The pointer arrays are device memory: they are read when the work runs (a
// copy queued before the call has landed then), and a matrix outside device
// memory is then a fault, as on the GPU.
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                   int n, int k, const void* alpha, const void* const Aarray[], cudaDataType_t Atype,
                                   int lda, const void* const Barray[], cudaDataType_t Btype, int ldb,
                                   const void* beta, void* const Carray[], cudaDataType_t Ctype, int ldc,
                                   int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t) {
  const char* call = "cublasGemmBatchedEx";
  Gemm gemm;
  cublasStatus_t status = make_gemm(call, handle, transa, transb, m, n, k, static_cast<const float*>(alpha), lda, ldb,
                                    static_cast<const float*>(beta), ldc, Atype, Btype, Ctype, &gemm);
  if (status == CUBLAS_STATUS_SUCCESS) status = check_types(call, computeType, Atype, Btype, Ctype);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  if (batchCount < 0) return invalid(call, "batchCount = " + std::to_string(batchCount) + " is negative");
  if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;
  const char* names[] = {"Aarray", "Barray", "Carray"};
  const void* arrays[] = {Aarray, Barray, Carray};
  for (int i = 0; i < 3; i++)
    if (!emu::dense::in_device_memory(call, names[i], arrays[i], batchCount, 1, batchCount, sizeof(void*)))
      return CUBLAS_STATUS_INVALID_VALUE;
  emu::enqueue(handle->stream, call, [=] {
    for (int i = 0; i < batchCount; i++) {
      if (!gemm.in_device_memory(call, Aarray[i], Barray[i], Carray[i]))
        emu::fatal(std::string(call) + ": the matrices of product " + std::to_string(i) +
                   " (from the pointer arrays) are not device memory");
      gemm.run(Aarray[i], Barray[i], Carray[i]);
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}

// C = alpha op(A) + beta op(B). In place only as the reference allows (C = A
// with transa N and lda = ldc; C = B likewise); a scalar of 0 leaves its
// matrix unread ("the user can transpose matrix A by setting *alpha=1 and *beta=0").
cublasStatus_t cublasSgeam(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           const float* alpha, const float* A, int lda, const float* beta, const float* B, int ldb,
                           float* C, int ldc) {
  const char* call = "cublasSgeam";
  if (!handle) return not_initialized(call);
  if (m < 0 || n < 0) return invalid(call, "m and n must be >= 0");
  if (!is_operation(transa) || !is_operation(transb)) return invalid(call, "transa or transb is not N, T or C");
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  if (lda < std::max(1, ta ? n : m)) return invalid(call, too_small("lda", lda, ta ? n : m, "A"));
  if (ldb < std::max(1, tb ? n : m)) return invalid(call, too_small("ldb", ldb, tb ? n : m, "B"));
  if (ldc < std::max(1, m)) return invalid(call, too_small("ldc", ldc, m, "C"));
  if (!alpha || !beta) return invalid(call, "alpha or beta is null");
  if (!emu::dense::on_host(call, "alpha", alpha) || !emu::dense::on_host(call, "beta", beta))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (C == A && (ta || lda != ldc)) return invalid(call, "in place (C = A) needs transa N and lda = ldc");
  if (C == B && (tb || ldb != ldc)) return invalid(call, "in place (C = B) needs transb N and ldb = ldc");
  const double a_scale = *alpha, b_scale = *beta;
  const Stored a{A, CUDA_R_32F, ta ? n : m, ta ? m : n, lda}, b{B, CUDA_R_32F, tb ? n : m, tb ? m : n, ldb};
  if ((a_scale != 0 && !emu::dense::in_device_memory(call, "A", A, a.rows, a.cols, lda, 4)) ||
      (b_scale != 0 && !emu::dense::in_device_memory(call, "B", B, b.rows, b.cols, ldb, 4)) ||
      !emu::dense::in_device_memory(call, "C", C, m, n, ldc, 4))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  emu::enqueue(handle->stream, call, [=] {
    for (int64_t j = 0; j < n; j++)
      for (int64_t i = 0; i < m; i++) {
        const double from_a = a_scale != 0 ? a_scale * double(ta ? A[j + i * lda] : A[i + j * lda]) : 0.0;
        const double from_b = b_scale != 0 ? b_scale * double(tb ? B[j + i * ldb] : B[i + j * ldb]) : 0.0;
        C[i + j * ldc] = float(a_scale == 0 ? from_b : b_scale == 0 ? from_a : from_a + from_b);
      }
  });
  return CUBLAS_STATUS_SUCCESS;
}

// Solves op(A) X = alpha B (side left, A m x m) or X op(A) = alpha B (side
// right, A n x n) for X, which overwrites B (m x n). Only A's `uplo` triangle
// is read, and not its diagonal with CUBLAS_DIAG_UNIT (taken as ones); with
// alpha = 0, "A is not referenced and B does not have to be a valid input".
// The solve runs in float64 (OpenBLAS dtrsm on the widened values), each X
// rounded once to fp32.
cublasStatus_t cublasStrsm(cublasHandle_t handle, cublasSideMode_t side, cublasFillMode_t uplo,
                           cublasOperation_t trans, cublasDiagType_t diag, int m, int n, const float* alpha,
                           const float* A, int lda, float* B, int ldb) {
  const char* call = "cublasStrsm";
  if (!handle) return not_initialized(call);
  if (side != CUBLAS_SIDE_LEFT && side != CUBLAS_SIDE_RIGHT) return invalid(call, "side is not LEFT or RIGHT");
  if (uplo != CUBLAS_FILL_MODE_LOWER && uplo != CUBLAS_FILL_MODE_UPPER) return invalid(call, "uplo is not LOWER or UPPER");
  if (!is_operation(trans)) return invalid(call, "trans is not N, T or C");
  if (diag != CUBLAS_DIAG_NON_UNIT && diag != CUBLAS_DIAG_UNIT) return invalid(call, "diag is not NON_UNIT or UNIT");
  if (m < 0 || n < 0) return invalid(call, "m and n must be >= 0");
  const int order = side == CUBLAS_SIDE_LEFT ? m : n;
  if (lda < std::max(1, order)) return invalid(call, too_small("lda", lda, order, "A"));
  if (ldb < std::max(1, m)) return invalid(call, too_small("ldb", ldb, m, "B"));
  if (!alpha) return invalid(call, "alpha is null");
  if (!emu::dense::on_host(call, "alpha", alpha)) return CUBLAS_STATUS_INVALID_VALUE;
  const double scale = *alpha;
  if ((scale != 0 && !emu::dense::in_device_memory(call, "A", A, order, order, lda, 4)) ||
      !emu::dense::in_device_memory(call, "B", B, m, n, ldb, 4))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const bool upper = uplo == CUBLAS_FILL_MODE_UPPER, unit = diag == CUBLAS_DIAG_UNIT;
  emu::enqueue(handle->stream, call, [=] {
    if (scale == 0) {
      for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) B[i + j * ldb] = 0.0f;
      return;
    }
    std::vector<double> a(size_t(order) * order, 0.0), b(size_t(m) * n);
    for (int64_t j = 0; j < order; j++)
      for (int64_t i = upper ? 0 : j; i < (upper ? j + 1 : order); i++)
        if (i != j || !unit) a[size_t(i + j * order)] = A[i + j * lda];
    for (int64_t j = 0; j < n; j++)
      for (int64_t i = 0; i < m; i++) b[size_t(i + j * m)] = B[i + j * ldb];
    cblas_dtrsm(CblasColMajor, side == CUBLAS_SIDE_LEFT ? CblasLeft : CblasRight, upper ? CblasUpper : CblasLower,
                trans == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, unit ? CblasUnit : CblasNonUnit, m, n, scale,
                a.data(), order, b.data(), m);
    for (int64_t j = 0; j < n; j++)
      for (int64_t i = 0; i < m; i++) B[i + j * ldb] = float(b[size_t(i + j * m)]);
  });
  return CUBLAS_STATUS_SUCCESS;
}
