#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/atomic_file.h"

namespace llmdion {

ShardInfo read_shard_info(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw DataError("shard '" + path + "' is not a regular file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw DataError("cannot open shard '" + path + "': " + std::strerror(errno));
  const int64_t file_bytes = in.tellg();
  const int64_t header_bytes = kShardHeaderInts * sizeof(int32_t);
  if (file_bytes < header_bytes)
    throw DataError("shard '" + path + "' is " + std::to_string(file_bytes) + " bytes, shorter than the " +
                    std::to_string(header_bytes) + "-byte header: truncated or not a shard");
  int32_t header[kShardHeaderInts];
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(header), header_bytes)) throw DataError("cannot read shard '" + path + "'");

  ShardInfo info{path, 0, header[2]};
  if (header[0] == kShardMagicU16) {
    info.token_bytes = 2;
    if (header[1] != kShardVersionU16)
      throw DataError("shard '" + path + "' has version " + std::to_string(header[1]) + "; uint16 shards (magic " +
                      std::to_string(kShardMagicU16) + ") must be version " + std::to_string(kShardVersionU16));
  } else if (header[0] == kShardMagicU32) {
    info.token_bytes = 4;
    if (header[1] != kShardVersionU32)
      throw DataError("shard '" + path + "' has version " + std::to_string(header[1]) + "; uint32 shards (magic " +
                      std::to_string(kShardMagicU32) + ") must be version " + std::to_string(kShardVersionU32));
  } else {
    throw DataError("shard '" + path + "' has magic " + std::to_string(header[0]) + ", not an llm.c token shard (" +
                    std::to_string(kShardMagicU16) + " or " + std::to_string(kShardMagicU32) + ")");
  }
  if (info.num_tokens <= 0)
    throw DataError("shard '" + path + "' declares " + std::to_string(info.num_tokens) + " tokens");
  const int64_t expected = header_bytes + info.num_tokens * info.token_bytes;
  if (file_bytes != expected)
    throw DataError("shard '" + path + "' is " + std::to_string(file_bytes) + " bytes but its header declares " +
                    std::to_string(info.num_tokens) + " tokens (" + std::to_string(expected) +
                    " bytes): " + (file_bytes < expected ? "truncated" : "trailing bytes"));
  return info;
}

void write_shard(const std::string& path, std::span<const uint32_t> tokens, int token_bytes) {
  if (tokens.size() > size_t(INT32_MAX))
    throw DataError("shard '" + path + "' would hold " + std::to_string(tokens.size()) +
                    " tokens; llm.c's header counts at most " + std::to_string(INT32_MAX));
  int32_t header[kShardHeaderInts] = {};
  header[0] = token_bytes == 2 ? kShardMagicU16 : kShardMagicU32;
  header[1] = token_bytes == 2 ? kShardVersionU16 : kShardVersionU32;
  header[2] = int32_t(tokens.size());
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(header), sizeof(header));
    if (token_bytes == 4) {
      out.write(reinterpret_cast<const char*>(tokens.data()), std::streamsize(tokens.size() * 4));
      return;
    }
    std::vector<uint16_t> narrow(tokens.begin(), tokens.end());
    out.write(reinterpret_cast<const char*>(narrow.data()), std::streamsize(narrow.size() * 2));
  });
}

MappedShard::MappedShard(const ShardInfo& info) : info_(info) {
  int fd = open(info.path.c_str(), O_RDONLY);
  if (fd < 0) throw DataError("cannot open shard '" + info.path + "': " + std::strerror(errno));
  mapping_bytes_ = kShardHeaderInts * sizeof(int32_t) + size_t(info.num_tokens) * info.token_bytes;
  mapping_ = mmap(nullptr, mapping_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (mapping_ == MAP_FAILED) throw DataError("cannot map shard '" + info.path + "': " + std::strerror(errno));
  tokens_ = static_cast<const char*>(mapping_) + kShardHeaderInts * sizeof(int32_t);
}

MappedShard::~MappedShard() { munmap(mapping_, mapping_bytes_); }

void MappedShard::check_token_ids(uint32_t vocab_size) const {
  for (int64_t i = 0; i < info_.num_tokens; i++) {
    if (token(i) >= vocab_size)
      throw DataError("shard '" + info_.path + "' has token id " + std::to_string(token(i)) + " at position " +
                      std::to_string(i) + ", outside the model's vocabulary of " + std::to_string(vocab_size) +
                      " (model.vocab_size): was it made with another tokenizer?");
  }
}

}  // namespace llmdion
