// The safetensors file format (Hugging Face), for fp32 tensors:
//   u64 little-endian N | N bytes of JSON header, space-padded to 8 bytes | data
//   header: {"__metadata__": {"key": "value", ...},
//            "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// with offsets relative to the start of the data. Python reads it with
// safetensors.numpy.load_file or a few lines of json + numpy.
// Ours carry each tensor's XXH64 in the metadata, "xxh64:<name>": "<16 hex>",
// checked on read.
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
  std::map<std::string, std::string> metadata;  // the checksums left out
  std::map<std::string, Tensor> tensors;
  bool checksummed = false;  // every tensor had its checksum (and matched it)
};

// Written atomically (temp file, then rename), with the checksums.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata);

// Throws std::runtime_error naming the file on anything malformed, and the
// file and tensor when a tensor's data differs from its checksum.
TensorFile read_safetensors(const std::string& path);

}  // namespace llmdion
