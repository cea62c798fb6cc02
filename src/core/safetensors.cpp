#include "core/safetensors.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/checksum.h"
#include "core/json.h"

namespace llmdion {
namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else out += c;
  }
  return out + "\"";
}

constexpr const char* kChecksumPrefix = "xxh64:";

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::string> all_metadata = metadata;
  for (const TensorView& t : tensors)
    all_metadata[kChecksumPrefix + t.name] = xxh64_hex(t.values.data(), t.values.size_bytes());
  std::string header = "{\"__metadata__\":{";
  bool first = true;
  for (const auto& [key, value] : all_metadata) {
    if (!first) header += ',';
    header += json_string(key);
    header += ':';
    header += json_string(value);
    first = false;
  }
  header += "}";
  uint64_t offset = 0;
  for (const TensorView& t : tensors) {
    header += ',';
    header += json_string(t.name);
    header += ":{\"dtype\":\"F32\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); i++) {
      if (i) header += ',';
      header += std::to_string(t.shape[i]);
    }
    const uint64_t bytes = t.values.size() * sizeof(float);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  write_file_atomic(path, [&](std::ostream& out) {
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), sizeof(n));
    out << header;
    for (const TensorView& t : tensors)
      out.write(reinterpret_cast<const char*>(t.values.data()), std::streamsize(t.values.size() * sizeof(float)));
  });
}

TensorFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open '" + path + "'");
  std::string bytes(size_t(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), std::streamsize(bytes.size()))) throw std::runtime_error("cannot read '" + path + "'");
  auto bad = [&](const std::string& what) { return std::runtime_error("'" + path + "' is not a valid safetensors file: " + what); };
  uint64_t n = 0;
  if (bytes.size() < 8) throw bad("shorter than its length prefix");
  std::memcpy(&n, bytes.data(), 8);
  if (n > bytes.size() - 8) throw bad("header length past the end of the file");
  JsonValue header;
  try {
    header = json_parse(std::string_view(bytes).substr(8, n));
  } catch (const JsonError& e) {
    throw bad(std::string("header: ") + e.what());
  }
  const std::string_view data = std::string_view(bytes).substr(8 + n);
  TensorFile file;
  std::map<std::string, std::string> checksums;
  if (const JsonValue* metadata = header.find("__metadata__"))
    for (const auto& [key, value] : metadata->object) {
      if (key.starts_with(kChecksumPrefix)) checksums[key.substr(std::strlen(kChecksumPrefix))] = value.string;
      else file.metadata[key] = value.string;
    }
  file.checksummed = true;
  for (const auto& [name, entry] : header.object) {
    if (name == "__metadata__") continue;
    const JsonValue* dtype = entry.find("dtype");
    const JsonValue* shape = entry.find("shape");
    const JsonValue* offsets = entry.find("data_offsets");
    if (!dtype || dtype->string != "F32") throw bad("tensor '" + name + "' is not F32");
    if (!shape || !offsets || offsets->array.size() != 2) throw bad("tensor '" + name + "' lacks shape or offsets");
    Tensor t;
    int64_t count = 1;
    for (const JsonValue& d : shape->array) t.shape.push_back(int64_t(d.number)), count *= int64_t(d.number);
    const uint64_t begin = uint64_t(offsets->array[0].number), end = uint64_t(offsets->array[1].number);
    if (end < begin || end > data.size() || end - begin != uint64_t(count) * sizeof(float))
      throw bad("tensor '" + name + "' has offsets that do not fit its shape or the file");
    auto checksum = checksums.find(name);
    if (checksum == checksums.end()) {
      file.checksummed = false;
    } else if (const std::string actual = xxh64_hex(data.data() + begin, end - begin); actual != checksum->second) {
      throw std::runtime_error("'" + path + "' is damaged: tensor '" + name + "' does not match its checksum (xxh64 " +
                               actual + ", written as " + checksum->second + ")");
    }
    t.values.resize(size_t(count));
    std::memcpy(t.values.data(), data.data() + begin, end - begin);
    file.tensors.emplace(name, std::move(t));
  }
  return file;
}

}  // namespace llmdion
