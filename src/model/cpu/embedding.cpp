// Token and (learned) position embeddings; wpe is null with rotary positions.
//   forward:  out[b,t,:] = wte[token[b,t],:] + wpe[t,:]
//   backward: dwte[token[b,t],:] += dout[b,t,:],  dwpe[t,:] += sum_b dout[b,t,:]
// Threads own blocks of channels and walk positions in order: no races on
// repeated tokens, and a fixed summation order.
#include <algorithm>

#include "model/cpu/kernels.h"

namespace llmdion::cpu {

template <typename Real>
void embedding_forward(Real* out, const int32_t* tokens, const Real* wte, const Real* wpe, int64_t B, int64_t T,
                       int64_t C) {
  #pragma omp parallel for
  for (int64_t n = 0; n < B * T; n++) {
    const Real* token_row = wte + int64_t(tokens[n]) * C;
    if (!wpe) {
      std::copy(token_row, token_row + C, out + n * C);
      continue;
    }
    const Real* position_row = wpe + (n % T) * C;
    for (int64_t i = 0; i < C; i++) out[n * C + i] = token_row[i] + position_row[i];
  }
}

template <typename Real>
void embedding_backward(Real* dwte, Real* dwpe, const Real* dout, const int32_t* tokens, int64_t B, int64_t T,
                        int64_t C) {
  constexpr int64_t kBlock = 32;
  #pragma omp parallel for
  for (int64_t i0 = 0; i0 < C; i0 += kBlock) {
    const int64_t i1 = std::min(C, i0 + kBlock);
    for (int64_t n = 0; n < B * T; n++) {
      Real* token_row = dwte + int64_t(tokens[n]) * C;
      for (int64_t i = i0; i < i1; i++) token_row[i] += dout[n * C + i];
      if (!dwpe) continue;
      Real* position_row = dwpe + (n % T) * C;
      for (int64_t i = i0; i < i1; i++) position_row[i] += dout[n * C + i];
    }
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, const float*, int64_t, int64_t, int64_t);
template void embedding_forward<double>(double*, const int32_t*, const double*, const double*, int64_t, int64_t,
                                        int64_t);
template void embedding_backward<float>(float*, float*, const float*, const int32_t*, int64_t, int64_t, int64_t);
template void embedding_backward<double>(double*, double*, const double*, const int32_t*, int64_t, int64_t, int64_t);

}  // namespace llmdion::cpu
