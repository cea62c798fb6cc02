// Select_alpha(M) of Dion2 (Algorithm 1, line 3): which k of the d rows (or
// columns) of the momentum are orthonormalized and updated this step.
//   l1:     the k slices of largest l1 norm (ties to the lower index)
//   random: k of d uniformly without replacement: a partial Fisher-Yates
//           shuffle of 0..d-1 drawn from splitmix64 seeded by (run seed, the
//           matrix's offset in the parameter buffer, update), so every rank
//           draws the same slices
// Either way the chosen indices come back in ascending order.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace llmdion {

// k = max(1, ceil(alpha d)): the number of slices selected out of d.
int64_t selected_count(double alpha, int64_t d);

void select_top_l1(std::span<const float> norms, int64_t k, std::vector<int64_t>& selected);
void select_random(int64_t d, int64_t k, uint64_t seed, std::vector<int64_t>& selected);

}  // namespace llmdion
