#include "optim/selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/rng.h"

namespace llmdion {

int64_t selected_count(double alpha, int64_t d) {
  return std::clamp<int64_t>(int64_t(std::ceil(alpha * double(d))), 1, d);
}

void select_top_l1(std::span<const float> norms, int64_t k, std::vector<int64_t>& selected) {
  // A NaN would break the ordering nth_element needs; the momentum is lost by then anyway.
  for (size_t i = 0; i < norms.size(); i++)
    if (std::isnan(norms[i]))
      throw std::runtime_error("Dion2 selection: slice " + std::to_string(i) +
                               " of a momentum matrix has a NaN l1 norm (the momentum holds NaN or Inf)");
  selected.resize(norms.size());
  std::iota(selected.begin(), selected.end(), 0);
  auto larger = [&](int64_t a, int64_t b) { return norms[a] > norms[b] || (norms[a] == norms[b] && a < b); };
  std::nth_element(selected.begin(), selected.begin() + (k - 1), selected.end(), larger);
  selected.resize(size_t(k));
  std::sort(selected.begin(), selected.end());
}

void select_random(int64_t d, int64_t k, uint64_t seed, std::vector<int64_t>& selected) {
  selected.resize(size_t(d));
  std::iota(selected.begin(), selected.end(), 0);
  SplitMix64 rng{seed};
  for (int64_t i = 0; i < k; i++) std::swap(selected[i], selected[i + int64_t(rng.below(uint64_t(d - i)))]);
  selected.resize(size_t(k));
  std::sort(selected.begin(), selected.end());
}

}  // namespace llmdion
