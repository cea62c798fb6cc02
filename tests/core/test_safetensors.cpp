// safetensors: what is written reads back, and numpy reads it as the format says.
#include <gtest/gtest.h>

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
  write_safetensors(dir / "t.safetensors", {{"x", {3, 2}, a}}, {{"k", "v"}});
  // The format's own definition, in numpy: length prefix, JSON header, raw little-endian data.
  const std::string script =
      "import json, struct, sys, numpy as np\n"
      "raw = open(sys.argv[1], 'rb').read()\n"
      "n = struct.unpack('<Q', raw[:8])[0]\n"
      "h = json.loads(raw[8:8 + n])\n"
      "assert n % 8 == 0 and h['__metadata__'] == {'k': 'v'}, h\n"
      "b, e = h['x']['data_offsets']\n"
      "x = np.frombuffer(raw[8 + n + b:8 + n + e], dtype='<f4').reshape(h['x']['shape'])\n"
      "assert (x == np.arange(1, 7, dtype=np.float32).reshape(3, 2)).all(), x\n"
      "print('ok')\n";
  test::write_text(dir / "check.py", script);
  std::string out;
  EXPECT_EQ(test::run_command("/usr/bin/python3 " + (dir / "check.py") + " " + (dir / "t.safetensors"), &out), 0) << out;
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
