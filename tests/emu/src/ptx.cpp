// The PTX of emu/ptx.h: mma and ldmatrix as warp collectives that the last
// lane to arrive completes for the whole warp, cp.async as copies each thread
// keeps until its wait_group lands them. Semantics from the PTX ISA (the
// sections named in emu/ptx.h), not from what our kernels expect.
#include "emu/ptx.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "emu/kernel.h"
#include "emu/runtime.h"
#include "sanitizers.h"

#if defined(__SANITIZE_THREAD__)
extern "C" {
void AnnotateIgnoreSyncBegin(const char* file, int line);
void AnnotateIgnoreSyncEnd(const char* file, int line);
}
#endif

namespace emu {
namespace {

constexpr unsigned kFullWarp = 0xffffffffu;

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

double bf16_value(uint32_t bits16) {
  const uint32_t bits = bits16 << 16;
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

uint16_t half_of(uint32_t reg, int high) { return uint16_t(reg >> (16 * high)); }

// ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 --------------------------

const char* const kMma = "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32";

struct MmaLane {
  uint32_t a[4];
  uint32_t b[2];
  float c[4];
  float d[4];
};

// Gathers A, B and C from the lanes' fragments, forms D = A B + C, and hands
// each lane its fragment of D. Every product of two bf16 is exact, and so is
// their sum in double unless magnitudes spread past 2^53: each output is that
// sum plus C, rounded once to float. (The hardware's fp32 accumulation order is
// unspecified; results on a GPU may differ from these in the last bits.)
void complete_mma(void* const lanes[32], unsigned) {
  double A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; lane++) {
    const auto& f = *static_cast<const MmaLane*>(lanes[lane]);
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 8; i++)
      A[g + 8 * (i / 2 % 2)][2 * t + i % 2 + 8 * (i / 4)] = bf16_value(half_of(f.a[i / 2], i % 2));
    for (int i = 0; i < 4; i++) B[2 * t + i % 2 + 8 * (i / 2)][g] = bf16_value(half_of(f.b[i / 2], i % 2));
    for (int i = 0; i < 4; i++) C[g + 8 * (i / 2)][2 * t + i % 2] = f.c[i];
  }
  for (int lane = 0; lane < 32; lane++) {
    auto& f = *static_cast<MmaLane*>(lanes[lane]);
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
      const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
      double sum = C[row][col];
      for (int k = 0; k < 16; k++) sum += A[row][k] * B[k][col];
      f.d[i] = float(sum);
    }
  }
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16 ------------------------------

struct LdmatrixLane {
  uint16_t row[8];  // the row at this lane's address, for lanes 0 .. 8 * count - 1
  uint32_t registers[4];
  int count;
  bool transposed;
};

const char* ldmatrix_name(int count, bool transposed) {
  static const char* const names[2][3] = {
      {"ldmatrix.sync.aligned.m8n8.x1.shared.b16", "ldmatrix.sync.aligned.m8n8.x2.shared.b16",
       "ldmatrix.sync.aligned.m8n8.x4.shared.b16"},
      {"ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16", "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16",
       "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"}};
  return names[transposed][count == 1 ? 0 : count == 2 ? 1 : 2];
}

void complete_ldmatrix(void* const lanes[32], unsigned) {
  const auto& first = *static_cast<const LdmatrixLane*>(lanes[0]);
  const int count = first.count;
  // rows[m][r]: row r of matrix m, read by lane 8m + r.
  const uint16_t* rows[4][8];
  for (int lane = 0; lane < 8 * count; lane++) rows[lane / 8][lane % 8] = static_cast<const LdmatrixLane*>(lanes[lane])->row;
  for (int lane = 0; lane < 32; lane++) {
    auto& l = *static_cast<LdmatrixLane*>(lanes[lane]);
    const int row = lane / 4, col = 2 * (lane % 4);
    for (int m = 0; m < count; m++) {
      const uint16_t low = first.transposed ? rows[m][col][row] : rows[m][row][col];
      const uint16_t high = first.transposed ? rows[m][col + 1][row] : rows[m][row][col + 1];
      l.registers[m] = uint32_t(low) | uint32_t(high) << 16;
    }
  }
}

// ---- cp.async ---------------------------------------------------------------------------

// Whether `global` is device memory, asked of the allocation table under its
// mutex: under ThreadSanitizer that mutex must not order the CUDA threads that
// take it, or it would hide their races.
bool in_device_memory(const void* global, unsigned bytes) {
#if defined(__SANITIZE_THREAD__)
  AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
  sanitizers::IgnoreAccesses ignore;
  const bool inside = is_device_memory(global, bytes);
  AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  return inside;
#else
  return is_device_memory(global, bytes);
#endif
}

void cp_async(const char* what, uint32_t shared, const void* global, unsigned bytes) {
  if (bytes != 4 && bytes != 8 && bytes != 16)
    fatal(std::string(what) + ": a copy of " + std::to_string(bytes) + " bytes (4, 8 or 16)");
  if (shared % bytes != 0 || reinterpret_cast<uintptr_t>(global) % bytes != 0)
    fatal(std::string(what) + ": shared address " + hex(shared) + " or global address " +
          hex(reinterpret_cast<uintptr_t>(global)) + " not " + std::to_string(bytes) + "-byte aligned");
  if (!in_device_memory(global, bytes))
    fatal(std::string(what) + ": global address " + hex(reinterpret_cast<uintptr_t>(global)) + " (+" +
          std::to_string(bytes) + " bytes) not inside one device allocation");
  unsigned char* to = shared_window(shared, bytes, what);
  this_thread().async_open.push_back({to, global, bytes});
}

}  // namespace

void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  MmaLane lane;
  std::memcpy(lane.a, a, sizeof(lane.a));
  std::memcpy(lane.b, b, sizeof(lane.b));
  std::memcpy(lane.c, c, sizeof(lane.c));
  warp_collective(kMma, kFullWarp, &lane, complete_mma);
  std::memcpy(d, lane.d, sizeof(lane.d));
}

// Each lane of the first 8 * count reads the row at its own address, as the
// lane it is: what the warp exchanges after is registers.
void ldmatrix_m8n8(uint32_t* registers, int count, bool transposed, uint32_t address) {
  LdmatrixLane lane{{}, {}, count, transposed};
  const int lane_index = this_thread().rank % 32;
  if (lane_index < 8 * count) {
    if (address % 16 != 0)
      fatal(std::string(ldmatrix_name(count, transposed)) + ": lane " + std::to_string(lane_index) +
            " gives row address " + hex(address) + ", not 16-byte aligned");
    std::memcpy(lane.row, shared_window(address, 16, "ldmatrix"), sizeof(lane.row));
  }
  warp_collective(ldmatrix_name(count, transposed), kFullWarp, &lane, complete_ldmatrix);
  std::memcpy(registers, lane.registers, count * sizeof(uint32_t));
}

void cp_async_ca(uint32_t shared, const void* global, unsigned bytes) {
  cp_async("cp.async.ca.shared.global", shared, global, bytes);
}
void cp_async_cg(uint32_t shared, const void* global) { cp_async("cp.async.cg.shared.global", shared, global, 16); }

void cp_async_commit_group() {
  Thread& thread = this_thread();
  thread.async_groups.push_back(std::exchange(thread.async_open, {}));
}

// Copies not yet committed belong to no group, and wait_group leaves them in
// flight (land_async_copies with 0 groups left would land them too).
void cp_async_wait_group(unsigned groups_left) {
  Thread& thread = this_thread();
  std::vector<AsyncCopy> uncommitted = std::exchange(thread.async_open, {});
  land_async_copies(thread, groups_left);
  thread.async_open = std::move(uncommitted);
}

void cp_async_wait_all() {
  cp_async_commit_group();
  cp_async_wait_group(0);
}

}  // namespace emu
