// llm.c shard files: what is written reads back, and every kind of damage to
// a header or file is one clear error.
#include <gtest/gtest.h>

#include <cstring>

#include "data/shard.h"
#include "test_util.h"

namespace llmdion {
namespace {

std::string header_bytes(int32_t magic, int32_t version, int32_t count) {
  int32_t header[kShardHeaderInts] = {};
  header[0] = magic, header[1] = version, header[2] = count;
  return std::string(reinterpret_cast<const char*>(header), sizeof(header));
}

// Expects read_shard_info to fail with a message containing every word given.
void expect_shard_error(const std::string& path, std::vector<std::string> words) {
  try {
    read_shard_info(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const DataError& e) {
    for (const std::string& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << "no '" << w << "' in: " << e.what();
  }
}

TEST(Shard, written_uint16_shard_has_llmc_layout_and_reads_back) {
  test::ScratchDir dir;
  const std::vector<uint32_t> tokens = {50256, 15496, 995, 0, 65535};
  write_shard(dir / "a.bin", tokens, 2);
  const std::string bytes = test::read_text(dir / "a.bin");
  ASSERT_EQ(bytes.size(), 1024u + 2 * tokens.size());
  int32_t header[3];
  std::memcpy(header, bytes.data(), sizeof(header));
  EXPECT_EQ(header[0], 20240520);
  EXPECT_EQ(header[1], 1);
  EXPECT_EQ(header[2], 5);
  uint16_t second;
  std::memcpy(&second, bytes.data() + 1024 + 2, 2);
  EXPECT_EQ(second, 15496);

  const ShardInfo info = read_shard_info(dir / "a.bin");
  EXPECT_EQ(info.token_bytes, 2);
  EXPECT_EQ(info.num_tokens, 5);
  MappedShard shard(info);
  for (size_t i = 0; i < tokens.size(); i++) EXPECT_EQ(shard.token(int64_t(i)), tokens[i]);
}

TEST(Shard, uint32_shard_uses_llama3_magic_and_reads_back) {
  test::ScratchDir dir;
  const std::vector<uint32_t> tokens = {128000, 70000, 1};
  write_shard(dir / "b.bin", tokens, 4);
  const ShardInfo info = read_shard_info(dir / "b.bin");
  EXPECT_EQ(info.token_bytes, 4);
  MappedShard shard(info);
  EXPECT_EQ(shard.token(0), 128000u);
  EXPECT_EQ(shard.token(1), 70000u);
  EXPECT_EQ(test::read_text(dir / "b.bin").substr(0, 12), header_bytes(20240801, 7, 3).substr(0, 12));
}

TEST(Shard, no_temporary_file_is_left_behind) {
  test::ScratchDir dir;
  write_shard(dir / "c.bin", std::vector<uint32_t>{1, 2, 3}, 2);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
    files++;
    EXPECT_EQ(e.path().filename(), "c.bin");
  }
  EXPECT_EQ(files, 1);
}

TEST(Shard, each_kind_of_header_damage_is_a_clear_error) {
  test::ScratchDir dir;
  const std::string tokens(20, '\x01');  // 10 uint16 tokens
  test::write_text(dir / "magic.bin", header_bytes(1234, 1, 10) + tokens);
  expect_shard_error(dir / "magic.bin", {"magic.bin", "magic 1234"});
  test::write_text(dir / "version.bin", header_bytes(20240520, 7, 10) + tokens);
  expect_shard_error(dir / "version.bin", {"version 7", "must be version 1"});
  test::write_text(dir / "version32.bin", header_bytes(20240801, 1, 5) + tokens);
  expect_shard_error(dir / "version32.bin", {"version 1", "must be version 7"});
  test::write_text(dir / "truncated.bin", header_bytes(20240520, 1, 11) + tokens);
  expect_shard_error(dir / "truncated.bin", {"truncated.bin", "declares 11 tokens", "truncated"});
  test::write_text(dir / "trailing.bin", header_bytes(20240520, 1, 9) + tokens);
  expect_shard_error(dir / "trailing.bin", {"trailing bytes"});
  test::write_text(dir / "short.bin", header_bytes(20240520, 1, 10).substr(0, 100));
  expect_shard_error(dir / "short.bin", {"shorter than the 1024-byte header"});
  test::write_text(dir / "zero.bin", header_bytes(20240520, 1, 0));
  expect_shard_error(dir / "zero.bin", {"declares 0 tokens"});
  expect_shard_error(dir / "missing.bin", {"cannot open shard", "missing.bin"});
}

TEST(Shard, token_id_at_or_above_vocab_names_shard_and_position) {
  test::ScratchDir dir;
  write_shard(dir / "ids.bin", std::vector<uint32_t>{5, 6, 50257, 7}, 2);
  MappedShard shard(read_shard_info(dir / "ids.bin"));
  EXPECT_NO_THROW(shard.check_token_ids(50258));
  try {
    shard.check_token_ids(50257);
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("ids.bin"), std::string::npos) << what;
    EXPECT_NE(what.find("token id 50257 at position 2"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace llmdion
