// Just enough JSON: the flat {"token": id} object of GPT-2's encoder.json, the
// "text" field of one JSON-lines record, and small documents such as a
// safetensors header (json_parse). Strings are decoded
// to UTF-8 (\uXXXX escapes and surrogate pairs included); a lone surrogate becomes
// U+FFFD, as a JavaScript TextEncoder would write it.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmdion {

struct JsonError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Returns the value of the top-level string field `key` of the JSON object in
// `line`, or nothing when the object has no such field. Throws JsonError when
// the line is not one well-formed JSON object or the field is not a string.
std::optional<std::string> json_object_string_field(std::string_view line, std::string_view key);

// A parsed JSON document (objects keep their key order).
struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;
  // The member named key of an object, or null when absent.
  const JsonValue* find(std::string_view key) const;
};

JsonValue json_parse(std::string_view text);

// Parses a JSON object whose values are all integers, in file order.
std::vector<std::pair<std::string, int64_t>> json_parse_string_to_int_object(std::string_view text);

}  // namespace llmdion
