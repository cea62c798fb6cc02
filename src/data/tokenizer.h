// GPT-2's byte-level BPE tokenizer (Radford et al. 2019), read from the standard
// encoder.json + vocab.bpe pair.
//
// encode(text):
//   1. pre-tokenize with GPT-2's pattern, on Unicode classes:
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   2. for each piece, start from its UTF-8 bytes (one token each) and repeatedly
//      merge the adjacent pair with the lowest merge rank (vocab.bpe line order),
//      every occurrence left to right, until no pair has a rank.
// Text is ordinary text: "<|endoftext|>" inside it is not the special token.
// Invalid UTF-8 is first repaired to U+FFFD (see utf8.h).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmdion {

// Pieces already seen and their ids; one per thread, so encoding needs no locks.
struct BpeCache {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::vector<uint32_t>, Hash, std::equal_to<>> ids_of_piece;
  size_t max_entries = 1 << 20;
};

class Gpt2Tokenizer {
 public:
  // Throws std::runtime_error naming the file when either is missing or malformed.
  static Gpt2Tokenizer load(const std::string& encoder_json_path, const std::string& vocab_bpe_path);

  // Appends the ids of `text` to `ids`.
  void encode(std::string_view text, std::vector<uint32_t>& ids, BpeCache& cache) const;
  // The raw bytes the ids stand for; throws on an id outside the vocabulary.
  std::string decode(std::span<const uint32_t> ids) const;

  uint32_t vocab_size() const { return uint32_t(token_bytes_.size()); }
  uint32_t eot_id() const { return eot_id_; }

 private:
  struct Merge {
    uint32_t rank;
    uint32_t merged_id;
  };
  static uint64_t pair_key(uint32_t left, uint32_t right) { return (uint64_t(left) << 32) | right; }
  void bpe(std::string_view piece, std::vector<uint32_t>& ids) const;

  std::vector<std::string> token_bytes_;          // id -> bytes
  uint32_t byte_token_[256] = {};                 // byte -> id of its one-byte token
  std::unordered_map<uint64_t, Merge> merges_;    // (left id, right id) -> rank, result
  uint32_t eot_id_ = 0;
};

}  // namespace llmdion

namespace llmdion {

// Encodes documents in parallel, one thread per cache, documents split into
// contiguous ranges of about equal bytes. Result i is <|endoftext|> followed by
// the ids of docs[i], as in llm.c's shards.
std::vector<std::vector<uint32_t>> encode_documents(const Gpt2Tokenizer& tokenizer, std::span<const std::string> docs,
                                                    std::vector<BpeCache>& caches);

}  // namespace llmdion
