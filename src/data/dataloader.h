// The distributed data loader: (inputs, targets) micro-batches of B x T tokens.
//
// The unit of order is the step window: the G*T+1 tokens of one optimizer step,
// G = grad_accum * world_size * B sequences. Shard s holds
// floor((num_tokens_s - 1) / (G*T)) windows, window w starting at token w*G*T.
// Micro-step m of rank r reads the B*T+1 tokens at sequence (m*world_size + r)*B
// of the window, so any split of the same global batch over ranks and
// accumulation steps sees exactly the same tokens per step, and with one
// micro-step the order is llm.c's own loader's, rank slices included.
//
// order sequential: shards in glob order, windows in file order (llm.c unshuffled).
// order shuffled:   per epoch e, a seeded permutation of the shards, and per
//                   (e, shard) a seeded permutation of its windows; identical on
//                   every rank, and recomputable from (seed, epoch, shard).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"

namespace llmdion {

enum class DataOrder { kSequential, kShuffled };

struct DataLoaderOptions {
  std::string pattern;        // glob of shard files
  std::string source;         // where the pattern comes from, for messages (e.g. "data.train")
  int64_t batch_size = 1;     // B: sequences per micro-batch per rank
  int64_t seq_len = 1;        // T
  int rank = 0;
  int world_size = 1;
  int64_t grad_accum = 1;     // micro-steps per optimizer step
  DataOrder order = DataOrder::kSequential;
  uint64_t seed = 0;
  uint32_t vocab_size = 0;    // every token id must be below it
};

// Where the loader stands; saved in checkpoints and restored exactly.
struct DataPosition {
  int64_t epoch = 0;
  int64_t shard_cursor = 0;   // index into this epoch's shard order
  int64_t window_cursor = 0;  // index into this shard's window order
  int64_t micro_step = 0;     // micro-batches already taken from the current window
};

class DataLoader {
 public:
  // Globs and validates every shard header; throws DataError on an empty glob,
  // a bad header, or data too small for one step window.
  explicit DataLoader(const DataLoaderOptions& options);
  ~DataLoader();
  DataLoader(DataLoader&&) noexcept = default;
  DataLoader& operator=(DataLoader&&) noexcept = default;

  // Fills inputs and targets (B*T each) with this rank's next micro-batch.
  void next_batch(int32_t* inputs, int32_t* targets);

  DataPosition position() const { return position_; }
  // Throws DataError when the position does not exist in this data.
  void restore(const DataPosition& position);
  void reset() { restore(DataPosition{}); }

  const std::vector<ShardInfo>& shards() const { return shards_; }
  int64_t window_tokens() const { return window_tokens_; }
  int64_t windows_per_epoch() const;
  int64_t total_tokens() const;

 private:
  int64_t windows_in(int64_t shard) const;
  int64_t shard_at_cursor() const;
  void load_shard();
  void skip_empty_shards();

  DataLoaderOptions options_;
  std::vector<ShardInfo> shards_;
  int64_t window_tokens_;                 // G*T
  DataPosition position_;
  std::vector<int64_t> shard_order_;      // this epoch's
  std::vector<int64_t> window_order_;     // the current shard's
  std::unique_ptr<MappedShard> shard_;    // the current shard
  std::vector<bool> ids_checked_;         // per shard: token ids validated
};

}  // namespace llmdion
