// Linear layers on OpenBLAS (its OpenMP build: threads from the same pool as ours,
// one thread per call inside our parallel regions).
//   forward:  out = inp W^T + b                       [N,OC] = [N,C] [OC,C]^T
//   backward: dinp = dout W,  dW += dout^T inp,  db += sum_n dout[n]
#include <cblas.h>

#include "model/cpu/kernels.h"

namespace llmdion::cpu {

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                  const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

template <typename Real>
void matmul_forward(Real* out, const Real* inp, const Real* weight, const Real* bias, int64_t N, int64_t C,
                    int64_t OC, bool accumulate) {
  if (bias) {
    #pragma omp parallel for
    for (int64_t n = 0; n < N; n++)
      for (int64_t o = 0; o < OC; o++) out[n * OC + o] = (accumulate ? out[n * OC + o] : Real(0)) + bias[o];
    accumulate = true;
  }
  gemm<Real>(false, true, N, OC, C, 1, inp, C, weight, C, accumulate ? 1 : 0, out, OC);
}

template <typename Real>
void matmul_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp, const Real* weight,
                     int64_t N, int64_t C, int64_t OC) {
  gemm<Real>(false, false, N, C, OC, 1, dout, OC, weight, C, 0, dinp, C);
  gemm<Real>(true, false, OC, C, N, 1, dout, OC, inp, C, 1, dweight, C);
  if (dbias) add_column_sums(dbias, dout, N, OC);
}

template void matmul_forward<float>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t, bool);
template void matmul_forward<double>(double*, const double*, const double*, const double*, int64_t, int64_t, int64_t,
                                     bool);
template void matmul_backward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                     int64_t);
template void matmul_backward<double>(double*, double*, double*, const double*, const double*, const double*, int64_t,
                                      int64_t, int64_t);

}  // namespace llmdion::cpu
