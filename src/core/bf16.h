// bf16 (bfloat16) on the host: the top 16 bits of an fp32 pattern (sign, the
// same 8 exponent bits, 7 of the 23 mantissa bits), so it has fp32's range and
// 8 significant bits. A plain value, layout-compatible with CUDA's
// __nv_bfloat16, for buffers that travel or are stored in bf16.
//
// Rounding to nearest, ties to even, on the pattern b: adding 0x7fff plus the
// lowest kept bit to b carries into the kept half exactly when the dropped half
// is above 0x8000, or equal to it with an odd kept half. Inf stays Inf; NaN
// stays NaN (the quiet bit is set, so a payload only in the dropped bits does
// not become Inf); a finite value at least half a step above bf16's largest
// rounds to Inf.
#pragma once

#include <cstdint>
#include <cstring>

namespace llmdion {

struct bf16 {
  uint16_t bits;
};

inline bf16 round_to_bf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  if ((b & 0x7f800000u) == 0x7f800000u)  // Inf or NaN
    return {uint16_t((b >> 16) | ((b & 0x007fffffu) != 0 ? 0x0040u : 0u))};
  return {uint16_t((b + 0x7fffu + ((b >> 16) & 1u)) >> 16)};
}

inline float to_float(bf16 x) {
  const uint32_t b = uint32_t(x.bits) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

}  // namespace llmdion
