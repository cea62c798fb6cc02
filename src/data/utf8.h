// UTF-8 handling for the tokenizer: validation, repair of invalid input and
// code point decoding, plus the three character classes of the GPT-2
// pre-tokenizer (\p{L}, \p{N}, whitespace), with real Unicode tables.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace llmdion {

enum class CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kWhitespace = 3 };

CharClass char_class(uint32_t code_point);

// Decodes the code point that starts at s[pos] of a valid UTF-8 string and
// returns it; `length` receives its byte count.
inline uint32_t decode_utf8(std::string_view s, size_t pos, size_t& length) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) { length = 1; return b0; }
  if (b0 < 0xe0) { length = 2; return ((b0 & 0x1fu) << 6) | (s[pos + 1] & 0x3fu); }
  if (b0 < 0xf0) {
    length = 3;
    return ((b0 & 0x0fu) << 12) | ((s[pos + 1] & 0x3fu) << 6) | (s[pos + 2] & 0x3fu);
  }
  length = 4;
  return ((b0 & 0x07u) << 18) | ((s[pos + 1] & 0x3fu) << 12) | ((s[pos + 2] & 0x3fu) << 6) | (s[pos + 3] & 0x3fu);
}

bool is_valid_utf8(std::string_view s);

// Replaces every ill-formed sequence by U+FFFD, one per maximal subpart (the
// WHATWG/Unicode rule that JavaScript's TextDecoder and Python's
// errors="replace" follow), so invalid bytes tokenize like those decoders see them.
std::string repair_utf8(std::string_view s);

}  // namespace llmdion
