// Every Comm collective, in fp32 and bf16, against a serial computation of the
// same result, on odd sizes. Run under mpirun with 2 and 4 ranks (ctest label
// mpi) and alone (the serial Comm). Each rank can compute every rank's input,
// since inputs are seeded by rank.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numeric>
#include <tuple>

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

// ---- bf16 ----------------------------------------------------------------

// Values k 2^e, e = i % 11 - 5 by index and |k| <= 255 / ranks: every partial
// sum over the ranks is an integer below 2^8 times 2^e, exact in bf16.
std::vector<bf16> exact_bf16_input_of(int rank, int64_t n, uint64_t salt) {
  SplitMix64 rng{derive_seed({uint64_t(rank), salt})};
  const int64_t bound = 255 / comm->world_size();
  std::vector<bf16> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++)
    v[size_t(i)] = round_to_bf16(std::ldexp(float(int64_t(rng.below(uint64_t(2 * bound + 1))) - bound), int(i % 11) - 5));
  return v;
}

// Uniform in [-1, 1), rounded to bf16: sums that bf16 must round.
std::vector<bf16> random_bf16_input_of(int rank, int64_t n, uint64_t salt) {
  SplitMix64 rng{derive_seed({uint64_t(rank), salt})};
  std::vector<bf16> v(static_cast<size_t>(n));
  for (bf16& x : v) x = round_to_bf16(float(double(rng.next() >> 11) * 0x1p-52 - 1.0));
  return v;
}

std::vector<float> widened(std::span<const bf16> values) {
  std::vector<float> out;
  for (bf16 x : values) out.push_back(to_float(x));
  return out;
}

std::vector<uint16_t> bits_of(std::span<const bf16> values) {
  std::vector<uint16_t> out;
  for (bf16 x : values) out.push_back(x.bits);
  return out;
}

// Values [start, start + n) of the inputs of every rank, summed exactly (in double), and their magnitudes summed.
struct ExactSums {
  std::vector<double> sum, magnitude;
};
ExactSums exact_sums(const std::function<std::vector<bf16>(int)>& input_of_rank, int64_t start, int64_t n) {
  ExactSums sums{std::vector<double>(size_t(n), 0.0), std::vector<double>(size_t(n), 0.0)};
  for (int r = 0; r < comm->world_size(); r++) {
    const std::vector<float> values = widened(input_of_rank(r));
    for (int64_t i = 0; i < n; i++) {
      sums.sum[size_t(i)] += values[size_t(start + i)];
      sums.magnitude[size_t(i)] += std::fabs(values[size_t(start + i)]);
    }
  }
  return sums;
}

// got within bf16's rounding of every addition (comm.h) of the exact sums.
void expect_bf16_sums(std::span<const bf16> got, const ExactSums& want) {
  ASSERT_EQ(got.size(), want.sum.size());
  const double additions = comm->world_size() - 1;
  for (size_t i = 0; i < got.size(); i++)
    EXPECT_NEAR(to_float(got[i]), want.sum[i], 1.01 * additions * 0x1p-8 * want.magnitude[i]) << "value " << i;
}

// Every rank's `mine`, gathered in fp32 (exact for bf16 values).
std::vector<std::vector<float>> every_ranks(std::span<const bf16> mine) {
  const std::vector<float> values = widened(mine);
  const std::vector<int64_t> counts(size_t(comm->world_size()), int64_t(values.size()));
  std::vector<float> all(values.size() * size_t(comm->world_size()));
  comm->all_gather(values, all, counts);
  std::vector<std::vector<float>> ranks;
  for (size_t r = 0; r < size_t(comm->world_size()); r++)
    ranks.emplace_back(all.begin() + long(r * values.size()), all.begin() + long((r + 1) * values.size()));
  return ranks;
}

TEST(CommBf16, all_reduce_sums_over_ranks_with_the_same_bits_on_every_rank) {
  for (int64_t n : {int64_t(1001), int64_t(3)}) {  // 3: fewer values than 4 ranks
    std::vector<bf16> exact = exact_bf16_input_of(comm->rank(), n, 11);
    comm->all_reduce_sum(exact);
    const ExactSums want = exact_sums([&](int r) { return exact_bf16_input_of(r, n, 11); }, 0, n);
    EXPECT_EQ(widened(exact), std::vector<float>(want.sum.begin(), want.sum.end())) << n << " values";

    std::vector<bf16> rounded = random_bf16_input_of(comm->rank(), n, 12);
    comm->all_reduce_sum(rounded);
    expect_bf16_sums(rounded, exact_sums([&](int r) { return random_bf16_input_of(r, n, 12); }, 0, n));
    const std::vector<std::vector<float>> ranks = every_ranks(rounded);
    for (int r = 1; r < comm->world_size(); r++) EXPECT_EQ(ranks[size_t(r)], ranks[0]) << "rank " << r << " vs rank 0";
    // The bits themselves: -0 and +0 would compare equal as floats.
    std::vector<bf16> roots = rounded;
    comm->broadcast(roots, 0);
    EXPECT_EQ(bits_of(rounded), bits_of(roots));
  }
}

TEST(CommBf16, reduce_scatter_gives_each_rank_the_sum_of_its_block) {
  const std::vector<int64_t> counts = block_counts();
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t(0));
  const int64_t start = std::accumulate(counts.begin(), counts.begin() + comm->rank(), int64_t(0));
  const int64_t my_count = counts[size_t(comm->rank())];
  std::vector<bf16> mine(static_cast<size_t>(my_count), round_to_bf16(-1.0f));
  comm->reduce_scatter_sum(exact_bf16_input_of(comm->rank(), total, 13), mine, counts);
  const ExactSums want = exact_sums([&](int r) { return exact_bf16_input_of(r, total, 13); }, start, my_count);
  EXPECT_EQ(widened(mine), std::vector<float>(want.sum.begin(), want.sum.end()));

  comm->reduce_scatter_sum(random_bf16_input_of(comm->rank(), total, 14), mine, counts);
  expect_bf16_sums(mine, exact_sums([&](int r) { return random_bf16_input_of(r, total, 14); }, start, my_count));
}

// Started collectives, four in flight at once (reduce-scatters, one of them
// bf16 and one with an empty block, and an all-gather), then wait_all(): each
// rank's blocks hold the sums, and the gather every rank's block.
TEST(Comm, started_collectives_in_flight_together_give_their_results) {
  const std::vector<int64_t> counts = block_counts();
  std::vector<int64_t> with_empty = counts;
  with_empty[0] = 0;
  const int me = comm->rank();
  auto total = [](const std::vector<int64_t>& c) { return std::accumulate(c.begin(), c.end(), int64_t(0)); };
  auto start_of = [&](const std::vector<int64_t>& c) { return std::accumulate(c.begin(), c.begin() + me, int64_t(0)); };
  const std::vector<float> in_a = input_of(me, total(counts), 21), in_b = input_of(me, total(with_empty), 22);
  const std::vector<bf16> in_c = exact_bf16_input_of(me, total(counts), 23);
  std::vector<float> a(static_cast<size_t>(counts[size_t(me)]), -1.0f), b(static_cast<size_t>(with_empty[size_t(me)]), -1.0f);
  std::vector<bf16> c(a.size(), round_to_bf16(-1.0f));
  comm->start_reduce_scatter_sum(in_a, a, counts);
  comm->start_reduce_scatter_sum(in_b, b, with_empty);
  comm->start_reduce_scatter_sum(in_c, c, counts);
  const std::vector<float> block = input_of(me, counts[size_t(me)], 24);
  std::vector<float> gathered(static_cast<size_t>(total(counts)), -1.0f);
  comm->start_all_gather(block, gathered, counts);
  comm->wait_all();
  for (int r = 0, at = 0; r < comm->world_size(); at += int(counts[size_t(r)]), r++) {
    const std::vector<float> theirs = input_of(r, counts[size_t(r)], 24);
    EXPECT_EQ(std::vector<float>(gathered.begin() + at, gathered.begin() + at + long(theirs.size())), theirs) << "rank " << r;
  }
  using Case = std::tuple<const std::vector<float>*, const std::vector<int64_t>*, int>;
  for (const auto& [got, c_counts, salt] : {Case{&a, &counts, 21}, Case{&b, &with_empty, 22}})
    for (size_t i = 0; i < got->size(); i++) {
      float expected = 0;
      for (int r = 0; r < comm->world_size(); r++)
        expected += input_of(r, total(*c_counts), uint64_t(salt))[size_t(start_of(*c_counts)) + i];
      EXPECT_EQ((*got)[i], expected) << "salt " << salt << ", value " << i;
    }
  const ExactSums want =
      exact_sums([&](int r) { return exact_bf16_input_of(r, total(counts), 23); }, start_of(counts), int64_t(c.size()));
  EXPECT_EQ(widened(c), std::vector<float>(want.sum.begin(), want.sum.end()));
}

TEST(CommBf16, all_gather_concatenates_every_ranks_block) {
  const std::vector<int64_t> counts = block_counts();
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t(0));
  std::vector<bf16> all(static_cast<size_t>(total), round_to_bf16(-1.0f));
  comm->all_gather(random_bf16_input_of(comm->rank(), counts[size_t(comm->rank())], 15), all, counts);
  std::vector<bf16> expected;
  for (int r = 0; r < comm->world_size(); r++) {
    const std::vector<bf16> block = random_bf16_input_of(r, counts[size_t(r)], 15);
    expected.insert(expected.end(), block.begin(), block.end());
  }
  EXPECT_EQ(bits_of(all), bits_of(expected));
}

TEST(CommBf16, broadcast_copies_the_roots_buffer) {
  const int root = comm->world_size() - 1;
  std::vector<bf16> data = random_bf16_input_of(comm->rank(), 77, 16);
  comm->broadcast(data, root);
  EXPECT_EQ(bits_of(data), bits_of(random_bf16_input_of(root, 77, 16)));
}

TEST(CommBf16, all_to_all_delivers_block_r_to_rank_r) {
  // Rank s sends 2 s + r + 1 values to rank r.
  const int world = comm->world_size(), me = comm->rank();
  std::vector<int64_t> send_counts, recv_counts;
  for (int r = 0; r < world; r++) send_counts.push_back(2 * me + r + 1), recv_counts.push_back(2 * r + me + 1);
  const int64_t sent = std::accumulate(send_counts.begin(), send_counts.end(), int64_t(0));
  const int64_t received = std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t(0));
  std::vector<bf16> out(static_cast<size_t>(received), round_to_bf16(-1.0f));
  comm->all_to_all(random_bf16_input_of(me, sent, 17), send_counts, out, recv_counts);
  std::vector<bf16> expected;
  for (int s = 0; s < world; s++) {
    const std::vector<bf16> theirs = random_bf16_input_of(s, int64_t(world) * (2 * s + 1) + world * (world - 1) / 2, 17);
    int64_t offset = 0;
    for (int r = 0; r < me; r++) offset += 2 * s + r + 1;
    expected.insert(expected.end(), theirs.begin() + offset, theirs.begin() + offset + 2 * s + me + 1);
  }
  EXPECT_EQ(bits_of(out), bits_of(expected));
}

TEST(CommBf16, bytes_sent_counts_two_bytes_a_value) {
  // What `call` adds to bytes_sent().
  auto sent = [](const std::function<void()>& call) {
    const int64_t before = comm->bytes_sent();
    call();
    return comm->bytes_sent() - before;
  };
  const int64_t n = comm->world_size();
  const std::vector<int64_t> counts = block_counts();
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t(0)), mine = counts[size_t(comm->rank())];
  std::vector<float> floats(static_cast<size_t>(total)), my_floats(static_cast<size_t>(mine));
  std::vector<bf16> halves(static_cast<size_t>(total)), my_halves(static_cast<size_t>(mine));
  EXPECT_EQ(2 * sent([&] { comm->all_reduce_sum(halves); }), sent([&] { comm->all_reduce_sum(floats); }));
  std::vector<bf16> hundred(100);
  EXPECT_EQ(sent([&] { comm->all_reduce_sum(hundred); }), n > 1 ? 2 * 200 * (n - 1) / n : 0);
  EXPECT_EQ(2 * sent([&] { comm->reduce_scatter_sum(halves, my_halves, counts); }),
            sent([&] { comm->reduce_scatter_sum(floats, my_floats, counts); }));
  EXPECT_EQ(2 * sent([&] { comm->all_gather(my_halves, halves, counts); }),
            sent([&] { comm->all_gather(my_floats, floats, counts); }));
  EXPECT_EQ(sent([&] { comm->all_gather(my_halves, halves, counts); }), 2 * mine * (n - 1));
  EXPECT_EQ(2 * sent([&] { comm->broadcast(halves, 0); }), sent([&] { comm->broadcast(floats, 0); }));
  const std::vector<int64_t> blocks(size_t(n), 10);
  std::vector<bf16> outgoing(static_cast<size_t>(10 * n)), incoming(static_cast<size_t>(10 * n));
  EXPECT_EQ(sent([&] { comm->all_to_all(outgoing, blocks, incoming, blocks); }), 20 * (n - 1));
}

TEST(Comm, a_differing_config_is_refused_on_every_rank) {
  EXPECT_NO_THROW(check_same_on_all_ranks(*comm, "same text", "config", "run the same config"));
  if (comm->world_size() == 1) return;
  try {
    check_same_on_all_ranks(*comm, comm->rank() == 1 ? "rank 1's own" : "shared", "resolved config",
                            "run the same config");
    ADD_FAILURE() << "no error on rank " << comm->rank();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("resolved config of rank(s) 1 differs from rank 0's: run the same config"),
              std::string::npos)
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

// The breakdown the training log prints: each collective's bytes under its own
// kind, the others untouched, and the total their sum.
TEST(Comm, bytes_sent_are_told_apart_by_collective) {
  const int64_t n = comm->world_size();
  const std::vector<int64_t> counts(size_t(n), 10);
  std::vector<float> data(100, 1.0f), all(size_t(10 * n)), mine(10), received(all.size());
  const BytesSent start = comm->bytes_sent_by_collective();
  comm->all_reduce_sum(data);
  comm->all_gather(std::vector<float>(10, 1.0f), all, counts);
  comm->all_gather(std::vector<float>(10, 1.0f), all, counts);
  comm->reduce_scatter_sum(all, mine, counts);
  comm->all_to_all(all, counts, received, counts);
  comm->broadcast(data, n - 1);
  const BytesSent sent = comm->bytes_sent_by_collective() - start;
  EXPECT_EQ(sent.all_reduce, n > 1 ? 2 * 400 * (n - 1) / n : 0);
  EXPECT_EQ(sent.all_gather, 2 * 40 * (n - 1));
  EXPECT_EQ(sent.reduce_scatter, 40 * (n - 1));
  EXPECT_EQ(sent.all_to_all, 40 * (n - 1));
  EXPECT_EQ(sent.broadcast, comm->rank() == n - 1 ? 400 * (n - 1) : 0);
  EXPECT_EQ(sent.total(), sent.all_reduce + sent.all_gather + sent.reduce_scatter + sent.all_to_all + sent.broadcast);
  EXPECT_EQ(comm->bytes_sent() - start.total(), sent.total());
}

// Between a start and wait_all() only started collectives may be called: over
// several ranks a blocking one is refused, alike on every rank, before it could
// meet another call on another rank. Alone there is no other rank to meet.
TEST(Comm, a_blocking_collective_while_one_is_started_is_refused) {
  const int64_t n = comm->world_size();
  const std::vector<int64_t> counts(size_t(n), 3);
  std::vector<float> in(size_t(3 * n), 1.0f), out(3), data(4, 1.0f);
  comm->start_reduce_scatter_sum(in, out, counts);
  if (n > 1) {
    EXPECT_THROW(comm->all_reduce_sum(data), std::logic_error);
    EXPECT_THROW(comm->all_gather(out, in, counts), std::logic_error);
    EXPECT_THROW(comm->barrier(), std::logic_error);
  }
  comm->wait_all();
  EXPECT_EQ(out, std::vector<float>(3, float(n)));
  comm->all_reduce_sum(data);
  EXPECT_EQ(data, std::vector<float>(4, float(n)));
}

TEST(Comm, bytes_sent_describe_names_each_kind_that_sent) {
  BytesSent sent;
  EXPECT_EQ(sent.describe(), "0 B");
  sent.reduce_scatter = 800000, sent.all_gather = 1430000, sent.all_reduce = 8;
  EXPECT_EQ(sent.describe(), "2.23 MB (all-reduce 8 B, reduce-scatter 800.00 kB, all-gather 1.43 MB)");
}

}  // namespace
}  // namespace llmdion

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<llmdion::Comm> comm = llmdion::make_comm(&argc, &argv);
  llmdion::comm = comm.get();
  return RUN_ALL_TESTS();
}
