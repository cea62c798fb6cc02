// The execution layer's threads, barriers, warp collectives, launches, memory
// and streams against the CUDA C++ Programming Guide and the Runtime API, and
// the faults it must catch: each planted bug below is one a GPU would show
// only sometimes, or as a crash, and the layer must name.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

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

class EmuKernel : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
  void TearDown() override { emu::set_seed(1); }
};

// ---- threads and blocks -----------------------------------------------------------

__global__ void write_coordinates(int* out) {
  const int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[block * blockDim.x * blockDim.y * blockDim.z + thread] = block * 10000 + thread;
}

TEST_F(EmuKernel, every_thread_of_every_block_runs_once_with_its_coordinates) {
  Device<int> out(3 * 2 * 4 * 5 * 3 * 2);
  write_coordinates<<<dim3(3, 2, 4), dim3(5, 3, 2)>>>(out.ptr);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int> host = out.download();
  for (int b = 0; b < 24; b++)
    for (int t = 0; t < 30; t++) EXPECT_EQ(host[b * 30 + t], b * 10000 + t);
}

// Every block writes the same word: the result is whichever block ran last.
__global__ void last_block_wins(int* out) {
  if (threadIdx.x == 0) *out = blockIdx.x;
}

TEST_F(EmuKernel, blocks_run_in_a_seeded_random_order) {
  Device<int> out(1);
  std::set<int> winners;
  for (unsigned long long seed = 1; seed <= 8; seed++) {
    emu::set_seed(seed);
    last_block_wins<<<16, 32>>>(out.ptr);
    winners.insert(out.download()[0]);
  }
  EXPECT_GT(winners.size(), 1u) << "a dependence on block order must change results across seeds";
}

// ---- barriers ------------------------------------------------------------------------

// Each thread stores its value, then reads its right neighbour's: correct only
// when every store happens before every load (the barrier), whatever the order.
// (`salt` differs between runs, so what an earlier run left in shared memory
// cannot pass for this run's values.)
template <bool kBarrier>
__global__ void neighbour_sum(int* out, int salt) {
  __shared__ int values[128];
  values[threadIdx.x] = int(threadIdx.x) + salt;
  if (kBarrier) __syncthreads();
  out[threadIdx.x] = values[threadIdx.x] + values[(threadIdx.x + 1) % blockDim.x];
}

std::vector<int> neighbour_sums(int salt) {
  std::vector<int> want(128);
  for (int i = 0; i < 128; i++) want[i] = i + (i + 1) % 128 + 2 * salt;
  return want;
}

TEST_F(EmuKernel, syncthreads_orders_every_store_before_every_load_across_seeds) {
  Device<int> out(128);
  for (int seed = 1; seed <= 8; seed++) {
    emu::set_seed(seed);
    neighbour_sum<true><<<1, 128>>>(out.ptr, seed * 1000);
    ASSERT_EQ(out.download(), neighbour_sums(seed * 1000)) << "seed " << seed;
  }
}

TEST_F(EmuKernel, a_missing_syncthreads_changes_results_across_seeds) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "under ThreadSanitizer its race is a_missing_syncthreads_is_a_race_thread_sanitizer_reports";
#endif
  Device<int> out(128);
  int wrong = 0;
  for (int seed = 1; seed <= 8; seed++) {
    emu::set_seed(seed);
    neighbour_sum<false><<<1, 128>>>(out.ptr, seed * 1000);
    wrong += out.download() != neighbour_sums(seed * 1000);
  }
  EXPECT_GT(wrong, 0) << "threads must not all run to the load before the first store";
}

#if defined(__SANITIZE_THREAD__)
// The racecheck: every CUDA thread is a fiber ThreadSanitizer tells apart, and
// only barriers, warp collectives and block boundaries order them.
TEST_F(EmuKernel, a_missing_syncthreads_is_a_race_thread_sanitizer_reports) {
  setenv("TSAN_OPTIONS", "halt_on_error=1", 1);
  Device<int> out(128);
  EXPECT_DEATH(
      {
        neighbour_sum<false><<<1, 128>>>(out.ptr, 7);
        cudaDeviceSynchronize();
      },
      "ThreadSanitizer: data race(.|\n)*neighbour_sum<false>");
}
#endif

__global__ void barrier_reductions(int* out) {
  const int odd = threadIdx.x % 2;
  const int results[4] = {__syncthreads_count(odd), __syncthreads_or(threadIdx.x == 37),
                          __syncthreads_and(threadIdx.x < 1000), __syncthreads_and(odd)};
  if (threadIdx.x < 4) out[threadIdx.x] = results[threadIdx.x];
}

TEST_F(EmuKernel, syncthreads_reductions_count_or_and_over_the_block) {
  Device<int> out(4);
  barrier_reductions<<<1, 96>>>(out.ptr);
  EXPECT_EQ(out.download(), (std::vector<int>{48, 1, 1, 0}));
}

__global__ void divergent_barrier(int* out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1;
}

TEST_F(EmuKernel, a_barrier_in_divergent_code_is_caught) {
  Device<int> out(64);
  EXPECT_DEATH(
      {
        divergent_barrier<<<1, 64>>>(out.ptr);
        cudaDeviceSynchronize();
      },
      "kernel divergent_barrier, block \\(0,0,0\\).*__syncthreads not reached by every thread");
}

__global__ void early_exit_then_barrier(int* out, int n) {
  if (int(threadIdx.x) >= n) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

TEST_F(EmuKernel, a_thread_that_exits_before_a_barrier_is_caught) {
  Device<int> out(64);
  EXPECT_DEATH(
      {
        early_exit_then_barrier<<<1, 64>>>(out.ptr, 40);
        cudaDeviceSynchronize();
      },
      "__syncthreads not reached by every thread");
}

// ---- warp collectives (Programming Guide, "Warp Shuffle Functions") -------------------

__global__ void shuffles(int* out) {
  const int lane = threadIdx.x % 32;
  int* row = out + threadIdx.x * 8;
  row[0] = __shfl_sync(0xffffffffu, lane * 10, 5);           // every lane reads lane 5
  row[1] = __shfl_sync(0xffffffffu, lane * 10, lane + 3, 8);  // srcLane modulo width, in the lane's group of 8
  row[2] = __shfl_up_sync(0xffffffffu, lane * 10, 3, 16);     // lane - 3, or its own below its group
  row[3] = __shfl_down_sync(0xffffffffu, lane * 10, 3, 16);   // lane + 3, or its own past its group
  row[4] = __shfl_xor_sync(0xffffffffu, lane * 10, 1);
  row[5] = __shfl_xor_sync(0xffffffffu, lane * 10, 8, 8);     // a later group: the lane's own value
  row[6] = int(__ballot_sync(0xffffffffu, lane % 3 == 0));
  row[7] = __any_sync(0xffffffffu, lane == 31) + 2 * __all_sync(0xffffffffu, lane < 31);
}

TEST_F(EmuKernel, shuffles_and_votes_follow_the_programming_guide) {
  Device<int> out(64 * 8);
  shuffles<<<1, 64>>>(out.ptr);
  const std::vector<int> got = out.download();
  unsigned ballot = 0;
  for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
  for (int t = 0; t < 64; t++) {
    const int lane = t % 32;
    const int* row = got.data() + t * 8;
    EXPECT_EQ(row[0], 50);
    EXPECT_EQ(row[1], (lane / 8 * 8 + (lane + 3) % 8) * 10);
    EXPECT_EQ(row[2], (lane % 16 >= 3 ? lane - 3 : lane) * 10);
    EXPECT_EQ(row[3], (lane % 16 + 3 < 16 ? lane + 3 : lane) * 10);
    EXPECT_EQ(row[4], (lane ^ 1) * 10);
    EXPECT_EQ(row[5], ((lane ^ 8) / 8 > lane / 8 ? lane : lane ^ 8) * 10);
    EXPECT_EQ(unsigned(row[6]), ballot);
    EXPECT_EQ(row[7], 1);
  }
}

// Two halves of a warp, each shuffling within its own 16-lane mask.
__global__ void half_warp_sums(float* out) {
  const int lane = threadIdx.x % 32;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  float x = float(lane);
  for (int offset = 8; offset > 0; offset /= 2) x += __shfl_xor_sync(mask, x, offset);
  out[threadIdx.x] = x;
}

TEST_F(EmuKernel, disjoint_masks_of_one_warp_shuffle_independently) {
  Device<float> out(32);
  half_warp_sums<<<1, 32>>>(out.ptr);
  const std::vector<float> got = out.download();
  for (int l = 0; l < 32; l++) EXPECT_EQ(got[l], l < 16 ? 120.0f : 376.0f);
}

__global__ void shuffle_after_exit(float* out) {
  if (threadIdx.x == 7) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

TEST_F(EmuKernel, a_shuffle_whose_mask_names_an_exited_lane_is_caught) {
  Device<float> out(32);
  EXPECT_DEATH(
      {
        shuffle_after_exit<<<1, 32>>>(out.ptr);
        cudaDeviceSynchronize();
      },
      "__shfl_xor_sync \\(mask 0xffffffff\\) not reached by every lane it names: lane 7");
}

__global__ void full_mask_in_a_partial_warp(float* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1); }

TEST_F(EmuKernel, a_mask_naming_lanes_the_block_does_not_have_is_caught) {
  Device<float> out(32);
  EXPECT_DEATH(
      {
        full_mask_in_a_partial_warp<<<1, 20>>>(out.ptr);
        cudaDeviceSynchronize();
      },
      "names lanes past the 20 this warp has");
}

__global__ void shuffle_and_syncwarp_mixed(float* out) {
  if (threadIdx.x % 2) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
  else __syncwarp();
}

TEST_F(EmuKernel, lanes_at_different_warp_collectives_are_caught) {
  Device<float> out(32);
  EXPECT_DEATH(
      {
        shuffle_and_syncwarp_mixed<<<1, 32>>>(out.ptr);
        cudaDeviceSynchronize();
      },
      "meet at different warp collectives");
}

__global__ void add_everywhere(int* total) { atomicAdd(total, int(threadIdx.x)); }

TEST_F(EmuKernel, atomics_add_every_thread_once) {
  Device<int> total(1);
  total.upload({0});
  add_everywhere<<<4, 256>>>(total.ptr);
  EXPECT_EQ(total.download()[0], 4 * (255 * 256 / 2));
}

// ---- launch configuration (Programming Guide, "Technical Specifications") --------------

__global__ void uses_dynamic_shared(float* out) {
  float* tile = emu::dynamic_shared_memory<float>();
  tile[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}

TEST_F(EmuKernel, over_48_kb_of_dynamic_shared_memory_needs_the_attribute) {
  Device<float> out(64);
  testing::internal::CaptureStderr();
  uses_dynamic_shared<<<1, 64, 64 * 1024>>>(out.ptr);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("launch of uses_dynamic_shared"), std::string::npos);

  ASSERT_EQ(cudaFuncSetAttribute(uses_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
            cudaSuccess);
  uses_dynamic_shared<<<1, 64, 64 * 1024>>>(out.ptr);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(out.download()[0], 63.0f);
  testing::internal::CaptureStderr();
  EXPECT_EQ(cudaFuncSetAttribute(uses_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024),
            cudaErrorInvalidValue);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("over sm_90's 232448 per block"), std::string::npos);
  cudaGetLastError();
  cudaFuncSetAttribute(uses_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 48 * 1024);  // as it was
}

TEST_F(EmuKernel, over_1024_threads_per_block_is_an_invalid_configuration) {
  Device<int> out(2048);
  testing::internal::CaptureStderr();
  write_coordinates<<<1, 1025>>>(out.ptr);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  write_coordinates<<<dim3(1, 70000), 32>>>(out.ptr);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  testing::internal::GetCapturedStderr();
}

// ---- memory ----------------------------------------------------------------------------
// (Under AddressSanitizer device memory and dynamic shared memory come from
// malloc, and its report names the overflow.)
#if defined(__SANITIZE_ADDRESS__)
#define OVERFLOW_REPORT(layer_words) "heap-buffer-overflow"
#else
#define OVERFLOW_REPORT(layer_words) layer_words
#endif

__global__ void read_at(const float* in, int index, float* out) { *out = in[index]; }
__global__ void write_at(float* to, int index) { to[index] = 1.0f; }

TEST_F(EmuKernel, a_read_one_element_past_an_allocation_is_caught) {
  Device<float> in(64), out(1);  // 256 bytes: its end is the guard page
  EXPECT_DEATH(
      {
        read_at<<<1, 1>>>(in.ptr, 64, out.ptr);
        cudaDeviceSynchronize();
      },
      OVERFLOW_REPORT("kernel read_at, block \\(0,0,0\\), thread \\(0,0,0\\): invalid memory access at .*: 0 bytes "
                      "past the end of a device allocation of 256 bytes"));
}

TEST_F(EmuKernel, a_write_past_a_small_allocation_is_caught_when_it_is_freed) {
  EXPECT_DEATH(
      {
        float* small;
        cudaMalloc(&small, 10 * sizeof(float));
        write_at<<<1, 1>>>(small, 11);
        cudaFree(small);
      },
      OVERFLOW_REPORT("a write 4 bytes past the end of a device allocation of 40 bytes"));
}

TEST_F(EmuKernel, a_read_past_dynamic_shared_memory_is_caught) {
  Device<float> out(64);
  EXPECT_DEATH(
      {
        uses_dynamic_shared<<<1, 64, 32 * sizeof(float)>>>(out.ptr);
        cudaDeviceSynchronize();
      },
      OVERFLOW_REPORT("invalid memory access at .*: [0-9]+ bytes past the end of the block.s 128 bytes of dynamic "
                      "shared memory"));
}

TEST_F(EmuKernel, a_copy_past_an_allocation_is_refused) {
  Device<float> small(10);
  std::vector<float> host(11);
  testing::internal::CaptureStderr();
  EXPECT_EQ(cudaMemcpy(small.ptr, host.data(), 11 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("run past the end of their device allocation"),
            std::string::npos);
  cudaGetLastError();
}

// ---- streams and events (Runtime API, "Stream synchronization behavior") ----------------

__global__ void fill(float* x, float value, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] = value;
}
__global__ void copy_values(float* to, const float* from, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) to[i] = from[i];
}

// Stream b reads what stream a writes: right for every seed with the event
// wait, wrong for some seed without it (the device picks among ready streams).
// A third stream holds the device until both are queued, so the pick is the
// seed's and not the host's timing.
int wrong_reads(bool wait) {
  cudaStream_t a, b, hold;
  cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking);
  cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking);
  cudaStreamCreateWithFlags(&hold, cudaStreamNonBlocking);
  cudaEvent_t written;
  cudaEventCreateWithFlags(&written, cudaEventDisableTiming);
  Device<float> x(256), y(256);
  int wrong = 0;
  for (unsigned long long seed = 1; seed <= 8; seed++) {
    emu::set_seed(seed);
    fill<<<1, 64, 0, a>>>(x.ptr, 0.0f, 256);
    cudaStreamSynchronize(a);
    std::atomic<bool> holding{false}, release{false};
    emu::enqueue(hold, "hold the device", [&] {
      holding = true;
      while (!release) std::this_thread::yield();
    });
    while (!holding) std::this_thread::yield();
    fill<<<1, 64, 0, a>>>(x.ptr, float(seed), 256);
    cudaEventRecord(written, a);
    if (wait) cudaStreamWaitEvent(b, written, 0);
    copy_values<<<1, 64, 0, b>>>(y.ptr, x.ptr, 256);
    release = true;
    cudaDeviceSynchronize();
    wrong += y.download()[0] != float(seed);
  }
  cudaEventDestroy(written);
  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
  cudaStreamDestroy(hold);
  return wrong;
}

TEST_F(EmuKernel, an_event_wait_orders_two_streams) { EXPECT_EQ(wrong_reads(true), 0); }

TEST_F(EmuKernel, a_missing_event_wait_between_streams_changes_results_across_seeds) {
  EXPECT_GT(wrong_reads(false), 0);
}

// The legacy default stream waits for blocking streams and they for it.
TEST_F(EmuKernel, the_legacy_stream_orders_against_blocking_streams) {
  cudaStream_t blocking;
  cudaStreamCreate(&blocking);
  Device<float> x(256), y(256);
  for (unsigned long long seed = 1; seed <= 8; seed++) {
    emu::set_seed(seed);
    fill<<<1, 64, 0, blocking>>>(x.ptr, float(seed), 256);
    copy_values<<<1, 64>>>(y.ptr, x.ptr, 256);
    fill<<<1, 64, 0, blocking>>>(x.ptr, -1.0f, 256);
    EXPECT_EQ(y.download()[0], float(seed));
  }
  cudaDeviceSynchronize();
  cudaStreamDestroy(blocking);
}

}  // namespace
