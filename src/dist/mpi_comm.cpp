// The Comm on MPI (Open MPI) for CPU buffers. Counts travel as MPI's int, so a
// single block is limited to 2^31 - 1 values; larger buffers are refused with a
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

class MpiComm final : public Comm {
 public:
  MpiComm(int* argc, char*** argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) MPI_Init(argc, argv);
    // Errors come back as codes (turned into exceptions), not as an abort deep inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void all_reduce_sum(std::span<float> data) override {
    count_all_reduce(int64_t(data.size_bytes()));
    check(MPI_Allreduce(MPI_IN_PLACE, data.data(), as_count(int64_t(data.size())), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
  }
  void all_reduce_sum(std::span<double> data) override {
    count_all_reduce(int64_t(data.size_bytes()));
    check(MPI_Allreduce(MPI_IN_PLACE, data.data(), as_count(int64_t(data.size())), MPI_DOUBLE, MPI_SUM,
                        MPI_COMM_WORLD),
          "MPI_Allreduce");
  }
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, std::span<const int64_t> counts) override {
    count_reduce_scatter(counts);
    std::vector<int> c = ints(counts);
    check(MPI_Reduce_scatter(in.data(), out.data(), c.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Reduce_scatter");
  }
  void all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t> counts) override {
    count_all_gather(counts);
    std::vector<int> c = ints(counts), displacements = offsets(c);
    check(MPI_Allgatherv(mine.data(), as_count(int64_t(mine.size())), MPI_FLOAT, all.data(), c.data(),
                         displacements.data(), MPI_FLOAT, MPI_COMM_WORLD),
          "MPI_Allgatherv");
  }
  void broadcast(std::span<float> data, int root) override {
    count_broadcast(int64_t(data.size_bytes()), root);
    check(MPI_Bcast(data.data(), as_count(int64_t(data.size())), MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  void broadcast(std::string& text, int root) override {
    int64_t length = int64_t(text.size());
    check(MPI_Bcast(&length, 1, MPI_INT64_T, root, MPI_COMM_WORLD), "MPI_Bcast");
    text.resize(size_t(length));
    count_broadcast(length, root);
    check(MPI_Bcast(text.data(), as_count(length), MPI_CHAR, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  void all_to_all(std::span<const float> in, std::span<const int64_t> send_counts, std::span<float> out,
                  std::span<const int64_t> recv_counts) override {
    count_all_to_all(send_counts);
    std::vector<int> sc = ints(send_counts), rc = ints(recv_counts), sd = offsets(sc), rd = offsets(rc);
    check(MPI_Alltoallv(in.data(), sc.data(), sd.data(), MPI_FLOAT, out.data(), rc.data(), rd.data(), MPI_FLOAT,
                        MPI_COMM_WORLD),
          "MPI_Alltoallv");
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
  }

 private:
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
  int rank_ = 0, world_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(int* argc, char*** argv) { return std::make_unique<MpiComm>(argc, argv); }

}  // namespace llmdion
