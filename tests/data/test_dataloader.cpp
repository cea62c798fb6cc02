// The distributed data loader: llm.c's window order, rank slices, shuffling,
// validation and exact resume. Shards hold uint32 tokens whose value is their
// own address (shard * 1e6 + index), so every batch says where it came from.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "data/dataloader.h"
#include "test_util.h"

namespace llmdion {
namespace {

constexpr uint32_t kVocab = 1u << 30;

uint32_t address(int shard, int64_t index) { return uint32_t(shard * 1000000 + index); }

// Writes shards of the given lengths named d_000.bin, d_001.bin...
void write_address_shards(const test::ScratchDir& dir, const std::vector<int64_t>& lengths) {
  for (size_t s = 0; s < lengths.size(); s++) {
    std::vector<uint32_t> tokens(lengths[s]);
    for (int64_t i = 0; i < lengths[s]; i++) tokens[i] = address(int(s), i);
    char name[32];
    std::snprintf(name, sizeof(name), "d_%03zu.bin", s);
    write_shard(dir / name, tokens, 4);
  }
}

DataLoaderOptions options(const test::ScratchDir& dir, int64_t B, int64_t T, int rank = 0, int world = 1,
                          int64_t accum = 1, DataOrder order = DataOrder::kSequential, uint64_t seed = 7) {
  DataLoaderOptions o;
  o.pattern = dir / "d_*.bin";
  o.batch_size = B, o.seq_len = T, o.rank = rank, o.world_size = world, o.grad_accum = accum;
  o.order = order, o.seed = seed, o.vocab_size = kVocab;
  return o;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
  bool operator==(const Batch&) const = default;
};

Batch next(DataLoader& loader, int64_t B, int64_t T) {
  Batch b{std::vector<int32_t>(B * T), std::vector<int32_t>(B * T)};
  loader.next_batch(b.inputs.data(), b.targets.data());
  return b;
}

// llm.c's dataloader (llmc/dataloader.h, unshuffled), restated: sample i of a
// shard starts at token i*N*B*T + rank*B*T; a shard has (ntok-1)/(N*B*T)
// samples; after the last shard it starts over.
struct LlmcSequentialLoader {
  std::vector<int64_t> lengths;
  int64_t B, T;
  int rank, world;
  int shard = 0;
  int64_t sample = 0;
  Batch next() {
    const int64_t per_sample = world * B * T;
    if (sample >= (lengths[shard] - 1) / per_sample) {
      shard = (shard + 1) % int(lengths.size());
      sample = 0;
    }
    const int64_t start = sample * per_sample + rank * B * T;
    Batch b;
    for (int64_t i = 0; i < B * T; i++) {
      b.inputs.push_back(int32_t(address(shard, start + i)));
      b.targets.push_back(int32_t(address(shard, start + i + 1)));
    }
    sample++;
    return b;
  }
};

TEST(DataLoader, sequential_order_is_llmc_unshuffled_order_for_every_rank) {
  test::ScratchDir dir;
  const std::vector<int64_t> lengths = {1000, 777, 1500};
  write_address_shards(dir, lengths);
  for (int world : {1, 2, 3}) {
    for (int rank = 0; rank < world; rank++) {
      DataLoader loader(options(dir, 4, 16, rank, world));
      LlmcSequentialLoader reference{lengths, 4, 16, rank, world};
      for (int step = 0; step < 100; step++)  // several epochs
        ASSERT_EQ(next(loader, 4, 16), reference.next()) << "world " << world << " rank " << rank << " step " << step;
    }
  }
}

// The global batch of one step, assembled from every rank and micro-step.
std::vector<int32_t> global_step(std::vector<DataLoader>& ranks, int64_t B, int64_t T, int64_t accum) {
  std::multiset<int32_t> tokens;
  for (int64_t m = 0; m < accum; m++)
    for (DataLoader& loader : ranks) {
      Batch b = next(loader, B, T);
      tokens.insert(b.inputs.begin(), b.inputs.end());
    }
  return std::vector<int32_t>(tokens.begin(), tokens.end());
}

TEST(DataLoader, any_split_of_the_global_batch_sees_the_same_tokens_each_step) {
  test::ScratchDir dir;
  write_address_shards(dir, {3000, 2049, 4100});
  const int64_t T = 8, global_sequences = 8;
  for (DataOrder order : {DataOrder::kSequential, DataOrder::kShuffled}) {
    // (world, micro batch, accumulation) with world * B * accum = 8 sequences.
    std::vector<std::vector<std::vector<int32_t>>> runs;
    for (auto [world, B, accum] : std::vector<std::tuple<int, int64_t, int64_t>>{{1, 8, 1}, {2, 4, 1}, {4, 2, 1},
                                                                                 {1, 2, 4}, {2, 1, 4}, {8, 1, 1}}) {
      ASSERT_EQ(world * B * accum, global_sequences);
      std::vector<DataLoader> ranks;
      for (int r = 0; r < world; r++) ranks.emplace_back(options(dir, B, T, r, world, accum, order));
      std::vector<std::vector<int32_t>> steps;
      for (int step = 0; step < 300; step++) steps.push_back(global_step(ranks, B, T, accum));
      runs.push_back(steps);
    }
    for (size_t i = 1; i < runs.size(); i++) EXPECT_EQ(runs[i], runs[0]) << "split " << i;
  }
}

TEST(DataLoader, rank_slices_are_disjoint_and_cover_every_window_once_per_epoch) {
  test::ScratchDir dir;
  const std::vector<int64_t> lengths = {1000, 1300, 999};
  write_address_shards(dir, lengths);
  const int64_t B = 2, T = 10;
  const int world = 3;
  for (DataOrder order : {DataOrder::kSequential, DataOrder::kShuffled}) {
    std::vector<DataLoader> ranks;
    for (int r = 0; r < world; r++) ranks.emplace_back(options(dir, B, T, r, world, 1, order));
    const int64_t steps = ranks[0].windows_per_epoch();
    std::map<uint32_t, int> seen;  // every input token of the epoch
    for (int64_t step = 0; step < steps; step++)
      for (DataLoader& loader : ranks)
        for (int32_t t : next(loader, B, T).inputs) seen[uint32_t(t)]++;
    // Expected: in each shard, tokens [0, windows * world*B*T) exactly once.
    size_t expected = 0;
    for (size_t s = 0; s < lengths.size(); s++) {
      const int64_t covered = (lengths[s] - 1) / (world * B * T) * (world * B * T);
      expected += size_t(covered);
      for (int64_t i = 0; i < covered; i++) ASSERT_EQ(seen[address(int(s), i)], 1) << "shard " << s << " token " << i;
    }
    EXPECT_EQ(seen.size(), expected);
  }
}

TEST(DataLoader, shuffled_order_is_seeded_and_changes_each_epoch) {
  test::ScratchDir dir;
  write_address_shards(dir, {2000, 2000, 2000});
  auto first_tokens = [&](uint64_t seed, int steps) {
    DataLoader loader(options(dir, 1, 16, 0, 1, 1, DataOrder::kShuffled, seed));
    std::vector<int32_t> firsts;
    for (int i = 0; i < steps; i++) firsts.push_back(next(loader, 1, 16).inputs[0]);
    return firsts;
  };
  const int per_epoch = 3 * (1999 / 16);
  const std::vector<int32_t> a = first_tokens(11, 2 * per_epoch);
  EXPECT_EQ(a, first_tokens(11, 2 * per_epoch));
  EXPECT_NE(a, first_tokens(12, 2 * per_epoch));
  const std::vector<int32_t> epoch0(a.begin(), a.begin() + per_epoch), epoch1(a.begin() + per_epoch, a.end());
  EXPECT_NE(epoch0, epoch1);
  EXPECT_EQ(std::set<int32_t>(epoch0.begin(), epoch0.end()), std::set<int32_t>(epoch1.begin(), epoch1.end()));
  std::vector<int32_t> sorted = epoch0;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(sorted, epoch0) << "shuffled order came out sorted";
}

TEST(DataLoader, resume_continues_with_the_identical_next_batch) {
  test::ScratchDir dir;
  write_address_shards(dir, {700, 300, 950, 40});  // the 40-token shard holds no window
  const int64_t B = 2, T = 12, accum = 3;
  for (DataOrder order : {DataOrder::kSequential, DataOrder::kShuffled}) {
    for (int stop : {0, 1, 5, 17, 40, 101}) {  // mid-window, shard ends and epochs
      DataLoader original(options(dir, B, T, 1, 2, accum, order));
      for (int i = 0; i < stop; i++) next(original, B, T);
      const DataPosition saved = original.position();
      DataLoader resumed(options(dir, B, T, 1, 2, accum, order));
      resumed.restore(saved);
      for (int i = 0; i < 60; i++)
        ASSERT_EQ(next(resumed, B, T), next(original, B, T)) << "stop " << stop << " batch " << i;
    }
  }
}

TEST(DataLoader, restore_rejects_a_position_outside_the_data) {
  test::ScratchDir dir;
  write_address_shards(dir, {500});
  DataLoader loader(options(dir, 1, 10, 0, 1, 2));
  EXPECT_THROW(loader.restore({0, 1, 0, 0}), DataError);   // no second shard
  EXPECT_THROW(loader.restore({0, 0, 60, 0}), DataError);  // 24 windows
  EXPECT_THROW(loader.restore({0, 0, 0, 2}), DataError);   // 2 micro-steps
  EXPECT_THROW(loader.restore({-1, 0, 0, 0}), DataError);
  EXPECT_NO_THROW(loader.restore({3, 0, 23, 1}));
}

TEST(DataLoader, empty_glob_and_too_little_data_are_errors) {
  test::ScratchDir dir;
  EXPECT_THROW(DataLoader(options(dir, 1, 8)), DataError);
  write_address_shards(dir, {64});
  EXPECT_THROW(DataLoader(options(dir, 8, 8)), DataError);  // needs 65 tokens
  EXPECT_NO_THROW(DataLoader(options(dir, 7, 9)));
}

TEST(DataLoader, token_ids_are_checked_against_the_vocab) {
  test::ScratchDir dir;
  write_shard(dir / "d_000.bin", std::vector<uint32_t>{1, 2, 3, 4, 5, 999, 7, 8, 9}, 2);
  DataLoaderOptions o = options(dir, 1, 4);
  o.vocab_size = 999;
  EXPECT_THROW(DataLoader{o}, DataError);
  o.vocab_size = 1000;
  DataLoader loader(o);
  Batch b = next(loader, 1, 4);
  EXPECT_EQ(b.inputs, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{2, 3, 4, 5}));
}

TEST(DataLoader, bad_header_in_any_shard_fails_at_construction) {
  test::ScratchDir dir;
  write_address_shards(dir, {500, 500});
  std::string bytes = test::read_text(dir / "d_001.bin");
  test::write_text(dir / "d_001.bin", bytes.substr(0, bytes.size() - 4));
  try {
    DataLoader loader(options(dir, 1, 8));
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("d_001.bin"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace llmdion
