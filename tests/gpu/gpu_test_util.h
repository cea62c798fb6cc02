// What the gpu tests share: the skip where no GPU is present, device buffers,
// random inputs that are exact in bf16 (so a CPU fp32 reference sees the very
// values the GPU sees), poisoned outputs, and the norm-wise relative error.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/rng.h"
#include "model/cuda/kernels.h"

namespace llmdion::test {

using cuda::bf16;

// Empty when a CUDA device can run kernels; else why not.
inline std::string no_gpu_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) return std::string("no CUDA device (") + cudaGetErrorString(status) + ")";
  if (count == 0) return "no CUDA device";
  return "";
}

#define LLMDION_REQUIRE_GPU()                                                          \
  do {                                                                                 \
    const std::string reason = ::llmdion::test::no_gpu_reason();                       \
    if (!reason.empty()) GTEST_SKIP() << "gpu test skipped: " << reason;               \
  } while (0)

// True in the emulated build (tests/emu), where the CUDA code runs on the host:
// a test may take smaller shapes there, keeping the GPU's own for the GPU.
#ifdef LLMDION_CUDA_EMULATE
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

// True in the emulated build under AddressSanitizer or ThreadSanitizer (the
// host's memcheck and racecheck), many times slower again: a test may take
// tiny shapes there that still reach each of its code paths.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// A device array of T, freed on scope exit.
template <typename T>
struct DeviceArray {
  T* ptr = nullptr;
  size_t size = 0;
  explicit DeviceArray(size_t n) : size(n) { CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T))); }
  DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(ptr); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  void upload(const std::vector<T>& host) {
    CUDA_CHECK(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(size);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(host.data(), ptr, size * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  // Every byte 0xff: NaN in fp32 and bf16, so an element no kernel wrote shows.
  void poison() { CUDA_CHECK(cudaMemset(ptr, 0xff, size * sizeof(T))); }
};

inline float bf16_to_float(bf16 x) { return __bfloat162float(x); }
inline bf16 float_to_bf16(float x) { return __float2bfloat16(x); }

// Uniform in [-scale, scale), each value rounded to bf16 and back, so it is exact in both.
inline std::vector<float> random_bf16_exact(size_t n, uint64_t seed, float scale = 1.0f) {
  SplitMix64 rng{seed};
  std::vector<float> v(n);
  for (float& x : v) x = bf16_to_float(float_to_bf16(float((double(rng.next() >> 11) / 9007199254740992.0 * 2.0 - 1.0) * scale)));
  return v;
}

// n token ids uniform in [0, vocab).
inline std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  SplitMix64 rng{seed};
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int32_t& t : tokens) t = int32_t(rng.below(uint64_t(vocab)));
  return tokens;
}

inline std::vector<bf16> to_bf16(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = float_to_bf16(v[i]);
  return out;
}

inline std::vector<float> to_float(const std::vector<bf16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = bf16_to_float(v[i]);
  return out;
}

// ||got - want|| / max(||want||, min_norm) over all elements; infinite when any
// got is not finite. min_norm judges a part whose reference is zero (or nearly)
// against the whole it belongs to, where rounding alone leaves it nonzero.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want, double min_norm = 0) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return std::sqrt(diff) / std::max({std::sqrt(norm), min_norm, 1e-150});
}

// Tolerances of the standard: fp32 paths and bf16 paths.
constexpr double kFp32Tolerance = 1e-5;
constexpr double kBf16Tolerance = 1e-2;

}  // namespace llmdion::test
