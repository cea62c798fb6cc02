// The collectives the trainer and the optimizers use over the ranks of one run:
// one interface, implemented on MPI for CPU buffers (mpi_comm.cpp) and, where
// the process runs alone, by a serial Comm that copies. make_comm() is the one
// place that decides which. On cuda runs over several ranks, make_gpu_comm()
// (gpu_comm.h) wraps that Comm: NCCL for GPU buffers, it for host buffers.
//
// Blocks are laid out in rank order: block r of a buffer has counts[r] values.
// bytes_sent() counts what this rank sends under the textbook algorithms for
// n ranks: reduce-scatter the blocks of the others, all-gather its block n-1
// times, all-reduce (reduce-scatter + all-gather) 2(n-1)/n of its buffer,
// broadcast n-1 copies from the root, all-to-all the blocks for other ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace llmdion {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // data = the sum over ranks of data, on every rank.
  virtual void all_reduce_sum(std::span<float> data) = 0;
  virtual void all_reduce_sum(std::span<double> data) = 0;
  // out = the sum over ranks of their block `rank()` of in (counts[r] values each).
  virtual void reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                  std::span<const int64_t> counts) = 0;
  // all = every rank's `mine`, block after block.
  virtual void all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t> counts) = 0;
  virtual void broadcast(std::span<float> data, int root) = 0;
  virtual void broadcast(std::string& text, int root) = 0;
  // Block r of in goes to rank r; block r of out came from rank r.
  virtual void all_to_all(std::span<const float> in, std::span<const int64_t> send_counts, std::span<float> out,
                          std::span<const int64_t> recv_counts) = 0;
  virtual void barrier() = 0;
  // Ends the process of every rank with `code`: a failing rank never leaves the others waiting.
  [[noreturn]] virtual void abort(int code) = 0;

  // The sum over ranks of one value, on every rank.
  double sum_over_ranks(double value) {
    all_reduce_sum(std::span<double>(&value, 1));
    return value;
  }

  int64_t bytes_sent() const { return bytes_sent_; }

 protected:
  // bytes_sent_ += what this rank sends in one collective under the textbook
  // algorithm above, from the collective's arguments (blocks of floats).
  void count_all_reduce(int64_t bytes);
  void count_reduce_scatter(std::span<const int64_t> counts);
  void count_all_gather(std::span<const int64_t> counts);
  void count_broadcast(int64_t bytes, int root);
  void count_all_to_all(std::span<const int64_t> send_counts);

  int64_t bytes_sent_ = 0;
};

// MPI when the process was started by mpirun (or another MPI launcher), else
// the serial Comm of a world of one.
std::unique_ptr<Comm> make_comm(int* argc, char*** argv);

// Throws std::runtime_error on every rank, naming the ranks, unless `text`
// (a resolved config, say) is the same on all ranks. `what` names it.
void check_same_on_all_ranks(Comm& comm, const std::string& text, const std::string& what);

}  // namespace llmdion
