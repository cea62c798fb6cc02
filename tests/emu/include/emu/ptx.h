// The PTX our kernels write as inline asm, for the host: each instruction a
// function with its operands, with the semantics of NVIDIA's PTX ISA. The
// asm sits in a small __device__ function that calls its twin here under
// __CUDACC_EMULATED__. Shared-memory operands are shared-window addresses (what
// __cvta_generic_to_shared gives, a 32-bit "r" operand in the asm); a fault
// (misaligned, outside shared memory, a lane missing from a collective) stops
// the program naming the kernel, block and thread.
#pragma once

#include <cstdint>

namespace emu {

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, c (PTX ISA,
// "Matrix Fragments for mma.m16n8k16 with floating point type"): D = A B + C,
// A 16 x 16 and B 16 x 8 in bf16, C and D 16 x 8 in fp32, each spread over the
// warp's 32 lanes, every one of which must arrive. With g = lane / 4 and
// t = lane % 4, element i of a fragment (the low half of a b32 register the
// smaller i) sits at
//   A: a0..a7 in a[0..3], row g + 8 (i / 2 % 2), col 2t + i % 2 + 8 (i / 4);
//   B: b0..b3 in b[0..1], row 2t + i % 2 + 8 (i / 2), col g;
//   C, D: c0..c3, row g + 8 (i / 2), col 2t + i % 2.
// d and c may be the same array.
void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]);

// ldmatrix.sync.aligned.m8n8.x{count}{.trans}.shared.b16 r, [address] (PTX ISA,
// "ldmatrix"): a warp collective loading `count` (1, 2 or 4) 8x8 matrices of
// 16-bit elements. Lanes 8m .. 8m + 7 give the addresses of rows 0..7 of
// matrix m (the other lanes' addresses are not used); each row is 16
// contiguous bytes at a 16-byte aligned address. Register m of lane l receives
// row l / 4 of matrix m, elements 2 (l % 4) and 2 (l % 4) + 1, the first in the
// low half; with .trans, those of the transposed matrix.
void ldmatrix_m8n8(uint32_t* registers, int count, bool transposed, uint32_t address);

template <int kCount>
void ldmatrix(uint32_t (&registers)[kCount], uint32_t address) {
  static_assert(kCount == 1 || kCount == 2 || kCount == 4, "ldmatrix loads .x1, .x2 or .x4");
  ldmatrix_m8n8(registers, kCount, false, address);
}
template <int kCount>
void ldmatrix_trans(uint32_t (&registers)[kCount], uint32_t address) {
  static_assert(kCount == 1 || kCount == 2 || kCount == 4, "ldmatrix loads .x1, .x2 or .x4");
  ldmatrix_m8n8(registers, kCount, true, address);
}

// cp.async (PTX ISA, "cp.async", "cp.async.commit_group", "cp.async.wait_group"):
// cp.async.ca.shared.global [shared], [global], bytes (4, 8 or 16) and
// cp.async.cg.shared.global [shared], [global], 16 start a copy from device
// memory into shared memory, both addresses aligned to its size; it lands only
// at the wait that covers it, so a read of the destination before then sees
// the old bytes. commit_group makes the copies started since the last one a
// group (perhaps empty); wait_group n lands every committed group but the
// newest n, leaving uncommitted copies in flight; wait_all is commit_group
// then wait_group 0.
void cp_async_ca(uint32_t shared, const void* global, unsigned bytes);
void cp_async_cg(uint32_t shared, const void* global);
void cp_async_commit_group();
void cp_async_wait_group(unsigned groups_left);
void cp_async_wait_all();

}  // namespace emu
