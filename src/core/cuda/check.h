// Every CUDA, cuBLAS, cuBLASLt, cuSOLVER and NCCL call goes through one of these:
// a failure throws with the call, the file and the line, and the library's own words.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#ifdef LLMDION_WITH_NCCL
#include <nccl.h>
#endif

#include <stdexcept>
#include <string>

namespace llmdion::cuda {

[[noreturn]] inline void fail(const char* call, const char* file, int line, const std::string& what) {
  throw std::runtime_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " + what);
}

inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) fail(call, file, line, std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")");
}
inline void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail(call, file, line, std::string(cublasGetStatusName(status)) + " (" + cublasGetStatusString(status) + ")");
}

// cuSOLVER has no status strings: the common statuses by name, the rest by number.
inline void check(cusolverStatus_t status, const char* call, const char* file, int line) {
  if (status == CUSOLVER_STATUS_SUCCESS) return;
  switch (status) {
    case CUSOLVER_STATUS_NOT_INITIALIZED: fail(call, file, line, "CUSOLVER_STATUS_NOT_INITIALIZED");
    case CUSOLVER_STATUS_ALLOC_FAILED: fail(call, file, line, "CUSOLVER_STATUS_ALLOC_FAILED (out of GPU memory)");
    case CUSOLVER_STATUS_INVALID_VALUE: fail(call, file, line, "CUSOLVER_STATUS_INVALID_VALUE");
    case CUSOLVER_STATUS_ARCH_MISMATCH: fail(call, file, line, "CUSOLVER_STATUS_ARCH_MISMATCH");
    case CUSOLVER_STATUS_EXECUTION_FAILED: fail(call, file, line, "CUSOLVER_STATUS_EXECUTION_FAILED");
    case CUSOLVER_STATUS_INTERNAL_ERROR: fail(call, file, line, "CUSOLVER_STATUS_INTERNAL_ERROR");
    case CUSOLVER_STATUS_NOT_SUPPORTED: fail(call, file, line, "CUSOLVER_STATUS_NOT_SUPPORTED");
    default: fail(call, file, line, "cusolverStatus_t " + std::to_string(int(status)) + " (see cusolver_common.h)");
  }
}

#ifdef LLMDION_WITH_NCCL
// NCCL: the status in words, then its last error message, which names the cause (a peer, a transport).
inline void check(ncclResult_t status, const char* call, const char* file, int line) {
  if (status == ncclSuccess) return;
  const char* last_error = ncclGetLastError(nullptr);
  const std::string cause = last_error ? last_error : "";
  fail(call, file, line, std::string(ncclGetErrorString(status)) + (cause.empty() ? "" : ": " + cause));
}
#endif

}  // namespace llmdion::cuda

#define CUDA_CHECK(call) ::llmdion::cuda::check((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) ::llmdion::cuda::check((call), #call, __FILE__, __LINE__)
#define CUSOLVER_CHECK(call) ::llmdion::cuda::check((call), #call, __FILE__, __LINE__)
#define NCCL_CHECK(call) ::llmdion::cuda::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: a bad configuration shows here, a fault at the next synchronization.
#define CUDA_CHECK_LAUNCH() ::llmdion::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
