// The emulated NCCL over one rank against NVIDIA's NCCL documentation: what
// each call leaves in its buffers, that it runs in stream order on the device
// and not on the calling thread, groups (nothing queued before the outermost
// ncclGroupEnd, several streams joined), one communicator's calls in call
// order across streams, ncclCommDestroy and ncclCommAbort, and the arguments
// it refuses with the reason in ncclGetLastError(). Over several ranks the
// GpuComm tests run it under mpirun (ctest's gpu_comm_mpi_2 and _4).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "emu/runtime.h"

namespace {

template <typename T>
struct Device {
  T* ptr = nullptr;
  size_t size;
  explicit Device(size_t n) : size(n) { EXPECT_EQ(cudaMalloc(&ptr, n * sizeof(T)), cudaSuccess); }
  explicit Device(const std::vector<T>& host) : Device(host.size()) { upload(host); }
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

std::vector<float> ramp(size_t n, float from) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = from + 0.25f * float(i);
  return v;
}

// Holds a stream's later work back until open() (queued on the stream like a kernel).
class Gate {
 public:
  explicit Gate(cudaStream_t stream) {
    emu::enqueue(stream, "test gate", [open = open_] {
      while (!*open) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  ~Gate() { open(); }
  void open() { *open_ = true; }

 private:
  std::shared_ptr<std::atomic<bool>> open_ = std::make_shared<std::atomic<bool>>(false);
};

class EmuNccl : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    ncclUniqueId id;
    ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
    ASSERT_EQ(ncclCommInitRank(&comm_, 1, id, 0), ncclSuccess);
  }
  void TearDown() override {
    if (comm_) {
      EXPECT_EQ(ncclCommDestroy(comm_), ncclSuccess);
    }
    cudaDeviceSynchronize();
    emu::set_seed(1);
  }
  // The call's result, and the start of ncclGetLastError() after it.
  static std::string refusal(ncclResult_t result) {
    return std::string(ncclGetErrorString(result)) + ": " + ncclGetLastError(nullptr);
  }
  ncclComm_t comm_ = nullptr;
};

// ---- what each call leaves (User Guide, "Collective Operations") -------------------------

TEST_F(EmuNccl, collectives_of_one_rank_copy_their_input_in_place_or_not) {
  const std::vector<float> values = ramp(1001, -3.0f);
  Device<float> in(values), out(values.size());
  ASSERT_EQ(ncclAllReduce(in.ptr, out.ptr, values.size(), ncclFloat, ncclSum, comm_, nullptr), ncclSuccess);
  EXPECT_EQ(out.download(), values);
  ASSERT_EQ(ncclAllReduce(in.ptr, in.ptr, values.size(), ncclFloat, ncclSum, comm_, nullptr), ncclSuccess);
  EXPECT_EQ(in.download(), values);

  const std::vector<double> doubles = {1.0 + 0x1p-40, -2.5, 3.0};
  Device<double> d(doubles);
  ASSERT_EQ(ncclAllReduce(d.ptr, d.ptr, doubles.size(), ncclDouble, ncclSum, comm_, nullptr), ncclSuccess);
  EXPECT_EQ(d.download(), doubles);

  Device<float> reduced(values.size()), broadcast(values.size());
  ASSERT_EQ(ncclReduce(in.ptr, reduced.ptr, values.size(), ncclFloat, ncclSum, 0, comm_, nullptr), ncclSuccess);
  ASSERT_EQ(ncclBroadcast(in.ptr, broadcast.ptr, values.size(), ncclFloat, 0, comm_, nullptr), ncclSuccess);
  EXPECT_EQ(reduced.download(), values);
  EXPECT_EQ(broadcast.download(), values);
}

TEST_F(EmuNccl, bf16_values_travel_bit_for_bit) {
  std::vector<__nv_bfloat16> values;
  for (unsigned short bits : {0x3f80, 0xbf81, 0x0001, 0x7f7f, 0x8000}) values.push_back(__ushort_as_bfloat16(bits));
  Device<__nv_bfloat16> data(values);
  ASSERT_EQ(ncclAllReduce(data.ptr, data.ptr, values.size(), ncclBfloat16, ncclSum, comm_, nullptr), ncclSuccess);
  ASSERT_EQ(ncclBroadcast(data.ptr, data.ptr, values.size(), ncclBfloat16, 0, comm_, nullptr), ncclSuccess);
  const std::vector<__nv_bfloat16> after = data.download();
  for (size_t i = 0; i < values.size(); i++) EXPECT_EQ(after[i].__x, values[i].__x) << i;
}

// User Guide, "Point-to-point communication": a rank's send to itself meets its
// receive from itself within one group; several pairs in one group go in order.
TEST_F(EmuNccl, sends_to_itself_meet_its_receives_in_one_group) {
  const std::vector<float> a = ramp(17, 1.0f), b = ramp(5, -7.0f);
  Device<float> send_a(a), send_b(b), got_a(a.size()), got_b(b.size());
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  ASSERT_EQ(ncclRecv(got_a.ptr, a.size(), ncclFloat, 0, comm_, nullptr), ncclSuccess);
  ASSERT_EQ(ncclSend(send_a.ptr, a.size(), ncclFloat, 0, comm_, nullptr), ncclSuccess);
  ASSERT_EQ(ncclSend(send_b.ptr, b.size(), ncclFloat, 0, comm_, nullptr), ncclSuccess);
  ASSERT_EQ(ncclRecv(got_b.ptr, b.size(), ncclFloat, 0, comm_, nullptr), ncclSuccess);
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess);
  EXPECT_EQ(got_a.download(), a);
  EXPECT_EQ(got_b.download(), b);
}

TEST_F(EmuNccl, a_send_to_itself_without_its_receive_in_the_group_is_caught) {
  Device<float> x(8);
  EXPECT_DEATH(
      {
        ncclSend(x.ptr, 8, ncclFloat, 0, comm_, nullptr);
        cudaDeviceSynchronize();
      },
      "1 ncclSend to itself and 0 ncclRecv from itself in one group");
}

TEST_F(EmuNccl, a_send_and_receive_of_different_counts_are_caught) {
  Device<float> x(8), y(8);
  EXPECT_DEATH(
      {
        ncclGroupStart();
        ncclSend(x.ptr, 8, ncclFloat, 0, comm_, nullptr);
        ncclRecv(y.ptr, 7, ncclFloat, 0, comm_, nullptr);
        ncclGroupEnd();
        cudaDeviceSynchronize();
      },
      "rank 0 sent ncclSend of 8 ncclFloat32 to rank 0 \\(its send #0 there\\) where rank 0 waits for ncclSend of 7");
}

// ---- streams (User Guide, "CUDA Stream Semantics") ------------------------------------------

// The call returns once queued; the work runs on the device in stream order,
// after what was queued before it, and is what later work on the stream sees.
TEST_F(EmuNccl, a_collective_runs_in_stream_order_on_the_device_not_on_the_calling_thread) {
  const std::vector<float> first = ramp(100, 1.0f), second = ramp(100, 50.0f);
  Device<float> in(first), staged(second), out(100), later(100);
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  Gate gate(stream);
  ASSERT_EQ(cudaMemcpyAsync(in.ptr, staged.ptr, 100 * sizeof(float), cudaMemcpyDeviceToDevice, stream), cudaSuccess);
  ASSERT_EQ(ncclAllReduce(in.ptr, out.ptr, 100, ncclFloat, ncclSum, comm_, stream), ncclSuccess);
  ASSERT_EQ(cudaMemcpyAsync(later.ptr, out.ptr, 100 * sizeof(float), cudaMemcpyDeviceToDevice, stream), cudaSuccess);
  EXPECT_EQ(cudaStreamQuery(stream), cudaErrorNotReady) << "the all-reduce ran on the calling thread";
  gate.open();
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(out.download(), second) << "the all-reduce read its input before the copy queued ahead of it";
  EXPECT_EQ(later.download(), second);
  cudaStreamDestroy(stream);
}

// User Guide, "Group Calls": nothing is queued before the outermost ncclGroupEnd.
TEST_F(EmuNccl, a_group_queues_its_calls_at_its_outermost_end) {
  const std::vector<float> values = ramp(64, 2.0f);
  Device<float> in(values), out(values.size());
  ASSERT_EQ(cudaMemset(out.ptr, 0, 64 * sizeof(float)), cudaSuccess);
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  ASSERT_EQ(ncclAllReduce(in.ptr, out.ptr, 64, ncclFloat, ncclSum, comm_, nullptr), ncclSuccess);
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess);
  cudaDeviceSynchronize();
  EXPECT_EQ(out.download(), std::vector<float>(64, 0.0f)) << "queued before the outermost ncclGroupEnd";
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess);
  EXPECT_EQ(out.download(), values);
}

// User Guide, "Mixing Multiple Streams within the same ncclGroupStart/End()
// group": the group runs after the work queued on each of its streams, and
// each stream's later work after it. Across seeds (the device picks among
// ready streams at random), nothing reads or writes out of that order.
TEST_F(EmuNccl, a_group_over_two_streams_joins_them) {
  cudaStream_t a, b;
  cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking);
  cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking);
  for (unsigned long long seed = 1; seed <= 8; seed++) {
    emu::set_seed(seed);
    const std::vector<float> x = ramp(32, float(seed)), y = ramp(32, -float(seed));
    Device<float> staged_x(x), staged_y(y), in_x(32), in_y(32), out_x(32), out_y(32), after_x(32), after_y(32);
    cudaMemcpyAsync(in_x.ptr, staged_x.ptr, sizeof(float) * 32, cudaMemcpyDeviceToDevice, a);
    for (int i = 0; i < 20; i++) cudaMemsetAsync(in_y.ptr, 0, sizeof(float) * 32, b);  // b's queue is the longer
    cudaMemcpyAsync(in_y.ptr, staged_y.ptr, sizeof(float) * 32, cudaMemcpyDeviceToDevice, b);
    ncclGroupStart();
    ncclAllReduce(in_x.ptr, out_x.ptr, 32, ncclFloat, ncclSum, comm_, a);
    ncclBroadcast(in_y.ptr, out_y.ptr, 32, ncclFloat, 0, comm_, b);
    ASSERT_EQ(ncclGroupEnd(), ncclSuccess);
    cudaMemcpyAsync(after_x.ptr, out_y.ptr, sizeof(float) * 32, cudaMemcpyDeviceToDevice, a);
    cudaMemcpyAsync(after_y.ptr, out_x.ptr, sizeof(float) * 32, cudaMemcpyDeviceToDevice, b);
    cudaDeviceSynchronize();
    EXPECT_EQ(after_x.download(), y) << "seed " << seed;
    EXPECT_EQ(after_y.download(), x) << "seed " << seed;
  }
  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
}

// One communicator's calls run in call order whatever their streams (NCCL
// orders each launch after the communicator's previous one), so ranks meet in
// one order; here the second sees the first's result with no event between.
TEST_F(EmuNccl, one_communicators_calls_run_in_call_order_across_streams) {
  cudaStream_t a, b;
  cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking);
  cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking);
  for (unsigned long long seed = 1; seed <= 8; seed++) {
    emu::set_seed(seed);
    const std::vector<float> x = ramp(32, float(seed));
    Device<float> in(x), middle(32), out(32);
    cudaMemset(middle.ptr, 0, sizeof(float) * 32);
    cudaDeviceSynchronize();
    {
      Gate gate(a);
      ncclAllReduce(in.ptr, middle.ptr, 32, ncclFloat, ncclSum, comm_, a);
      ncclBroadcast(middle.ptr, out.ptr, 32, ncclFloat, 0, comm_, b);
    }
    cudaDeviceSynchronize();
    EXPECT_EQ(out.download(), x) << "seed " << seed;
  }
  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
}

// ---- communicators ------------------------------------------------------------------------

TEST_F(EmuNccl, destroy_waits_for_the_queued_work_and_abort_drops_it) {
  const std::vector<float> values = ramp(16, 3.0f);
  Device<float> in(values), out(16);
  cudaMemset(out.ptr, 0, sizeof(float) * 16);
  cudaDeviceSynchronize();  // the memset is on the legacy stream, which a non-blocking stream does not wait for
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  {
    Gate gate(stream);
    ASSERT_EQ(ncclAllReduce(in.ptr, out.ptr, 16, ncclFloat, ncclSum, comm_, stream), ncclSuccess);
    std::future<ncclResult_t> destroyed = std::async(std::launch::async, [this] { return ncclCommDestroy(comm_); });
    EXPECT_EQ(destroyed.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
    gate.open();
    EXPECT_EQ(destroyed.get(), ncclSuccess);
    comm_ = nullptr;
  }
  EXPECT_EQ(out.download(), values);

  ncclUniqueId id;
  ncclGetUniqueId(&id);
  ASSERT_EQ(ncclCommInitRank(&comm_, 1, id, 0), ncclSuccess);
  cudaMemset(out.ptr, 0, sizeof(float) * 16);
  cudaDeviceSynchronize();
  {
    Gate gate(stream);
    ASSERT_EQ(ncclAllReduce(in.ptr, out.ptr, 16, ncclFloat, ncclSum, comm_, stream), ncclSuccess);
    EXPECT_EQ(ncclCommAbort(comm_), ncclSuccess) << "abort waited for the queued work";
    comm_ = nullptr;
  }
  cudaStreamSynchronize(stream);
  EXPECT_EQ(out.download(), std::vector<float>(16, 0.0f)) << "an aborted communicator's queued call ran";
  cudaStreamDestroy(stream);
}

TEST_F(EmuNccl, unique_ids_differ_and_a_made_up_id_is_refused) {
  ncclUniqueId a, b;
  ncclGetUniqueId(&a);
  ncclGetUniqueId(&b);
  EXPECT_NE(std::string(a.internal, sizeof a.internal), std::string(b.internal, sizeof b.internal));
  ncclComm_t other = nullptr;
  ncclUniqueId zeros{};
  EXPECT_EQ(ncclCommInitRank(&other, 1, zeros, 0), ncclInvalidArgument);
  EXPECT_EQ(refusal(ncclInvalidArgument), "invalid argument: ncclCommInitRank: commId was not made by ncclGetUniqueId");
  EXPECT_EQ(ncclCommInitRank(&other, 2, a, 2), ncclInvalidArgument);
  EXPECT_EQ(std::string(ncclGetLastError(nullptr)), "ncclCommInitRank: rank 2 is not in [0, 2)");
  EXPECT_EQ(ncclCommInitRank(&other, 0, a, 0), ncclInvalidArgument);
  // Several ranks meet over MPI, which this process has not started.
  EXPECT_EQ(ncclCommInitRank(&other, 2, a, 0), ncclInvalidUsage);
  EXPECT_NE(std::string(ncclGetLastError(nullptr)).find("2 ranks meet over MPI"), std::string::npos);
  EXPECT_EQ(other, nullptr);
}

TEST_F(EmuNccl, error_strings_name_each_result) {
  EXPECT_STREQ(ncclGetErrorString(ncclSuccess), "no error");
  EXPECT_STREQ(ncclGetErrorString(ncclInvalidArgument), "invalid argument");
  EXPECT_STREQ(ncclGetErrorString(ncclInvalidUsage), "invalid usage");
  EXPECT_STREQ(ncclGetErrorString(ncclResult_t(99)), "unknown result code");
}

// ---- arguments refused (NCCL's checks, and buffers outside device memory) ---------------------

TEST_F(EmuNccl, bad_arguments_are_refused_naming_the_call_and_the_argument) {
  Device<float> x(100), y(100);
  std::vector<float> host(100);
  auto refused = [](ncclResult_t result, ncclResult_t expected, const std::string& words) {
    EXPECT_EQ(result, expected) << words;
    const std::string last = ncclGetLastError(nullptr);
    EXPECT_NE(last.find(words), std::string::npos) << "ncclGetLastError() says: " << last;
  };
  refused(ncclAllReduce(x.ptr, y.ptr, 100, ncclFloat, ncclSum, nullptr, nullptr), ncclInvalidArgument,
          "ncclAllReduce: comm is NULL");
  refused(ncclAllReduce(host.data(), y.ptr, 100, ncclFloat, ncclSum, comm_, nullptr), ncclInvalidArgument,
          "ncclAllReduce: sendbuff " );
  refused(ncclAllReduce(x.ptr, y.ptr, 101, ncclFloat, ncclSum, comm_, nullptr), ncclInvalidArgument,
          "its 404 bytes are not inside one device allocation");
  refused(ncclAllReduce(x.ptr, x.ptr + 1, 50, ncclFloat, ncclSum, comm_, nullptr), ncclInvalidArgument,
          "overlap but differ");
  refused(ncclAllReduce(x.ptr, y.ptr, 10, ncclFloat, ncclMax, comm_, nullptr), ncclInvalidArgument,
          "only ncclSum is emulated");
  refused(ncclAllReduce(x.ptr, y.ptr, 10, ncclFloat, ncclRedOp_t(7), comm_, nullptr), ncclInvalidArgument,
          "op 7 is no ncclRedOp_t");
  refused(ncclAllReduce(x.ptr, y.ptr, 10, ncclInt32, ncclSum, comm_, nullptr), ncclInvalidArgument,
          "ncclSum of ncclInt32 is not emulated");
  refused(ncclBroadcast(x.ptr, y.ptr, 10, ncclDataType_t(12), 0, comm_, nullptr), ncclInvalidArgument,
          "datatype 12 is no ncclDataType_t");
  refused(ncclReduce(x.ptr, y.ptr, 10, ncclFloat, ncclSum, 1, comm_, nullptr), ncclInvalidArgument,
          "ncclReduce: root 1 is no rank of this 1-rank communicator");
  refused(ncclRecv(host.data(), 10, ncclFloat, 0, comm_, nullptr), ncclInvalidArgument, "ncclRecv: recvbuff ");
  refused(ncclSend(x.ptr, 10, ncclFloat, -1, comm_, nullptr), ncclInvalidArgument, "ncclSend: peer -1");
  cudaStream_t dead;
  cudaStreamCreate(&dead);
  cudaStreamDestroy(dead);
  refused(ncclBroadcast(x.ptr, y.ptr, 10, ncclFloat, 0, comm_, dead), ncclUnhandledCudaError, "was destroyed");
  refused(ncclGroupEnd(), ncclInvalidUsage, "ncclGroupEnd: no ncclGroupStart is open");
  // Count 0 reads and writes nothing; broadcast's sendbuff matters on the root only, reduce's recvbuff too.
  EXPECT_EQ(ncclAllReduce(nullptr, nullptr, 0, ncclFloat, ncclSum, comm_, nullptr), ncclSuccess);

  ncclComm_t gone = comm_;
  ASSERT_EQ(ncclCommDestroy(comm_), ncclSuccess);
  comm_ = nullptr;
  refused(ncclAllReduce(x.ptr, y.ptr, 10, ncclFloat, ncclSum, gone, nullptr), ncclInvalidArgument,
          "is no live communicator");
  refused(ncclCommDestroy(gone), ncclInvalidArgument, "ncclCommDestroy: comm ");
}

// A refused call inside a group fails the group: ncclGroupEnd returns its error and queues nothing.
TEST_F(EmuNccl, a_refused_call_fails_its_group_which_then_queues_nothing) {
  const std::vector<float> values = ramp(10, 1.0f);
  Device<float> in(values), out(10);
  cudaMemset(out.ptr, 0, sizeof(float) * 10);
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  EXPECT_EQ(ncclAllReduce(in.ptr, out.ptr, 10, ncclFloat, ncclSum, comm_, nullptr), ncclSuccess);
  EXPECT_EQ(ncclBroadcast(in.ptr, out.ptr, 10, ncclFloat, 5, comm_, nullptr), ncclInvalidArgument);
  EXPECT_EQ(ncclGroupEnd(), ncclInvalidArgument);
  EXPECT_NE(std::string(ncclGetLastError(nullptr)).find("root 5"), std::string::npos);
  EXPECT_EQ(out.download(), std::vector<float>(10, 0.0f));
  // The next group starts clean.
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  EXPECT_EQ(ncclAllReduce(in.ptr, out.ptr, 10, ncclFloat, ncclSum, comm_, nullptr), ncclSuccess);
  EXPECT_EQ(ncclGroupEnd(), ncclSuccess);
  EXPECT_EQ(out.download(), values);
}

}  // namespace
