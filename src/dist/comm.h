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
// broadcast n-1 copies from the root, all-to-all the blocks for other ranks;
// 4 bytes a value in fp32, 2 in bf16.
//
// The bf16 collectives move bf16 values (core/bf16.h) and sum them in fp32,
// rounding to bf16 (nearest even) after every addition of two partial sums:
// a sum of n values x_r is rounded n - 1 times, each time by at most 2^-8 of
// the partial sum, so it is within about (n - 1) 2^-8 sum_r |x_r| of the exact sum.
// Each block's sum is formed once and copied to the ranks that receive it, so
// an all-reduce gives the same bits on every rank.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/bf16.h"

namespace llmdion {

// What one rank has sent, by kind of collective (the counting rule above).
struct BytesSent {
  int64_t all_reduce = 0, reduce_scatter = 0, all_gather = 0, broadcast = 0, all_to_all = 0;

  int64_t total() const { return all_reduce + reduce_scatter + all_gather + broadcast + all_to_all; }
  BytesSent operator-(const BytesSent& earlier) const;
  // "1.23 MB (reduce-scatter 800.00 kB, all-gather 430.00 kB, all-reduce 8 B)":
  // the total and each kind that sent anything.
  std::string describe() const;
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // data = the sum over ranks of data, on every rank.
  virtual void all_reduce_sum(std::span<float> data) = 0;
  virtual void all_reduce_sum(std::span<double> data) = 0;
  virtual void all_reduce_sum(std::span<bf16> data) = 0;
  // out = the sum over ranks of their block `rank()` of in (counts[r] values each).
  virtual void reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                  std::span<const int64_t> counts) = 0;
  virtual void reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out,
                                  std::span<const int64_t> counts) = 0;
  // The same reduce-scatter, started and left running, so that it overlaps
  // the work that follows (the backward of the layers below, say): `in` must
  // stay as it is and `out` unread until wait_all(). MPI: a nonblocking
  // collective, moved along by later calls into MPI. NCCL: queued on a stream
  // of its own after the work queued so far on the compute stream. Several may
  // be in flight; no other collective is called until wait_all() (over several
  // ranks a blocking one throws std::logic_error there: it could meet another
  // call on another rank).
  virtual void start_reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                        std::span<const int64_t> counts) = 0;
  virtual void start_reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out,
                                        std::span<const int64_t> counts) = 0;
  // The fp32 all-gather (below), started and left running likewise: `mine`
  // unchanged and `all` unread until wait_all().
  virtual void start_all_gather(std::span<const float> mine, std::span<float> all,
                                std::span<const int64_t> counts) = 0;
  // Returns once every started collective is done (on the GPU: the work queued
  // after this call on the compute stream waits for them).
  virtual void wait_all() = 0;
  // all = every rank's `mine`, block after block.
  virtual void all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t> counts) = 0;
  virtual void all_gather(std::span<const bf16> mine, std::span<bf16> all, std::span<const int64_t> counts) = 0;
  virtual void broadcast(std::span<float> data, int root) = 0;
  virtual void broadcast(std::span<bf16> data, int root) = 0;
  virtual void broadcast(std::string& text, int root) = 0;
  // Block r of in goes to rank r; block r of out came from rank r.
  virtual void all_to_all(std::span<const float> in, std::span<const int64_t> send_counts, std::span<float> out,
                          std::span<const int64_t> recv_counts) = 0;
  virtual void all_to_all(std::span<const bf16> in, std::span<const int64_t> send_counts, std::span<bf16> out,
                          std::span<const int64_t> recv_counts) = 0;
  virtual void barrier() = 0;
  // Ends the process of every rank with `code`: a failing rank never leaves the others waiting.
  [[noreturn]] virtual void abort(int code) = 0;

  // The sum over ranks of one value, on every rank.
  double sum_over_ranks(double value) {
    all_reduce_sum(std::span<double>(&value, 1));
    return value;
  }

  int64_t bytes_sent() const { return sent_.total(); }
  const BytesSent& bytes_sent_by_collective() const { return sent_; }

 protected:
  // sent_ += what this rank sends in one collective under the textbook
  // algorithm above, from the collective's arguments (blocks of values of
  // value_bytes each: 4 for fp32, 2 for bf16).
  void count_all_reduce(int64_t bytes);
  void count_reduce_scatter(std::span<const int64_t> counts, int64_t value_bytes);
  void count_all_gather(std::span<const int64_t> counts, int64_t value_bytes);
  void count_broadcast(int64_t bytes, int root);
  void count_all_to_all(std::span<const int64_t> send_counts, int64_t value_bytes);
  // Between a start and wait_all() only started collectives may be called: a
  // blocking `collective` there (started: one is in flight) throws
  // std::logic_error, rather than meet a different call on another rank.
  static void refuse_while_started(bool started, const char* collective);

  BytesSent sent_;
};

// MPI when the process was started by mpirun (or another MPI launcher), else
// the serial Comm of a world of one.
std::unique_ptr<Comm> make_comm(int* argc, char*** argv);

// Throws std::runtime_error on every rank, naming the ranks, unless `text`
// (a resolved config, say) is the same on all ranks. `what` names it; `remedy`
// ends the message, saying what to do.
void check_same_on_all_ranks(Comm& comm, const std::string& text, const std::string& what, const std::string& remedy);

}  // namespace llmdion
