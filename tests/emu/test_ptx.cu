// The PTX twins of emu/ptx.h against the PTX ISA: known answers built from
// its fragment tables ("Matrix Fragments for mma.m16n8k16 with floating point
// type", "ldmatrix") and from the cp.async group rules, then the faults they
// must catch, each planted.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "emu/ptx.h"
#include "emu/runtime.h"

namespace {

template <typename T>
struct Device {
  T* ptr = nullptr;
  size_t size;
  explicit Device(size_t n) : size(n) { EXPECT_EQ(cudaMalloc(&ptr, n * sizeof(T)), cudaSuccess); }
  ~Device() { cudaFree(ptr); }
  void upload(const std::vector<T>& host) {
    ASSERT_EQ(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> download() const {
    std::vector<T> host(size);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr, size * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
};

class EmuPtx : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 ------------------------------
// The PTX ISA's fragment tables, with g = lane / 4 and t = lane % 4: element i
// of A at (g, 2t) + kA[i], of B at (2t, g) + kB[i], of C and D at (g, 2t) + kC[i].
struct Offset {
  int row, col;
};
constexpr Offset kA[8] = {{0, 0}, {0, 1}, {8, 0}, {8, 1}, {0, 8}, {0, 9}, {8, 8}, {8, 9}};
constexpr Offset kB[4] = {{0, 0}, {1, 0}, {8, 0}, {9, 0}};
constexpr Offset kC[4] = {{0, 0}, {0, 1}, {8, 0}, {8, 1}};

__device__ uint32_t bf16_pair(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  uint32_t bits;
  memcpy(&bits, &pair, sizeof(bits));
  return bits;
}

// a [16 x 16], b [16 x 8] and c [16 x 8] row-major; each lane gathers its
// fragments by the tables, then d = a b + c (c in place, as our kernels do) and
// d2 = a b + d.
__global__ void mma_by_the_tables(const float* a, const float* b, const float* c, float* d, float* d2) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  uint32_t fa[4], fb[2];
  float fc[4];
  for (int r = 0; r < 4; r++) {
    const Offset lo = kA[2 * r], hi = kA[2 * r + 1];
    fa[r] = bf16_pair(a[(g + lo.row) * 16 + 2 * t + lo.col], a[(g + hi.row) * 16 + 2 * t + hi.col]);
  }
  for (int r = 0; r < 2; r++) {
    const Offset lo = kB[2 * r], hi = kB[2 * r + 1];
    fb[r] = bf16_pair(b[(2 * t + lo.row) * 8 + g + lo.col], b[(2 * t + hi.row) * 8 + g + hi.col]);
  }
  for (int i = 0; i < 4; i++) fc[i] = c[(g + kC[i].row) * 8 + 2 * t + kC[i].col];
  emu::mma_m16n8k16_bf16(fc, fa, fb, fc);
  for (int i = 0; i < 4; i++) d[(g + kC[i].row) * 8 + 2 * t + kC[i].col] = fc[i];
  float again[4];
  emu::mma_m16n8k16_bf16(again, fa, fb, fc);
  for (int i = 0; i < 4; i++) d2[(g + kC[i].row) * 8 + 2 * t + kC[i].col] = again[i];
}

TEST_F(EmuPtx, mma_m16n8k16_fragments_follow_the_ptx_layout) {
  // Distinct integers, exact in bf16 (|x| <= 256) and every sum exact in fp32:
  // an element read from the wrong place changes some output.
  std::vector<float> a(16 * 16), b(16 * 8), c(16 * 8);
  for (int i = 0; i < 16 * 16; i++) a[i] = float(i - 128);
  for (int i = 0; i < 16 * 8; i++) b[i] = float(i - 64);
  for (int i = 0; i < 16 * 8; i++) c[i] = float(1000 * i + 7);
  Device<float> da(a.size()), db(b.size()), dc(c.size()), dd(c.size()), dd2(c.size());
  da.upload(a);
  db.upload(b);
  dc.upload(c);
  mma_by_the_tables<<<1, 32>>>(da.ptr, db.ptr, dc.ptr, dd.ptr, dd2.ptr);
  const std::vector<float> d = dd.download(), d2 = dd2.download();
  for (int row = 0; row < 16; row++)
    for (int col = 0; col < 8; col++) {
      double product = 0;
      for (int k = 0; k < 16; k++) product += double(a[row * 16 + k]) * b[k * 8 + col];
      EXPECT_EQ(d[row * 8 + col], float(product + c[row * 8 + col])) << "D[" << row << "][" << col << "]";
      EXPECT_EQ(d2[row * 8 + col], float(2 * product + c[row * 8 + col])) << "D[" << row << "][" << col << "]";
    }
}

__global__ void mma_with_an_exited_lane(float* out) {
  if (threadIdx.x == 7) return;
  const uint32_t a[4] = {}, b[2] = {};
  float d[4] = {};
  emu::mma_m16n8k16_bf16(d, a, b, d);
  out[threadIdx.x] = d[0];
}

TEST_F(EmuPtx, an_mma_that_a_lane_of_the_warp_does_not_reach_is_caught) {
  Device<float> out(32);
  EXPECT_DEATH(
      {
        mma_with_an_exited_lane<<<1, 32>>>(out.ptr);
        cudaDeviceSynchronize();
      },
      "kernel mma_with_an_exited_lane, block \\(0,0,0\\).*mma\\.sync\\.aligned\\.m16n8k16\\.row\\.col\\.f32\\.bf16\\."
      "bf16\\.f32 \\(mask 0xffffffff\\) not reached by every lane it names: lane 7");
  EXPECT_DEATH(
      {
        mma_with_an_exited_lane<<<1, 16>>>(out.ptr);
        cudaDeviceSynchronize();
      },
      "mma\\.sync.* names lanes past the 16 this warp has");
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16 ------------------------------------
// A shared tile of 32 rows of 24 b16 (48 bytes, so rows are not contiguous),
// element (r, c) holding r * 24 + c. Row j of matrix m is tile row
// tile_row(m, j) from column tile_col(m) = 8 (m % 2): rows scattered, as only the lanes'
// addresses say where they are.
constexpr int kStride = 24, kTileRows = 32;
__host__ __device__ int tile_row(int matrix, int row) { return row * 4 + matrix; }
__host__ __device__ int tile_col(int matrix) { return 8 * (matrix % 2); }

template <int kCount, bool kTransposed>
__global__ void ldmatrix_scattered_rows(uint32_t* out) {
  extern __shared__ __align__(16) uint16_t tile[];
  for (int i = threadIdx.x; i < kTileRows * kStride; i += blockDim.x) tile[i] = uint16_t(i);
  __syncthreads();
  const int lane = threadIdx.x, matrix = lane / 8;
  // Lanes past those the count uses give a misaligned address nothing may read.
  const uint32_t address =
      lane < 8 * kCount
          ? uint32_t(__cvta_generic_to_shared(tile + tile_row(matrix, lane % 8) * kStride + tile_col(matrix)))
          : 0xfffffff1u;
  uint32_t r[kCount];
  if (kTransposed) emu::ldmatrix_trans(r, address);
  else emu::ldmatrix(r, address);
  for (int m = 0; m < kCount; m++) out[lane * kCount + m] = r[m];
}

// Element (row, col) of matrix m as the tile holds it.
uint32_t element(int matrix, int row, int col) { return tile_row(matrix, row) * kStride + tile_col(matrix) + col; }

template <int kCount, bool kTransposed>
void check_ldmatrix() {
  Device<uint32_t> out(32 * kCount);
  ldmatrix_scattered_rows<kCount, kTransposed><<<1, 32, kTileRows * kStride * 2>>>(out.ptr);
  const std::vector<uint32_t> got = out.download();
  for (int lane = 0; lane < 32; lane++)
    for (int m = 0; m < kCount; m++) {
      // Register m of lane l: row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1 of
      // matrix m (of its transpose with .trans), the first in the low half.
      const int row = lane / 4, col = 2 * (lane % 4);
      const uint32_t low = kTransposed ? element(m, col, row) : element(m, row, col);
      const uint32_t high = kTransposed ? element(m, col + 1, row) : element(m, row, col + 1);
      EXPECT_EQ(got[lane * kCount + m], low | high << 16)
          << ".x" << kCount << (kTransposed ? ".trans" : "") << " lane " << lane << " register " << m;
    }
}

TEST_F(EmuPtx, ldmatrix_x4_registers_hold_the_ptx_fragment_of_each_matrix) {
  check_ldmatrix<4, false>();
  check_ldmatrix<4, true>();
}

TEST_F(EmuPtx, ldmatrix_x1_and_x2_use_only_the_addresses_of_lanes_0_to_7_and_0_to_15) {
  check_ldmatrix<1, false>();
  check_ldmatrix<1, true>();
  check_ldmatrix<2, false>();
  check_ldmatrix<2, true>();
}

// Lane `bad_lane` gives `offset` bytes past its row.
__global__ void ldmatrix_with_a_bad_row(uint32_t* out, int bad_lane, int offset) {
  extern __shared__ __align__(16) uint16_t tile[];
  const int lane = threadIdx.x;
  uint32_t address = uint32_t(__cvta_generic_to_shared(tile + lane * 8));
  if (lane == bad_lane) address += offset;
  uint32_t r[4];
  emu::ldmatrix(r, address);
  out[lane] = r[0];
}

TEST_F(EmuPtx, a_misaligned_ldmatrix_row_address_is_caught) {
  Device<uint32_t> out(32);
  EXPECT_DEATH(
      {
        ldmatrix_with_a_bad_row<<<1, 32, 32 * 16>>>(out.ptr, 3, 2);
        cudaDeviceSynchronize();
      },
      "kernel ldmatrix_with_a_bad_row, block \\(0,0,0\\).*ldmatrix\\.sync\\.aligned\\.m8n8\\.x4\\.shared\\.b16: lane "
      "3 gives row address 0x32, not 16-byte aligned");
}

TEST_F(EmuPtx, an_ldmatrix_row_outside_dynamic_shared_memory_is_caught) {
  Device<uint32_t> out(32);
  EXPECT_DEATH(
      {
        ldmatrix_with_a_bad_row<<<1, 32, 32 * 16>>>(out.ptr, 31, 16);
        cudaDeviceSynchronize();
      },
      "ldmatrix: shared address 512 \\(\\+16 bytes\\) outside the block's 512 bytes of dynamic shared memory");
}

__global__ void ldmatrix_with_mixed_qualifiers(uint32_t* out) {
  extern __shared__ __align__(16) uint16_t tile[];
  const uint32_t address = uint32_t(__cvta_generic_to_shared(tile + threadIdx.x * 8));
  uint32_t r[4];
  if (threadIdx.x == 9) emu::ldmatrix_trans(r, address);
  else emu::ldmatrix(r, address);
  out[threadIdx.x] = r[0];
}

TEST_F(EmuPtx, lanes_of_one_ldmatrix_with_different_qualifiers_are_caught) {
  Device<uint32_t> out(32);
  EXPECT_DEATH(
      {
        ldmatrix_with_mixed_qualifiers<<<1, 32, 32 * 16>>>(out.ptr);
        cudaDeviceSynchronize();
      },
      "meet at different warp collectives");
}

// ---- cp.async, commit_group, wait_group, wait_all ---------------------------------------------
// One thread, four 16-byte shared slots pre-filled with kStale; `global` holds
// four 16-byte rows of other bytes. out[k] is what a slot held at step k.
constexpr unsigned kStale = 0x5a5a5a5au;

__device__ uint32_t slot_address(uint4* slots, int i) { return uint32_t(__cvta_generic_to_shared(slots + i)); }

// A copy lands at the wait that covers it, not at its start nor at its commit.
__global__ void copy_then_wait(const uint4* global, uint4* out) {
  extern __shared__ __align__(16) uint4 slots[];
  slots[0] = make_uint4(kStale, kStale, kStale, kStale);
  emu::cp_async_cg(slot_address(slots, 0), global);
  out[0] = slots[0];
  emu::cp_async_commit_group();
  out[1] = slots[0];
  emu::cp_async_wait_group(0);
  out[2] = slots[0];
}

// wait_group 1 lands all but the newest group; an empty group counts as one.
__global__ void two_groups(const uint4* global, uint4* out) {
  extern __shared__ __align__(16) uint4 slots[];
  for (int i = 0; i < 2; i++) slots[i] = make_uint4(kStale, kStale, kStale, kStale);
  emu::cp_async_cg(slot_address(slots, 0), global);
  emu::cp_async_commit_group();
  emu::cp_async_cg(slot_address(slots, 1), global + 1);
  emu::cp_async_commit_group();
  emu::cp_async_wait_group(1);
  out[0] = slots[0];
  out[1] = slots[1];
  emu::cp_async_commit_group();
  emu::cp_async_wait_group(1);
  out[2] = slots[1];
}

// wait_group 0 waits for committed groups only; wait_all commits first.
__global__ void uncommitted_copy(const uint4* global, uint4* out) {
  extern __shared__ __align__(16) uint4 slots[];
  for (int i = 0; i < 2; i++) slots[i] = make_uint4(kStale, kStale, kStale, kStale);
  emu::cp_async_cg(slot_address(slots, 0), global);
  emu::cp_async_commit_group();
  emu::cp_async_cg(slot_address(slots, 1), global + 1);
  emu::cp_async_wait_group(0);
  out[0] = slots[0];
  out[1] = slots[1];
  emu::cp_async_wait_all();
  out[2] = slots[1];
}

// .ca copies of 4 and 8 bytes write only their bytes.
__global__ void small_copies(const uint4* global, uint4* out) {
  extern __shared__ __align__(16) uint4 slots[];
  slots[0] = make_uint4(kStale, kStale, kStale, kStale);
  const char* from = reinterpret_cast<const char*>(global);
  emu::cp_async_ca(slot_address(slots, 0) + 4, from + 4, 4);
  emu::cp_async_ca(slot_address(slots, 0) + 8, from + 24, 8);
  emu::cp_async_wait_all();
  out[0] = slots[0];
}

struct CopyRun {
  std::vector<unsigned> row[4];  // the global rows
  std::vector<unsigned> out[3];
};

template <void (*kKernel)(const uint4*, uint4*)>
CopyRun run_copies() {
  Device<uint4> global(4), out(3);
  std::vector<uint4> rows(4);
  for (unsigned i = 0; i < 4; i++) rows[i] = make_uint4(16 * i + 1, 16 * i + 2, 16 * i + 3, 16 * i + 4);
  global.upload(rows);
  out.upload(std::vector<uint4>(3, make_uint4(0, 0, 0, 0)));
  kKernel<<<1, 1, 4 * 16>>>(global.ptr, out.ptr);
  const std::vector<uint4> got = out.download();
  CopyRun run;
  for (int i = 0; i < 4; i++) run.row[i] = {rows[i].x, rows[i].y, rows[i].z, rows[i].w};
  for (int i = 0; i < 3; i++) run.out[i] = {got[i].x, got[i].y, got[i].z, got[i].w};
  return run;
}

const std::vector<unsigned> kStaleSlot = {kStale, kStale, kStale, kStale};

TEST_F(EmuPtx, cp_async_lands_only_at_the_wait_group_that_covers_it) {
  const CopyRun run = run_copies<copy_then_wait>();
  EXPECT_EQ(run.out[0], kStaleSlot) << "read right after cp.async";
  EXPECT_EQ(run.out[1], kStaleSlot) << "read right after commit_group";
  EXPECT_EQ(run.out[2], run.row[0]) << "read after wait_group 0";
}

TEST_F(EmuPtx, wait_group_1_lands_only_the_groups_before_the_newest) {
  const CopyRun run = run_copies<two_groups>();
  EXPECT_EQ(run.out[0], run.row[0]) << "the older group";
  EXPECT_EQ(run.out[1], kStaleSlot) << "the newest group";
  EXPECT_EQ(run.out[2], run.row[1]) << "the same group once an empty one is committed after it";
}

TEST_F(EmuPtx, wait_group_0_leaves_uncommitted_copies_in_flight_and_wait_all_lands_them) {
  const CopyRun run = run_copies<uncommitted_copy>();
  EXPECT_EQ(run.out[0], run.row[0]);
  EXPECT_EQ(run.out[1], kStaleSlot) << "an uncommitted copy after wait_group 0";
  EXPECT_EQ(run.out[2], run.row[1]) << "after wait_all";
}

TEST_F(EmuPtx, cp_async_ca_of_4_and_8_bytes_writes_only_those_bytes) {
  const CopyRun run = run_copies<small_copies>();
  EXPECT_EQ(run.out[0], (std::vector<unsigned>{kStale, run.row[0][1], run.row[1][2], run.row[1][3]}));
}

// The copy's shared or global address `offset` bytes off its alignment.
__global__ void misaligned_copy(const unsigned char* global, int shared_offset, int global_offset) {
  extern __shared__ __align__(16) uint4 slots[];
  emu::cp_async_cg(slot_address(slots, 0) + shared_offset, global + global_offset);
  emu::cp_async_wait_all();
}

TEST_F(EmuPtx, a_misaligned_cp_async_is_caught) {
  Device<unsigned char> global(64);
  EXPECT_DEATH(
      {
        misaligned_copy<<<1, 1, 64>>>(global.ptr, 8, 0);
        cudaDeviceSynchronize();
      },
      "kernel misaligned_copy, block \\(0,0,0\\), thread \\(0,0,0\\): cp\\.async\\.cg\\.shared\\.global: shared "
      "address 0x8 or global address 0x[0-9a-f]+ not 16-byte aligned");
  EXPECT_DEATH(
      {
        misaligned_copy<<<1, 1, 64>>>(global.ptr, 0, 4);
        cudaDeviceSynchronize();
      },
      "cp\\.async\\.cg\\.shared\\.global: shared address 0x0 or global address 0x[0-9a-f]+ not 16-byte aligned");
}

TEST_F(EmuPtx, a_cp_async_from_host_memory_is_caught) {
  alignas(16) static unsigned char host[64];
  EXPECT_DEATH(
      {
        misaligned_copy<<<1, 1, 64>>>(host, 0, 0);
        cudaDeviceSynchronize();
      },
      "cp\\.async\\.cg\\.shared\\.global: global address 0x[0-9a-f]+ \\(\\+16 bytes\\) not inside one device "
      "allocation");
}

TEST_F(EmuPtx, a_cp_async_past_dynamic_shared_memory_is_caught) {
  Device<unsigned char> global(64);
  EXPECT_DEATH(
      {
        misaligned_copy<<<1, 1, 64>>>(global.ptr, 64, 0);
        cudaDeviceSynchronize();
      },
      "cp\\.async\\.cg\\.shared\\.global: shared address 64 \\(\\+16 bytes\\) outside the block's 64 bytes");
}

#if defined(__SANITIZE_THREAD__)
// Thread 0 writes a shared word, thread 1 reads it, with no barrier between,
// each between two cp.async: the allocation table cp.async consults must not
// order them, whichever runs first.
__global__ void race_around_copies(const uint4* global, int* out) {
  extern __shared__ __align__(16) uint4 slots[];
  int* word = reinterpret_cast<int*>(slots + 4);
  emu::cp_async_cg(slot_address(slots, threadIdx.x), global);
  if (threadIdx.x == 0) *word = 1;
  else *out = *word;
  emu::cp_async_cg(slot_address(slots, 2 + threadIdx.x), global);
  emu::cp_async_wait_all();
}

TEST_F(EmuPtx, a_race_between_threads_that_use_cp_async_is_one_thread_sanitizer_reports) {
  setenv("TSAN_OPTIONS", "halt_on_error=1", 1);
  Device<uint4> global(1);
  Device<int> out(1);
  EXPECT_DEATH(
      {
        race_around_copies<<<1, 2, 5 * 16>>>(global.ptr, out.ptr);
        cudaDeviceSynchronize();
      },
      "ThreadSanitizer: data race");
}
#endif

}  // namespace
