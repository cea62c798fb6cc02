// safetensors: what is written reads back, and numpy reads it as the format says.
#include <gtest/gtest.h>

#include <cmath>

#include "core/safetensors.h"
#include "test_util.h"

namespace llmdion {
namespace {

TEST(Safetensors, tensors_and_metadata_round_trip) {
  test::ScratchDir dir;
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f}, b = {42.0f};
  write_safetensors(dir / "t.safetensors", {{"layer.a", {2, 3}, a}, {"b", {1}, b}},
                    {{"format", "llm.dion"}, {"note", "quote \" and \\ back"}});
  const TensorFile file = read_safetensors(dir / "t.safetensors");
  EXPECT_EQ(file.metadata.at("format"), "llm.dion");
  EXPECT_EQ(file.metadata.at("note"), "quote \" and \\ back");
  EXPECT_EQ(file.tensors.at("layer.a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(file.tensors.at("layer.a").values, a);
  EXPECT_EQ(file.tensors.at("b").values, b);
}

TEST(Safetensors, layout_is_what_python_readers_expect) {
  if (test::run_command("/usr/bin/python3 -c 'import numpy'") != 0) GTEST_SKIP() << "numpy is not installed";
  test::ScratchDir dir;
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<float> y(21);  // 84 bytes: two 32-byte stripes, an 8-byte lane and a 4-byte one
  for (size_t i = 0; i < y.size(); i++) y[i] = std::ldexp(float(i) - 7.0f, int(i % 5) - 2);
  write_safetensors(dir / "t.safetensors", {{"x", {3, 2}, a}, {"y", {21}, y}}, {{"k", "v"}});
  // The format's own definition, in numpy: length prefix, JSON header, raw little-endian data;
  // the tensor's checksum is XXH64 by its specification (xxhash's doc/xxhash_spec.md), in Python.
  const std::string script =
      "import json, struct, sys, numpy as np\n"
      "M = (1 << 64) - 1\n"
      "P1, P2, P3, P4, P5 = (11400714785074694791, 14029467366897019727, 1609587929392839161,\n"
      "                      9650029242287828579, 2870177450012600261)\n"
      "rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M\n"
      "rnd = lambda acc, lane: rotl((acc + lane * P2) & M, 31) * P1 & M\n"
      "def xxh64(data):\n"
      "    i, n = 0, len(data)\n"
      "    if n >= 32:\n"
      "        v = [(P1 + P2) & M, P2, 0, (-P1) & M]\n"
      "        while i + 32 <= n:\n"
      "            v = [rnd(v[j], struct.unpack_from('<Q', data, i + 8 * j)[0]) for j in range(4)]\n"
      "            i += 32\n"
      "        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M\n"
      "        for x in v: h = ((h ^ rnd(0, x)) * P1 + P4) & M\n"
      "    else:\n"
      "        h = P5\n"
      "    h = (h + n) & M\n"
      "    while i + 8 <= n:\n"
      "        h = (rotl(h ^ rnd(0, struct.unpack_from('<Q', data, i)[0]), 27) * P1 + P4) & M\n"
      "        i += 8\n"
      "    if i + 4 <= n:\n"
      "        h = (rotl(h ^ (struct.unpack_from('<I', data, i)[0] * P1 & M), 23) * P2 + P3) & M\n"
      "        i += 4\n"
      "    for b in data[i:]: h = rotl(h ^ (b * P5 & M), 11) * P1 & M\n"
      "    h = (h ^ (h >> 33)) * P2 & M\n"
      "    h = (h ^ (h >> 29)) * P3 & M\n"
      "    return '%016x' % (h ^ (h >> 32))\n"
      "raw = open(sys.argv[1], 'rb').read()\n"
      "n = struct.unpack('<Q', raw[:8])[0]\n"
      "h = json.loads(raw[8:8 + n])\n"
      "data = lambda name: raw[8 + n + h[name]['data_offsets'][0]:8 + n + h[name]['data_offsets'][1]]\n"
      "meta = h['__metadata__']\n"
      "assert xxh64(b'') == 'ef46db3751d8e999'  # the specification's value for no input\n"
      "assert n % 8 == 0 and meta == {'k': 'v', 'xxh64:x': xxh64(data('x')), 'xxh64:y': xxh64(data('y'))}, h\n"
      "b, e = h['x']['data_offsets']\n"
      "x = np.frombuffer(raw[8 + n + b:8 + n + e], dtype='<f4').reshape(h['x']['shape'])\n"
      "assert (x == np.arange(1, 7, dtype=np.float32).reshape(3, 2)).all(), x\n"
      "print('ok')\n";
  test::write_text(dir / "check.py", script);
  std::string out;
  EXPECT_EQ(test::run_command("/usr/bin/python3 " + (dir / "check.py") + " " + (dir / "t.safetensors"), &out), 0) << out;
}

// One flipped bit anywhere in a tensor's data is named, with the file and tensor.
TEST(Safetensors, a_flipped_bit_in_a_tensor_fails_its_checksum) {
  test::ScratchDir dir;
  std::vector<float> a(100), b(7);
  for (size_t i = 0; i < a.size(); i++) a[i] = 0.5f * float(i);
  write_safetensors(dir / "t.safetensors", {{"first", {10, 10}, a}, {"second", {7}, b}}, {{"k", "v"}});
  const TensorFile intact = read_safetensors(dir / "t.safetensors");
  EXPECT_TRUE(intact.checksummed);
  EXPECT_EQ(intact.metadata, (std::map<std::string, std::string>{{"k", "v"}}));
  EXPECT_EQ(intact.tensors.at("first").values, a);
  const std::string bytes = test::read_text(dir / "t.safetensors");
  const size_t data_start = bytes.size() - (a.size() + b.size()) * sizeof(float);
  for (size_t at : {data_start, data_start + 217, bytes.size() - 1}) {
    for (int bit : {0, 7}) {
      std::string flipped = bytes;
      flipped[at] = char(flipped[at] ^ (1 << bit));
      test::write_text(dir / "f.safetensors", flipped);
      const std::string tensor = at < data_start + a.size() * sizeof(float) ? "first" : "second";
      try {
        read_safetensors(dir / "f.safetensors");
        ADD_FAILURE() << "byte " << at << " bit " << bit << " went unnoticed";
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("f.safetensors' is damaged: tensor '" + tensor +
                                             "' does not match its checksum"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(Safetensors, damaged_files_are_clear_errors) {
  test::ScratchDir dir;
  const std::vector<float> a = {1, 2, 3, 4};
  write_safetensors(dir / "t.safetensors", {{"x", {4}, a}}, {});
  const std::string bytes = test::read_text(dir / "t.safetensors");
  test::write_text(dir / "short.safetensors", bytes.substr(0, bytes.size() - 4));
  EXPECT_THROW(read_safetensors(dir / "short.safetensors"), std::runtime_error);
  test::write_text(dir / "tiny.safetensors", "abc");
  EXPECT_THROW(read_safetensors(dir / "tiny.safetensors"), std::runtime_error);
  EXPECT_THROW(read_safetensors(dir / "missing.safetensors"), std::runtime_error);
}

}  // namespace
}  // namespace llmdion
