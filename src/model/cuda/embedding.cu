// Token and (learned) position embeddings, the bf16 twin of cpu/embedding.cpp;
// wpe is null with rotary positions.
//   forward:  out[b,t,:] = wte[token[b,t],:] + wpe[t,:]        (fp32 add, one bf16 rounding)
//   backward: dwte[token,:] += dout[p,:] for each position p holding token, p ascending
//             dwpe[t,:]     += dout[b,t,:] for b = 0, 1, ..., B-1
// Without atomics: the host groups positions by token (a sort), then one thread
// owns one (token, channel) and walks that token's positions in order, and one
// thread owns one (t, channel) and walks b in order. Each gradient is added to
// in the same order as the CPU twin, so with bf16 dout both agree to the bit.
// Token ids are the caller's to validate (the data loader checks them against
// the vocabulary): an id outside [0, V) reads or writes outside wte.
#include <algorithm>
#include <numeric>

#include "core/cuda/check.h"
#include "model/cuda/bf16_pack.cuh"
#include "model/cuda/kernels.h"

namespace llmdion::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kChannelsPerBlock = 128;  // backward: a block owns one token and 128 channels

// One thread per W channels of one row (W divides C, so a pack never crosses rows).
template <int W>
__global__ void __launch_bounds__(kThreads) embedding_forward_kernel(bf16* out, const int32_t* tokens, const bf16* wte,
                                                                     const bf16* wpe, int N, int T, int C) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
  if (i >= int64_t(N) * C) return;
  const int64_t n = i / C;
  const int64_t c = i % C;
  float sum[W];
  load_pack<W>(sum, wte + int64_t(tokens[n]) * C + c);
  if (wpe) {
    float position[W];
    load_pack<W>(position, wpe + (n % T) * C + c);
#pragma unroll
    for (int k = 0; k < W; k++) sum[k] += position[k];
  }
  store_pack<W>(out + i, sum);
}

template <int W>
void launch_embedding_forward(bf16* out, const int32_t* tokens, const bf16* wte, const bf16* wpe, int N, int T, int C,
                              cudaStream_t stream) {
  const int64_t packs = int64_t(N) * C / W;
  const unsigned blocks = unsigned((packs + kThreads - 1) / kThreads);
  embedding_forward_kernel<W><<<blocks, kThreads, 0, stream>>>(out, tokens, wte, wpe, N, T, C);
  CUDA_CHECK_LAUNCH();
}

// Block (k, y): distinct token k, channels y*128 ... y*128+127.
__global__ void __launch_bounds__(kChannelsPerBlock) token_gradient_kernel(float* dwte, const bf16* dout,
                                                                           TokenBuckets buckets, int C) {
  const int k = blockIdx.x;
  const int c = blockIdx.y * kChannelsPerBlock + threadIdx.x;
  if (c >= C) return;
  float* grad = dwte + int64_t(buckets.tokens[k]) * C + c;
  float sum = *grad;
  const int end = buckets.starts[k + 1];
#pragma unroll 4
  for (int j = buckets.starts[k]; j < end; j++) sum += __bfloat162float(dout[int64_t(buckets.positions[j]) * C + c]);
  *grad = sum;
}

// One thread per (t, c), i = t*C + c: walks the B rows holding position t.
__global__ void __launch_bounds__(kThreads) position_gradient_kernel(float* dwpe, const bf16* dout, int B, int T,
                                                                     int C) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t TC = int64_t(T) * C;
  if (i >= TC) return;
  float sum = dwpe[i];
  for (int b = 0; b < B; b++) sum += __bfloat162float(dout[b * TC + i]);
  dwpe[i] = sum;
}

}  // namespace

void embedding_forward(bf16* out, const int32_t* tokens, const bf16* wte, const bf16* wpe, int B, int T, int C,
                       cudaStream_t stream) {
  const int N = B * T;
  if (N == 0 || C == 0) return;
  if (C % 8 == 0 && all_aligned_16({out, wte, wpe}))
    launch_embedding_forward<8>(out, tokens, wte, wpe, N, T, C, stream);
  else
    launch_embedding_forward<1>(out, tokens, wte, wpe, N, T, C, stream);
}

// A stable sort of the positions by token keeps each token's positions ascending.
void group_positions_by_token(const int32_t* tokens, int N, std::vector<int32_t>& distinct,
                              std::vector<int32_t>& starts, std::vector<int32_t>& positions) {
  positions.resize(N);
  std::iota(positions.begin(), positions.end(), 0);
  std::stable_sort(positions.begin(), positions.end(), [&](int32_t a, int32_t b) { return tokens[a] < tokens[b]; });
  distinct.clear();
  starts.clear();
  for (int i = 0; i < N; i++) {
    if (i > 0 && tokens[positions[i]] == tokens[positions[i - 1]]) continue;
    distinct.push_back(tokens[positions[i]]);
    starts.push_back(i);
  }
  starts.push_back(N);
}

void embedding_backward(float* dwte, float* dwpe, const bf16* dout, const TokenBuckets& buckets, int B, int T, int C,
                        cudaStream_t stream) {
  if (B * T == 0 || C == 0) return;
  if (buckets.count > 0) {
    const dim3 grid(buckets.count, (C + kChannelsPerBlock - 1) / kChannelsPerBlock);
    token_gradient_kernel<<<grid, kChannelsPerBlock, 0, stream>>>(dwte, dout, buckets, C);
    CUDA_CHECK_LAUNCH();
  }
  if (dwpe) {
    const unsigned blocks = unsigned((int64_t(T) * C + kThreads - 1) / kThreads);
    position_gradient_kernel<<<blocks, kThreads, 0, stream>>>(dwpe, dout, B, T, C);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace llmdion::cuda
