// cuSOLVER's dense calls on the emulated device (cuSOLVER Library, "cuSolverDN:
// Dense LAPACK Function Reference"): LAPACK's spotrf, sgeqrf and sorgqr
// (OpenBLAS), which these calls mirror parameter for parameter, run on the
// device thread in the handle's stream order, on the device memory itself and
// with the caller's device workspace as LAPACK's; LAPACK's info is written to
// devInfo there, with the reference's meaning: 0 success, -i the i-th
// parameter (not counting the handle) is wrong, and for potrf i > 0 "the
// leading minor of order i is not positive definite". The argument checks the
// reference lists return CUSOLVER_STATUS_INVALID_VALUE on the calling thread;
// the buffer sizes are LAPACK's workspace queries. LAPACK is deterministic,
// as CUSOLVER_DETERMINISTIC_RESULTS asks.
#include <cusolverDn.h>

#include <cstdio>
#include <string>

#include "dense.h"
#include "emu/runtime.h"

extern "C" {
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t uplo_length);
void sgeqrf_(const int* m, const int* n, float* a, const int* lda, float* tau, float* work, const int* lwork, int* info);
void sorgqr_(const int* m, const int* n, const int* k, float* a, const int* lda, const float* tau, float* work,
             const int* lwork, int* info);
}

struct cusolverDnContext {
  cudaStream_t stream = nullptr;
};

namespace {

cusolverStatus_t fail(cusolverStatus_t status, const char* call, const std::string& why) {
  std::fprintf(stderr, "emu: %s: %s\n", call, why.c_str());
  return status;
}
cusolverStatus_t invalid(const char* call, const std::string& why) {
  return fail(CUSOLVER_STATUS_INVALID_VALUE, call, why);
}
cusolverStatus_t not_initialized(const char* call) {
  return fail(CUSOLVER_STATUS_NOT_INITIALIZED, call, "the handle is null (no cusolverDnCreate)");
}

// LAPACK's workspace query (lwork = -1): its optimal size, in elements.
int optimal_work(float query) { return int(query + 0.5f); }

// A (rows x cols, ld), the workspace (when Lwork > 0) and devInfo: device memory.
bool in_device_memory(const char* call, const float* a, int rows, int cols, int lda, const float* work, int lwork,
                      const int* info) {
  return emu::dense::in_device_memory(call, "A", a, rows, cols, lda, sizeof(float)) &&
         (lwork <= 0 || emu::dense::in_device_memory(call, "the workspace", work, lwork, 1, lwork, sizeof(float))) &&
         emu::dense::in_device_memory(call, "devInfo", info, 1, 1, 1, sizeof(int));
}

cusolverStatus_t check_potrf(const char* call, cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, int lda) {
  if (!handle) return not_initialized(call);
  if (uplo != CUBLAS_FILL_MODE_LOWER && uplo != CUBLAS_FILL_MODE_UPPER) return invalid(call, "uplo is not LOWER or UPPER");
  if (n < 0 || lda < std::max(1, n))
    return invalid(call, "n = " + std::to_string(n) + ", lda = " + std::to_string(lda) + ": needs n >= 0, lda >= max(1, n)");
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t check_geqrf(const char* call, cusolverDnHandle_t handle, int m, int n, int lda) {
  if (!handle) return not_initialized(call);
  if (m < 0 || n < 0 || lda < std::max(1, m))
    return invalid(call, "m, n = " + std::to_string(m) + ", " + std::to_string(n) + ", lda = " + std::to_string(lda) +
                             ": needs m, n >= 0, lda >= max(1, m)");
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t check_orgqr(const char* call, cusolverDnHandle_t handle, int m, int n, int k, int lda) {
  if (!handle) return not_initialized(call);
  if (m < 0 || n < 0 || k < 0 || n > m || k > n || lda < std::max(1, m))
    return invalid(call, "m, n, k = " + std::to_string(m) + ", " + std::to_string(n) + ", " + std::to_string(k) +
                             ", lda = " + std::to_string(lda) + ": needs m >= n >= k >= 0, lda >= max(1, m)");
  return CUSOLVER_STATUS_SUCCESS;
}

}  // namespace

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t* handle) {
  if (!handle) return invalid("cusolverDnCreate", "handle is null");
  *handle = new cusolverDnContext;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t handle) {
  if (!handle) return not_initialized("cusolverDnDestroy");
  delete handle;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t handle, cudaStream_t streamId) {
  if (!handle) return not_initialized("cusolverDnSetStream");
  handle->stream = streamId;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSetDeterministicMode(cusolverDnHandle_t handle, cusolverDeterministicMode_t mode) {
  if (!handle) return not_initialized("cusolverDnSetDeterministicMode");
  if (mode != CUSOLVER_DETERMINISTIC_RESULTS && mode != CUSOLVER_ALLOW_NON_DETERMINISTIC_RESULTS)
    return invalid("cusolverDnSetDeterministicMode", "mode " + std::to_string(int(mode)) + " is not a cusolverDeterministicMode_t");
  return CUSOLVER_STATUS_SUCCESS;
}

// spotrf takes no workspace.
cusolverStatus_t cusolverDnSpotrf_bufferSize(cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, float*, int lda,
                                             int* Lwork) {
  const char* call = "cusolverDnSpotrf_bufferSize";
  if (const cusolverStatus_t status = check_potrf(call, handle, uplo, n, lda); status != CUSOLVER_STATUS_SUCCESS)
    return status;
  if (!Lwork) return invalid(call, "Lwork is null");
  *Lwork = 0;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSpotrf(cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, float* A, int lda,
                                  float* Workspace, int Lwork, int* devInfo) {
  const char* call = "cusolverDnSpotrf";
  if (const cusolverStatus_t status = check_potrf(call, handle, uplo, n, lda); status != CUSOLVER_STATUS_SUCCESS)
    return status;
  if (!in_device_memory(call, A, n, n, lda, Workspace, Lwork, devInfo)) return CUSOLVER_STATUS_INVALID_VALUE;
  const char triangle = uplo == CUBLAS_FILL_MODE_UPPER ? 'U' : 'L';
  emu::enqueue(handle->stream, call, [=] {
    int info = 0;
    spotrf_(&triangle, &n, A, &lda, &info, 1);
    *devInfo = info;
  });
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSgeqrf_bufferSize(cusolverDnHandle_t handle, int m, int n, float* A, int lda, int* Lwork) {
  const char* call = "cusolverDnSgeqrf_bufferSize";
  if (const cusolverStatus_t status = check_geqrf(call, handle, m, n, lda); status != CUSOLVER_STATUS_SUCCESS)
    return status;
  if (!Lwork) return invalid(call, "Lwork is null");
  float query = 0, tau = 0;
  const int ask = -1;
  int info = 0;
  sgeqrf_(&m, &n, A, &lda, &tau, &query, &ask, &info);
  *Lwork = optimal_work(query);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSgeqrf(cusolverDnHandle_t handle, int m, int n, float* A, int lda, float* TAU,
                                  float* Workspace, int Lwork, int* devInfo) {
  const char* call = "cusolverDnSgeqrf";
  if (const cusolverStatus_t status = check_geqrf(call, handle, m, n, lda); status != CUSOLVER_STATUS_SUCCESS)
    return status;
  if (!in_device_memory(call, A, m, n, lda, Workspace, Lwork, devInfo) ||
      !emu::dense::in_device_memory(call, "TAU", TAU, std::min(m, n), 1, std::min(m, n), sizeof(float)))
    return CUSOLVER_STATUS_INVALID_VALUE;
  emu::enqueue(handle->stream, call, [=] {
    int info = 0;
    sgeqrf_(&m, &n, A, &lda, TAU, Workspace, &Lwork, &info);
    *devInfo = info;
  });
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSorgqr_bufferSize(cusolverDnHandle_t handle, int m, int n, int k, const float* A, int lda,
                                             const float* tau, int* lwork) {
  const char* call = "cusolverDnSorgqr_bufferSize";
  if (const cusolverStatus_t status = check_orgqr(call, handle, m, n, k, lda); status != CUSOLVER_STATUS_SUCCESS)
    return status;
  if (!lwork) return invalid(call, "lwork is null");
  float query = 0;
  const int ask = -1;
  int info = 0;
  sorgqr_(&m, &n, &k, const_cast<float*>(A), &lda, tau, &query, &ask, &info);
  *lwork = optimal_work(query);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSorgqr(cusolverDnHandle_t handle, int m, int n, int k, float* A, int lda, const float* tau,
                                  float* work, int lwork, int* devInfo) {
  const char* call = "cusolverDnSorgqr";
  if (const cusolverStatus_t status = check_orgqr(call, handle, m, n, k, lda); status != CUSOLVER_STATUS_SUCCESS)
    return status;
  if (!in_device_memory(call, A, m, n, lda, work, lwork, devInfo) ||
      !emu::dense::in_device_memory(call, "tau", tau, k, 1, k, sizeof(float)))
    return CUSOLVER_STATUS_INVALID_VALUE;
  emu::enqueue(handle->stream, call, [=] {
    int info = 0;
    sorgqr_(&m, &n, &k, A, &lda, tau, work, &lwork, &info);
    *devInfo = info;
  });
  return CUSOLVER_STATUS_SUCCESS;
}
