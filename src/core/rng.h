// Seeded randomness that is the same on every machine and every rank: splitmix64
// (Steele, Lea and Flood 2014), a counter pushed through a bijective mixer. Its
// whole state is one integer, so saving and restoring it is exact.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

namespace llmdion {

struct SplitMix64 {
  uint64_t state;

  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n), without modulo bias (Lemire 2019, multiply and reject).
  uint64_t below(uint64_t n) {
    while (true) {
      __uint128_t product = __uint128_t(next()) * n;
      uint64_t low = uint64_t(product);
      if (low >= n || low >= (-n) % n) return uint64_t(product >> 64);
    }
  }
};

// One seed from several numbers (a run seed, an epoch, a shard...), each mixed in turn.
inline uint64_t derive_seed(std::initializer_list<uint64_t> parts) {
  SplitMix64 rng{0x6c6c6d2e64696f6eull};  // "llm.dion"
  for (uint64_t p : parts) rng.state ^= p, rng.next();
  return rng.next();
}

// A uniformly random permutation of 0..n-1 (Fisher-Yates).
inline std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  SplitMix64 rng{seed};
  for (int64_t i = n - 1; i > 0; i--) std::swap(perm[i], perm[rng.below(uint64_t(i) + 1)]);
  return perm;
}

}  // namespace llmdion
