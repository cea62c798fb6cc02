// The GpuComm (NCCL) against the host Comm: every collective on GPU buffers
// must give what the host Comm gives on the same values in host memory (odd,
// uneven blocks; outputs poisoned), host buffers must reach the host Comm and
// GPU buffers must not, a GPU buffer paired with a host buffer is refused, and
// bytes_sent() counts as the host Comm does; in fp32 and bf16.
//
// Alone (test_gpu) the world is one rank over the serial Comm, and NCCL runs
// with one rank. The same tests run over several ranks under mpirun (inputs are
// seeded by rank, so each rank knows the others'; rank 1 holds an empty block
// and still takes part). NCCL wants one GPU per rank on a host: on a machine with
// N >= 2 GPUs, `mpirun -np N build/test_gpu --gtest_filter='GpuComm.*'`; on any
// GPU machine, ctest's gpu_comm_mpi_2 and _4 give each rank a host of its own
// (NCCL_HOSTID), which NCCL then connects over sockets.
#ifdef LLMDION_WITH_NCCL

#include <cmath>
#include <functional>
#include <numeric>
#include <stdexcept>

#include "dist/comm.h"
#include "dist/gpu_comm.h"
#include "gpu/gpu_test_util.h"

namespace llmdion::test {
namespace {

// The Comm's bf16 (core/bf16.h), not CUDA's __nv_bfloat16 (gpu_test_util.h's bf16):
// device buffers of it go to NCCL as ncclBfloat16.
using HostBf16 = llmdion::bf16;

// Values k/64 with |k| <= 1000: sums over a few ranks are exact in any order.
std::vector<float> input_of(int rank, int64_t n, uint64_t salt) {
  SplitMix64 rng{derive_seed({uint64_t(rank), salt})};
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = float(int64_t(rng.below(2001)) - 1000) / 64.0f;
  return v;
}

// Odd block sizes, different on every rank, and an empty block on rank 1.
std::vector<int64_t> uneven_counts(int world) {
  std::vector<int64_t> counts;
  for (int r = 0; r < world; r++) counts.push_back(r == 1 ? 0 : 1001 + 6 * r);
  return counts;
}

int64_t total_of(const std::vector<int64_t>& counts) {
  return std::accumulate(counts.begin(), counts.end(), int64_t(0));
}

// bf16: values k 2^e with |k| <= 255 / ranks, e by index, whose sums are exact
// in bf16 whatever order NCCL or MPI adds them in.
std::vector<HostBf16> exact_bf16_input_of(int rank, int world, int64_t n, uint64_t salt) {
  SplitMix64 rng{derive_seed({uint64_t(rank), salt})};
  const int64_t bound = 255 / world;
  std::vector<HostBf16> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++)
    v[size_t(i)] = round_to_bf16(std::ldexp(float(int64_t(rng.below(uint64_t(2 * bound + 1))) - bound), int(i % 11) - 5));
  return v;
}

std::vector<uint16_t> bits_of(const std::vector<HostBf16>& values) {
  std::vector<uint16_t> bits;
  for (HostBf16 x : values) bits.push_back(x.bits);
  return bits;
}

template <typename T>
std::span<T> span_of(DeviceArray<T>& array) {
  return {array.ptr, array.size};
}

// A host Comm that notes the name of each collective it is given, then passes it on.
class RecordingComm final : public Comm {
 public:
  explicit RecordingComm(Comm& inner) : inner_(inner) {}
  std::vector<std::string> calls;

  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }
  void all_reduce_sum(std::span<float> data) override { note("all_reduce_sum"), inner_.all_reduce_sum(data); }
  void all_reduce_sum(std::span<double> data) override { note("all_reduce_sum"), inner_.all_reduce_sum(data); }
  void all_reduce_sum(std::span<HostBf16> data) override { note("all_reduce_sum"), inner_.all_reduce_sum(data); }
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, std::span<const int64_t> counts) override {
    note("reduce_scatter_sum"), inner_.reduce_scatter_sum(in, out, counts);
  }
  void reduce_scatter_sum(std::span<const HostBf16> in, std::span<HostBf16> out,
                          std::span<const int64_t> counts) override {
    note("reduce_scatter_sum"), inner_.reduce_scatter_sum(in, out, counts);
  }
  void start_reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                std::span<const int64_t> counts) override {
    note("start_reduce_scatter_sum"), inner_.start_reduce_scatter_sum(in, out, counts);
  }
  void start_reduce_scatter_sum(std::span<const HostBf16> in, std::span<HostBf16> out,
                                std::span<const int64_t> counts) override {
    note("start_reduce_scatter_sum"), inner_.start_reduce_scatter_sum(in, out, counts);
  }
  void start_all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t> counts) override {
    note("start_all_gather"), inner_.start_all_gather(mine, all, counts);
  }
  void wait_all() override { note("wait_all"), inner_.wait_all(); }
  void all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t> counts) override {
    note("all_gather"), inner_.all_gather(mine, all, counts);
  }
  void all_gather(std::span<const HostBf16> mine, std::span<HostBf16> all, std::span<const int64_t> counts) override {
    note("all_gather"), inner_.all_gather(mine, all, counts);
  }
  void broadcast(std::span<float> data, int root) override { note("broadcast"), inner_.broadcast(data, root); }
  void broadcast(std::span<HostBf16> data, int root) override { note("broadcast"), inner_.broadcast(data, root); }
  void broadcast(std::string& text, int root) override { note("broadcast"), inner_.broadcast(text, root); }
  void all_to_all(std::span<const float> in, std::span<const int64_t> send_counts, std::span<float> out,
                  std::span<const int64_t> recv_counts) override {
    note("all_to_all"), inner_.all_to_all(in, send_counts, out, recv_counts);
  }
  void all_to_all(std::span<const HostBf16> in, std::span<const int64_t> send_counts, std::span<HostBf16> out,
                  std::span<const int64_t> recv_counts) override {
    note("all_to_all"), inner_.all_to_all(in, send_counts, out, recv_counts);
  }
  void barrier() override { note("barrier"), inner_.barrier(); }
  void abort(int code) override { inner_.abort(code); }

 private:
  void note(const char* collective) { calls.push_back(collective); }
  Comm& inner_;
};

// One host Comm (serial alone, MPI under mpirun), its recorder and the GpuComm
// over that, made at the first test (after its GPU check) and kept for the
// suite: MPI starts once a process.
class GpuComm : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    gpu_.reset();
    recording_.reset();
    host_.reset();
  }
  // The GpuComm, with the record of host calls cleared.
  static Comm& gpu_comm() {
    if (!gpu_) {
      host_ = make_comm(nullptr, nullptr);
      recording_ = std::make_unique<RecordingComm>(*host_);
      gpu_ = make_gpu_comm(*recording_);
    }
    recording_->calls.clear();
    return *gpu_;
  }
  // The host Comm itself, for reference results; its calls are not recorded.
  static Comm& host() { return *host_; }
  static const std::vector<std::string>& host_calls() { return recording_->calls; }

  static inline std::unique_ptr<Comm> host_;
  static inline std::unique_ptr<RecordingComm> recording_;
  static inline std::unique_ptr<Comm> gpu_;
};

TEST_F(GpuComm, all_reduce_on_gpu_buffers_equals_the_host_comms) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  std::vector<float> want = input_of(comm.rank(), 1001, 1);
  DeviceArray<float> data(want);
  comm.all_reduce_sum(span_of(data));
  host().all_reduce_sum(want);
  EXPECT_EQ(data.download(), want);

  // 1 + 2^-40 is no float: a sum in fp32 would lose it.
  std::vector<double> want_doubles = {comm.rank() + 0.5, 1.0 + 0x1p-40, -0.125 * (comm.rank() + 1)};
  DeviceArray<double> doubles(want_doubles);
  comm.all_reduce_sum(span_of(doubles));
  host().all_reduce_sum(want_doubles);
  EXPECT_EQ(doubles.download(), want_doubles);
  EXPECT_EQ(host_calls(), std::vector<std::string>{}) << "a GPU all-reduce went to the host Comm";
}

TEST_F(GpuComm, reduce_scatter_of_uneven_gpu_blocks_equals_the_host_comms) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const std::vector<int64_t> counts = uneven_counts(comm.world_size());
  const std::vector<float> in = input_of(comm.rank(), total_of(counts), 2);
  std::vector<float> want(static_cast<size_t>(counts[size_t(comm.rank())]));
  host().reduce_scatter_sum(in, want, counts);
  DeviceArray<float> device_in(in);
  DeviceArray<float> out(want.size());
  out.poison();
  comm.reduce_scatter_sum(span_of(device_in), span_of(out), counts);
  EXPECT_EQ(out.download(), want);
  EXPECT_EQ(device_in.download(), in) << "reduce_scatter_sum wrote into its input";
  EXPECT_EQ(host_calls(), std::vector<std::string>{});
}

// Milliseconds of work on the compute stream (16 GiB of memsets): a started
// collective that did not wait for the work queued before it would run first.
void keep_the_compute_stream_busy(DeviceArray<float>& scratch) {
  for (int i = 0; i < 16; i++) CUDA_CHECK(cudaMemsetAsync(scratch.ptr, 0, scratch.size * sizeof(float), nullptr));
}

// A device array read on the compute stream alone (no device-wide sync): what
// work queued there after wait_all() sees.
template <typename T>
std::vector<T> read_on_the_compute_stream(const DeviceArray<T>& array) {
  std::vector<T> host(array.size);
  CUDA_CHECK(cudaMemcpyAsync(host.data(), array.ptr, array.size * sizeof(T), cudaMemcpyDeviceToHost, nullptr));
  CUDA_CHECK(cudaStreamSynchronize(nullptr));
  return host;
}

// A copy of `from` into `to` queued on the compute stream.
template <typename T>
void copy_on_the_compute_stream(const DeviceArray<T>& from, DeviceArray<T>& to) {
  CUDA_CHECK(cudaMemcpyAsync(to.ptr, from.ptr, from.size * sizeof(T), cudaMemcpyDeviceToDevice, nullptr));
}

// Started collectives on the side stream, several in flight at once (fp32 and
// bf16 reduce-scatters and an fp32 all-gather), each started right after the
// copy that fills its input, queued behind milliseconds of compute-stream work;
// then wait_all() and reads on the compute stream alone. A collective that ran
// before its input was written reads the poison; a read that did not wait for
// the collective finds the poison of its output. The same on host buffers goes
// to the host Comm.
TEST_F(GpuComm, started_collectives_wait_for_their_inputs_and_the_compute_stream_waits_for_them) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const int me = comm.rank(), world = comm.world_size();
  const std::vector<int64_t> counts = uneven_counts(world);
  const size_t my_count = size_t(counts[size_t(me)]), total = size_t(total_of(counts));
  const std::vector<float> in_a = input_of(me, int64_t(total), 31), mine = input_of(me, int64_t(my_count), 33);
  const std::vector<HostBf16> in_b = exact_bf16_input_of(me, world, int64_t(total), 32);
  std::vector<float> want_a(my_count), want_all(total);
  std::vector<HostBf16> want_b(my_count);
  host().reduce_scatter_sum(in_a, want_a, counts);
  host().reduce_scatter_sum(in_b, want_b, counts);
  host().all_gather(mine, want_all, counts);

  DeviceArray<float> scratch(size_t(1) << 28);  // 1 GiB
  DeviceArray<float> staged_a(in_a), staged_mine(mine), device_a(total), device_mine(my_count);
  DeviceArray<HostBf16> staged_b(in_b), device_b(total);
  DeviceArray<float> out_a(my_count), out_all(total);
  DeviceArray<HostBf16> out_b(my_count);
  for (auto* a : {&device_a, &device_mine, &out_a, &out_all}) a->poison();
  device_b.poison(), out_b.poison();
  CUDA_CHECK(cudaDeviceSynchronize());

  keep_the_compute_stream_busy(scratch);
  copy_on_the_compute_stream(staged_a, device_a);
  comm.start_reduce_scatter_sum(span_of(device_a), span_of(out_a), counts);
  keep_the_compute_stream_busy(scratch);
  copy_on_the_compute_stream(staged_b, device_b);
  comm.start_reduce_scatter_sum(std::span<const HostBf16>(device_b.ptr, device_b.size), span_of(out_b), counts);
  keep_the_compute_stream_busy(scratch);
  copy_on_the_compute_stream(staged_mine, device_mine);
  comm.start_all_gather(span_of(device_mine), span_of(out_all), counts);
  comm.wait_all();
  // The last started first: a read that did not wait finds it unwritten most often.
  EXPECT_EQ(read_on_the_compute_stream(out_all), want_all) << "all-gather";
  EXPECT_EQ(read_on_the_compute_stream(out_a), want_a) << "fp32 reduce-scatter";
  EXPECT_EQ(bits_of(read_on_the_compute_stream(out_b)), bits_of(want_b)) << "bf16 reduce-scatter";
  EXPECT_EQ(host_calls(), std::vector<std::string>{});

  std::vector<float> host_out(my_count, -1.0f), host_all(total, -1.0f);
  comm.start_reduce_scatter_sum(in_a, host_out, counts);
  comm.start_all_gather(mine, host_all, counts);
  comm.wait_all();
  EXPECT_EQ(host_out, want_a);
  EXPECT_EQ(host_all, want_all);
  EXPECT_EQ(host_calls(), (std::vector<std::string>{"start_reduce_scatter_sum", "start_all_gather", "wait_all"}));
}

TEST_F(GpuComm, all_gather_of_uneven_gpu_blocks_equals_the_host_comms) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const std::vector<int64_t> counts = uneven_counts(comm.world_size());
  const std::vector<float> mine = input_of(comm.rank(), counts[size_t(comm.rank())], 3);
  std::vector<float> want(static_cast<size_t>(total_of(counts)));
  host().all_gather(mine, want, counts);
  DeviceArray<float> device_mine(mine);
  DeviceArray<float> all(want.size());
  all.poison();
  comm.all_gather(span_of(device_mine), span_of(all), counts);
  EXPECT_EQ(all.download(), want);
  EXPECT_EQ(host_calls(), std::vector<std::string>{});
}

TEST_F(GpuComm, broadcast_of_a_gpu_buffer_equals_the_host_comms) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const int root = comm.world_size() - 1;
  std::vector<float> want = input_of(comm.rank(), 777, 4);
  DeviceArray<float> data(want);
  comm.broadcast(span_of(data), root);
  host().broadcast(want, root);
  EXPECT_EQ(data.download(), want);
  EXPECT_EQ(host_calls(), std::vector<std::string>{});
}

// Rank s sends f(s, r) values to rank r: odd sizes, its own block never empty,
// and some empty blocks between others from 4 ranks on.
int64_t all_to_all_count(int s, int r) { return s != r && (s + r) % 3 == 0 ? 0 : 101 + 2 * s + 3 * r; }

// What rank `me` sends to and receives from each rank.
struct Exchange {
  std::vector<int64_t> send_counts, recv_counts;
};
Exchange exchange_of(int me, int world) {
  Exchange e;
  for (int r = 0; r < world; r++)
    e.send_counts.push_back(all_to_all_count(me, r)), e.recv_counts.push_back(all_to_all_count(r, me));
  return e;
}

TEST_F(GpuComm, all_to_all_of_uneven_gpu_blocks_equals_the_host_comms) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const auto [send_counts, recv_counts] = exchange_of(comm.rank(), comm.world_size());
  const std::vector<float> in = input_of(comm.rank(), total_of(send_counts), 5);
  std::vector<float> want(static_cast<size_t>(total_of(recv_counts)));
  host().all_to_all(in, send_counts, want, recv_counts);
  DeviceArray<float> device_in(in);
  DeviceArray<float> out(want.size());
  out.poison();
  comm.all_to_all(span_of(device_in), send_counts, span_of(out), recv_counts);
  EXPECT_EQ(out.download(), want);
  EXPECT_EQ(host_calls(), std::vector<std::string>{});
}

TEST_F(GpuComm, host_buffers_go_to_the_host_comm) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const int me = comm.rank(), world = comm.world_size();
  std::vector<float> sums = input_of(me, 101, 6), want_sums = sums;
  comm.all_reduce_sum(sums);
  host().all_reduce_sum(want_sums);
  EXPECT_EQ(sums, want_sums);
  EXPECT_EQ(comm.sum_over_ranks(me + 0.5), host().sum_over_ranks(me + 0.5));

  const std::vector<int64_t> counts = uneven_counts(world);
  const std::vector<float> blocks = input_of(me, total_of(counts), 7);
  std::vector<float> mine(static_cast<size_t>(counts[size_t(me)]), -1.0f), want_mine = mine;
  comm.reduce_scatter_sum(blocks, mine, counts);
  host().reduce_scatter_sum(blocks, want_mine, counts);
  EXPECT_EQ(mine, want_mine);

  std::vector<float> all(static_cast<size_t>(total_of(counts)), -1.0f), want_all = all;
  comm.all_gather(mine, all, counts);
  host().all_gather(mine, want_all, counts);
  EXPECT_EQ(all, want_all);

  std::vector<float> values = input_of(me, 33, 8), want_values = values;
  comm.broadcast(values, world - 1);
  host().broadcast(want_values, world - 1);
  EXPECT_EQ(values, want_values);
  std::string text = me == 0 ? "rank 0's config" : "";
  comm.broadcast(text, 0);
  EXPECT_EQ(text, "rank 0's config");

  const auto [send_counts, recv_counts] = exchange_of(me, world);
  const std::vector<float> outgoing = input_of(me, total_of(send_counts), 9);
  std::vector<float> incoming(static_cast<size_t>(total_of(recv_counts)), -1.0f), want_incoming = incoming;
  comm.all_to_all(outgoing, send_counts, incoming, recv_counts);
  host().all_to_all(outgoing, send_counts, want_incoming, recv_counts);
  EXPECT_EQ(incoming, want_incoming);
  comm.barrier();

  const std::vector<std::string> expected = {"all_reduce_sum", "all_reduce_sum", "reduce_scatter_sum", "all_gather",
                                             "broadcast",      "broadcast",      "all_to_all",         "barrier"};
  EXPECT_EQ(host_calls(), expected);
}

// `call` throws std::invalid_argument whose message starts with `collective`.
void expect_refused(const std::string& collective, const std::function<void()>& call) {
  try {
    call();
    ADD_FAILURE() << collective << " was not refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind(collective + ":", 0), 0u) << e.what();
  }
}

TEST_F(GpuComm, a_gpu_buffer_paired_with_a_host_buffer_is_refused_naming_the_collective) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const size_t world = size_t(comm.world_size());
  const std::vector<int64_t> counts(world, 5);
  DeviceArray<float> device_all(5 * world), device_mine(5);
  std::vector<float> host_all(5 * world), host_mine(5);
  expect_refused("reduce_scatter_sum", [&] { comm.reduce_scatter_sum(span_of(device_all), host_mine, counts); });
  expect_refused("reduce_scatter_sum", [&] { comm.reduce_scatter_sum(host_all, span_of(device_mine), counts); });
  expect_refused("all_gather", [&] { comm.all_gather(host_mine, span_of(device_all), counts); });
  expect_refused("all_gather", [&] { comm.all_gather(span_of(device_mine), host_all, counts); });
  expect_refused("all_to_all", [&] { comm.all_to_all(span_of(device_all), counts, host_all, counts); });
  expect_refused("all_to_all", [&] { comm.all_to_all(host_all, counts, span_of(device_all), counts); });
  EXPECT_EQ(host_calls(), std::vector<std::string>{}) << "a refused call reached the host Comm";
}

TEST_F(GpuComm, buffers_that_disagree_with_the_counts_are_refused) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const size_t world = size_t(comm.world_size());
  const std::vector<int64_t> counts(world, 5), one_too_many(world + 1, 5);
  DeviceArray<float> all(5 * world + 1), mine(5);
  std::span<float> one_long = span_of(all), exact = one_long.first(5 * world);
  expect_refused("reduce_scatter_sum", [&] { comm.reduce_scatter_sum(exact, span_of(mine), one_too_many); });
  expect_refused("reduce_scatter_sum", [&] { comm.reduce_scatter_sum(one_long, span_of(mine), counts); });
  expect_refused("all_gather", [&] { comm.all_gather(span_of(mine), one_long, counts); });
  expect_refused("all_gather", [&] { comm.all_gather(span_of(mine).first(4), exact, counts); });
  std::vector<int64_t> receives_more_from_itself = counts;
  receives_more_from_itself[size_t(comm.rank())] += 1;
  expect_refused("all_to_all", [&] { comm.all_to_all(exact, counts, one_long, receives_more_from_itself); });
}

TEST_F(GpuComm, empty_buffers_make_no_call) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const int64_t before = comm.bytes_sent();
  const std::vector<int64_t> zeros(size_t(comm.world_size()), 0);
  comm.all_reduce_sum(std::span<float>());
  comm.all_reduce_sum(std::span<double>());
  comm.all_reduce_sum(std::span<HostBf16>());
  comm.reduce_scatter_sum(std::span<const float>(), std::span<float>(), zeros);
  comm.reduce_scatter_sum(std::span<const HostBf16>(), std::span<HostBf16>(), zeros);
  comm.all_gather(std::span<const float>(), std::span<float>(), zeros);
  comm.all_gather(std::span<const HostBf16>(), std::span<HostBf16>(), zeros);
  comm.broadcast(std::span<float>(), 0);
  comm.broadcast(std::span<HostBf16>(), 0);
  comm.all_to_all(std::span<const float>(), zeros, std::span<float>(), zeros);
  comm.all_to_all(std::span<const HostBf16>(), zeros, std::span<HostBf16>(), zeros);
  CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(comm.bytes_sent(), before);
  EXPECT_EQ(host_calls(), std::vector<std::string>{});
}

TEST_F(GpuComm, bytes_sent_counts_as_the_host_comm_does) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const int me = comm.rank(), world = comm.world_size();
  // What `call` adds to c's bytes_sent().
  auto sent = [](Comm& c, const std::function<void(Comm&)>& call) {
    const int64_t before = c.bytes_sent();
    call(c);
    return c.bytes_sent() - before;
  };
  const std::vector<int64_t> counts = uneven_counts(world);
  const int64_t total = total_of(counts), my_count = counts[size_t(me)];
  std::vector<float> host_total(static_cast<size_t>(total)), host_mine(static_cast<size_t>(my_count));
  DeviceArray<float> device_total(host_total), device_mine(host_mine);

  EXPECT_EQ(sent(comm, [&](Comm& c) { c.all_reduce_sum(span_of(device_total)); }),
            sent(host(), [&](Comm& c) { c.all_reduce_sum(host_total); }));
  EXPECT_EQ(sent(comm, [&](Comm& c) { c.all_reduce_sum(span_of(device_total).first(100)); }),
            world > 1 ? 2 * 400 * (world - 1) / world : 0);
  EXPECT_EQ(sent(comm, [&](Comm& c) { c.reduce_scatter_sum(span_of(device_total), span_of(device_mine), counts); }),
            sent(host(), [&](Comm& c) { c.reduce_scatter_sum(host_total, host_mine, counts); }));
  EXPECT_EQ(sent(comm, [&](Comm& c) { c.all_gather(span_of(device_mine), span_of(device_total), counts); }),
            sent(host(), [&](Comm& c) { c.all_gather(host_mine, host_total, counts); }));
  EXPECT_EQ(sent(comm, [&](Comm& c) { c.broadcast(span_of(device_total), 0); }),
            sent(host(), [&](Comm& c) { c.broadcast(host_total, 0); }));
  const auto [send_counts, recv_counts] = exchange_of(me, world);
  DeviceArray<float> outgoing(static_cast<size_t>(total_of(send_counts))),
      incoming(static_cast<size_t>(total_of(recv_counts)));
  std::vector<float> host_outgoing(outgoing.size), host_incoming(incoming.size);
  EXPECT_EQ(sent(comm, [&](Comm& c) { c.all_to_all(span_of(outgoing), send_counts, span_of(incoming), recv_counts); }),
            sent(host(), [&](Comm& c) { c.all_to_all(host_outgoing, send_counts, host_incoming, recv_counts); }));
  // Host buffers through the GpuComm count too.
  EXPECT_EQ(sent(comm, [&](Comm& c) { c.all_reduce_sum(host_total); }),
            sent(host(), [&](Comm& c) { c.all_reduce_sum(host_total); }));
  std::string text = "same on every rank", copy = text;
  EXPECT_EQ(sent(comm, [&](Comm& c) { c.broadcast(text, 0); }), sent(host(), [&](Comm& c) { c.broadcast(copy, 0); }));
}

TEST_F(GpuComm, bf16_collectives_on_gpu_buffers_equal_the_host_comms) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const int me = comm.rank(), world = comm.world_size();
  const std::vector<int64_t> counts = uneven_counts(world);
  const int64_t total = total_of(counts), my_count = counts[size_t(me)];
  // What `call` adds to c's bytes_sent().
  auto sent = [](Comm& c, const std::function<void()>& call) {
    const int64_t before = c.bytes_sent();
    call();
    return c.bytes_sent() - before;
  };

  std::vector<HostBf16> want = exact_bf16_input_of(me, world, 1001, 21);
  DeviceArray<HostBf16> data(want);
  const int64_t reduced = sent(comm, [&] { comm.all_reduce_sum(span_of(data)); });
  EXPECT_EQ(reduced, sent(host(), [&] { host().all_reduce_sum(want); }));
  EXPECT_EQ(bits_of(data.download()), bits_of(want)) << "all_reduce_sum";

  const std::vector<HostBf16> blocks = exact_bf16_input_of(me, world, total, 22);
  std::vector<HostBf16> want_mine(static_cast<size_t>(my_count));
  DeviceArray<HostBf16> device_blocks(blocks), mine(want_mine.size());
  mine.poison();
  EXPECT_EQ(sent(comm, [&] { comm.reduce_scatter_sum(span_of(device_blocks), span_of(mine), counts); }),
            sent(host(), [&] { host().reduce_scatter_sum(blocks, want_mine, counts); }));
  EXPECT_EQ(bits_of(mine.download()), bits_of(want_mine)) << "reduce_scatter_sum";

  std::vector<HostBf16> want_all(static_cast<size_t>(total));
  DeviceArray<HostBf16> all(want_all.size());
  all.poison();
  EXPECT_EQ(sent(comm, [&] { comm.all_gather(span_of(mine), span_of(all), counts); }),
            sent(host(), [&] { host().all_gather(want_mine, want_all, counts); }));
  EXPECT_EQ(bits_of(all.download()), bits_of(want_all)) << "all_gather";

  std::vector<HostBf16> want_broadcast = exact_bf16_input_of(me, world, 777, 23);
  DeviceArray<HostBf16> broadcast(want_broadcast);
  comm.broadcast(span_of(broadcast), world - 1);
  host().broadcast(want_broadcast, world - 1);
  EXPECT_EQ(bits_of(broadcast.download()), bits_of(want_broadcast)) << "broadcast";

  const auto [send_counts, recv_counts] = exchange_of(me, world);
  const std::vector<HostBf16> outgoing = exact_bf16_input_of(me, world, total_of(send_counts), 24);
  std::vector<HostBf16> want_incoming(static_cast<size_t>(total_of(recv_counts)));
  DeviceArray<HostBf16> device_outgoing(outgoing), incoming(want_incoming.size());
  incoming.poison();
  EXPECT_EQ(sent(comm, [&] { comm.all_to_all(span_of(device_outgoing), send_counts, span_of(incoming), recv_counts); }),
            sent(host(), [&] { host().all_to_all(outgoing, send_counts, want_incoming, recv_counts); }));
  EXPECT_EQ(bits_of(incoming.download()), bits_of(want_incoming)) << "all_to_all";
  EXPECT_EQ(host_calls(), std::vector<std::string>{}) << "a GPU bf16 collective went to the host Comm";
}

TEST_F(GpuComm, bf16_host_buffers_go_to_the_host_comm) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  const int me = comm.rank(), world = comm.world_size();
  std::vector<HostBf16> sums = exact_bf16_input_of(me, world, 101, 25), want_sums = sums;
  comm.all_reduce_sum(sums);
  host().all_reduce_sum(want_sums);
  EXPECT_EQ(bits_of(sums), bits_of(want_sums));
  const std::vector<int64_t> counts = uneven_counts(world);
  const std::vector<HostBf16> blocks = exact_bf16_input_of(me, world, total_of(counts), 26);
  std::vector<HostBf16> mine(static_cast<size_t>(counts[size_t(me)])), want_mine = mine;
  comm.reduce_scatter_sum(blocks, mine, counts);
  host().reduce_scatter_sum(blocks, want_mine, counts);
  EXPECT_EQ(bits_of(mine), bits_of(want_mine));
  std::vector<HostBf16> all(static_cast<size_t>(total_of(counts))), want_all = all;
  comm.all_gather(mine, all, counts);
  host().all_gather(mine, want_all, counts);
  EXPECT_EQ(bits_of(all), bits_of(want_all));
  comm.broadcast(all, 0);
  const auto [send_counts, recv_counts] = exchange_of(me, world);
  const std::vector<HostBf16> outgoing = exact_bf16_input_of(me, world, total_of(send_counts), 27);
  std::vector<HostBf16> incoming(static_cast<size_t>(total_of(recv_counts))), want_incoming = incoming;
  comm.all_to_all(outgoing, send_counts, incoming, recv_counts);
  host().all_to_all(outgoing, send_counts, want_incoming, recv_counts);
  EXPECT_EQ(bits_of(incoming), bits_of(want_incoming));
  const std::vector<std::string> expected = {"all_reduce_sum", "reduce_scatter_sum", "all_gather", "broadcast",
                                             "all_to_all"};
  EXPECT_EQ(host_calls(), expected);
}

TEST_F(GpuComm, abort_ends_the_process_with_its_code) {
  LLMDION_REQUIRE_GPU();
  Comm& comm = gpu_comm();
  if (comm.world_size() > 1) GTEST_SKIP() << "runs alone only: under mpirun, abort would end every rank";
  // The child runs this test from the start in a fresh process: CUDA does not survive a fork.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(comm.abort(3), ::testing::ExitedWithCode(3), "");
}

}  // namespace
}  // namespace llmdion::test

#endif  // LLMDION_WITH_NCCL
