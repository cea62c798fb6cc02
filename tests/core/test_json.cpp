// The small JSON reader against hand-checked documents.
#include <gtest/gtest.h>

#include "core/json.h"

namespace llmdion {
namespace {

TEST(Json, text_field_is_found_among_other_fields_and_unescaped) {
  auto text = json_object_string_field(
      R"({"id": 7, "meta": {"a": [1, 2.5e3, null, true], "text": "nested"}, "text": "a\"b\\c\n\u00e9\ud83d\ude00\/"})",
      "text");
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(*text, "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80/");
}

TEST(Json, lone_surrogate_becomes_replacement_character) {
  EXPECT_EQ(*json_object_string_field(R"({"text": "x\ud800y"})", "text"), "x\xEF\xBF\xBDy");
}

TEST(Json, missing_field_is_nothing_and_malformed_lines_throw) {
  EXPECT_FALSE(json_object_string_field(R"({"body": "x"})", "text").has_value());
  EXPECT_THROW(json_object_string_field(R"({"text": "x")", "text"), JsonError);
  EXPECT_THROW(json_object_string_field(R"({"text": 5})", "text"), JsonError);
  EXPECT_THROW(json_object_string_field(R"(["text"])", "text"), JsonError);
  EXPECT_THROW(json_object_string_field(R"({"text": "x"} trailing)", "text"), JsonError);
  EXPECT_THROW(json_object_string_field(R"({"text": "bad \q escape"})", "text"), JsonError);
}

TEST(Json, nesting_past_the_depth_limit_is_an_error_not_a_crash) {
  const std::string deep = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + ", \"text\": \"x\"}";
  EXPECT_THROW(json_object_string_field(deep, "text"), JsonError);
  const std::string fine = "{\"a\": " + std::string(100, '[') + std::string(100, ']') + ", \"text\": \"x\"}";
  EXPECT_EQ(*json_object_string_field(fine, "text"), "x");
}

TEST(Json, parse_builds_the_document_tree) {
  const JsonValue v = json_parse(R"({"w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
                                     "__metadata__": {"ok": true, "none": null, "x": -1.5e2}})");
  ASSERT_EQ(v.kind, JsonValue::Kind::kObject);
  const JsonValue* w = v.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->find("dtype")->string, "F32");
  ASSERT_EQ(w->find("shape")->array.size(), 2u);
  EXPECT_EQ(w->find("shape")->array[1].number, 4);
  EXPECT_EQ(w->find("data_offsets")->array[1].number, 48);
  const JsonValue* meta = v.find("__metadata__");
  EXPECT_TRUE(meta->find("ok")->boolean);
  EXPECT_EQ(meta->find("none")->kind, JsonValue::Kind::kNull);
  EXPECT_EQ(meta->find("x")->number, -150);
  EXPECT_EQ(v.find("missing"), nullptr);
  EXPECT_THROW(json_parse("{\"a\": [1, 2}"), JsonError);
  EXPECT_THROW(json_parse("{\"a\": 1} 2"), JsonError);
  EXPECT_THROW(json_parse("{\"a\": 1x}"), JsonError);
}

TEST(Json, string_to_int_object_keeps_file_order) {
  auto entries = json_parse_string_to_int_object(R"({"!": 0, "\u0120the": 262, "b": -3})");
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[1].first, "\xc4\xa0the");
  EXPECT_EQ(entries[1].second, 262);
  EXPECT_EQ(entries[2].second, -3);
  EXPECT_THROW(json_parse_string_to_int_object(R"({"a": 1.5})"), JsonError);
}

}  // namespace
}  // namespace llmdion
