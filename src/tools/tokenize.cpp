// build/tokenize: text -> llm.c token shards with GPT-2's BPE, and back.
//
//   tokenize --out data/sotu/sotu [--val-docs K] [--shard-tokens N] INPUT...
//   tokenize --decode data/sotu/sotu_val_000000.bin > val.txt
//
// INPUT is a plain text file (one document), a JSON-lines file (.jsonl/.json: one
// document per line, in its "text" field), or - for JSON lines on stdin. Every
// document is preceded by <|endoftext|>. Shard 0 is val, the rest train, each
// --shard-tokens long with documents split across shard ends (as llm.c's
// fineweb.py); with --val-docs K the val shard is instead the first K whole
// documents. Shards appear only when the whole run succeeds (an error, SIGINT or
// SIGTERM removes them), and never over shards already under the prefix.
#include <spdlog/spdlog.h>

#include <glob.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "core/json.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "train/logging.h"

using namespace llmdion;

namespace {

// Set by SIGINT/SIGTERM: the run stops between batches and removes its shards.
std::atomic<bool> interrupted{false};
void on_signal(int) { interrupted = true; }

void stop_if_interrupted() {
  if (interrupted) throw std::runtime_error("interrupted: no shard written");
}

struct Options {
  std::vector<std::string> inputs;
  std::string out_prefix;
  std::string vocab_dir = "data/gpt2";
  std::string format = "auto";
  int64_t shard_tokens = 100'000'000;
  int64_t val_docs = 0;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  std::string decode;
};

// Reads documents from the inputs, a bounded batch at a time.
class DocumentReader {
 public:
  DocumentReader(const std::vector<std::string>& inputs, const std::string& format)
      : inputs_(inputs), format_(format) {}

  // Appends up to about `max_bytes` of documents to `docs`; false when all inputs are read.
  bool read_batch(std::vector<std::string>& docs, size_t max_bytes) {
    size_t bytes = 0;
    while (bytes < max_bytes) {
      if (!stream_ && !open_next()) return !docs.empty();
      if (!jsonl_) {
        std::ostringstream text;
        text << stream_->rdbuf();
        docs.push_back(text.str());
        // Tokenized all the same (a document is what the user gave), but said.
        if (docs.back().empty())
          spdlog::warn("'{}' is empty: a document of no text", name_);
        else if (const size_t nul = docs.back().find('\0'); nul != std::string::npos)
          spdlog::warn("'{}' looks binary (a NUL byte at offset {}): tokenized as text all the same", name_, nul);
        bytes += docs.back().size();
        close();
        continue;
      }
      if (!std::getline(*stream_, line_)) {
        stop_if_interrupted();  // a signal ends a blocked read too
        close();
        continue;
      }
      line_number_++;
      if (line_.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::optional<std::string> text;
      try {
        text = json_object_string_field(line_, "text");
      } catch (const JsonError& e) {
        throw std::runtime_error(where() + ": not a JSON object: " + e.what());
      }
      if (!text) throw std::runtime_error(where() + ": the JSON object has no \"text\" field");
      bytes += text->size();
      docs.push_back(std::move(*text));
    }
    return true;
  }

 private:
  bool open_next() {
    if (next_ == inputs_.size()) return false;
    name_ = inputs_[next_++];
    line_number_ = 0;
    jsonl_ = format_ == "jsonl" || (format_ == "auto" && (name_ == "-" || name_.ends_with(".jsonl") ||
                                                          name_.ends_with(".json")));
    if (name_ == "-") {
      stream_ = &std::cin;
      return true;
    }
    file_.open(name_, std::ios::binary);
    if (!file_) throw std::runtime_error("cannot open input '" + name_ + "'");
    stream_ = &file_;
    return true;
  }
  void close() {
    if (file_.is_open()) file_.close();
    stream_ = nullptr;
  }
  std::string where() const { return (name_ == "-" ? "stdin" : "'" + name_ + "'") + " line " + std::to_string(line_number_); }

  const std::vector<std::string>& inputs_;
  std::string format_;
  size_t next_ = 0;
  std::string name_, line_;
  size_t line_number_ = 0;
  bool jsonl_ = false;
  std::ifstream file_;
  std::istream* stream_ = nullptr;
};

// Cuts the token stream into shards; keeps them under .partial names until commit().
class ShardWriter {
 public:
  ShardWriter(const Options& o, int token_bytes) : options_(o), token_bytes_(token_bytes) {}
  ~ShardWriter() {
    for (const std::string& p : partial_paths_) std::remove((p + ".partial").c_str());
  }

  void add_document(const std::vector<uint32_t>& tokens) {
    buffer_.insert(buffer_.end(), tokens.begin(), tokens.end());
    docs_++;
    if (shards_written() == 0 && options_.val_docs > 0) {
      if (docs_ == options_.val_docs) flush(buffer_.size());
      return;
    }
    while (int64_t(buffer_.size()) >= options_.shard_tokens) flush(size_t(options_.shard_tokens));
  }

  // Writes what is left and renames every shard to its final name.
  void commit() {
    if (options_.val_docs > 0 && docs_ < options_.val_docs)
      throw std::runtime_error("only " + std::to_string(docs_) + " documents in the input; --val-docs " +
                               std::to_string(options_.val_docs) + " needs more");
    if (!buffer_.empty()) flush(buffer_.size());
    for (const std::string& p : partial_paths_)
      std::filesystem::rename(p + ".partial", p);
    partial_paths_.clear();
  }

  int64_t shards_written() const { return int64_t(paths_.size()); }
  const std::vector<std::string>& paths() const { return paths_; }
  int64_t tokens() const { return tokens_; }

 private:
  void flush(size_t count) {
    const int64_t index = shards_written();
    char name[64];
    std::snprintf(name, sizeof(name), "_%s_%06ld.bin", index == 0 ? "val" : "train", long(index));
    const std::string path = options_.out_prefix + name;
    write_shard(path + ".partial", std::span<const uint32_t>(buffer_.data(), count), token_bytes_);
    partial_paths_.push_back(path);
    paths_.push_back(path);
    tokens_ += int64_t(count);
    buffer_.erase(buffer_.begin(), buffer_.begin() + int64_t(count));
  }

  const Options& options_;
  int token_bytes_;
  std::vector<uint32_t> buffer_;
  std::vector<std::string> paths_, partial_paths_;
  int64_t docs_ = 0, tokens_ = 0;
};

// The .partial shards an interrupted run left under the prefix: never data, removed.
void remove_partial_shards(const std::string& prefix) {
  glob_t found{};
  const std::string pattern = prefix + "_{val,train}_[0-9][0-9][0-9][0-9][0-9][0-9].bin.partial";
  if (glob(pattern.c_str(), GLOB_BRACE, nullptr, &found) == 0)
    for (size_t i = 0; i < found.gl_pathc; i++) {
      std::filesystem::remove(found.gl_pathv[i]);
      spdlog::info("removed '{}', left by an interrupted run", found.gl_pathv[i]);
    }
  globfree(&found);
}

// Shards already under the prefix would mix with this run's in a loader's glob.
void refuse_existing_shards(const std::string& prefix) {
  glob_t found{};
  const std::string pattern = prefix + "_{val,train}_[0-9][0-9][0-9][0-9][0-9][0-9].bin";
  const bool any = glob(pattern.c_str(), GLOB_BRACE, nullptr, &found) == 0 && found.gl_pathc > 0;
  const std::string first = any ? found.gl_pathv[0] : "";
  globfree(&found);
  if (any)
    throw std::runtime_error("'" + first + "' already exists: remove the shards of '" + prefix +
                             "' or choose another --out");
}

int run_encode(const Options& o, const Gpt2Tokenizer& tokenizer) {
  if (o.inputs.empty()) throw std::runtime_error("no input: give text or JSON-lines files, or - for stdin");
  const std::filesystem::path parent = std::filesystem::path(o.out_prefix).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  refuse_existing_shards(o.out_prefix);
  remove_partial_shards(o.out_prefix);

  const auto start = std::chrono::steady_clock::now();
  DocumentReader reader(o.inputs, o.format);
  ShardWriter writer(o, shard_token_bytes(tokenizer.vocab_size()));
  std::vector<BpeCache> caches(o.threads);
  std::vector<std::string> docs;
  int64_t num_docs = 0, bytes = 0;
  while (reader.read_batch(docs, size_t(8) << 20)) {
    stop_if_interrupted();
    for (const std::string& d : docs) bytes += int64_t(d.size());
    for (const std::vector<uint32_t>& tokens : encode_documents(tokenizer, docs, caches)) writer.add_document(tokens);
    num_docs += int64_t(docs.size());
    docs.clear();
  }
  stop_if_interrupted();
  writer.commit();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const std::string& p : writer.paths()) spdlog::info("wrote {}", p);
  if (std::none_of(writer.paths().begin(), writer.paths().end(),
                   [](const std::string& p) { return p.find("_train_") != std::string::npos; }))
    spdlog::warn("no train shard written: all {} tokens are in the val shard (lower --val-docs or --shard-tokens, "
                 "or give more input)", writer.tokens());
  spdlog::info("{} documents, {:.1f} MB, {} tokens in {} shards, {:.1f} s ({:.1f} MB/s, {} threads)", num_docs,
               bytes / 1e6, writer.tokens(), writer.shards_written(), seconds, bytes / 1e6 / seconds, o.threads);
  return 0;
}

int run_decode(const Options& o, const Gpt2Tokenizer& tokenizer) {
  const MappedShard shard(read_shard_info(o.decode));
  std::vector<uint32_t> ids(size_t(shard.num_tokens()));
  for (int64_t i = 0; i < shard.num_tokens(); i++) ids[i] = shard.token(i);
  const std::string text = tokenizer.decode(ids);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"GPT-2 BPE tokenizer: text or JSON lines -> llm.c token shards (and back with --decode)"};
  app.add_option("inputs", o.inputs, "text files (one document each), .jsonl files, or - for JSON lines on stdin");
  app.add_option("--out", o.out_prefix, "shard path prefix: writes PREFIX_val_000000.bin, PREFIX_train_000001.bin...");
  app.add_option("--vocab-dir", o.vocab_dir, "folder with GPT-2's encoder.json and vocab.bpe")->capture_default_str();
  app.add_option("--format", o.format, "input format")->check(CLI::IsMember({"auto", "text", "jsonl"}))->capture_default_str();
  app.add_option("--shard-tokens", o.shard_tokens, "tokens per shard")->check(CLI::Range(int64_t(1), int64_t(INT32_MAX)))->capture_default_str();
  app.add_option("--val-docs", o.val_docs, "the val shard is the first K whole documents (0: the first shard)")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", o.threads, "encoding threads")->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--decode", o.decode, "print the text of this shard instead of encoding");
  CLI11_PARSE(app, argc, argv);
  setup_console_logging();
  struct sigaction action {};
  action.sa_handler = on_signal;  // no SA_RESTART: a blocked read returns
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  try {
    const Gpt2Tokenizer tokenizer =
        Gpt2Tokenizer::load(o.vocab_dir + "/encoder.json", o.vocab_dir + "/vocab.bpe");
    if (!o.decode.empty()) return run_decode(o, tokenizer);
    if (o.out_prefix.empty()) throw std::runtime_error("--out PREFIX is required to write shards");
    return run_encode(o, tokenizer);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
