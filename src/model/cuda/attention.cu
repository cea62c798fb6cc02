// Causal attention, flash style (Dao et al. 2022, FlashAttention; Dao 2023,
// FlashAttention-2), on tensor cores: mma.sync m16n8k16, bf16 operands, fp32
// accumulators. For one (batch, query head), Q, K, V its [T, hs] slices of
// qkv (K, V those of kv head h / (NH / NKV)) and s = 1/sqrt(hs):
//   S = s Q K^T with S_ij = -inf for j > i,   lse_i = log sum_j exp(S_ij),
//   P = exp(S - lse),   O = P V.
// With RoPE tables (Su et al. 2021, RoFormer; the half-split form of
// rope_turn.cuh), Q and K are first turned by their positions, Q <- R Q,
// K <- R K, as their tiles land in shared memory (the same bf16 bits the
// separate rope_rotate would have stored), and the backward turns its dQ, dK
// back, dQ <- R^T dQ, dK <- R^T dK, after their bf16 rounding and before they
// are written: the q and k in qkv, and their gradients in dqkv, stay unturned.
// Forward (FA2 Algorithm 1): a block owns 64 queries and streams 64-key tiles
// of K and V, keeping per query the running max m and sum l (online softmax):
//   m' = max(m, max_j S_ij),   l' = e^(m - m') l + sum_j e^(S_ij - m'),
//   O' = e^(m - m') O + e^(S - m') V_tile,   and at the end O / l, lse = m + log l.
// Backward (FA2 Algorithm 2), with D_i = sum_d dO_id O_id:
//   P = exp(S - lse),  dV = P^T dO,  dP = dO V^T,  dS = P * (dP - D),
//   dQ = s dS K,  dK = s dS^T Q.
// Without atomics: a block per (batch, kv head, 64 keys) sums dK and dV over
// every query tile of every query head of its group in one fixed order, and a
// block per (batch, query head, 64 queries) recomputes P and dS for dQ. Every
// output element has one writer: results are bitwise reproducible.
//
// Layout: 4 warps per block, each owning 16 rows of its block's 64; tiles in
// shared memory row-major with 8 bf16 of padding per row (a row is then an odd
// number of 16-byte units, so the 8 rows one ldmatrix phase reads fall in 8
// different bank groups), loaded by cp.async and double-buffered. Rows past T are zeros there, and masked or given lse = +inf,
// so a partial tile contributes nothing and never makes a NaN. Scores are kept
// in log2 units (x = S log2 e) for exp2.
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "core/cuda/check.h"
#include "model/cuda/kernels.h"
#include "model/cuda/rope_turn.cuh"
#ifdef __CUDACC_EMULATED__
#include "emu/ptx.h"
#endif

namespace llmdion::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTile = 64;  // rows a block owns (16 per warp) and rows of every streamed tile
constexpr int kPad = 8;    // bf16 of padding at the end of each shared row
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---- tensor-core primitives -------------------------------------------------------
// Fragments of mma.m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
// g = lane / 4 and c = 2 (lane % 4): A (16 x 16) in 4 registers of 2 bf16 each,
// (row g, cols c, c+1), (g+8, c..), (g, c+8..), (g+8, c+8..); B (16 x 8) in 2,
// (rows c, c+1 ; col g), (rows c+8, c+9 ; col g); the accumulator (16 x 8) in 4
// floats, (g, c), (g, c+1), (g+8, c), (g+8, c+1).

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef __CUDACC_EMULATED__
  emu::mma_m16n8k16_bf16(d, a, {b0, b1}, d);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Four 8x8 matrices from shared memory: lanes 8i..8i+7 give the row addresses
// of matrix i, and register i of lane l receives its row l / 4, cols 2 (l % 4)
// and 2 (l % 4) + 1 (with .trans: those of its transpose).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* row) {
  const uint32_t address = uint32_t(__cvta_generic_to_shared(row));
#ifdef __CUDACC_EMULATED__
  emu::ldmatrix(r, address);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* row) {
  const uint32_t address = uint32_t(__cvta_generic_to_shared(row));
#ifdef __CUDACC_EMULATED__
  emu::ldmatrix_trans(r, address);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
#endif
}

// A = tile[row0 .. row0+16, col0 .. col0+16].
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* tile, int stride, int row0, int col0) {
  const int lane = threadIdx.x % 32;
  ldmatrix_x4(a, tile + (row0 + lane % 16) * stride + col0 + (lane / 16) * 8);
}

// B for two adjacent n8 blocks when the tile holds B^T (rows are n, columns k):
// B[k0 + k, n0 + n] = tile[n0 + n, k0 + k]; b[0], b[1] for n0, b[2], b[3] for n0 + 8.
__device__ __forceinline__ void load_b_transposed(uint32_t (&b)[4], const bf16* tile, int stride, int n0, int k0) {
  const int lane = threadIdx.x % 32;
  ldmatrix_x4(b, tile + (n0 + (lane / 16) * 8 + lane % 8) * stride + k0 + ((lane / 8) % 2) * 8);
}

// B for two adjacent n8 blocks when the tile holds B (rows are k, columns n):
// B[k0 + k, n0 + n] = tile[k0 + k, n0 + n]; b[0], b[1] for n0, b[2], b[3] for n0 + 8.
__device__ __forceinline__ void load_b(uint32_t (&b)[4], const bf16* tile, int stride, int k0, int n0) {
  const int lane = threadIdx.x % 32;
  ldmatrix_x4_trans(b, tile + (k0 + ((lane / 8) % 2) * 8 + lane % 8) * stride + n0 + (lane / 16) * 8);
}

__device__ __forceinline__ uint32_t pack_bf16(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  uint32_t bits;
  memcpy(&bits, &pair, sizeof(bits));
  return bits;
}

// The accumulators of two adjacent n8 blocks (columns 16k.. of a 16-row
// product) as the A operand over those 16 columns: the layouts coincide, so
// P and dS feed the next product straight from registers (FA2).
__device__ __forceinline__ void accumulators_as_a(uint32_t (&a)[4], const float (&low)[4], const float (&high)[4]) {
  a[0] = pack_bf16(low[0], low[1]);
  a[1] = pack_bf16(low[2], low[3]);
  a[2] = pack_bf16(high[0], high[1]);
  a[3] = pack_bf16(high[2], high[3]);
}

// C[16 x kN] += A B for the warp's 16 rows: A from rows row0.. of a_tile over
// its kK columns, B^T the first kN rows of bt_tile (S = Q K^T, dP = dO V^T).
template <int kK, int kN>
__device__ __forceinline__ void mma_rows_times_transposed(float (&c)[kN / 8][4], const bf16* a_tile, int row0,
                                                          const bf16* bt_tile, int stride) {
#pragma unroll
  for (int k = 0; k < kK; k += 16) {
    uint32_t a[4];
    load_a(a, a_tile, stride, row0, k);
#pragma unroll
    for (int n = 0; n < kN; n += 16) {
      uint32_t b[4];
      load_b_transposed(b, bt_tile, stride, n, k);
      mma_bf16(c[n / 8], a, b[0], b[1]);
      mma_bf16(c[n / 8 + 1], a, b[2], b[3]);
    }
  }
}

// C[16 x kN] += A B with A the warp's [16 x kK] accumulators (bf16-rounded)
// and B the first kK rows of b_tile (O += P V, dQ += dS K, dV += P^T dO, dK += dS^T Q).
template <int kK, int kN>
__device__ __forceinline__ void mma_registers_times(float (&c)[kN / 8][4], const float (&a_values)[kK / 8][4],
                                                    const bf16* b_tile, int stride) {
#pragma unroll
  for (int k = 0; k < kK; k += 16) {
    uint32_t a[4];
    accumulators_as_a(a, a_values[k / 8], a_values[k / 8 + 1]);
#pragma unroll
    for (int n = 0; n < kN; n += 16) {
      uint32_t b[4];
      load_b(b, b_tile, stride, k, n);
      mma_bf16(c[n / 8], a, b[0], b[1]);
      mma_bf16(c[n / 8 + 1], a, b[2], b[3]);
    }
  }
}

// ---- tiles in and out --------------------------------------------------------------

__device__ __forceinline__ void cp_async_16(bf16* shared, const bf16* global) {
  const uint32_t address = uint32_t(__cvta_generic_to_shared(shared));
#ifdef __CUDACC_EMULATED__
  emu::cp_async_cg(address, global);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef __CUDACC_EMULATED__
  emu::cp_async_commit_group();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Lands every committed group but the newest kPending.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
#ifdef __CUDACC_EMULATED__
  emu::cp_async_wait_group(kPending);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

// Rows t0 .. t0 + kRows of one head's [T, kHs] slice (row stride ld) into the
// shared tile [kRows][kHs + kPad], 16 bytes per copy; rows past T become zeros.
template <int kHs, int kRows>
__device__ void load_tile(bf16* tile, const bf16* head, int t0, int T, int64_t ld) {
  constexpr int kChunks = kHs / 8;
  for (int chunk = threadIdx.x; chunk < kRows * kChunks; chunk += kThreads) {
    const int row = chunk / kChunks, col = (chunk % kChunks) * 8;
    bf16* to = tile + row * (kHs + kPad) + col;
    if (t0 + row < T) cp_async_16(to, head + (t0 + row) * ld + col);
    else *reinterpret_cast<uint4*>(to) = make_uint4(0, 0, 0, 0);
  }
}

// RoPE on `rows` rows of a shared tile [rows][kHs + kPad] in place, row r at
// position t0 + r (rows past T, zeros, stay), by `threads` threads numbered
// from `thread` (a block's or a warp's), 8 pairs per turn: (x_j .. x_j+7,
// x_j+hs/2 .. x_j+hs/2+7). direction +1 turns, -1 turns back.
template <int kHs>
__device__ void rotate_rows(bf16* tile, int rows, int t0, int T, const float* cos_table, const float* sin_table,
                            float direction, int thread, int threads) {
  constexpr int kHalf = kHs / 2, kPacks = kHalf / 8;
  for (int item = thread; item < rows * kPacks; item += threads) {
    const int row = item / kPacks, j = (item % kPacks) * 8;
    if (t0 + row >= T) continue;
    bf16* x = tile + row * (kHs + kPad) + j;
    const int64_t at = int64_t(t0 + row) * kHalf + j;
    rope_turn_pack<8>(x, x + kHalf, cos_table + at, sin_table + at, direction);
  }
}

// Double buffering of the streamed key and value tiles: starts copying tile
// j + 1 into the other buffer (when there is one), then waits for tile j.
template <int kHs>
__device__ void next_key_value_tiles(bf16* k_tiles, bf16* v_tiles, const bf16* k, const bf16* v, int j, int tiles,
                                     int T, int64_t W) {
  constexpr int kStride = kHs + kPad;
  if (j + 1 < tiles) {
    load_tile<kHs, kTile>(k_tiles + ((j + 1) % 2) * kTile * kStride, k, (j + 1) * kTile, T, W);
    load_tile<kHs, kTile>(v_tiles + ((j + 1) % 2) * kTile * kStride, v, (j + 1) * kTile, T, W);
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
}

// The warp's [16 x kHs] accumulators, times `scale` (per row: low rows g, high
// rows g + 8), rounded to bf16, with RoPE tables turned back by their positions
// (rounded again), and written to rows t0 .. t0 + 16 (those below T) of a
// head's slice (row stride ld), through `staging`, 16 rows of shared memory
// that only this warp reads.
template <int kHs>
__device__ void store_rows(bf16* head, int64_t ld, int t0, int T, const float (&c)[kHs / 8][4], float scale_low,
                           float scale_high, const float* cos_table, const float* sin_table, bf16* staging) {
  constexpr int kStride = kHs + kPad;
  const int lane = threadIdx.x % 32, row = lane / 4, col = 2 * (lane % 4);
  __syncwarp();
#pragma unroll
  for (int n = 0; n < kHs / 8; n++) {
    *reinterpret_cast<uint32_t*>(staging + row * kStride + n * 8 + col) = pack_bf16(c[n][0] * scale_low, c[n][1] * scale_low);
    *reinterpret_cast<uint32_t*>(staging + (row + 8) * kStride + n * 8 + col) =
        pack_bf16(c[n][2] * scale_high, c[n][3] * scale_high);
  }
  __syncwarp();
  if (cos_table) {  // a pair's halves sit in different lanes' accumulators: turned here
    rotate_rows<kHs>(staging, 16, t0, T, cos_table, sin_table, -1.0f, lane, 32);
    __syncwarp();
  }
  constexpr int kChunks = kHs / 8;
  for (int chunk = lane; chunk < 16 * kChunks; chunk += 32) {
    const int r = chunk / kChunks, at = (chunk % kChunks) * 8;
    if (t0 + r < T)
      *reinterpret_cast<uint4*>(head + (t0 + r) * ld + at) = *reinterpret_cast<const uint4*>(staging + r * kStride + at);
  }
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ---- forward ----------------------------------------------------------------------
// Block (b * NH + h, query tile), the last query tiles (the most keys) first.
template <int kHs>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(bf16* out, float* lse, const bf16* qkv, const float* rope_cos, const float* rope_sin,
                             int T, int NH, int NKV, float scale) {
  constexpr int kStride = kHs + kPad;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* q_tile = reinterpret_cast<bf16*>(shared);  // [kTile][kStride]
  bf16* k_tiles = q_tile + kTile * kStride;        // [2][kTile][kStride]
  bf16* v_tiles = k_tiles + 2 * kTile * kStride;   // [2][kTile][kStride]

  const int b = blockIdx.x / NH, h = blockIdx.x % NH, kv = h / (NH / NKV);
  const int q_block = gridDim.y - 1 - blockIdx.y, q0 = q_block * kTile;
  const int64_t W = int64_t(NH + 2 * NKV) * kHs, C = int64_t(NH) * kHs;
  const bf16* q = qkv + int64_t(b) * T * W + h * kHs;
  const bf16* k = qkv + int64_t(b) * T * W + (NH + kv) * kHs;
  const bf16* v = qkv + int64_t(b) * T * W + (NH + NKV + kv) * kHs;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = warp * 16;                                   // the warp's rows in the tile
  const int query_low = q0 + row0 + lane / 4, query_high = query_low + 8;
  const int col = 2 * (lane % 4);                               // this lane's columns in an n8 block

  load_tile<kHs, kTile>(q_tile, q, q0, T, W);
  load_tile<kHs, kTile>(k_tiles, k, 0, T, W);
  load_tile<kHs, kTile>(v_tiles, v, 0, T, W);
  cp_async_commit();

  const float scale_log2 = scale * kLog2e;
  float o[kHs / 8][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY};  // m, log2 units
  float row_sum[2] = {0.0f, 0.0f};            // l, this lane's columns only until the end
  const int key_tiles = q_block + 1;          // keys j <= i < q0 + kTile
  for (int j = 0; j < key_tiles; j++) {
    next_key_value_tiles<kHs>(k_tiles, v_tiles, k, v, j, key_tiles, T, W);
    bf16* k_tile = k_tiles + (j % 2) * kTile * kStride;
    const bf16* v_tile = v_tiles + (j % 2) * kTile * kStride;
    if (rope_cos) {  // Q (it came with the first K tile) and K turned where they landed
      if (j == 0) rotate_rows<kHs>(q_tile, kTile, q0, T, rope_cos, rope_sin, 1.0f, threadIdx.x, kThreads);
      rotate_rows<kHs>(k_tile, kTile, j * kTile, T, rope_cos, rope_sin, 1.0f, threadIdx.x, kThreads);
      __syncthreads();
    }

    float s[kTile / 8][4] = {};
    mma_rows_times_transposed<kHs, kTile>(s, q_tile, row0, k_tile, kStride);

    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kTile / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = j * kTile + n * 8 + col + (e & 1), query = e < 2 ? query_low : query_high;
        s[n][e] = key > query ? -INFINITY : s[n][e] * scale_log2;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], s[n][e]);
      }
    float shift[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const float new_max = fmaxf(row_max[r], quad_max(tile_max[r]));
      shift[r] = new_max == -INFINITY ? 0.0f : new_max;  // a row with nothing unmasked yet stays at 0
      const float correction = exp2f(row_max[r] - shift[r]);
      row_max[r] = new_max;
      row_sum[r] *= correction;
#pragma unroll
      for (int n = 0; n < kHs / 8; n++) o[n][2 * r] *= correction, o[n][2 * r + 1] *= correction;
    }
#pragma unroll
    for (int n = 0; n < kTile / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        s[n][e] = exp2f(s[n][e] - shift[e / 2]);
        row_sum[e / 2] += s[n][e];
      }
    mma_registers_times<kTile, kHs>(o, s, v_tile, kStride);
    __syncthreads();  // the next iteration loads over the buffer read here
  }

  float inverse_sum[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    row_sum[r] = quad_sum(row_sum[r]);
    inverse_sum[r] = row_sum[r] > 0.0f ? 1.0f / row_sum[r] : 0.0f;
  }
  if (lane % 4 == 0) {
    float* head_lse = lse + int64_t(blockIdx.x) * T;
    if (query_low < T) head_lse[query_low] = (row_max[0] + log2f(row_sum[0])) * kLn2;
    if (query_high < T) head_lse[query_high] = (row_max[1] + log2f(row_sum[1])) * kLn2;
  }
  store_rows<kHs>(out + int64_t(b) * T * C + h * kHs, C, q0 + row0, T, o, inverse_sum[0], inverse_sum[1], nullptr,
                  nullptr, q_tile + row0 * kStride);
}

// ---- backward ---------------------------------------------------------------------

// D[b, h, t] = sum_d dout[b, t, h, d] out[b, t, h, d], one warp per (row, head).
__global__ void output_gradient_dot_kernel(float* D, const bf16* dout, const bf16* out, int64_t N, int T, int NH,
                                           int hs) {
  const int64_t pair = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (pair >= N * NH) return;
  const int64_t n = pair / NH;
  const int h = int(pair % NH);
  const int64_t at = n * NH * hs + int64_t(h) * hs;
  float sum = 0.0f;
  for (int d = lane; d < hs; d += 32) sum += __bfloat162float(dout[at + d]) * __bfloat162float(out[at + d]);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) D[((n / T) * NH + h) * T + n % T] = sum;
}

// dK, dV of 64 keys of one kv head: block (b * NKV + kv, key tile), the first
// key tiles (the most queries) first. Streams kQueries-query tiles of Q, dO,
// lse and D for each query head of the group in turn, from the first query
// that sees these keys; each warp works on S^T, P^T, dP^T, dS^T of its 16 keys.
template <int kHs, int kQueries>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_kernel(bf16* dqkv, const bf16* qkv, const float* rope_cos, const float* rope_sin,
                                   const bf16* dout, const float* lse, const float* D, int T, int NH, int NKV,
                                   float scale) {
  constexpr int kStride = kHs + kPad;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* k_tile = reinterpret_cast<bf16*>(shared);          // [kTile][kStride]
  bf16* v_tile = k_tile + kTile * kStride;                 // [kTile][kStride]
  bf16* q_tiles = v_tile + kTile * kStride;                // [2][kQueries][kStride]
  bf16* dout_tiles = q_tiles + 2 * kQueries * kStride;     // [2][kQueries][kStride]
  float* lse_tiles = reinterpret_cast<float*>(dout_tiles + 2 * kQueries * kStride);  // [2][kQueries], log2 units
  float* d_tiles = lse_tiles + 2 * kQueries;               // [2][kQueries]

  const int b = blockIdx.x / NKV, kv = blockIdx.x % NKV, group = NH / NKV;
  const int k0 = blockIdx.y * kTile;
  const int64_t W = int64_t(NH + 2 * NKV) * kHs, C = int64_t(NH) * kHs;
  const bf16* rows = qkv + int64_t(b) * T * W;
  const bf16* dout_rows = dout + int64_t(b) * T * C;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = warp * 16;
  const int key_low = k0 + row0 + lane / 4, key_high = key_low + 8;
  const int col = 2 * (lane % 4);

  // Step i: query head kv * group + i / q_blocks, query tile first_q_block + i % q_blocks.
  const int first_q_block = k0 / kQueries;
  const int q_blocks = (T + kQueries - 1) / kQueries - first_q_block;
  const int steps = group * q_blocks;
  auto load_step = [&](int step, int buffer) {
    const int h = kv * group + step / q_blocks, q_start = (first_q_block + step % q_blocks) * kQueries;
    load_tile<kHs, kQueries>(q_tiles + buffer * kQueries * kStride, rows + h * kHs, q_start, T, W);
    load_tile<kHs, kQueries>(dout_tiles + buffer * kQueries * kStride, dout_rows + h * kHs, q_start, T, C);
    for (int i = threadIdx.x; i < kQueries; i += kThreads) {
      const int query = q_start + i;
      const int64_t at = (int64_t(b) * NH + h) * T + query;
      lse_tiles[buffer * kQueries + i] = query < T ? lse[at] * kLog2e : INFINITY;  // past T: P = 0
      d_tiles[buffer * kQueries + i] = query < T ? D[at] : 0.0f;
    }
  };

  load_tile<kHs, kTile>(k_tile, rows + (NH + kv) * kHs, k0, T, W);
  load_tile<kHs, kTile>(v_tile, rows + (NH + NKV + kv) * kHs, k0, T, W);
  load_step(0, 0);
  cp_async_commit();

  const float scale_log2 = scale * kLog2e;
  float dk[kHs / 8][4] = {}, dv[kHs / 8][4] = {};
  for (int step = 0; step < steps; step++) {
    const int buffer = step % 2;
    if (step + 1 < steps) {
      load_step(step + 1, 1 - buffer);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int q_start = (first_q_block + step % q_blocks) * kQueries;
    bf16* q_tile = q_tiles + buffer * kQueries * kStride;
    const bf16* dout_tile = dout_tiles + buffer * kQueries * kStride;
    const float* lse_tile = lse_tiles + buffer * kQueries;
    const float* d_tile = d_tiles + buffer * kQueries;
    if (rope_cos) {  // K (it came with the first Q tile) and Q turned where they landed
      if (step == 0) rotate_rows<kHs>(k_tile, kTile, k0, T, rope_cos, rope_sin, 1.0f, threadIdx.x, kThreads);
      rotate_rows<kHs>(q_tile, kQueries, q_start, T, rope_cos, rope_sin, 1.0f, threadIdx.x, kThreads);
      __syncthreads();
    }

    float p[kQueries / 8][4] = {};  // S^T, then P^T
    mma_rows_times_transposed<kHs, kQueries>(p, k_tile, row0, q_tile, kStride);
#pragma unroll
    for (int n = 0; n < kQueries / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int i = n * 8 + col + (e & 1), key = e < 2 ? key_low : key_high;
        p[n][e] = key > q_start + i ? 0.0f : exp2f(p[n][e] * scale_log2 - lse_tile[i]);
      }
    mma_registers_times<kQueries, kHs>(dv, p, dout_tile, kStride);

    float ds[kQueries / 8][4] = {};  // dP^T, then dS^T
    mma_rows_times_transposed<kHs, kQueries>(ds, v_tile, row0, dout_tile, kStride);
#pragma unroll
    for (int n = 0; n < kQueries / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) ds[n][e] = p[n][e] * (ds[n][e] - d_tile[n * 8 + col + (e & 1)]);
    mma_registers_times<kQueries, kHs>(dk, ds, q_tile, kStride);
    __syncthreads();  // the next iteration loads over the buffer read here
  }

  store_rows<kHs>(dqkv + int64_t(b) * T * W + (NH + kv) * kHs, W, k0 + row0, T, dk, scale, scale, rope_cos, rope_sin,
                  k_tile + row0 * kStride);
  store_rows<kHs>(dqkv + int64_t(b) * T * W + (NH + NKV + kv) * kHs, W, k0 + row0, T, dv, 1.0f, 1.0f, nullptr,
                  nullptr, v_tile + row0 * kStride);
}

// dQ of 64 queries of one query head: block (b * NH + h, query tile), the last
// query tiles first, streaming the key tiles up to the diagonal.
template <int kHs>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(bf16* dqkv, const bf16* qkv, const float* rope_cos, const float* rope_sin,
                                 const bf16* dout, const float* lse, const float* D, int T, int NH, int NKV,
                                 float scale) {
  constexpr int kStride = kHs + kPad;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* q_tile = reinterpret_cast<bf16*>(shared);     // [kTile][kStride]
  bf16* dout_tile = q_tile + kTile * kStride;         // [kTile][kStride]
  bf16* k_tiles = dout_tile + kTile * kStride;        // [2][kTile][kStride]
  bf16* v_tiles = k_tiles + 2 * kTile * kStride;      // [2][kTile][kStride]

  const int b = blockIdx.x / NH, h = blockIdx.x % NH, kv = h / (NH / NKV);
  const int q_block = gridDim.y - 1 - blockIdx.y, q0 = q_block * kTile;
  const int64_t W = int64_t(NH + 2 * NKV) * kHs, C = int64_t(NH) * kHs;
  const bf16* rows = qkv + int64_t(b) * T * W;
  const bf16* k = rows + (NH + kv) * kHs;
  const bf16* v = rows + (NH + NKV + kv) * kHs;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = warp * 16;
  const int query_low = q0 + row0 + lane / 4, query_high = query_low + 8;
  const int col = 2 * (lane % 4);

  load_tile<kHs, kTile>(q_tile, rows + h * kHs, q0, T, W);
  load_tile<kHs, kTile>(dout_tile, dout + int64_t(b) * T * C + h * kHs, q0, T, C);
  load_tile<kHs, kTile>(k_tiles, k, 0, T, W);
  load_tile<kHs, kTile>(v_tiles, v, 0, T, W);
  cp_async_commit();

  // Per row: lse in log2 units (+inf past T: P = 0) and D.
  const float* head_lse = lse + int64_t(blockIdx.x) * T;
  const float* head_d = D + int64_t(blockIdx.x) * T;
  const float row_lse[2] = {query_low < T ? head_lse[query_low] * kLog2e : INFINITY,
                            query_high < T ? head_lse[query_high] * kLog2e : INFINITY};
  const float row_d[2] = {query_low < T ? head_d[query_low] : 0.0f, query_high < T ? head_d[query_high] : 0.0f};

  const float scale_log2 = scale * kLog2e;
  float dq[kHs / 8][4] = {};
  const int key_tiles = q_block + 1;
  for (int j = 0; j < key_tiles; j++) {
    next_key_value_tiles<kHs>(k_tiles, v_tiles, k, v, j, key_tiles, T, W);
    bf16* k_tile = k_tiles + (j % 2) * kTile * kStride;
    const bf16* v_tile = v_tiles + (j % 2) * kTile * kStride;
    if (rope_cos) {  // Q (it came with the first K tile) and K turned where they landed
      if (j == 0) rotate_rows<kHs>(q_tile, kTile, q0, T, rope_cos, rope_sin, 1.0f, threadIdx.x, kThreads);
      rotate_rows<kHs>(k_tile, kTile, j * kTile, T, rope_cos, rope_sin, 1.0f, threadIdx.x, kThreads);
      __syncthreads();
    }

    float p[kTile / 8][4] = {};  // S, then P
    mma_rows_times_transposed<kHs, kTile>(p, q_tile, row0, k_tile, kStride);
#pragma unroll
    for (int n = 0; n < kTile / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = j * kTile + n * 8 + col + (e & 1), query = e < 2 ? query_low : query_high;
        p[n][e] = key > query ? 0.0f : exp2f(p[n][e] * scale_log2 - row_lse[e / 2]);
      }
    float ds[kTile / 8][4] = {};  // dP, then dS
    mma_rows_times_transposed<kHs, kTile>(ds, dout_tile, row0, v_tile, kStride);
#pragma unroll
    for (int n = 0; n < kTile / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) ds[n][e] = p[n][e] * (ds[n][e] - row_d[e / 2]);
    mma_registers_times<kTile, kHs>(dq, ds, k_tile, kStride);
    __syncthreads();  // the next iteration loads over the buffer read here
  }

  store_rows<kHs>(dqkv + int64_t(b) * T * W + h * kHs, W, q0 + row0, T, dq, scale, scale, rope_cos, rope_sin,
                  q_tile + row0 * kStride);
}

// ---- launchers --------------------------------------------------------------------

// Queries per streamed tile of the dK dV kernel: fewer at hs = 128 to keep its
// four [16 x kHs] and [16 x kQueries] accumulators in registers.
template <int kHs>
constexpr int kBackwardQueries = kHs <= 64 ? 64 : 32;

template <int kHs>
constexpr int forward_shared_bytes() {
  return 5 * kTile * (kHs + kPad) * int(sizeof(bf16));
}
template <int kHs>
constexpr int dkdv_shared_bytes() {
  return (2 * kTile + 4 * kBackwardQueries<kHs>) * (kHs + kPad) * int(sizeof(bf16)) +
         4 * kBackwardQueries<kHs> * int(sizeof(float));
}
template <int kHs>
constexpr int dq_shared_bytes() {
  return 6 * kTile * (kHs + kPad) * int(sizeof(bf16));
}

int tiles(int T) { return (T + kTile - 1) / kTile; }

// The shapes the kernels are built for; `rows`: the bf16 arrays read or written 16 bytes at a time,
// with the RoPE tables (both or neither), read 16 bytes at a time too.
void check_shape(const char* function, int B, int T, int NH, int NKV, int hs, const float* rope_cos,
                 const float* rope_sin, std::initializer_list<const void*> rows) {
  const std::string where = std::string("attention ") + function + ": ";
  if (hs != 32 && hs != 64 && hs != 128)
    throw std::invalid_argument(where + "head size " + std::to_string(hs) +
                                " is not supported; the flash kernels are built for head sizes 32, 64 and 128");
  if (NH < 1 || NKV < 1 || NH % NKV != 0)
    throw std::invalid_argument(where + std::to_string(NKV) + " kv heads do not divide " + std::to_string(NH) +
                                " query heads");
  if (B < 0 || T < 0) throw std::invalid_argument(where + "negative batch or sequence length");
  if (tiles(T) > 65535) throw std::invalid_argument(where + "sequence length " + std::to_string(T) + " is too long");
  for (const void* p : rows)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0)
      throw std::invalid_argument(where + "bf16 row arrays must be 16-byte aligned (they are read 16 bytes at a time)");
  if ((rope_cos == nullptr) != (rope_sin == nullptr))
    throw std::invalid_argument(where + "RoPE needs both tables, cos and sin (or neither: no rotation)");
  for (const float* table : {rope_cos, rope_sin})
    if (reinterpret_cast<uintptr_t>(table) % 16 != 0)
      throw std::invalid_argument(where + "RoPE tables must be 16-byte aligned (they are read 16 bytes at a time)");
}

template <int kHs>
void launch_forward(bf16* out, float* lse, const bf16* qkv, const float* rope_cos, const float* rope_sin, int B, int T,
                    int NH, int NKV, cudaStream_t stream) {
  constexpr int bytes = forward_shared_bytes<kHs>();
  CUDA_CHECK(cudaFuncSetAttribute(attention_forward_kernel<kHs>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  attention_forward_kernel<kHs><<<dim3(B * NH, tiles(T)), kThreads, bytes, stream>>>(
      out, lse, qkv, rope_cos, rope_sin, T, NH, NKV, 1.0f / sqrtf(float(kHs)));
  CUDA_CHECK_LAUNCH();
}

template <int kHs>
void launch_backward(bf16* dqkv, const float* D, const bf16* dout, const bf16* qkv, const float* rope_cos,
                     const float* rope_sin, const float* lse, int B, int T, int NH, int NKV, cudaStream_t stream) {
  const float scale = 1.0f / sqrtf(float(kHs));
  constexpr int kQueries = kBackwardQueries<kHs>;
  constexpr int dkdv_bytes = dkdv_shared_bytes<kHs>();
  CUDA_CHECK(cudaFuncSetAttribute(attention_backward_dkdv_kernel<kHs, kQueries>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, dkdv_bytes));
  attention_backward_dkdv_kernel<kHs, kQueries><<<dim3(B * NKV, tiles(T)), kThreads, dkdv_bytes, stream>>>(
      dqkv, qkv, rope_cos, rope_sin, dout, lse, D, T, NH, NKV, scale);
  CUDA_CHECK_LAUNCH();
  constexpr int dq_bytes = dq_shared_bytes<kHs>();
  CUDA_CHECK(
      cudaFuncSetAttribute(attention_backward_dq_kernel<kHs>, cudaFuncAttributeMaxDynamicSharedMemorySize, dq_bytes));
  attention_backward_dq_kernel<kHs><<<dim3(B * NH, tiles(T)), kThreads, dq_bytes, stream>>>(
      dqkv, qkv, rope_cos, rope_sin, dout, lse, D, T, NH, NKV, scale);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_forward(bf16* out, float* lse, const bf16* qkv, const float* rope_cos, const float* rope_sin, int B,
                       int T, int NH, int NKV, int hs, cudaStream_t stream) {
  check_shape("forward", B, T, NH, NKV, hs, rope_cos, rope_sin, {out, qkv});
  if (B == 0 || T == 0) return;
  if (hs == 32) launch_forward<32>(out, lse, qkv, rope_cos, rope_sin, B, T, NH, NKV, stream);
  if (hs == 64) launch_forward<64>(out, lse, qkv, rope_cos, rope_sin, B, T, NH, NKV, stream);
  if (hs == 128) launch_forward<128>(out, lse, qkv, rope_cos, rope_sin, B, T, NH, NKV, stream);
}

void attention_backward(bf16* dqkv, float* scratch, const bf16* dout, const bf16* out, const bf16* qkv,
                        const float* rope_cos, const float* rope_sin, const float* lse, int B, int T, int NH, int NKV,
                        int hs, cudaStream_t stream) {
  check_shape("backward", B, T, NH, NKV, hs, rope_cos, rope_sin, {dqkv, dout, qkv});
  if (B == 0 || T == 0) return;
  float* D = scratch;  // [B, NH, T]
  const int64_t N = int64_t(B) * T;
  constexpr int kDotThreads = 256;
  output_gradient_dot_kernel<<<unsigned((N * NH * 32 + kDotThreads - 1) / kDotThreads), kDotThreads, 0, stream>>>(
      D, dout, out, N, T, NH, hs);
  CUDA_CHECK_LAUNCH();
  if (hs == 32) launch_backward<32>(dqkv, D, dout, qkv, rope_cos, rope_sin, lse, B, T, NH, NKV, stream);
  if (hs == 64) launch_backward<64>(dqkv, D, dout, qkv, rope_cos, rope_sin, lse, B, T, NH, NKV, stream);
  if (hs == 128) launch_backward<128>(dqkv, D, dout, qkv, rope_cos, rope_sin, lse, B, T, NH, NKV, stream);
}

int64_t attention_backward_scratch_floats(int B, int T, int NH, int /*NKV*/, int /*hs*/) {
  return int64_t(B) * NH * T;
}

}  // namespace llmdion::cuda
