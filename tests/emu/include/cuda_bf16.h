// bfloat16 as CUDA's cuda_bf16.h has it (CUDA Math API, "Bfloat16
// Precision Intrinsics"): the top 16 bits of an fp32 pattern. Conversions
// from fp32 round to nearest, ties to even; a NaN becomes the canonical 0x7fff.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "emu/device.h"

struct __nv_bfloat16_raw {
  unsigned short x;
};

struct alignas(2) __nv_bfloat16 {
  unsigned short __x;

  __nv_bfloat16() = default;
  __nv_bfloat16(__nv_bfloat16_raw raw) : __x(raw.x) {}
  __nv_bfloat16(float value);
  __nv_bfloat16(double value) : __nv_bfloat16(float(value)) {}
  template <typename Integer, typename = std::enable_if_t<std::is_integral_v<Integer>>>
  __nv_bfloat16(Integer value) : __nv_bfloat16(float(value)) {}
  operator float() const;
  operator __nv_bfloat16_raw() const { return {__x}; }
};

struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};

typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

inline unsigned short __emu_float_to_bf16_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  return (unsigned short)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

inline __nv_bfloat16 __float2bfloat16_rn(float value) {
  __nv_bfloat16 out;
  out.__x = __emu_float_to_bf16_bits(value);
  return out;
}
inline __nv_bfloat16 __float2bfloat16(float value) { return __float2bfloat16_rn(value); }
// Toward zero: the dropped half is dropped (a NaN stays canonical).
inline __nv_bfloat16 __float2bfloat16_rz(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  __nv_bfloat16 out;
  out.__x = (bits & 0x7fffffffu) > 0x7f800000u ? 0x7fff : (unsigned short)(bits >> 16);
  return out;
}
inline float __bfloat162float(__nv_bfloat16 value) {
  const uint32_t bits = uint32_t(value.__x) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}
inline __nv_bfloat16::__nv_bfloat16(float value) : __x(__emu_float_to_bf16_bits(value)) {}
inline __nv_bfloat16::operator float() const { return __bfloat162float(*this); }

inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short bits) {
  __nv_bfloat16 out;
  out.__x = bits;
  return out;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 value) { return value.__x; }

// x = low, y = high: x sits at the lower address and in the low 16 bits of the pair.
inline __nv_bfloat162 __floats2bfloat162_rn(float low, float high) {
  return {__float2bfloat16_rn(low), __float2bfloat16_rn(high)};
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 value) { return __floats2bfloat162_rn(value.x, value.y); }
inline float2 __bfloat1622float2(__nv_bfloat162 value) {
  return {__bfloat162float(value.x), __bfloat162float(value.y)};
}
inline float __low2float(__nv_bfloat162 value) { return __bfloat162float(value.x); }
inline float __high2float(__nv_bfloat162 value) { return __bfloat162float(value.y); }
