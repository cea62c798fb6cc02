// The CUDA C++ language extensions our kernels use, for the host compiler:
// execution-space and memory-space specifiers, the built-in variables,
// barriers, warp shuffles and votes, atomics and the math intrinsics
// (CUDA C++ Programming Guide: "C++ Language Extensions", "Mathematical
// Functions", "Intrinsic Functions").
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "emu/kernel.h"

#define __CUDACC_EMULATED__ 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __constant__ static
// Static shared memory is one array per kernel: blocks run one at a time on
// the device thread, so each block has it to itself while it runs. (Dynamic
// shared memory, `extern __shared__ T name[]`, the translation turns into
// emu::dynamic_shared_memory<T>().)
#define __shared__ static

#define threadIdx (::emu::detail::current_thread->thread_idx)
#define blockIdx (::emu::detail::current_thread->block_idx)
#define blockDim (::emu::detail::current_thread->block_dim)
#define gridDim (::emu::detail::current_thread->grid_dim)
constexpr int warpSize = 32;

// ---- barriers -----------------------------------------------------------------
inline void __syncthreads() { emu::block_barrier("__syncthreads", 0); }
inline int __syncthreads_count(int predicate) { return emu::block_barrier("__syncthreads_count", predicate != 0); }
inline int __syncthreads_or(int predicate) { return emu::block_barrier("__syncthreads_or", predicate != 0) > 0; }
inline int __syncthreads_and(int predicate) {
  const dim3 block = blockDim;
  return emu::block_barrier("__syncthreads_and", predicate != 0) == int(block.x * block.y * block.z);
}

// ---- warp collectives (Programming Guide: "Warp Shuffle Functions", "Warp Vote
// Functions", "__syncwarp") ------------------------------------------------------
namespace emu {

inline void syncwarp(unsigned mask) {
  warp_collective("__syncwarp", mask, nullptr, [](void* const*, unsigned) {}, true);
}

// Each lane names the lane it reads (or itself, where the guide says a lane
// keeps its own value); reading a lane outside the mask is undefined there,
// and stops the program here.
struct ShuffleLane {
  uint64_t value;
  int source;
  uint64_t result;
};
void complete_shuffle(void* const lanes[32], unsigned mask);

template <typename T>
T shuffle(const char* what, unsigned mask, T var, int source) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffles move values of at most 8 bytes");
  ShuffleLane lane{0, source, 0};
  std::memcpy(&lane.value, &var, sizeof(T));
  warp_collective(what, mask, &lane, complete_shuffle);
  T out;
  std::memcpy(&out, &lane.result, sizeof(T));
  return out;
}

inline int lane_id() { return detail::current_thread->rank % 32; }

struct VoteLane {
  int predicate;
  unsigned ballot;
};
void complete_vote(void* const lanes[32], unsigned mask);
inline unsigned ballot(const char* what, unsigned mask, int predicate) {
  VoteLane lane{predicate != 0, 0};
  warp_collective(what, mask, &lane, complete_vote);
  return lane.ballot;
}

}  // namespace emu

inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::syncwarp(mask); }
inline unsigned __activemask() { return emu::active_lanes(); }

// __shfl_sync: srcLane modulo width, within the lane's own group of `width` lanes.
template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  const int lane = emu::lane_id(), group = lane - lane % width;
  return emu::shuffle("__shfl_sync", mask, var, group + ((src_lane % width) + width) % width);
}
// __shfl_up_sync: lane - delta, or the lane's own value below its group.
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = emu::lane_id();
  return emu::shuffle("__shfl_up_sync", mask, var, lane % width >= int(delta) ? lane - int(delta) : lane);
}
// __shfl_down_sync: lane + delta, or the lane's own value past its group.
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = emu::lane_id();
  return emu::shuffle("__shfl_down_sync", mask, var, lane % width + int(delta) < width ? lane + int(delta) : lane);
}
// __shfl_xor_sync: lane ^ laneMask; a lane of a later group gives the lane's own value.
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  const int lane = emu::lane_id(), source = lane ^ lane_mask;
  return emu::shuffle("__shfl_xor_sync", mask, var, source / width > lane / width ? lane : source);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) { return emu::ballot("__ballot_sync", mask, predicate); }
inline int __any_sync(unsigned mask, int predicate) { return emu::ballot("__any_sync", mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
  return emu::ballot("__all_sync", mask, predicate) == (mask & emu::active_lanes());
}

// ---- atomics: relaxed read-modify-writes, as the GPU's are --------------------
template <typename T>
T atomicAdd(T* address, T value) {
  if constexpr (std::is_integral_v<T>) {
    return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
  } else {
    T old;
    __atomic_load(address, &old, __ATOMIC_RELAXED);
    T sum = old + value;
    while (!__atomic_compare_exchange(address, &old, &sum, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) sum = old + value;
    return old;
  }
}
template <typename T>
T atomicSub(T* address, T value) {
  return __atomic_fetch_sub(address, value, __ATOMIC_RELAXED);
}
template <typename T>
T atomicExch(T* address, T value) {
  T old;
  __atomic_exchange(address, &value, &old, __ATOMIC_RELAXED);
  return old;
}
template <typename T>
T atomicCAS(T* address, T compare, T value) {
  __atomic_compare_exchange(address, &compare, &value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
template <typename T>
T atomicMax(T* address, T value) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (old < value && !__atomic_compare_exchange(address, &old, &value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename T>
T atomicMin(T* address, T value) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (value < old && !__atomic_compare_exchange(address, &old, &value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- math ------------------------------------------------------------------------
// The _rn intrinsics are IEEE-754 operations rounded to nearest, never
// contracted into a fused multiply-add: the emulated build compiles with
// -ffp-contract=off, so each is one rounding, as on the GPU. The library
// functions (expf, exp2f, ...) are the host's, within the guide's ulp bounds.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a); }

inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; std::memcpy(&x, &i, 8); return x; }

// The device's integer min and max (the host's are std::min and std::max).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }

// A generic pointer into the block's dynamic shared memory as a shared-window
// address (PTX cvta.to.shared): its offset there; any other pointer stops the program.
size_t __cvta_generic_to_shared(const void* pointer);
