#include "dist/comm.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <utility>
#include <vector>

namespace llmdion {

#ifdef LLMDION_WITH_MPI
std::unique_ptr<Comm> make_mpi_comm(int* argc, char*** argv);
#endif

namespace {

// A world of one: every collective is a copy.
class SerialComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(std::span<float>) override {}
  void all_reduce_sum(std::span<double>) override {}
  void all_reduce_sum(std::span<bf16>) override {}
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, std::span<const int64_t>) override {
    copy(in.first(out.size()), out);
  }
  void reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out, std::span<const int64_t>) override {
    copy(in.first(out.size()), out);
  }
  void all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t>) override {
    copy(mine, all);
  }
  void all_gather(std::span<const bf16> mine, std::span<bf16> all, std::span<const int64_t>) override {
    copy(mine, all);
  }
  void broadcast(std::span<float>, int) override {}
  void broadcast(std::span<bf16>, int) override {}
  void broadcast(std::string&, int) override {}
  void all_to_all(std::span<const float> in, std::span<const int64_t>, std::span<float> out,
                  std::span<const int64_t>) override {
    copy(in, out);
  }
  void all_to_all(std::span<const bf16> in, std::span<const int64_t>, std::span<bf16> out,
                  std::span<const int64_t>) override {
    copy(in, out);
  }
  void start_reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                std::span<const int64_t> counts) override {
    reduce_scatter_sum(in, out, counts);
  }
  void start_reduce_scatter_sum(std::span<const bf16> in, std::span<bf16> out,
                                std::span<const int64_t> counts) override {
    reduce_scatter_sum(in, out, counts);
  }
  void start_all_gather(std::span<const float> mine, std::span<float> all, std::span<const int64_t> counts) override {
    all_gather(mine, all, counts);
  }
  void wait_all() override {}
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }

 private:
  template <typename T>
  static void copy(std::span<const T> from, std::span<T> to) {
    std::copy(from.begin(), from.end(), to.begin());
  }
};

bool launched_by_mpi() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALRANKID"})
    if (std::getenv(variable)) return true;
  return false;
}

}  // namespace

BytesSent BytesSent::operator-(const BytesSent& earlier) const {
  return {all_reduce - earlier.all_reduce, reduce_scatter - earlier.reduce_scatter, all_gather - earlier.all_gather,
          broadcast - earlier.broadcast, all_to_all - earlier.all_to_all};
}

std::string BytesSent::describe() const {
  const auto mb = [](int64_t bytes) {
    if (bytes < 1000) return fmt::format("{} B", bytes);
    return bytes < 1000000 ? fmt::format("{:.2f} kB", double(bytes) / 1e3) : fmt::format("{:.2f} MB", double(bytes) / 1e6);
  };
  const std::pair<const char*, int64_t> by_kind[] = {{"all-reduce", all_reduce}, {"reduce-scatter", reduce_scatter},
                                                     {"all-gather", all_gather}, {"broadcast", broadcast},
                                                     {"all-to-all", all_to_all}};
  std::string kinds;
  for (const auto& [name, bytes] : by_kind)
    if (bytes > 0) kinds += (kinds.empty() ? "" : ", ") + std::string(name) + " " + mb(bytes);
  return mb(total()) + (kinds.empty() ? "" : " (" + kinds + ")");
}

void Comm::count_all_reduce(int64_t bytes) { sent_.all_reduce += 2 * bytes * (world_size() - 1) / world_size(); }

void Comm::count_reduce_scatter(std::span<const int64_t> counts, int64_t value_bytes) {
  for (int r = 0; r < world_size(); r++)
    if (r != rank()) sent_.reduce_scatter += counts[size_t(r)] * value_bytes;
}

void Comm::count_all_gather(std::span<const int64_t> counts, int64_t value_bytes) {
  sent_.all_gather += counts[size_t(rank())] * value_bytes * (world_size() - 1);
}

void Comm::count_broadcast(int64_t bytes, int root) {
  if (rank() == root) sent_.broadcast += bytes * (world_size() - 1);
}

void Comm::count_all_to_all(std::span<const int64_t> send_counts, int64_t value_bytes) {
  for (int r = 0; r < world_size(); r++)
    if (r != rank()) sent_.all_to_all += send_counts[size_t(r)] * value_bytes;
}

void Comm::refuse_while_started(bool started, const char* collective) {
  if (started)
    throw std::logic_error(std::string(collective) +
                           " called while started collectives are in flight; call wait_all() first");
}

std::unique_ptr<Comm> make_comm(int* argc, char*** argv) {
#ifdef LLMDION_WITH_MPI
  if (launched_by_mpi()) return make_mpi_comm(argc, argv);
#else
  (void)argc, (void)argv;
  if (launched_by_mpi())
    throw std::runtime_error("started by an MPI launcher, but this binary was built without MPI (-DLLMDION_MPI=OFF)");
#endif
  return std::make_unique<SerialComm>();
}

void check_same_on_all_ranks(Comm& comm, const std::string& text, const std::string& what, const std::string& remedy) {
  if (comm.world_size() == 1) return;
  std::string root_text = text;
  comm.broadcast(root_text, 0);
  std::vector<double> differs(static_cast<size_t>(comm.world_size()), 0.0);
  differs[size_t(comm.rank())] = root_text == text ? 0.0 : 1.0;
  comm.all_reduce_sum(differs);
  std::string ranks;
  for (int r = 0; r < comm.world_size(); r++)
    if (differs[size_t(r)] != 0.0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  if (!ranks.empty())
    throw std::runtime_error("the " + what + " of rank(s) " + ranks + " differs from rank 0's: " + remedy);
}

}  // namespace llmdion
