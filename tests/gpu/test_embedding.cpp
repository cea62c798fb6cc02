// cuda/embedding.cu against cpu/embedding.cpp: the forward and both gradients
// agree to the bit (the same fp32 adds in the same order), repeated tokens
// included, with and without learned positions, on odd widths and on the
// 16-byte path, and the grouping of positions by token.
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

struct EmbeddingShape {
  int B, T, C, vocab;
};

// A few vocabularies far smaller than B*T, so that tokens repeat.
const EmbeddingShape kShapes[] = {{1, 1, 8, 5}, {1, 7, 13, 3}, {4, 16, 768, 1000}, {3, 111, 13, 17}, {2, 32, 1600, 40}};


std::string name(const EmbeddingShape& s, bool positions) {
  return "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
         " vocab=" + std::to_string(s.vocab) + (positions ? " with wpe" : " without wpe");
}

// The token buckets of `tokens`, on the device for as long as this lives.
struct DeviceBuckets {
  std::vector<int32_t> distinct, starts, positions;
  DeviceArray<int32_t> d_distinct, d_starts, d_positions;
  explicit DeviceBuckets(const std::vector<int32_t>& tokens)
      : d_distinct(tokens.size()), d_starts(tokens.size() + 1), d_positions(tokens.size()) {
    cuda::group_positions_by_token(tokens.data(), int(tokens.size()), distinct, starts, positions);
    d_distinct.upload(distinct);
    d_starts.upload(starts);
    d_positions.upload(positions);
  }
  cuda::TokenBuckets buckets() const {
    return {d_distinct.ptr, d_starts.ptr, d_positions.ptr, int(distinct.size())};
  }
};

// A host function: it runs with or without a GPU.
TEST(CudaEmbedding, grouping_lists_each_tokens_positions_in_ascending_order) {
  const std::vector<int32_t> tokens = {5, 2, 5, 0, 2, 5, 7};
  std::vector<int32_t> distinct, starts, positions;
  cuda::group_positions_by_token(tokens.data(), int(tokens.size()), distinct, starts, positions);
  EXPECT_EQ(distinct, (std::vector<int32_t>{0, 2, 5, 7}));
  EXPECT_EQ(starts, (std::vector<int32_t>{0, 1, 3, 6, 7}));
  EXPECT_EQ(positions, (std::vector<int32_t>{3, 1, 4, 0, 2, 5, 6}));

  cuda::group_positions_by_token(tokens.data(), 0, distinct, starts, positions);
  EXPECT_TRUE(distinct.empty());
  EXPECT_EQ(starts, (std::vector<int32_t>{0}));
  EXPECT_TRUE(positions.empty());
}

TEST(CudaEmbedding, forward_equals_cpu_to_the_bit) {
  LLMDION_REQUIRE_GPU();
  for (const EmbeddingShape& s : kShapes)
    for (bool positions : {true, false}) {
      const int N = s.B * s.T;
      const std::vector<int32_t> tokens = random_tokens(N, s.vocab, 1);
      const std::vector<float> wte = random_bf16_exact(size_t(s.vocab) * s.C, 2);
      const std::vector<float> wpe = random_bf16_exact(size_t(s.T) * s.C, 3);
      std::vector<float> want(size_t(N) * s.C);
      cpu::embedding_forward<float>(want.data(), tokens.data(), wte.data(), positions ? wpe.data() : nullptr, s.B,
                                    s.T, s.C);

      DeviceArray<int32_t> d_tokens(tokens);
      DeviceArray<bf16> d_wte(to_bf16(wte)), d_wpe(to_bf16(wpe)), d_out(want.size());
      d_out.poison();
      cuda::embedding_forward(d_out.ptr, d_tokens.ptr, d_wte.ptr, positions ? d_wpe.ptr : nullptr, s.B, s.T, s.C, 0);
      expect_bitwise_equal(to_float(d_out.download()), to_float(to_bf16(want)), name(s, positions));
    }
}

// wte one element past a 16-byte boundary: the scalar path on a width of whole packs.
TEST(CudaEmbedding, forward_on_unaligned_tables_equals_cpu) {
  LLMDION_REQUIRE_GPU();
  const EmbeddingShape s = {2, 5, 64, 9};
  const int N = s.B * s.T;
  const std::vector<int32_t> tokens = random_tokens(N, s.vocab, 4);
  const std::vector<float> wte = random_bf16_exact(size_t(s.vocab) * s.C + 1, 5);
  const std::vector<float> wpe = random_bf16_exact(size_t(s.T) * s.C, 6);
  std::vector<float> want(size_t(N) * s.C);
  cpu::embedding_forward<float>(want.data(), tokens.data(), wte.data() + 1, wpe.data(), s.B, s.T, s.C);

  DeviceArray<int32_t> d_tokens(tokens);
  DeviceArray<bf16> d_wte(to_bf16(wte)), d_wpe(to_bf16(wpe)), d_out(want.size());
  d_out.poison();
  cuda::embedding_forward(d_out.ptr, d_tokens.ptr, d_wte.ptr + 1, d_wpe.ptr, s.B, s.T, s.C, 0);
  expect_bitwise_equal(to_float(d_out.download()), to_float(to_bf16(want)), name(s, true));
}

// From nonzero gradients, so the kernel must add to them; twice, for the same bits.
TEST(CudaEmbedding, backward_accumulates_like_cpu_to_the_bit_and_repeats_exactly) {
  LLMDION_REQUIRE_GPU();
  for (const EmbeddingShape& s : kShapes)
    for (bool positions : {true, false}) {
      const int N = s.B * s.T;
      const std::vector<int32_t> tokens = random_tokens(N, s.vocab, 7);
      const std::vector<float> dout = random_bf16_exact(size_t(N) * s.C, 8);
      const std::vector<float> dwte_start = random_bf16_exact(size_t(s.vocab) * s.C, 9, 3.0f);
      const std::vector<float> dwpe_start = random_bf16_exact(size_t(s.T) * s.C, 10, 3.0f);
      std::vector<float> dwte_want = dwte_start, dwpe_want = dwpe_start;
      cpu::embedding_backward<float>(dwte_want.data(), positions ? dwpe_want.data() : nullptr, dout.data(),
                                     tokens.data(), s.B, s.T, s.C);

      DeviceBuckets buckets(tokens);
      DeviceArray<bf16> d_dout(to_bf16(dout));
      DeviceArray<float> d_dwte(dwte_start), d_dwpe(dwpe_start);
      std::vector<float> first_dwte, first_dwpe;
      for (int run = 0; run < 2; run++) {
        d_dwte.upload(dwte_start);
        d_dwpe.upload(dwpe_start);
        cuda::embedding_backward(d_dwte.ptr, positions ? d_dwpe.ptr : nullptr, d_dout.ptr, buckets.buckets(), s.B, s.T,
                                 s.C, 0);
        const std::vector<float> dwte = d_dwte.download(), dwpe = d_dwpe.download();
        if (run == 1) {
          expect_bitwise_equal(dwte, first_dwte, "dwte, second run, " + name(s, positions));
          expect_bitwise_equal(dwpe, first_dwpe, "dwpe, second run, " + name(s, positions));
          continue;
        }
        expect_bitwise_equal(dwte, dwte_want, "dwte, " + name(s, positions));
        expect_bitwise_equal(dwpe, dwpe_want, "dwpe, " + name(s, positions));  // untouched without wpe
        first_dwte = dwte;
        first_dwpe = dwpe;
      }
    }
}

}  // namespace
}  // namespace llmdion::test
