// Softmax and cross-entropy fused, over the first V of Vp logits per row
// (padded vocabulary entries get probability 0 and gradient 0):
//   p = softmax(logits[:V]),  loss = -log p[target] = logsumexp(logits) - logits[target]
//   dlogits = dloss * (p - onehot(target))
#include <cmath>

#include "model/cpu/kernels.h"
#include "model/cpu/vector_math.h"

namespace llmdion::cpu {

template <typename Real>
void softmax_cross_entropy_forward(Real* losses, Real* logits_to_probs, const int32_t* targets, int64_t N, int64_t V,
                                   int64_t Vp) {
  #pragma omp parallel for
  for (int64_t n = 0; n < N; n++) {
    Real* row = logits_to_probs + n * Vp;
    const Real max = lane_max(row, V);
    const Real target_logit = row[targets[n]];
    for (int64_t i = 0; i < V; i++) row[i] = exp_nonpositive(row[i] - max);
    const Real sum = lane_sum(row, V);
    losses[n] = std::log(sum) + max - target_logit;
    const Real inv_sum = Real(1) / sum;
    for (int64_t i = 0; i < V; i++) row[i] *= inv_sum;
    for (int64_t i = V; i < Vp; i++) row[i] = 0;
  }
}

template <typename Real>
void softmax_cross_entropy_backward(Real* probs_to_dlogits, const int32_t* targets, Real dloss, int64_t N, int64_t V,
                                    int64_t Vp) {
  #pragma omp parallel for
  for (int64_t n = 0; n < N; n++) {
    Real* row = probs_to_dlogits + n * Vp;
    for (int64_t i = 0; i < V; i++) row[i] *= dloss;
    row[targets[n]] -= dloss;
    for (int64_t i = V; i < Vp; i++) row[i] = 0;
  }
}

template void softmax_cross_entropy_forward<float>(float*, float*, const int32_t*, int64_t, int64_t, int64_t);
template void softmax_cross_entropy_forward<double>(double*, double*, const int32_t*, int64_t, int64_t, int64_t);
template void softmax_cross_entropy_backward<float>(float*, const int32_t*, float, int64_t, int64_t, int64_t);
template void softmax_cross_entropy_backward<double>(double*, const int32_t*, double, int64_t, int64_t, int64_t);

}  // namespace llmdion::cpu
