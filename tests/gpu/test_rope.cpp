// cuda/rope.cu against cpu/rope.cpp: the forward turn and the inverse one, in
// place on the q and k heads of qkv rows (qkv_heads.h: head sizes whose half
// is whole 16-byte packs, and odd ones on the scalar path), for batches of B
// sequences of T positions, so positions wrap at T; the tables are the CPU's,
// uploaded as the model does. Heads within bf16 rounding element by element,
// the rest of each row untouched to the bit.
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "gpu/qkv_heads.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

struct Batch {
  int B, T;
};
const Batch kBatches[] = {{1, 1}, {1, 7}, {3, 7}, {9, 37}};  // N = 1, 7, 21, 333

void check_rotate(const Batch& batch, const QkvHeads& layout, bool inverse) {
  const int N = batch.B * batch.T;
  const std::string what = "B=" + std::to_string(batch.B) + " T=" + std::to_string(batch.T) + " " + layout.name() +
                           (inverse ? " inverse" : "");
  std::vector<float> cos_table(size_t(batch.T) * (layout.hs / 2)), sin_table(cos_table.size());
  cpu::rope_tables<float>(cos_table.data(), sin_table.data(), batch.T, layout.hs, 10000.0);
  const std::vector<float> x = random_bf16_exact(size_t(N) * layout.stride, inverse ? 2 : 1, 2.0f);
  std::vector<float> want = x;
  cpu::rope_rotate<float>(want.data(), cos_table.data(), sin_table.data(), N, batch.T, layout.heads, layout.hs,
                          layout.stride, inverse);

  DeviceArray<bf16> d_x(to_bf16(x));
  DeviceArray<float> d_cos(cos_table), d_sin(sin_table);
  cuda::rope_rotate(d_x.ptr, d_cos.ptr, d_sin.ptr, N, batch.T, layout.heads, layout.hs, layout.stride, inverse, 0);
  expect_heads_close(to_float(d_x.download()), want, x, layout, what);
}

TEST(CudaRope, forward_rotates_the_heads_in_place_like_cpu) {
  LLMDION_REQUIRE_GPU();
  for (const Batch& batch : kBatches)
    for (const QkvHeads& layout : kQkvHeads) check_rotate(batch, layout, false);
}

TEST(CudaRope, inverse_rotates_the_heads_back_like_cpu) {
  LLMDION_REQUIRE_GPU();
  for (const Batch& batch : kBatches)
    for (const QkvHeads& layout : kQkvHeads) check_rotate(batch, layout, true);
}

}  // namespace
}  // namespace llmdion::test
