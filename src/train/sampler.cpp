#include "train/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace llmdion {

std::vector<uint32_t> sample_tokens(Model& model, uint32_t eot_id, std::span<const uint32_t> prompt, int64_t count,
                                    int64_t top_k, double temperature, SplitMix64& rng) {
  const int64_t T = model.seq_len(), V = model.shape().vocab_size;
  const int64_t k = std::min(top_k, V), first = 1 + int64_t(prompt.size());
  std::vector<int32_t> context(T, int32_t(eot_id));
  std::copy(prompt.begin(), prompt.begin() + std::min<int64_t>(prompt.size(), T - 1), context.begin() + 1);
  std::vector<uint32_t> sampled;
  std::vector<int32_t> order(V);
  std::vector<double> weights(k);
  for (int64_t t = first; t < first + count && t < T; t++) {
    model.forward(context.data(), nullptr);  // position t-1 sees only tokens 0..t-1
    const float* logits = model.logits_row(t - 1);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    double total = 0;
    for (int64_t i = 0; i < k; i++)
      total += (weights[i] = std::exp((double(logits[order[i]]) - logits[order[0]]) / temperature));
    double coin = double(rng.next() >> 11) / 9007199254740992.0 * total;
    int64_t pick = 0;
    while (pick + 1 < k && coin >= weights[pick]) coin -= weights[pick++];
    context[t] = order[pick];
    sampled.push_back(uint32_t(order[pick]));
  }
  return sampled;
}

uint64_t sample_seed(uint64_t run_seed, int64_t step) { return derive_seed({run_seed, 0x5a3b1e, uint64_t(step)}); }

}  // namespace llmdion
