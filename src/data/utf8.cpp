#include "data/utf8.h"

#include <algorithm>
#include <vector>

namespace llmdion {
namespace {

struct CodePointRange {
  uint32_t first, last;
};
#include "data/unicode_classes.inc"

// One byte per code point: 1.1 MB, built once, read without branches.
const std::vector<CharClass>& class_table() {
  static const std::vector<CharClass> table = [] {
    std::vector<CharClass> t(0x110000, CharClass::kOther);
    auto fill = [&](const auto& ranges, CharClass c) {
      for (const CodePointRange& r : ranges) std::fill(t.begin() + r.first, t.begin() + r.last + 1, c);
    };
    fill(kLetterRanges, CharClass::kLetter);
    fill(kNumberRanges, CharClass::kNumber);
    fill(kWhitespaceRanges, CharClass::kWhitespace);
    return t;
  }();
  return table;
}

// Length of the well-formed sequence at s[pos], or 0 with `subpart` set to the
// length of the maximal ill-formed subpart to replace (Unicode Table 3-7).
size_t well_formed_length(std::string_view s, size_t pos, size_t& subpart) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(pos);
  subpart = 1;
  if (b0 < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) need = 1;
  else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  for (size_t k = 1; k <= need; k++) {
    if (pos + k >= s.size()) { subpart = k; return 0; }
    const unsigned char b = byte(pos + k);
    const unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xbf;
    if (b < min || b > max) { subpart = k; return 0; }
  }
  return need + 1;
}

}  // namespace

CharClass char_class(uint32_t code_point) { return class_table()[code_point]; }

bool is_valid_utf8(std::string_view s) {
  size_t subpart;
  for (size_t pos = 0; pos < s.size();) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) { pos++; continue; }
    size_t n = well_formed_length(s, pos, subpart);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

std::string repair_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  size_t subpart;
  for (size_t pos = 0; pos < s.size();) {
    size_t n = well_formed_length(s, pos, subpart);
    if (n > 0) {
      out.append(s.substr(pos, n));
      pos += n;
    } else {
      out.append("\xEF\xBF\xBD");
      pos += subpart;
    }
  }
  return out;
}

}  // namespace llmdion
