// Every Comm collective against a serial computation of the same result, on
// odd sizes. Run under mpirun with 2 and 4 ranks (ctest label mpi) and alone
// (the serial Comm). Each rank can compute every rank's input, since inputs
// are seeded by rank.
#include <gtest/gtest.h>

#include <numeric>

#include "core/rng.h"
#include "dist/comm.h"

namespace llmdion {
namespace {

Comm* comm = nullptr;

std::vector<float> input_of(int rank, int64_t n, uint64_t salt) {
  SplitMix64 rng{derive_seed({uint64_t(rank), salt})};
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = float(int64_t(rng.below(2001)) - 1000) / 64.0f;  // exact in fp32 sums
  return v;
}

// Block sizes 3 + 2r: odd, different on every rank.
std::vector<int64_t> block_counts() {
  std::vector<int64_t> counts;
  for (int r = 0; r < comm->world_size(); r++) counts.push_back(3 + 2 * r);
  return counts;
}

TEST(Comm, all_reduce_sums_over_ranks) {
  std::vector<float> data = input_of(comm->rank(), 1001, 1);
  comm->all_reduce_sum(data);
  std::vector<float> expected(1001, 0.0f);
  for (int r = 0; r < comm->world_size(); r++) {
    const std::vector<float> other = input_of(r, 1001, 1);
    for (size_t i = 0; i < expected.size(); i++) expected[i] += other[i];
  }
  EXPECT_EQ(data, expected);
  std::vector<double> scalar = {double(comm->rank()) + 0.5};
  comm->all_reduce_sum(scalar);
  EXPECT_EQ(scalar[0], comm->world_size() * (comm->world_size() - 1) / 2.0 + 0.5 * comm->world_size());
}

TEST(Comm, reduce_scatter_gives_each_rank_the_sum_of_its_block) {
  const std::vector<int64_t> counts = block_counts();
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t(0));
  const int64_t start = std::accumulate(counts.begin(), counts.begin() + comm->rank(), int64_t(0));
  std::vector<float> mine(static_cast<size_t>(counts[size_t(comm->rank())]), -1.0f);
  comm->reduce_scatter_sum(input_of(comm->rank(), total, 2), mine, counts);
  for (int64_t i = 0; i < int64_t(mine.size()); i++) {
    float expected = 0;
    for (int r = 0; r < comm->world_size(); r++) expected += input_of(r, total, 2)[size_t(start + i)];
    EXPECT_EQ(mine[size_t(i)], expected);
  }
}

TEST(Comm, all_gather_concatenates_every_ranks_block) {
  const std::vector<int64_t> counts = block_counts();
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t(0));
  std::vector<float> all(static_cast<size_t>(total), -1.0f);
  comm->all_gather(input_of(comm->rank(), counts[size_t(comm->rank())], 3), all, counts);
  std::vector<float> expected;
  for (int r = 0; r < comm->world_size(); r++) {
    const std::vector<float> block = input_of(r, counts[size_t(r)], 3);
    expected.insert(expected.end(), block.begin(), block.end());
  }
  EXPECT_EQ(all, expected);
}

TEST(Comm, broadcast_copies_the_roots_buffer_and_text) {
  const int root = comm->world_size() - 1;
  std::vector<float> data = input_of(comm->rank(), 77, 4);
  comm->broadcast(data, root);
  EXPECT_EQ(data, input_of(root, 77, 4));
  std::string text = comm->rank() == root ? "from the root, rank " + std::to_string(root) : "x";
  comm->broadcast(text, root);
  EXPECT_EQ(text, "from the root, rank " + std::to_string(root));
}

TEST(Comm, all_to_all_delivers_block_r_to_rank_r) {
  // Rank s sends s + r + 1 values to rank r.
  const int world = comm->world_size(), me = comm->rank();
  std::vector<int64_t> send_counts, recv_counts;
  for (int r = 0; r < world; r++) send_counts.push_back(me + r + 1), recv_counts.push_back(r + me + 1);
  const int64_t sent = std::accumulate(send_counts.begin(), send_counts.end(), int64_t(0));
  const int64_t received = std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t(0));
  std::vector<float> out(static_cast<size_t>(received), -1.0f);
  comm->all_to_all(input_of(me, sent, 5), send_counts, out, recv_counts);
  std::vector<float> expected;
  for (int s = 0; s < world; s++) {
    const std::vector<float> theirs = input_of(s, int64_t(world) * s + world * (world + 1) / 2, 5);
    int64_t offset = 0;
    for (int r = 0; r < me; r++) offset += s + r + 1;
    expected.insert(expected.end(), theirs.begin() + offset, theirs.begin() + offset + s + me + 1);
  }
  EXPECT_EQ(out, expected);
}

TEST(Comm, a_differing_config_is_refused_on_every_rank) {
  EXPECT_NO_THROW(check_same_on_all_ranks(*comm, "same text", "config"));
  if (comm->world_size() == 1) return;
  try {
    check_same_on_all_ranks(*comm, comm->rank() == 1 ? "rank 1's own" : "shared", "resolved config");
    ADD_FAILURE() << "no error on rank " << comm->rank();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("resolved config of rank(s) 1 differs from rank 0's"), std::string::npos)
        << e.what();
  }
}

TEST(Comm, bytes_sent_counts_what_the_textbook_algorithms_send) {
  const int64_t n = comm->world_size();
  int64_t before = comm->bytes_sent();
  std::vector<float> data(100, 1.0f);
  comm->all_reduce_sum(data);  // reduce-scatter + all-gather: 2 (n-1)/n of 400 bytes
  EXPECT_EQ(comm->bytes_sent() - before, n > 1 ? 2 * 400 * (n - 1) / n : 0);
  before = comm->bytes_sent();
  const std::vector<int64_t> counts(size_t(n), 10);
  std::vector<float> all(size_t(10 * n));
  comm->all_gather(std::vector<float>(10, 1.0f), all, counts);  // my block to each other rank
  EXPECT_EQ(comm->bytes_sent() - before, n > 1 ? 40 * (n - 1) : 0);
  before = comm->bytes_sent();
  std::vector<float> mine(10);
  comm->reduce_scatter_sum(all, mine, counts);  // the other ranks' blocks, each to its rank
  EXPECT_EQ(comm->bytes_sent() - before, n > 1 ? 40 * (n - 1) : 0);
  before = comm->bytes_sent();
  std::vector<float> received(all.size());
  comm->all_to_all(all, counts, received, counts);  // a block to each other rank
  EXPECT_EQ(comm->bytes_sent() - before, n > 1 ? 40 * (n - 1) : 0);
  before = comm->bytes_sent();
  std::string text(7, 'x');
  comm->broadcast(data, 0);  // n - 1 copies, from the root only
  comm->broadcast(text, 0);
  EXPECT_EQ(comm->bytes_sent() - before, comm->rank() == 0 && n > 1 ? (400 + 7) * (n - 1) : 0);
}

}  // namespace
}  // namespace llmdion

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<llmdion::Comm> comm = llmdion::make_comm(&argc, &argv);
  llmdion::comm = comm.get();
  return RUN_ALL_TESTS();
}
