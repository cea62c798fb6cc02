#include "data/tokenizer.h"

#include <fstream>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/json.h"
#include "data/utf8.h"

namespace llmdion {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open tokenizer file '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// GPT-2 stores token bytes as printable code points: bytes_to_unicode() maps the
// 188 printable Latin-1 bytes to themselves and the other 68 to U+0100.. in order.
std::vector<int> unicode_to_byte_table() {
  std::vector<int> byte_of(512, -1);
  int next_shifted = 0;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    byte_of[printable ? b : 256 + next_shifted++] = b;
  }
  return byte_of;
}

// Turns an encoder.json / vocab.bpe token string back into the bytes it stands for.
std::string token_string_to_bytes(std::string_view token, const std::vector<int>& byte_of, const std::string& file) {
  std::string bytes;
  for (size_t pos = 0; pos < token.size();) {
    size_t len;
    uint32_t cp = decode_utf8(token, pos, len);
    if (cp >= byte_of.size() || byte_of[cp] < 0)
      throw std::runtime_error("tokenizer file '" + file + "' has a token outside GPT-2's byte alphabet: '" +
                               std::string(token) + "'");
    bytes += char(byte_of[cp]);
    pos += len;
  }
  return bytes;
}

// Length of the next pre-token piece starting at `pos` of valid UTF-8 `s`.
size_t piece_end(std::string_view s, size_t pos) {
  const size_t n = s.size();
  size_t len;
  const uint32_t first = decode_utf8(s, pos, len);

  // 's|'t|'re|'ve|'m|'ll|'d
  if (first == '\'' && pos + 1 < n) {
    const char c1 = s[pos + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
    if (pos + 2 < n) {
      const char c2 = s[pos + 2];
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return pos + 3;
    }
  }

  // ' ?\p{L}+' | ' ?\p{N}+' | ' ?[^\s\p{L}\p{N}]+': the optional space joins the run after it.
  size_t run_start = pos;
  CharClass run_class = char_class(first);
  if (first == ' ' && pos + 1 < n) {
    size_t next_len;
    CharClass next_class = char_class(decode_utf8(s, pos + 1, next_len));
    if (next_class != CharClass::kWhitespace) {
      run_start = pos + 1;
      run_class = next_class;
    }
  }
  if (run_class != CharClass::kWhitespace) {
    size_t end = run_start;
    while (end < n) {
      uint32_t cp = decode_utf8(s, end, len);
      if (char_class(cp) != run_class) break;
      end += len;
    }
    return end;
  }

  // '\s+(?!\S)' | '\s+': a whitespace run; when text follows, its last character
  // is left to start the next piece (unless the run is a single character).
  size_t end = pos, last_start = pos, count = 0;
  while (end < n) {
    uint32_t cp = decode_utf8(s, end, len);
    if (char_class(cp) != CharClass::kWhitespace) break;
    last_start = end;
    end += len;
    count++;
  }
  if (end == n || count == 1) return end;
  return last_start;
}

}  // namespace

Gpt2Tokenizer Gpt2Tokenizer::load(const std::string& encoder_json_path, const std::string& vocab_bpe_path) {
  const std::vector<int> byte_of = unicode_to_byte_table();
  Gpt2Tokenizer tok;

  std::vector<std::pair<std::string, int64_t>> entries;
  try {
    entries = json_parse_string_to_int_object(read_file(encoder_json_path));
  } catch (const JsonError& e) {
    throw std::runtime_error("tokenizer file '" + encoder_json_path + "' is not valid JSON: " + e.what());
  }
  tok.token_bytes_.resize(entries.size());
  std::vector<bool> seen(entries.size(), false);
  std::unordered_map<std::string, uint32_t> id_of_bytes;
  for (auto& [token, id] : entries) {
    if (id < 0 || id >= int64_t(entries.size()) || seen[id])
      throw std::runtime_error("tokenizer file '" + encoder_json_path + "': ids must be 0.." +
                               std::to_string(entries.size() - 1) + " each once; bad id " + std::to_string(id));
    seen[id] = true;
    if (token == "<|endoftext|>") {
      tok.eot_id_ = uint32_t(id);
      tok.token_bytes_[id] = token;
      continue;
    }
    tok.token_bytes_[id] = token_string_to_bytes(token, byte_of, encoder_json_path);
    id_of_bytes[tok.token_bytes_[id]] = uint32_t(id);
  }
  if (tok.token_bytes_[tok.eot_id_] != "<|endoftext|>")
    throw std::runtime_error("tokenizer file '" + encoder_json_path + "' has no <|endoftext|> token");
  for (int b = 0; b < 256; b++) {
    auto it = id_of_bytes.find(std::string(1, char(b)));
    if (it == id_of_bytes.end())
      throw std::runtime_error("tokenizer file '" + encoder_json_path + "' lacks the token for byte " +
                               std::to_string(b));
    tok.byte_token_[b] = it->second;
  }

  std::istringstream merges(read_file(vocab_bpe_path));
  std::string line;
  if (!std::getline(merges, line) || !line.starts_with("#version"))
    throw std::runtime_error("tokenizer file '" + vocab_bpe_path + "' does not start with a '#version' line");
  uint32_t rank = 0;
  while (std::getline(merges, line)) {
    if (line.empty()) continue;
    size_t space = line.find(' ');
    if (space == std::string::npos)
      throw std::runtime_error("tokenizer file '" + vocab_bpe_path + "': merge line " + std::to_string(rank + 2) +
                               " is not 'left right'");
    std::string left = token_string_to_bytes(std::string_view(line).substr(0, space), byte_of, vocab_bpe_path);
    std::string right = token_string_to_bytes(std::string_view(line).substr(space + 1), byte_of, vocab_bpe_path);
    auto l = id_of_bytes.find(left), r = id_of_bytes.find(right), m = id_of_bytes.find(left + right);
    if (l == id_of_bytes.end() || r == id_of_bytes.end() || m == id_of_bytes.end())
      throw std::runtime_error("tokenizer file '" + vocab_bpe_path + "': merge line " + std::to_string(rank + 2) +
                               " names a token missing from '" + encoder_json_path + "'");
    tok.merges_.emplace(pair_key(l->second, r->second), Merge{rank, m->second});
    rank++;
  }
  return tok;
}

// BPE on one piece, with a heap of candidate pairs ordered by (rank, position)
// over a linked list of symbols: O(n log n), and the same result as the
// reference's "merge every occurrence of the best pair, left to right".
void Gpt2Tokenizer::bpe(std::string_view piece, std::vector<uint32_t>& ids) const {
  const int n = int(piece.size());
  if (n == 1) {
    ids.push_back(byte_token_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  std::vector<uint32_t> symbol(n);
  std::vector<int> next(n), prev(n);
  for (int i = 0; i < n; i++) {
    symbol[i] = byte_token_[static_cast<unsigned char>(piece[i])];
    next[i] = i + 1;  // n marks the end
    prev[i] = i - 1;
  }
  struct Candidate {
    uint32_t rank;
    int left;
    uint32_t left_id, right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push_pair = [&](int left) {
    if (left < 0 || next[left] >= n) return;
    auto it = merges_.find(pair_key(symbol[left], symbol[next[left]]));
    if (it != merges_.end()) heap.push({it->second.rank, left, symbol[left], symbol[next[left]]});
  };
  for (int i = 0; i + 1 < n; i++) push_pair(i);
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    const int right = next[c.left];
    // Stale when either symbol has since been merged into something else.
    if (symbol[c.left] != c.left_id || right >= n || symbol[right] != c.right_id) continue;
    symbol[c.left] = merges_.at(pair_key(c.left_id, c.right_id)).merged_id;
    symbol[right] = UINT32_MAX;
    next[c.left] = next[right];
    if (next[right] < n) prev[next[right]] = c.left;
    push_pair(prev[c.left]);
    push_pair(c.left);
  }
  for (int i = 0; i < n; i = next[i]) ids.push_back(symbol[i]);
}

void Gpt2Tokenizer::encode(std::string_view text, std::vector<uint32_t>& ids, BpeCache& cache) const {
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = repair_utf8(text);
    text = repaired;
  }
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = piece_end(text, pos);
    const std::string_view piece = text.substr(pos, end - pos);
    pos = end;
    if (piece.size() > 64) {  // long pieces are rare: encode without caching
      bpe(piece, ids);
      continue;
    }
    auto it = cache.ids_of_piece.find(piece);
    if (it == cache.ids_of_piece.end()) {
      if (cache.ids_of_piece.size() >= cache.max_entries) cache.ids_of_piece.clear();
      std::vector<uint32_t> piece_ids;
      bpe(piece, piece_ids);
      it = cache.ids_of_piece.emplace(std::string(piece), std::move(piece_ids)).first;
    }
    ids.insert(ids.end(), it->second.begin(), it->second.end());
  }
}

std::string Gpt2Tokenizer::decode(std::span<const uint32_t> ids) const {
  std::string out;
  for (uint32_t id : ids) {
    if (id >= token_bytes_.size())
      throw std::runtime_error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                               std::to_string(token_bytes_.size()) + " tokens");
    out += token_bytes_[id];
  }
  return out;
}

}  // namespace llmdion

namespace llmdion {

std::vector<std::vector<uint32_t>> encode_documents(const Gpt2Tokenizer& tokenizer, std::span<const std::string> docs,
                                                    std::vector<BpeCache>& caches) {
  std::vector<std::vector<uint32_t>> result(docs.size());
  size_t total_bytes = 0;
  for (const std::string& d : docs) total_bytes += d.size();
  // Thread t takes the documents whose starting byte falls in its share.
  std::vector<size_t> first_doc(caches.size() + 1, docs.size());
  size_t bytes = 0, t = 0;
  for (size_t i = 0; i < docs.size(); i++) {
    while (t < caches.size() && bytes >= total_bytes * t / caches.size()) first_doc[t++] = i;
    bytes += docs[i].size();
  }
  auto work = [&](size_t t) {
    for (size_t i = first_doc[t]; i < first_doc[t + 1]; i++) {
      result[i].push_back(tokenizer.eot_id());
      tokenizer.encode(docs[i], result[i], caches[t]);
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < caches.size(); t++) threads.emplace_back(work, t);
  work(0);
  for (std::thread& th : threads) th.join();
  return result;
}

}  // namespace llmdion
