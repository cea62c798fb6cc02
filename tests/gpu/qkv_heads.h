// The q and k heads at the start of qkv rows, which qk-norm and RoPE change in
// place, for their gpu tests: the shapes tried, and the check that the heads
// match the CPU result within bf16 rounding while every other element of the
// rows (the v heads) keeps its bits.
#pragma once

#include <string>
#include <vector>

#include "gpu/expect_close.h"

namespace llmdion::test {

// `heads` heads of hs values from the start of each row, rows `stride` apart.
struct QkvHeads {
  int heads, hs, stride;
  bool covers(size_t i) const { return int(i % size_t(stride)) < heads * hs; }
  std::string name() const {
    return "heads=" + std::to_string(heads) + " hs=" + std::to_string(hs) + " stride=" + std::to_string(stride);
  }
};

// q and k heads with the v heads after them (stride = (NH + 2 NKV) hs): one
// head size per lane count of the kernels' head groups (4 to 32 lanes of
// 16-byte packs, a size of 12 packs in 8 lanes), grouped kv heads; then head
// sizes and strides off the 16-byte packs (scalar path, 8 and 32 lanes).
const QkvHeads kQkvHeads[] = {
    {3 + 1, 32, (3 + 2) * 32},   {8 + 4, 64, (8 + 8) * 64}, {1 + 1, 128, (1 + 2) * 128}, {2 + 1, 96, (2 + 2) * 96},
    {1 + 1, 256, (1 + 2) * 256}, {3, 12, 41},               {2, 40, 121},
};

// got against want on the heads, and against the input's bits everywhere else.
inline void expect_heads_close(const std::vector<float>& got, const std::vector<float>& want,
                               const std::vector<float>& input, const QkvHeads& layout, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_EQ(got.size(), input.size()) << what;
  std::vector<float> heads_got, heads_want, rest_got, rest_input;
  for (size_t i = 0; i < got.size(); i++) {
    if (layout.covers(i)) {
      heads_got.push_back(got[i]);
      heads_want.push_back(want[i]);
    } else {
      rest_got.push_back(got[i]);
      rest_input.push_back(input[i]);
    }
  }
  expect_bf16_output_close(heads_got, heads_want, what);
  expect_bitwise_equal(rest_got, rest_input, "outside the heads, " + what);
}

}  // namespace llmdion::test
