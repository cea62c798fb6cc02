// cuda/swiglu.cu against cpu/swiglu.cpp on rows [gate | up]: forward and
// backward within bf16 rounding element by element, for rows N in {1, 7, 333}
// and hidden widths H in {8, 13, 768} (13 takes the scalar path, the rest
// 16-byte packs), gates over [-8, 8) so the sigmoid saturates both ways,
// every output poisoned first.
#include <string>

#include "gpu/expect_close.h"
#include "gpu/gpu_test_util.h"
#include "model/cpu/kernels.h"

namespace llmdion::test {
namespace {

const int kRows[] = {1, 7, 333};
const int kHidden[] = {8, 13, 768};

std::string name(int N, int H) { return "N=" + std::to_string(N) + " H=" + std::to_string(H); }

// Rows [gate | up]: gates in [-8, 8), ups in [-2, 2).
std::vector<float> random_gate_up(int N, int H, uint64_t seed) {
  const std::vector<float> gates = random_bf16_exact(size_t(N) * H, seed, 8.0f);
  const std::vector<float> ups = random_bf16_exact(size_t(N) * H, seed + 1, 2.0f);
  std::vector<float> gate_up(2 * size_t(N) * H);
  for (size_t n = 0; n < size_t(N); n++)
    for (size_t i = 0; i < size_t(H); i++) {
      gate_up[n * 2 * H + i] = gates[n * H + i];
      gate_up[n * 2 * H + H + i] = ups[n * H + i];
    }
  return gate_up;
}

TEST(CudaSwiglu, forward_matches_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (int H : kHidden) {
      const std::vector<float> gate_up = random_gate_up(N, H, 1);
      std::vector<float> want(size_t(N) * H);
      cpu::swiglu_forward<float>(want.data(), gate_up.data(), N, H);

      DeviceArray<bf16> d_gate_up(to_bf16(gate_up)), d_out(want.size());
      d_out.poison();
      cuda::swiglu_forward(d_out.ptr, d_gate_up.ptr, N, H, 0);
      expect_bf16_output_close(to_float(d_out.download()), want, name(N, H));
    }
}

TEST(CudaSwiglu, backward_writes_gate_and_up_gradients_like_cpu) {
  LLMDION_REQUIRE_GPU();
  for (int N : kRows)
    for (int H : kHidden) {
      const std::vector<float> gate_up = random_gate_up(N, H, 3), dout = random_bf16_exact(size_t(N) * H, 5);
      std::vector<float> want(gate_up.size());
      cpu::swiglu_backward<float>(want.data(), gate_up.data(), dout.data(), N, H);

      DeviceArray<bf16> d_gate_up(to_bf16(gate_up)), d_dout(to_bf16(dout)), d_d_gate_up(gate_up.size());
      d_d_gate_up.poison();
      cuda::swiglu_backward(d_d_gate_up.ptr, d_gate_up.ptr, d_dout.ptr, N, H, 0);
      expect_bf16_output_close(to_float(d_d_gate_up.download()), want, name(N, H));
    }
}

}  // namespace
}  // namespace llmdion::test
