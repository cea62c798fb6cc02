// The Comm on MPI (Open MPI) for CPU buffers: fp32 and fp64 as MPI's own
// types and MPI_SUM, bf16 as a 2-byte type of its own with a sum that adds in
// fp32 and rounds to bf16 (comm.h). Counts travel as MPI's int, so a single
// block is limited to 2^31 - 1 values; larger buffers are refused with a
// message rather than truncated.
#include <mpi.h>

#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "dist/comm.h"

namespace llmdion {
namespace {

void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string(call) + " failed: " + std::string(text, size_t(length)));
}

int as_count(int64_t n) {
  if (n < 0 || n > std::numeric_limits<int>::max())
    throw std::runtime_error("a collective of " + std::to_string(n) + " values exceeds MPI's int count");
  return int(n);
}

// The bf16 sum, MPI's user operation over the bf16 datatype: inout = in + inout
// added in fp32 and rounded to the nearest bf16, so every addition of two
// partial sums rounds once (comm.h).
void add_bf16(void* in, void* inout, int* length, MPI_Datatype*) {
  const bf16* a = static_cast<const bf16*>(in);
  bf16* b = static_cast<bf16*>(inout);
  for (int i = 0; i < *length; i++) b[i] = round_to_bf16(to_float(a[i]) + to_float(b[i]));
}

// n values cut into `world` blocks in rank order, the first n % world one longer.
std::vector<int64_t> even_blocks(int64_t n, int world) {
  std::vector<int64_t> counts;
  for (int r = 0; r < world; r++) counts.push_back(n / world + (r < n % world ? 1 : 0));
  return counts;
}

class MpiComm final : public Comm {
 public:
  MpiComm(int* argc, char*** argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
#ifdef LLMDION_CUDA_EMULATE
    // The emulated NCCL (tests/emu/src/nccl.cpp) calls MPI from the emulated
    // device's thread while this thread calls it too.
    int provided = 0;
    if (!initialized) MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    else MPI_Query_thread(&provided);
    if (provided != MPI_THREAD_MULTIPLE)
      throw std::runtime_error("MPI provides thread level " + std::to_string(provided) +
                               ", but the emulated build's NCCL calls MPI from two threads and needs "
                               "MPI_THREAD_MULTIPLE (" + std::to_string(MPI_THREAD_MULTIPLE) + ")");
#else
    if (!initialized) MPI_Init(argc, argv);
#endif
    // Errors come back as codes (turned into exceptions), not as an abort deep inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    // bf16 is two bytes MPI knows nothing of: a type of our own, summed by add_bf16
    // (commutative: MPI may combine the ranks' values in any order).
    check(MPI_Type_contiguous(2, MPI_BYTE, &bf16_type_), "MPI_Type_contiguous");
    check(MPI_Type_commit(&bf16_type_), "MPI_Type_commit");
    check(MPI_Op_create(&add_bf16, 1, &bf16_sum_), "MPI_Op_create");
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Op_free(&bf16_sum_);
    MPI_Type_free(&bf16_type_);
    MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void all_reduce_sum(std::span<float> data) override { all_reduce(data); }
  void all_reduce_sum(std::span<double> data) override { all_reduce(data); }
  // A reduce-scatter over near-equal blocks, then an all-gather of the sums:
  // each block is summed (and rounded) once, on its rank, so every rank ends
  // with the same bits. MPI_Allreduce may sum a value on each rank in another
  // order, which in bf16 may round differently.
  void all_reduce_sum(std::span<bf16> data) override {
    require_nothing_started("all_reduce_sum");
    count_all_reduce(int64_t(data.size_bytes()));
    const std::vector<int> counts = ints(even_blocks(int64_t(data.size()), world_)), displacements = offsets(counts);
    std::vector<bf16> mine(size_t(counts[size_t(rank_)]));
    check(MPI_Reduce_scatter(data.data(), mine.data(), counts.data(), bf16_type_, bf16_sum_, MPI_COMM_WORLD),
          "MPI_Reduce_scatter");
    check(MPI_Allgatherv(mine.data(), counts[size_t(rank_)], bf16_type_, data.data(), counts.data(),
                         displacements.data(), bf16_type_, MPI_COMM_WORLD),
          "MPI_Allgatherv");
  }
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, std::span<const int64_t> counts) override {
    reduce_scatter(in, out, counts);
  }
  void reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out, std::span<const int64_t> counts) override {
    reduce_scatter(in, out, counts);
  }
  void start_reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                std::span<const int64_t> counts) override {
    start_reduce_scatter(in, out, counts);
  }
  void start_reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out,
                                std::span<const int64_t> counts) override {
    start_reduce_scatter(in, out, counts);
  }
  void start_all_gather(std::span<const float> mine, std::span<float> all,
                        std::span<const int64_t> counts) override {
    count_all_gather(counts, sizeof(float));
    request_counts_.push_back(ints(counts));
    request_counts_.push_back(offsets(request_counts_.back()));
    const std::vector<int>& c = request_counts_[request_counts_.size() - 2];
    requests_.push_back(MPI_REQUEST_NULL);
    check(MPI_Iallgatherv(mine.data(), as_count(int64_t(mine.size())), MPI_FLOAT, all.data(), c.data(),
                          request_counts_.back().data(), MPI_FLOAT, MPI_COMM_WORLD, &requests_.back()),
          "MPI_Iallgatherv");
    progress();
  }
  void wait_all() override {
    check(MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    requests_.clear();
    request_counts_.clear();
  }
  void all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t> counts) override {
    gather(mine, all, counts);
  }
  void all_gather(std::span<const bf16> mine, std::span<bf16> all, std::span<const int64_t> counts) override {
    gather(mine, all, counts);
  }
  void broadcast(std::span<float> data, int root) override { broadcast_values(data, root); }
  void broadcast(std::span<bf16> data, int root) override { broadcast_values(data, root); }
  void broadcast(std::string& text, int root) override {
    require_nothing_started("broadcast");
    int64_t length = int64_t(text.size());
    check(MPI_Bcast(&length, 1, MPI_INT64_T, root, MPI_COMM_WORLD), "MPI_Bcast");
    text.resize(size_t(length));
    count_broadcast(length, root);
    check(MPI_Bcast(text.data(), as_count(length), MPI_CHAR, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  void all_to_all(std::span<const float> in, std::span<const int64_t> send_counts, std::span<float> out,
                  std::span<const int64_t> recv_counts) override {
    exchange(in, send_counts, out, recv_counts);
  }
  void all_to_all(std::span<const bf16> in, std::span<const int64_t> send_counts, std::span<bf16> out,
                  std::span<const int64_t> recv_counts) override {
    exchange(in, send_counts, out, recv_counts);
  }
  void barrier() override {
    require_nothing_started("barrier");
    check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
  }

 private:
  // MPI's datatype and sum of a value type.
  MPI_Datatype type_of(const float*) const { return MPI_FLOAT; }
  MPI_Datatype type_of(const double*) const { return MPI_DOUBLE; }
  MPI_Datatype type_of(const bf16*) const { return bf16_type_; }
  MPI_Op sum_of(const float*) const { return MPI_SUM; }
  MPI_Op sum_of(const double*) const { return MPI_SUM; }
  MPI_Op sum_of(const bf16*) const { return bf16_sum_; }

  void require_nothing_started(const char* collective) const { refuse_while_started(!requests_.empty(), collective); }

  template <typename T>
  void all_reduce(std::span<T> data) {
    require_nothing_started("all_reduce_sum");
    count_all_reduce(int64_t(data.size_bytes()));
    check(MPI_Allreduce(MPI_IN_PLACE, data.data(), as_count(int64_t(data.size())), type_of(data.data()),
                        sum_of(data.data()), MPI_COMM_WORLD),
          "MPI_Allreduce");
  }
  template <typename T>
  void reduce_scatter(std::span<const T> in, std::span<T> out, std::span<const int64_t> counts) {
    require_nothing_started("reduce_scatter_sum");
    count_reduce_scatter(counts, sizeof(T));
    std::vector<int> c = ints(counts);
    check(MPI_Reduce_scatter(in.data(), out.data(), c.data(), type_of(in.data()), sum_of(in.data()), MPI_COMM_WORLD),
          "MPI_Reduce_scatter");
  }
  // MPI reads the counts until the collective completes: they live in
  // request_counts_ until wait_all(). Testing the requests (progress()) lets
  // MPI move the earlier ones along.
  template <typename T>
  void start_reduce_scatter(std::span<const T> in, std::span<T> out, std::span<const int64_t> counts) {
    count_reduce_scatter(counts, sizeof(T));
    request_counts_.push_back(ints(counts));
    requests_.push_back(MPI_REQUEST_NULL);
    check(MPI_Ireduce_scatter(in.data(), out.data(), request_counts_.back().data(), type_of(in.data()),
                              sum_of(in.data()), MPI_COMM_WORLD, &requests_.back()),
          "MPI_Ireduce_scatter");
    progress();
  }
  void progress() {
    int done = 0;
    check(MPI_Testall(int(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
  }

  template <typename T>
  void gather(std::span<const T> mine, std::span<T> all, std::span<const int64_t> counts) {
    require_nothing_started("all_gather");
    count_all_gather(counts, sizeof(T));
    std::vector<int> c = ints(counts), displacements = offsets(c);
    check(MPI_Allgatherv(mine.data(), as_count(int64_t(mine.size())), type_of(mine.data()), all.data(), c.data(),
                         displacements.data(), type_of(mine.data()), MPI_COMM_WORLD),
          "MPI_Allgatherv");
  }
  template <typename T>
  void broadcast_values(std::span<T> data, int root) {
    require_nothing_started("broadcast");
    count_broadcast(int64_t(data.size_bytes()), root);
    check(MPI_Bcast(data.data(), as_count(int64_t(data.size())), type_of(data.data()), root, MPI_COMM_WORLD),
          "MPI_Bcast");
  }
  template <typename T>
  void exchange(std::span<const T> in, std::span<const int64_t> send_counts, std::span<T> out,
                std::span<const int64_t> recv_counts) {
    require_nothing_started("all_to_all");
    count_all_to_all(send_counts, sizeof(T));
    std::vector<int> sc = ints(send_counts), rc = ints(recv_counts), sd = offsets(sc), rd = offsets(rc);
    check(MPI_Alltoallv(in.data(), sc.data(), sd.data(), type_of(in.data()), out.data(), rc.data(), rd.data(),
                        type_of(in.data()), MPI_COMM_WORLD),
          "MPI_Alltoallv");
  }

  static std::vector<int> ints(std::span<const int64_t> counts) {
    std::vector<int> out;
    for (int64_t c : counts) out.push_back(as_count(c));
    return out;
  }
  static std::vector<int> offsets(const std::vector<int>& counts) {
    std::vector<int> out;
    int64_t at = 0;
    for (int c : counts) out.push_back(as_count(at)), at += c;
    return out;
  }
  std::vector<MPI_Request> requests_;           // started collectives, until wait_all()
  std::vector<std::vector<int>> request_counts_;  // and their block counts (and displacements)
  int rank_ = 0, world_ = 1;
  MPI_Datatype bf16_type_ = MPI_DATATYPE_NULL;
  MPI_Op bf16_sum_ = MPI_OP_NULL;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(int* argc, char*** argv) { return std::make_unique<MpiComm>(argc, argv); }

}  // namespace llmdion
