// build/tokenize end to end: shard layout, JSON lines = text files, threads do
// not change the ids, --decode round trip, and a failed run leaves no shard.
#include <gtest/gtest.h>

#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace llmdion {
namespace {

using test::kBuildDir;
using test::kSourceDir;

const std::string kVocabDir = kSourceDir + "/data/gpt2";

std::vector<uint32_t> shard_tokens(const std::string& path) {
  MappedShard shard(read_shard_info(path));
  std::vector<uint32_t> tokens(size_t(shard.num_tokens()));
  for (int64_t i = 0; i < shard.num_tokens(); i++) tokens[i] = shard.token(i);
  return tokens;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out;
}

class TokenizeTool : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kVocabDir + "/encoder.json"))
      GTEST_SKIP() << "no GPT-2 vocabulary in " << kVocabDir << ": run data/prepare_sotu.sh";
    tokenizer_ = std::make_unique<Gpt2Tokenizer>(
        Gpt2Tokenizer::load(kVocabDir + "/encoder.json", kVocabDir + "/vocab.bpe"));
    for (int i = 0; i < 40; i++) {
      std::string doc = "Document " + std::to_string(i) + ": the quick brown fox, naïve café 日本 \U0001F600.\n";
      for (int k = 0; k < i % 7; k++) doc += "Another line with \"quotes\" and\ttabs " + std::to_string(k * i) + ".\n";
      docs_.push_back(doc);
    }
  }

  int tokenize(const std::string& args, std::string* output = nullptr) {
    return test::run_command(kBuildDir + "/tokenize --vocab-dir " + kVocabDir + " " + args, output);
  }

  // What the shards must hold: <|endoftext|> + ids of each document, in order.
  std::vector<uint32_t> expected_stream() {
    std::vector<uint32_t> ids;
    BpeCache cache;
    for (const std::string& d : docs_) {
      ids.push_back(50256);
      tokenizer_->encode(d, ids, cache);
    }
    return ids;
  }

  std::string write_docs_as_files(const test::ScratchDir& dir) {
    std::string list;
    for (size_t i = 0; i < docs_.size(); i++) {
      std::string path = dir / ("doc" + std::to_string(100 + i) + ".txt");
      test::write_text(path, docs_[i]);
      list += path + " ";
    }
    return list;
  }

  std::string write_docs_as_jsonl(const test::ScratchDir& dir) {
    std::string jsonl;
    for (const std::string& d : docs_) jsonl += "{\"id\": 1, \"text\": \"" + json_escape(d) + "\", \"score\": 0.5}\n";
    test::write_text(dir / "docs.jsonl", jsonl);
    return dir / "docs.jsonl";
  }

  std::unique_ptr<Gpt2Tokenizer> tokenizer_;
  std::vector<std::string> docs_;
};

TEST_F(TokenizeTool, shards_split_the_stream_like_llmc_with_val_first) {
  test::ScratchDir dir;
  std::string out;
  ASSERT_EQ(tokenize("--out " + (dir / "x") + " --shard-tokens 300 " + write_docs_as_files(dir), &out), 0) << out;
  const std::vector<uint32_t> expected = expected_stream();
  std::vector<uint32_t> all;
  const size_t shards = (expected.size() + 299) / 300;
  for (size_t i = 0; i < shards; i++) {
    char name[64];
    std::snprintf(name, sizeof(name), "x_%s_%06zu.bin", i == 0 ? "val" : "train", i);
    ASSERT_TRUE(std::filesystem::exists(dir / name)) << name;
    std::vector<uint32_t> t = shard_tokens(dir / name);
    EXPECT_EQ(t.size(), i + 1 < shards ? 300u : expected.size() - 300 * (shards - 1));
    all.insert(all.end(), t.begin(), t.end());
  }
  EXPECT_EQ(all, expected);
}

TEST_F(TokenizeTool, val_docs_holds_out_whole_documents) {
  test::ScratchDir dir;
  std::string out;
  ASSERT_EQ(tokenize("--out " + (dir / "x") + " --val-docs 3 --shard-tokens 100000 " + write_docs_as_files(dir), &out), 0)
      << out;
  std::vector<uint32_t> val = shard_tokens(dir / "x_val_000000.bin"), train = shard_tokens(dir / "x_train_000001.bin");
  std::vector<uint32_t> expected = expected_stream();
  EXPECT_EQ(std::count(val.begin(), val.end(), 50256u), 3);
  EXPECT_EQ(val, std::vector<uint32_t>(expected.begin(), expected.begin() + int64_t(val.size())));
  EXPECT_EQ(train, std::vector<uint32_t>(expected.begin() + int64_t(val.size()), expected.end()));
}

TEST_F(TokenizeTool, json_lines_from_file_or_stdin_equal_text_files_and_threads_do_not_matter) {
  test::ScratchDir dir;
  std::string out;
  ASSERT_EQ(tokenize("--threads 1 --out " + (dir / "txt") + " " + write_docs_as_files(dir), &out), 0) << out;
  const std::string jsonl = write_docs_as_jsonl(dir);
  ASSERT_EQ(tokenize("--threads 3 --out " + (dir / "jl") + " " + jsonl, &out), 0) << out;
  ASSERT_EQ(tokenize("--threads 2 --out " + (dir / "in") + " - < " + jsonl, &out), 0) << out;
  const std::string reference = test::read_text(dir / "txt_val_000000.bin");
  EXPECT_EQ(shard_tokens(dir / "txt_val_000000.bin"), expected_stream());
  EXPECT_EQ(test::read_text(dir / "jl_val_000000.bin"), reference);
  EXPECT_EQ(test::read_text(dir / "in_val_000000.bin"), reference);
}

TEST_F(TokenizeTool, decode_gives_back_the_documents) {
  test::ScratchDir dir;
  std::string out;
  ASSERT_EQ(tokenize("--out " + (dir / "x") + " " + write_docs_as_files(dir), &out), 0) << out;
  ASSERT_EQ(tokenize("--decode " + (dir / "x_val_000000.bin") + " > " + (dir / "decoded.txt"), &out), 0) << out;
  std::string expected;
  for (const std::string& d : docs_) expected += "<|endoftext|>" + d;
  EXPECT_EQ(test::read_text(dir / "decoded.txt"), expected);
}

TEST_F(TokenizeTool, refuses_to_mix_with_shards_already_under_the_prefix) {
  test::ScratchDir dir;
  std::string out;
  const std::string files = write_docs_as_files(dir);
  ASSERT_EQ(tokenize("--shard-tokens 100 --out " + (dir / "x") + " " + files, &out), 0) << out;
  const std::string before = test::read_text(dir / "x_train_000003.bin");
  EXPECT_NE(tokenize("--out " + (dir / "x") + " " + files, &out), 0);
  EXPECT_NE(out.find("already exists"), std::string::npos) << out;
  EXPECT_EQ(test::read_text(dir / "x_train_000003.bin"), before);
}

TEST_F(TokenizeTool, failure_after_shards_were_cut_removes_them_all) {
  test::ScratchDir dir;
  // More than one 8 MB read batch, so shards are cut before the bad line is read.
  std::string jsonl;
  const std::string line = "{\"text\": \"" + std::string(1000, 'a') + " words and more words\"}\n";
  while (jsonl.size() < (size_t(9) << 20)) jsonl += line;
  test::write_text(dir / "big.jsonl", jsonl + "{\"oops\": 1}\n");
  std::string out;
  EXPECT_NE(tokenize("--shard-tokens 10000 --out " + (dir / "x") + " " + (dir / "big.jsonl"), &out), 0);
  EXPECT_NE(out.find("big.jsonl' line"), std::string::npos) << out;
  for (const auto& e : std::filesystem::directory_iterator(dir.path))
    EXPECT_EQ(e.path().filename(), "big.jsonl") << "left behind: " << e.path();
}

TEST_F(TokenizeTool, bad_input_fails_clearly_and_leaves_no_shard) {
  test::ScratchDir dir;
  test::write_text(dir / "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"fine too\"}\n{\"txt\": \"no text field\"}\n");
  std::string out;
  EXPECT_NE(tokenize("--shard-tokens 2 --out " + (dir / "x") + " " + (dir / "bad.jsonl"), &out), 0);
  EXPECT_NE(out.find("bad.jsonl' line 3"), std::string::npos) << out;
  EXPECT_NE(out.find("no \"text\" field"), std::string::npos) << out;
  test::write_text(dir / "bad2.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"unterminated}\n");
  EXPECT_NE(tokenize("--shard-tokens 2 --out " + (dir / "y") + " " + (dir / "bad2.jsonl"), &out), 0);
  EXPECT_NE(out.find("line 2"), std::string::npos) << out;
  EXPECT_NE(tokenize("--out " + (dir / "z") + " " + (dir / "missing.txt"), &out), 0);
  EXPECT_NE(out.find("missing.txt"), std::string::npos) << out;
  // Too few documents for --val-docs.
  test::write_text(dir / "two.jsonl", "{\"text\": \"one\"}\n{\"text\": \"two\"}\n");
  EXPECT_NE(tokenize("--shard-tokens 1 --val-docs 5 --out " + (dir / "w") + " " + (dir / "two.jsonl"), &out), 0);
  EXPECT_NE(out.find("--val-docs 5"), std::string::npos) << out;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name.ends_with(".jsonl") || name.ends_with(".txt")) << "left behind: " << name;
  }
}

// Inputs that are probably mistakes are said (and still tokenized); a run that
// writes no train shard says so; .partial shards a killed run left are removed.
TEST_F(TokenizeTool, warns_on_empty_or_binary_input_and_no_train_shard_and_clears_partial_shards) {
  test::ScratchDir dir;
  test::write_text(dir / "empty.txt", "");
  test::write_text(dir / "binary.txt", std::string("ab\0cd", 5));
  test::write_text(dir / "x_train_000001.bin.partial", "left by a killed run");
  std::string out;
  ASSERT_EQ(tokenize("--out " + (dir / "x") + " " + (dir / "empty.txt") + " " + (dir / "binary.txt"), &out), 0) << out;
  EXPECT_NE(out.find("empty.txt' is empty: a document of no text"), std::string::npos) << out;
  EXPECT_NE(out.find("binary.txt' looks binary (a NUL byte at offset 2)"), std::string::npos) << out;
  EXPECT_NE(out.find("no train shard written: all "), std::string::npos) << out;
  EXPECT_NE(out.find("x_train_000001.bin.partial', left by an interrupted run"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir / "x_train_000001.bin.partial"));
  EXPECT_TRUE(std::filesystem::exists(dir / "x_val_000000.bin"));
}

}  // namespace
}  // namespace llmdion
