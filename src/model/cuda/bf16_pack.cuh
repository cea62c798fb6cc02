// W consecutive bf16 values moved in one memory access (16 bytes when W = 8),
// widened to fp32 on load and rounded to nearest on store. A launcher takes
// W = 8 when its rows are whole packs and its pointers 16-byte aligned, and
// W = 1 (plain scalar accesses) otherwise, e.g. for odd widths.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <initializer_list>

namespace llmdion::cuda {

template <int W>
struct alignas(2 * W) Bf16Pack {
  __nv_bfloat16 values[W];
};

template <int W>
__device__ inline void load_pack(float (&out)[W], const __nv_bfloat16* from) {
  const Bf16Pack<W> pack = *reinterpret_cast<const Bf16Pack<W>*>(from);
#pragma unroll
  for (int k = 0; k < W; k++) out[k] = __bfloat162float(pack.values[k]);
}

template <int W>
__device__ inline void store_pack(__nv_bfloat16* to, const float (&in)[W]) {
  Bf16Pack<W> pack;
#pragma unroll
  for (int k = 0; k < W; k++) pack.values[k] = __float2bfloat16_rn(in[k]);
  *reinterpret_cast<Bf16Pack<W>*>(to) = pack;
}

// True when every pointer (null counts as aligned) sits on a 16-byte boundary.
inline bool all_aligned_16(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

}  // namespace llmdion::cuda
