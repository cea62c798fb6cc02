// llm.c's token shard format, read and written byte for byte as llm.c does:
//   256 x int32 header: [0] magic, [1] version, [2] number of tokens, rest 0
//   then the tokens: uint16 (magic 20240520, version 1: GPT-2)
//               or   uint32 (magic 20240801, version 7: llm.c's LLaMA-3 layout)
// Files are named <prefix>_val_000000.bin, <prefix>_train_000001.bin, ...
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

namespace llmdion {

constexpr int kShardHeaderInts = 256;
constexpr int32_t kShardMagicU16 = 20240520, kShardVersionU16 = 1;
constexpr int32_t kShardMagicU32 = 20240801, kShardVersionU32 = 7;

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ShardInfo {
  std::string path;
  int token_bytes;     // 2 or 4
  int64_t num_tokens;
};

// Reads and checks a shard's header against the file: magic, version, and the
// file length being exactly header + num_tokens * token_bytes. Throws DataError.
ShardInfo read_shard_info(const std::string& path);

// Token width for a vocabulary: uint16 while every id fits, else uint32.
inline int shard_token_bytes(uint32_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

// Writes a complete shard (atomically: temp file, then rename).
void write_shard(const std::string& path, std::span<const uint32_t> tokens, int token_bytes);

// A shard's tokens, memory-mapped read-only.
class MappedShard {
 public:
  explicit MappedShard(const ShardInfo& info);
  ~MappedShard();
  MappedShard(const MappedShard&) = delete;
  MappedShard& operator=(const MappedShard&) = delete;

  uint32_t token(int64_t i) const {
    return info_.token_bytes == 2 ? static_cast<const uint16_t*>(tokens_)[i] : static_cast<const uint32_t*>(tokens_)[i];
  }
  int64_t num_tokens() const { return info_.num_tokens; }
  const ShardInfo& info() const { return info_; }
  // Throws DataError naming the shard and position of the first id >= vocab_size.
  void check_token_ids(uint32_t vocab_size) const;

 private:
  ShardInfo info_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  const void* tokens_ = nullptr;
};

}  // namespace llmdion
