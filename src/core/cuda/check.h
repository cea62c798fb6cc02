// Every CUDA, cuBLAS and cuBLASLt call goes through one of these: a failure
// throws with the call, the file and the line, and the library's own words.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

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

}  // namespace llmdion::cuda

#define CUDA_CHECK(call) ::llmdion::cuda::check((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) ::llmdion::cuda::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: a bad configuration shows here, a fault at the next synchronization.
#define CUDA_CHECK_LAUNCH() ::llmdion::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
