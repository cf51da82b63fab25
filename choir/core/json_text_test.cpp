#include "choir/core/json_text.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace choir {
namespace {

TEST(JsonText, AcceptsWhatAReaderKeeps) {
  for (const std::string& text : std::vector<std::string>{"null",
                                                          "true",
                                                          "false",
                                                          "0",
                                                          "-0",
                                                          "12",
                                                          "-1.5e-3",
                                                          "1E+2",
                                                          "0.25",
                                                          "\"\"",
                                                          "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\"",
                                                          "\"\\u00e9\\ud83d\\ude00\"",
                                                          "\"caf\xC3\xA9 \xF0\x9F\x98\x80 \xE2\x82\xAC\"",
                                                          "[]",
                                                          "{}",
                                                          " [ 1 , [ ] , { } ] ",
                                                          "{\"a\":{\"b\":[null,{\"c\":\"d\"}]},\"e\":-2}",
                                                          "\t\r\n{ \"k\" : [true,false] }\n",
                                                          "1e-400",
                                                          "123456789012345678901234567890",
                                                          "1.7976931348623157e308"}) {
    EXPECT_TRUE(is_json_text(text)) << text;
    EXPECT_TRUE(value::accept(text)) << text;
  }
}

TEST(JsonText, RefusesWhatIsNotOneJsonValue) {
  for (const std::string& text : std::vector<std::string>{"",
                                                          " ",
                                                          "nul",
                                                          "True",
                                                          "01",
                                                          "-",
                                                          "1.",
                                                          ".5",
                                                          "+1",
                                                          "1e",
                                                          "1e+",
                                                          "0x10",
                                                          "NaN",
                                                          "Infinity",
                                                          "[1,]",
                                                          "[,1]",
                                                          "{\"a\"}",
                                                          "{\"a\":}",
                                                          "{\"a\":1,}",
                                                          "{a:1}",
                                                          "{'a':1}",
                                                          "[1 2]",
                                                          "[1]]",
                                                          "[[1]",
                                                          "{\"a\":1}}",
                                                          "1 2",
                                                          "\"abc",
                                                          "\"\\x\"",
                                                          "\"\\u12\"",
                                                          "\"\\u12g4\"",
                                                          "\"tab\there\"",
                                                          std::string("\"nul\0\"", 6),
                                                          "/* comment */ 1",
                                                          "1e400",
                                                          "-1e400",
                                                          std::string(400, '9')}) {
    EXPECT_FALSE(is_json_text(text)) << text;
    EXPECT_FALSE(value::accept(text)) << text;
  }
}

TEST(JsonText, RefusesBadUnicodeLikeAReader) {
  for (const std::string& text : std::vector<std::string>{
           "\"\xC3\"",              // a sequence cut short
           "\"\xC0\xAF\"",          // an overlong form
           "\"\xE0\x80\xAF\"",      // another
           "\"\xED\xA0\x80\"",      // a surrogate encoded in UTF-8
           "\"\xF4\x90\x80\x80\"",  // above U+10FFFF
           "\"\xFF\"", "\"\x80\"",
           "\"\\ud83d\"",         // a high surrogate alone
           "\"\\ude00\"",         // a low surrogate alone
           "\"\\ud83d\\u0041\"",  // a high surrogate followed by something else
       }) {
    EXPECT_FALSE(is_json_text(text)) << text;
    EXPECT_FALSE(value::accept(text)) << text;
  }
}

// A reader skips a byte-order mark at the start of a text, but not inside one: a column that
// starts with one would make the packed row holding it unreadable.
TEST(JsonText, RefusesAByteOrderMarkThatAReaderWouldSkipOnlyAtTheStart) {
  const std::string with_mark = "\xEF\xBB\xBF{}";
  EXPECT_TRUE(value::accept(with_mark));
  EXPECT_FALSE(value::accept("[1," + with_mark + "]"));
  EXPECT_FALSE(is_json_text(with_mark));
}

// Out of range, a number is too large (refused) or too small (zero, kept): told apart by all of
// its exponent and its leading zeros, however many.
TEST(JsonText, TellsAnOverflowFromAnUnderflowWhateverTheDigits) {
  const std::string zeros(100'002, '0');
  const std::vector<std::string> too_large = {"0." + zeros + "1e1000010", "1e99999999999999999999999", "-1" + zeros,
                                              std::string(400, '9') + ".5"};
  for (const std::string& text : too_large) {
    EXPECT_FALSE(value::accept(text)) << text.substr(0, 40);
    EXPECT_FALSE(is_json_text(text)) << text.substr(0, 40);
  }
  const std::vector<std::string> too_small = {"0." + zeros + "1e100000", "1e-99999999999999999999999", "0e99999999"};
  for (const std::string& text : too_small) {
    EXPECT_TRUE(value::accept(text)) << text.substr(0, 40);
    EXPECT_TRUE(is_json_text(text)) << text.substr(0, 40);
  }
}

// A reader takes a NUL byte for the end of its input: `1\0xyz` reads as 1, and the packed row
// holding it would end there.
TEST(JsonText, RefusesANulByteThatAReaderWouldTakeForTheEnd) {
  const std::string cut("1\0xyz", 5);
  EXPECT_TRUE(value::accept(cut));
  EXPECT_FALSE(value::accept("[" + cut + "]"));
  EXPECT_FALSE(is_json_text(cut));
  EXPECT_FALSE(is_json_text(std::string("{}\0", 3)));
}

TEST(JsonText, NestingIsBoundedAndCostsNoRecursion) {
  const auto nested = [](std::size_t depth) {
    std::string text(depth, '[');
    text.append(depth, ']');
    return text;
  };
  EXPECT_TRUE(is_json_text(nested(json_text_max_depth)));
  EXPECT_FALSE(is_json_text(nested(json_text_max_depth + 1)));
  EXPECT_FALSE(is_json_text(nested(1'000'000)));  // refused at once, whatever follows
  std::string objects;
  for (std::size_t i = 0; i < json_text_max_depth; ++i) objects += "{\"a\":";
  objects += "1";
  objects.append(json_text_max_depth, '}');
  EXPECT_TRUE(is_json_text(objects));
  EXPECT_FALSE(is_json_text("{\"a\":" + objects + "}"));
  std::string broken = nested(json_text_max_depth);
  broken.pop_back();
  EXPECT_FALSE(is_json_text(broken));
}

// `dump_json` writes compact text itself; byte for byte what the library's serializer writes.
TEST(JsonText, DumpJsonWritesWhatTheLibraryWrites) {
  const auto library = [](const value& v) { return v.dump(-1, ' ', false, value::error_handler_t::replace); };
  const std::vector<value> values = {
      nullptr,
      true,
      false,
      0,
      -1,
      std::numeric_limits<std::int64_t>::min(),
      std::numeric_limits<std::uint64_t>::max(),
      0.0,
      -0.0,
      1.5,
      1e300,
      3e-310,
      0.1,
      std::numeric_limits<double>::quiet_NaN(),
      std::numeric_limits<double>::infinity(),
      "",
      "plain",
      "quote \" backslash \\ slash / tab \t nl \n nul " + std::string(1, '\0') + " del \x7F",
      "caf\xC3\xA9 \xF0\x9F\x98\x80",
      "bad \xFF\xC3 utf-8",
      value::array(),
      value::object(),
      value::binary({1, 2, 3}),
      {{"b", 1}, {"a", {1, "x", nullptr, {{"z", false}}}}, {"\xFF key", "v"}, {"", 2.25}},
  };
  for (const value& v : values) {
    EXPECT_EQ(dump_json(v), library(v)) << library(v);
    std::string appended = "prefix";
    append_json(appended, v);
    EXPECT_EQ(appended, "prefix" + library(v));
  }
  const value nested = {{"a", values}};
  EXPECT_EQ(dump_json(nested), library(nested));
  EXPECT_EQ(dump_json(nested, 2), nested.dump(2, ' ', false, value::error_handler_t::replace));
}

TEST(JsonText, AgreesWithTheReaderOnWhatItWrites) {
  const value v = {{"text", "caf\xC3\xA9 \x01 \"q\""},
                   {"n", {1, -2.5, 1e300, 3e-310, nullptr, true}},
                   {"nested", {{"a", value::array()}, {"b", value::object()}}}};
  EXPECT_TRUE(is_json_text(dump_json(v)));
  EXPECT_TRUE(is_json_text(dump_json(v, 2)));
}

}  // namespace
}  // namespace choir
