// fp32 <-> bf16 copies of parameter-sized buffers.
//
// Stochastic rounding: bf16 keeps the top 16 bits of an fp32 pattern. Adding
// 16 uniform random bits r to the pattern and dropping the low half carries
// into the kept half exactly when low16 + r >= 2^16, i.e. with probability
// low16 / 2^16: the magnitude rounds up with probability equal to its distance
// from the bf16 below it, so E[round(x)] = x. r is the top 16 bits of the
// (index+1)-th output of SplitMix64 seeded with `seed`, a pure function of
// (seed, index): the same seed gives the same copy. NaN and Inf are converted
// as they are; a finite value within one bf16 step of the largest may round to Inf.
#include "core/cuda/check.h"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline uint32_t random_16_bits(uint64_t seed, int64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (uint64_t(index) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return uint32_t(z >> 48);
}

__global__ void __launch_bounds__(kThreads) round_stochastic_kernel(bf16* out, const float* in, int64_t n,
                                                                    uint64_t seed) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const uint32_t bits = __float_as_uint(in[i]);
  if ((bits & 0x7f800000u) == 0x7f800000u) {  // NaN or Inf
    out[i] = __float2bfloat16_rn(in[i]);
    return;
  }
  out[i] = __ushort_as_bfloat16(uint16_t((bits + random_16_bits(seed, i)) >> 16));
}

__global__ void __launch_bounds__(kThreads) round_nearest_kernel(bf16* out, const float* in, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(in[i]);
}

__global__ void __launch_bounds__(kThreads) widen_kernel(float* out, const bf16* in, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __bfloat162float(in[i]);
}

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

}  // namespace

void round_to_bf16_stochastic(bf16* out, const float* in, int64_t n, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return;
  round_stochastic_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, in, n, seed);
  CUDA_CHECK_LAUNCH();
}

void round_to_bf16_nearest(bf16* out, const float* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  round_nearest_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, in, n);
  CUDA_CHECK_LAUNCH();
}

void widen_to_float(float* out, const bf16* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  widen_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, in, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace llmdion::cuda
