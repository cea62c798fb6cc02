#include "core/json.h"

#include <cctype>
#include <cstdlib>

namespace llmdion {
namespace {

struct JsonReader {
  static constexpr int kMaxDepth = 512;
  std::string_view s;
  size_t pos = 0;
  int depth = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw JsonError(what + " at byte " + std::to_string(pos));
  }
  void skip_space() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) pos++;
  }
  void expect(char c) {
    skip_space();
    if (pos >= s.size() || s[pos] != c) fail(std::string("expected '") + c + "'");
    pos++;
  }
  bool consume(char c) {
    skip_space();
    if (pos < s.size() && s[pos] == c) { pos++; return true; }
    return false;
  }
  uint32_t hex4() {
    if (pos + 4 > s.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
      char c = s[pos++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }
  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xc0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += char(0xe0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3f));
      out += char(0x80 | (cp & 0x3f));
    } else {
      out += char(0xf0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3f));
      out += char(0x80 | ((cp >> 6) & 0x3f));
      out += char(0x80 | (cp & 0x3f));
    }
  }
  std::string string_value() {
    expect('"');
    std::string out;
    while (true) {
      size_t run = pos;
      while (pos < s.size() && s[pos] != '"' && s[pos] != '\\') pos++;
      out.append(s.substr(run, pos - run));
      if (pos >= s.size()) fail("unterminated string");
      if (s[pos++] == '"') return out;
      if (pos >= s.size()) fail("unterminated escape");
      char e = s[pos++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xd800 && cp <= 0xdbff && pos + 6 <= s.size() && s[pos] == '\\' && s[pos + 1] == 'u') {
            size_t save = pos;
            pos += 2;
            uint32_t low = hex4();
            if (low >= 0xdc00 && low <= 0xdfff) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            } else {
              pos = save;
            }
          }
          if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;  // lone surrogate
          append_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }
  int64_t int_value() {
    skip_space();
    const char* begin = s.data() + pos;
    char* end = nullptr;
    std::string digits(begin, std::min<size_t>(32, s.size() - pos));
    long long v = std::strtoll(digits.c_str(), &end, 10);
    size_t used = size_t(end - digits.c_str());
    if (used == 0) fail("expected an integer");
    pos += used;
    if (pos < s.size() && (s[pos] == '.' || s[pos] == 'e' || s[pos] == 'E')) fail("expected an integer");
    return v;
  }
  void skip_value() {
    skip_space();
    if (pos >= s.size()) fail("expected a value");
    if (depth >= kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    struct Nesting {
      int& depth;
      Nesting(int& d) : depth(++d) {}
      ~Nesting() { --depth; }
    } nesting(depth);
    char c = s[pos];
    if (c == '"') {
      string_value();
    } else if (c == '{') {
      pos++;
      if (consume('}')) return;
      do {
        string_value();
        expect(':');
        skip_value();
      } while (consume(','));
      expect('}');
    } else if (c == '[') {
      pos++;
      if (consume(']')) return;
      do skip_value();
      while (consume(','));
      expect(']');
    } else {
      size_t start = pos;
      while (pos < s.size() && (std::isalnum(static_cast<unsigned char>(s[pos])) || s[pos] == '-' ||
                                s[pos] == '+' || s[pos] == '.'))
        pos++;
      std::string_view word = s.substr(start, pos - start);
      bool number = !word.empty() && (word[0] == '-' || std::isdigit(static_cast<unsigned char>(word[0])));
      if (!(number || word == "true" || word == "false" || word == "null")) fail("expected a value");
    }
  }
  JsonValue value() {
    skip_space();
    if (pos >= s.size()) fail("expected a value");
    if (depth >= kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    JsonValue v;
    const char c = s[pos];
    if (c == '"') {
      v.kind = JsonValue::Kind::kString;
      v.string = string_value();
    } else if (c == '{' || c == '[') {
      depth++;
      pos++;
      const char close = c == '{' ? '}' : ']';
      v.kind = c == '{' ? JsonValue::Kind::kObject : JsonValue::Kind::kArray;
      if (!consume(close)) {
        do {
          if (c == '{') {
            std::string key = string_value();
            expect(':');
            v.object.emplace_back(std::move(key), value());
          } else {
            v.array.push_back(value());
          }
        } while (consume(','));
        expect(close);
      }
      depth--;
    } else {
      const size_t start = pos;
      skip_value();
      const std::string word(s.substr(start, pos - start));
      if (word == "true" || word == "false") {
        v.kind = JsonValue::Kind::kBool;
        v.boolean = word == "true";
      } else if (word != "null") {
        v.kind = JsonValue::Kind::kNumber;
        char* end = nullptr;
        v.number = std::strtod(word.c_str(), &end);
        if (end != word.c_str() + word.size()) fail("bad number '" + word + "'");
      }
    }
    return v;
  }
  void expect_end() {
    skip_space();
    if (pos != s.size()) fail("unexpected text after the JSON value");
  }
};

}  // namespace

std::optional<std::string> json_object_string_field(std::string_view line, std::string_view key) {
  JsonReader r{line};
  std::optional<std::string> found;
  r.expect('{');
  if (!r.consume('}')) {
    do {
      std::string name = r.string_value();
      r.expect(':');
      if (name == key) {
        r.skip_space();
        if (r.pos >= line.size() || line[r.pos] != '"') r.fail("field \"" + name + "\" is not a string");
        found = r.string_value();
      } else {
        r.skip_value();
      }
    } while (r.consume(','));
    r.expect('}');
  }
  r.expect_end();
  return found;
}

const JsonValue* JsonValue::find(std::string_view key) const {
  for (const auto& [name, member] : object)
    if (name == key) return &member;
  return nullptr;
}

JsonValue json_parse(std::string_view text) {
  JsonReader r{text};
  JsonValue v = r.value();
  r.expect_end();
  return v;
}

std::vector<std::pair<std::string, int64_t>> json_parse_string_to_int_object(std::string_view text) {
  JsonReader r{text};
  std::vector<std::pair<std::string, int64_t>> entries;
  r.expect('{');
  if (!r.consume('}')) {
    do {
      std::string name = r.string_value();
      r.expect(':');
      entries.emplace_back(std::move(name), r.int_value());
    } while (r.consume(','));
    r.expect('}');
  }
  r.expect_end();
  return entries;
}

}  // namespace llmdion
