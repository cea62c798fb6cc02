// The Comm of cuda runs over several ranks: NCCL for buffers in GPU memory,
// the wrapped host Comm (MPI; serial alone) for the rest. Each call looks at its own buffers
// (cudaPointerGetAttributes): device memory goes to NCCL, anything else to the
// host Comm, and a GPU buffer paired with a host buffer is refused. An empty
// buffer says nothing, so the other one decides; with no values at all this
// rank makes no call. All ranks pass the same sizes and counts, so outside
// all-to-all they agree on that; in an all-to-all a rank with nothing
// to send or receive has no peer waiting for it under NCCL (under MPI it would:
// a host all-to-all through this Comm needs values on every rank).
//
// NCCL's ReduceScatter and AllGather take equal blocks; ours are uneven, so
// each is one call per block, fused into one launch by ncclGroupStart/End:
//   reduce-scatter  block r of every rank summed onto rank r   ncclReduce, root r
//   all-gather      rank r's block into block r of all         ncclBroadcast, root r
//   all-to-all      a send and a receive per peer; its own block a copy
// Blocks of zero values are skipped, by every rank alike since all hold the
// same counts. Nothing is allocated. fp32, fp64 and bf16 (ncclBfloat16) take
// the same paths.
//
// Everything runs on the legacy default stream, where the CUDA model, AdamW and
// MatrixOps run: the kernels that read a result, and any cudaMemcpy of it to
// the host, come after it on that stream, so no collective waits for the GPU.
// Started collectives (start_reduce_scatter_sum, start_all_gather) run on a
// side stream of their own, each after an event recorded on the default stream
// when it was started, and wait_all() makes the default stream wait for them:
// the gradients of a layer travel while the backward of the layers below runs,
// the weights of one shape of matrices while the next shape is orthonormalized.
// Only started collectives run between a start and wait_all(), so NCCL sees one
// order of operations on every rank.
// bytes_sent() counts every collective, on the GPU or the host, as MpiComm does.
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/cuda/check.h"
#include "dist/gpu_comm.h"

namespace llmdion {
namespace {

constexpr cudaStream_t kStream = nullptr;  // the legacy default stream

enum class Memory { kEmpty, kHost, kDevice };

// ncclGroupStart, then ncclGroupEnd by end() or, when a call inside throws,
// on the way out: no later NCCL call is swallowed into a group left open.
class NcclGroup {
 public:
  NcclGroup() { NCCL_CHECK(ncclGroupStart()); }
  ~NcclGroup() {
    if (open_) ncclGroupEnd();
  }
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;
  void end() {
    open_ = false;
    NCCL_CHECK(ncclGroupEnd());
  }

 private:
  bool open_ = true;
};

// Where a buffer lives. Pinned or managed host memory is waited for first: work
// on the stream may still be writing it, and the host Comm reads it at once.
Memory memory_of(const void* data, size_t size) {
  if (size == 0) return Memory::kEmpty;
  cudaPointerAttributes attributes{};
  CUDA_CHECK(cudaPointerGetAttributes(&attributes, data));
  if (attributes.type == cudaMemoryTypeDevice) return Memory::kDevice;
  if (attributes.type != cudaMemoryTypeUnregistered) CUDA_CHECK(cudaStreamSynchronize(kStream));
  return Memory::kHost;
}

// Where a collective over two buffers runs: where the non-empty ones live, which must be one place.
Memory same_memory(const char* collective, Memory a, Memory b) {
  if (a == Memory::kEmpty || a == b) return b;
  if (b == Memory::kEmpty) return a;
  throw std::invalid_argument(std::string(collective) +
                              ": one buffer is in GPU memory and the other in host memory; pass both from one side");
}

// Where each rank's block starts in a buffer of blocks in rank order; the last entry is their total.
std::vector<int64_t> block_starts(const char* collective, std::span<const int64_t> counts, int world) {
  if (int64_t(counts.size()) != world)
    throw std::invalid_argument(std::string(collective) + ": " + std::to_string(counts.size()) + " block counts for " +
                                std::to_string(world) + " ranks");
  std::vector<int64_t> starts = {0};
  for (int64_t count : counts) {
    if (count < 0)
      throw std::invalid_argument(std::string(collective) + ": a block of " + std::to_string(count) + " values");
    starts.push_back(starts.back() + count);
  }
  return starts;
}

void require_size(const char* collective, const char* buffer, size_t size, int64_t expected) {
  if (int64_t(size) != expected)
    throw std::invalid_argument(std::string(collective) + ": `" + buffer + "` holds " + std::to_string(size) +
                                " values, but the block counts call for " + std::to_string(expected));
}

// The first of these environment variables the launcher set, as a number; else `otherwise`.
int from_launcher(std::initializer_list<const char*> variables, int otherwise) {
  for (const char* variable : variables) {
    const char* text = std::getenv(variable);
    if (!text) continue;
    char* end = nullptr;
    const long value = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < 0 || value > 1 << 20)
      throw std::runtime_error(std::string(variable) + "=" + text + " is not a rank number");
    return int(value);
  }
  return otherwise;
}

class GpuComm final : public Comm {
 public:
  explicit GpuComm(Comm& host) : host_(host) {
    // One GPU per rank, chosen by its rank on this machine (modulo the GPUs it
    // sees, which is 1 where the launcher gives each rank its own). Two ranks on
    // one GPU are refused by ncclCommInitRank ("Duplicate GPU detected").
    int devices = 0;
    CUDA_CHECK(cudaGetDeviceCount(&devices));
    if (devices == 0) throw std::runtime_error("no CUDA device for the NCCL communicator");
    const int local_rank =
        from_launcher({"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}, host.rank());
    CUDA_CHECK(cudaSetDevice(local_rank % devices));

    // Rank 0's id (128 bytes) tells every rank where NCCL's bootstrap meets; the host Comm carries it.
    ncclUniqueId id{};
    std::string id_bytes;
    if (host.rank() == 0) {
      NCCL_CHECK(ncclGetUniqueId(&id));
      id_bytes.assign(reinterpret_cast<const char*>(&id), sizeof id);
    }
    host.broadcast(id_bytes, 0);
    if (id_bytes.size() != sizeof id)
      throw std::runtime_error("rank 0's NCCL id arrived with " + std::to_string(id_bytes.size()) + " bytes, not " +
                               std::to_string(sizeof id));
    std::memcpy(&id, id_bytes.data(), sizeof id);
    NCCL_CHECK(ncclCommInitRank(&nccl_, host.world_size(), id, host.rank()));
    // Started collectives' stream: non-blocking, so the legacy default stream
    // does not wait for it (nor it for that stream) except through the events.
    CUDA_CHECK(cudaStreamCreateWithFlags(&side_stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&queued_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&started_done_, cudaEventDisableTiming));
  }
  // Flushes this rank's NCCL work and frees it. While an exception unwinds (the
  // run failed, and the host Comm's abort comes next) the other ranks would
  // never join that teardown: then NCCL's kernels are stopped instead.
  ~GpuComm() override {
    if (nccl_) {
      if (std::uncaught_exceptions() == 0) ncclCommDestroy(nccl_);
      else ncclCommAbort(nccl_);
    }
    cudaEventDestroy(started_done_);
    cudaEventDestroy(queued_);
    cudaStreamDestroy(side_stream_);
  }
  GpuComm(const GpuComm&) = delete;
  GpuComm& operator=(const GpuComm&) = delete;

  int rank() const override { return host_.rank(); }
  int world_size() const override { return host_.world_size(); }

  void all_reduce_sum(std::span<float> data) override { all_reduce(data); }
  void all_reduce_sum(std::span<double> data) override { all_reduce(data); }
  void all_reduce_sum(std::span<bf16> data) override { all_reduce(data); }
  void start_reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                std::span<const int64_t> counts) override {
    reduce_scatter(in, out, counts, true);
  }
  void start_reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out,
                                std::span<const int64_t> counts) override {
    reduce_scatter(in, out, counts, true);
  }
  // The compute stream waits for the side stream's collectives; the host's are waited for here.
  void wait_all() override {
    if (host_started_) host_.wait_all();
    if (device_started_) {
      CUDA_CHECK(cudaEventRecord(started_done_, side_stream_));
      CUDA_CHECK(cudaStreamWaitEvent(kStream, started_done_, 0));
    }
    host_started_ = device_started_ = false;
  }

  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, std::span<const int64_t> counts) override {
    reduce_scatter(in, out, counts);
  }
  void reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out, std::span<const int64_t> counts) override {
    reduce_scatter(in, out, counts);
  }
  void all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t> counts) override {
    gather(mine, all, counts);
  }
  void start_all_gather(std::span<const float> mine, std::span<float> all,
                        std::span<const int64_t> counts) override {
    gather(mine, all, counts, true);
  }
  void all_gather(std::span<const bf16> mine, std::span<bf16> all, std::span<const int64_t> counts) override {
    gather(mine, all, counts);
  }
  void broadcast(std::span<float> data, int root) override { broadcast_values(data, root); }
  void broadcast(std::span<bf16> data, int root) override { broadcast_values(data, root); }
  void broadcast(std::string& text, int root) override {
    require_nothing_started("broadcast");
    count_broadcast(int64_t(text.size()), root);  // the root's length is what travels
    host_.broadcast(text, root);
  }
  void all_to_all(std::span<const float> in, std::span<const int64_t> send_counts, std::span<float> out,
                  std::span<const int64_t> recv_counts) override {
    exchange(in, send_counts, out, recv_counts);
  }
  void all_to_all(std::span<const bf16> in, std::span<const int64_t> send_counts, std::span<bf16> out,
                  std::span<const int64_t> recv_counts) override {
    exchange(in, send_counts, out, recv_counts);
  }

  // The ranks meet on the host; GPU work already queued may still be running.
  void barrier() override {
    require_nothing_started("barrier");
    host_.barrier();
  }

  // Stops NCCL's kernels, which may be waiting for a rank that will never come, then ends every rank.
  [[noreturn]] void abort(int code) override {
    if (nccl_) ncclCommAbort(nccl_);
    nccl_ = nullptr;
    host_.abort(code);
    std::exit(code);  // not reached: the host Comm's abort ends the process
  }

 private:
  // NCCL's type of a value type. ncclBfloat16 sums add in fp32 and round to bf16
  // at every step; an all-reduce forms each chunk's sum once and sends it on,
  // so every rank gets the same bits (comm.h).
  static ncclDataType_t type_of(const float*) { return ncclFloat; }
  static ncclDataType_t type_of(const double*) { return ncclDouble; }
  static ncclDataType_t type_of(const bf16*) { return ncclBfloat16; }

  void require_nothing_started(const char* collective) const {
    refuse_while_started(host_started_ || device_started_, collective);
  }

  template <typename T>
  void all_reduce(std::span<T> data) {
    require_nothing_started("all_reduce_sum");
    const Memory memory = memory_of(data.data(), data.size());
    count_all_reduce(int64_t(data.size_bytes()));
    if (memory == Memory::kHost) host_.all_reduce_sum(data);
    if (memory == Memory::kDevice)
      NCCL_CHECK(ncclAllReduce(data.data(), data.data(), data.size(), type_of(data.data()), ncclSum, nccl_, kStream));
  }

  // The side stream, made to wait for the work queued so far on the compute stream.
  cudaStream_t side_stream_after_queued_work() {
    CUDA_CHECK(cudaEventRecord(queued_, kStream));
    CUDA_CHECK(cudaStreamWaitEvent(side_stream_, queued_, 0));
    device_started_ = true;
    return side_stream_;
  }

  // started: on the side stream, after the work queued so far on the compute stream.
  template <typename T>
  void reduce_scatter(std::span<const T> in, std::span<T> out, std::span<const int64_t> counts, bool started = false) {
    if (!started) require_nothing_started("reduce_scatter_sum");
    const std::vector<int64_t> starts = block_starts("reduce_scatter_sum", counts, world_size());
    require_size("reduce_scatter_sum", "in", in.size(), starts.back());
    require_size("reduce_scatter_sum", "out", out.size(), counts[size_t(rank())]);
    const Memory memory =
        same_memory("reduce_scatter_sum", memory_of(in.data(), in.size()), memory_of(out.data(), out.size()));
    count_reduce_scatter(counts, sizeof(T));
    if (memory == Memory::kHost) {
      if (!started) return host_.reduce_scatter_sum(in, out, counts);
      host_.start_reduce_scatter_sum(in, out, counts);
      host_started_ = true;
    }
    if (memory != Memory::kDevice) return;
    const cudaStream_t stream = started ? side_stream_after_queued_work() : kStream;
    NcclGroup group;
    for (int r = 0; r < world_size(); r++)
      if (counts[size_t(r)] > 0)
        NCCL_CHECK(ncclReduce(in.data() + starts[size_t(r)], r == rank() ? out.data() : nullptr,
                              size_t(counts[size_t(r)]), type_of(in.data()), ncclSum, r, nccl_, stream));
    group.end();
  }

  template <typename T>
  void gather(std::span<const T> mine, std::span<T> all, std::span<const int64_t> counts, bool started = false) {
    if (!started) require_nothing_started("all_gather");
    const std::vector<int64_t> starts = block_starts("all_gather", counts, world_size());
    require_size("all_gather", "mine", mine.size(), counts[size_t(rank())]);
    require_size("all_gather", "all", all.size(), starts.back());
    const Memory memory =
        same_memory("all_gather", memory_of(mine.data(), mine.size()), memory_of(all.data(), all.size()));
    count_all_gather(counts, sizeof(T));
    if (memory == Memory::kHost) {
      if (!started) return host_.all_gather(mine, all, counts);
      if constexpr (std::is_same_v<T, float>) host_.start_all_gather(mine, all, counts);  // only fp32 is started
      host_started_ = true;
    }
    if (memory != Memory::kDevice) return;
    const cudaStream_t stream = started ? side_stream_after_queued_work() : kStream;
    NcclGroup group;
    for (int r = 0; r < world_size(); r++) {
      if (counts[size_t(r)] == 0) continue;
      T* block = all.data() + starts[size_t(r)];
      NCCL_CHECK(ncclBroadcast(r == rank() ? mine.data() : block, block, size_t(counts[size_t(r)]), type_of(block), r,
                               nccl_, stream));
    }
    group.end();
  }

  template <typename T>
  void broadcast_values(std::span<T> data, int root) {
    require_nothing_started("broadcast");
    const Memory memory = memory_of(data.data(), data.size());
    count_broadcast(int64_t(data.size_bytes()), root);
    if (memory == Memory::kHost) host_.broadcast(data, root);
    if (memory == Memory::kDevice)
      NCCL_CHECK(ncclBroadcast(data.data(), data.data(), data.size(), type_of(data.data()), root, nccl_, kStream));
  }

  template <typename T>
  void exchange(std::span<const T> in, std::span<const int64_t> send_counts, std::span<T> out,
                std::span<const int64_t> recv_counts) {
    require_nothing_started("all_to_all");
    const std::vector<int64_t> send_starts = block_starts("all_to_all", send_counts, world_size());
    const std::vector<int64_t> recv_starts = block_starts("all_to_all", recv_counts, world_size());
    require_size("all_to_all", "in", in.size(), send_starts.back());
    require_size("all_to_all", "out", out.size(), recv_starts.back());
    const size_t me = size_t(rank());
    if (send_counts[me] != recv_counts[me])
      throw std::invalid_argument("all_to_all: rank " + std::to_string(me) + " sends itself " +
                                  std::to_string(send_counts[me]) + " values but receives " +
                                  std::to_string(recv_counts[me]));
    const Memory memory = same_memory("all_to_all", memory_of(in.data(), in.size()), memory_of(out.data(), out.size()));
    count_all_to_all(send_counts, sizeof(T));
    if (memory == Memory::kHost) host_.all_to_all(in, send_counts, out, recv_counts);
    if (memory != Memory::kDevice) return;
    if (send_counts[me] > 0)
      CUDA_CHECK(cudaMemcpyAsync(out.data() + recv_starts[me], in.data() + send_starts[me],
                                 size_t(send_counts[me]) * sizeof(T), cudaMemcpyDeviceToDevice, kStream));
    const ncclDataType_t type = type_of(in.data());
    NcclGroup group;
    for (size_t r = 0; r < size_t(world_size()); r++) {
      if (r == me) continue;
      if (send_counts[r] > 0)
        NCCL_CHECK(ncclSend(in.data() + send_starts[r], size_t(send_counts[r]), type, int(r), nccl_, kStream));
      if (recv_counts[r] > 0)
        NCCL_CHECK(ncclRecv(out.data() + recv_starts[r], size_t(recv_counts[r]), type, int(r), nccl_, kStream));
    }
    group.end();
  }

  Comm& host_;
  ncclComm_t nccl_ = nullptr;
  cudaStream_t side_stream_ = nullptr;     // started collectives
  cudaEvent_t queued_ = nullptr;           // the compute stream's work before one
  cudaEvent_t started_done_ = nullptr;     // the side stream's work before wait_all()
  bool host_started_ = false, device_started_ = false;
};

}  // namespace

std::unique_ptr<Comm> make_gpu_comm(Comm& host) { return std::make_unique<GpuComm>(host); }

}  // namespace llmdion
