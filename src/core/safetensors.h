// The safetensors file format (Hugging Face), for fp32 tensors:
//   u64 little-endian N | N bytes of JSON header, space-padded to 8 bytes | data
//   header: {"__metadata__": {"key": "value", ...},
//            "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// with offsets relative to the start of the data. Python reads it with
// safetensors.numpy.load_file or a few lines of json + numpy.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace llmdion {

struct TensorView {
  std::string name;
  std::vector<int64_t> shape;
  std::span<const float> values;
};

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

struct TensorFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, Tensor> tensors;
};

// Written atomically (temp file, then rename).
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata);

// Throws std::runtime_error naming the file on anything malformed.
TensorFile read_safetensors(const std::string& path);

}  // namespace llmdion
