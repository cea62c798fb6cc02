#include "data/dataloader.h"

#include <glob.h>

#include <numeric>

#include "core/rng.h"

namespace llmdion {
namespace {

std::vector<std::string> glob_paths(const std::string& pattern, const std::string& source) {
  glob_t result{};
  int rc = glob(pattern.c_str(), 0, nullptr, &result);
  std::vector<std::string> paths;
  if (rc == 0)
    for (size_t i = 0; i < result.gl_pathc; i++) paths.emplace_back(result.gl_pathv[i]);
  globfree(&result);
  if (paths.empty())
    throw DataError((source.empty() ? "" : source + ": ") + "no shard file matches '" + pattern + "'");
  return paths;  // glob sorts
}

constexpr uint64_t kShardOrderStream = 1, kWindowOrderStream = 2;

}  // namespace

DataLoader::DataLoader(const DataLoaderOptions& options) : options_(options) {
  if (options.batch_size < 1 || options.seq_len < 1 || options.grad_accum < 1 || options.world_size < 1 ||
      options.rank < 0 || options.rank >= options.world_size)
    throw DataError("data loader: invalid batch geometry (B " + std::to_string(options.batch_size) + ", T " +
                    std::to_string(options.seq_len) + ", grad_accum " + std::to_string(options.grad_accum) +
                    ", rank " + std::to_string(options.rank) + " of " + std::to_string(options.world_size) + ")");
  for (const std::string& path : glob_paths(options.pattern, options.source)) shards_.push_back(read_shard_info(path));
  window_tokens_ = options.grad_accum * options.world_size * options.batch_size * options.seq_len;
  if (windows_per_epoch() == 0)
    throw DataError((options.source.empty() ? "" : options.source + ": ") + "the shards matching '" +
                    options.pattern + "' hold " + std::to_string(total_tokens()) +
                    " tokens, too few for one step of " + std::to_string(window_tokens_) +
                    " tokens (+1): use more data or a smaller batch");
  ids_checked_.assign(shards_.size(), false);
  reset();
}

DataLoader::~DataLoader() = default;

int64_t DataLoader::windows_in(int64_t shard) const { return (shards_[shard].num_tokens - 1) / window_tokens_; }

int64_t DataLoader::windows_per_epoch() const {
  int64_t n = 0;
  for (size_t s = 0; s < shards_.size(); s++) n += windows_in(int64_t(s));
  return n;
}

int64_t DataLoader::total_tokens() const {
  int64_t n = 0;
  for (const ShardInfo& s : shards_) n += s.num_tokens;
  return n;
}

int64_t DataLoader::shard_at_cursor() const { return shard_order_[position_.shard_cursor]; }

// Maps the shard under the cursor, checks its ids once, and derives its window order.
void DataLoader::load_shard() {
  const int64_t shard = shard_at_cursor();
  if (!shard_ || shard_->info().path != shards_[shard].path) {
    shard_.reset();
    shard_ = std::make_unique<MappedShard>(shards_[shard]);
    if (!ids_checked_[shard]) {
      shard_->check_token_ids(options_.vocab_size);
      ids_checked_[shard] = true;
    }
  }
  const int64_t windows = windows_in(shard);
  if (options_.order == DataOrder::kShuffled) {
    window_order_ = seeded_permutation(
        windows, derive_seed({options_.seed, kWindowOrderStream, uint64_t(position_.epoch), uint64_t(shard)}));
  } else {
    window_order_.resize(windows);
    std::iota(window_order_.begin(), window_order_.end(), 0);
  }
}

// Moves past shards too short for one window (and to the next epoch after the last).
void DataLoader::skip_empty_shards() {
  while (true) {
    if (position_.shard_cursor == int64_t(shards_.size())) {
      position_.epoch++;
      position_.shard_cursor = 0;
      const int64_t n = int64_t(shards_.size());
      if (options_.order == DataOrder::kShuffled) {
        shard_order_ = seeded_permutation(n, derive_seed({options_.seed, kShardOrderStream, uint64_t(position_.epoch)}));
      }
    }
    if (position_.window_cursor < windows_in(shard_at_cursor())) return;
    position_.shard_cursor++;
    position_.window_cursor = 0;
  }
}

void DataLoader::restore(const DataPosition& position) {
  const int64_t n = int64_t(shards_.size());
  if (position.epoch < 0 || position.shard_cursor < 0 || position.shard_cursor >= n || position.window_cursor < 0 ||
      position.micro_step < 0 || position.micro_step >= options_.grad_accum)
    throw DataError("data position (epoch " + std::to_string(position.epoch) + ", shard " +
                    std::to_string(position.shard_cursor) + ", window " + std::to_string(position.window_cursor) +
                    ", micro-step " + std::to_string(position.micro_step) + ") does not exist in '" +
                    options_.pattern + "' (" + std::to_string(n) + " shards)");
  position_ = position;
  if (options_.order == DataOrder::kShuffled) {
    shard_order_ = seeded_permutation(n, derive_seed({options_.seed, kShardOrderStream, uint64_t(position_.epoch)}));
  } else {
    shard_order_.resize(n);
    std::iota(shard_order_.begin(), shard_order_.end(), 0);
  }
  if (position_.window_cursor > windows_in(shard_at_cursor()) ||
      (position_.window_cursor == windows_in(shard_at_cursor()) && position_.micro_step > 0))
    throw DataError("data position: window " + std::to_string(position.window_cursor) + " is past the end of shard '" +
                    shards_[shard_at_cursor()].path + "'");
  skip_empty_shards();
  load_shard();
}

void DataLoader::next_batch(int32_t* inputs, int32_t* targets) {
  const int64_t B = options_.batch_size, T = options_.seq_len;
  const int64_t window = window_order_[position_.window_cursor];
  const int64_t first_sequence = (position_.micro_step * options_.world_size + options_.rank) * B;
  const int64_t start = window * window_tokens_ + first_sequence * T;
  for (int64_t i = 0; i < B * T; i++) {
    inputs[i] = int32_t(shard_->token(start + i));
    targets[i] = int32_t(shard_->token(start + i + 1));
  }
  if (++position_.micro_step < options_.grad_accum) return;
  position_.micro_step = 0;
  position_.window_cursor++;
  if (position_.window_cursor < int64_t(window_order_.size())) return;
  position_.shard_cursor++;
  position_.window_cursor = 0;
  skip_empty_shards();
  load_shard();
}

}  // namespace llmdion
