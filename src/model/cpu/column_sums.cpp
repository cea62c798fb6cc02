// sums[j] += sum over rows n of x[n, j]. Threads own blocks of columns and walk
// the rows in order, so the result does not depend on the thread count.
#include <algorithm>

#include "model/cpu/kernels.h"

namespace llmdion::cpu {

template <typename Real>
void add_column_sums(Real* sums, const Real* x, int64_t N, int64_t width) {
  constexpr int64_t kBlock = 64;
  #pragma omp parallel for
  for (int64_t j0 = 0; j0 < width; j0 += kBlock) {
    const int64_t j1 = std::min(width, j0 + kBlock);
    Real acc[kBlock] = {};
    for (int64_t n = 0; n < N; n++)
      for (int64_t j = j0; j < j1; j++) acc[j - j0] += x[n * width + j];
    for (int64_t j = j0; j < j1; j++) sums[j] += acc[j - j0];
  }
}

template void add_column_sums<float>(float*, const float*, int64_t, int64_t);
template void add_column_sums<double>(double*, const double*, int64_t, int64_t);

}  // namespace llmdion::cpu
