#include "choir/core/yaml.hpp"

#include <gtest/gtest.h>

namespace choir {
namespace {

std::string parse_error(std::string_view text, const yaml_limits& limits = {}) {
  auto r = parse_yaml(text, "t.yaml", limits);
  return r.ok() ? std::string("(parsed)") : r.err().message;
}

TEST(Yaml, ResolvesScalarsLikeYaml12CoreSchema) {
  auto docs = parse_yaml("i: 42\nf: 1.5\nb: true\nn: null\nt: ~\ns: hello\nq: '42'\nh: 0x1F\nneg: -7\ne:\n", "s.yaml");
  ASSERT_TRUE(docs.ok()) << docs.err().message;
  ASSERT_EQ(docs->size(), 1u);
  EXPECT_EQ(docs->front().root(), value::parse(R"({"i":42,"f":1.5,"b":true,"n":null,"t":null,"s":"hello",
                                                  "q":"42","h":31,"neg":-7,"e":null})"));
}

TEST(Yaml, ReadsEveryDocumentOfAStream) {
  auto docs = parse_yaml("a: 1\n---\n- x\n- y\n---\nplain\n", "s.yaml");
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ((*docs)[1].root(), value::array({"x", "y"}));
  EXPECT_EQ((*docs)[2].root(), "plain");
}

TEST(Yaml, LocatesNodesByDottedPathFallingBackToTheParent) {
  auto docs = parse_yaml("top:\n  list:\n    - a\n    - {k: v}\n", "p.yaml");
  ASSERT_TRUE(docs.ok());
  const yaml_document& d = docs->front();
  EXPECT_EQ(d.locate("top.list.1.k"), "p.yaml:4:11");
  EXPECT_EQ(d.locate("top.list.0"), "p.yaml:3:7");
  EXPECT_EQ(d.locate("top.list.7.missing"), "p.yaml:3:5");
  EXPECT_EQ(d.locate(""), "p.yaml:1:1");
}

TEST(Yaml, KeepsTheOrderOfMappingKeys) {
  auto docs = parse_yaml("m: {zeta: 1, alpha: 2, mid: 3}\n", "o.yaml");
  ASSERT_TRUE(docs.ok());
  EXPECT_EQ(docs->front().keys_in_order("m"), (std::vector<std::string>{"zeta", "alpha", "mid"}));
  EXPECT_TRUE(docs->front().keys_in_order("nope").empty());
}

TEST(Yaml, ExpandsAliasesToCopies) {
  auto docs = parse_yaml("a: &x [1, 2]\nb: *x\n", "a.yaml");
  ASSERT_TRUE(docs.ok());
  EXPECT_EQ(docs->front().root()["b"], value::array({1, 2}));
}

TEST(Yaml, RejectsMalformedInputWithItsPosition) {
  EXPECT_EQ(parse_error("a: [1, 2\n").rfind("t.yaml:", 0), 0u);
  EXPECT_EQ(parse_error("a: 1\na: 2\n"), "t.yaml:2:1: the key 'a' appears twice");
  EXPECT_EQ(parse_error("? [1]\n: v\n"), "t.yaml:1:3: a mapping key must be a plain string");
  EXPECT_EQ(parse_error("a: *nope\n").rfind("t.yaml:1:4:", 0), 0u);
}

TEST(Yaml, RejectsTextThatIsNotUtf8NamingWhere) {
  EXPECT_EQ(parse_error("name: ab\xff\n"), "t.yaml:1:9: not valid UTF-8");
  EXPECT_EQ(parse_error("x: 1\nname: \xc3\n"), "t.yaml:2:7: not valid UTF-8");
  EXPECT_EQ(parse_error("s: \xed\xa0\x80\n"), "t.yaml:1:4: not valid UTF-8");  // a UTF-16 surrogate
}

TEST(Yaml, RefusesAliasBombs) {
  std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 8; ++i) {
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += std::string(j ? ", " : "") + "*a" + std::to_string(i - 1);
    yaml += "]\n";
  }
  const std::string message = parse_error(yaml);
  EXPECT_NE(message.find("the document expands to more than 1000000 nodes"), std::string::npos) << message;
}

TEST(Yaml, RefusesDeepNestingAndHugeInputs) {
  EXPECT_EQ(parse_error(std::string(300, '[') + std::string(300, ']')), "t.yaml:1:257: nested more than 256 deep");
  EXPECT_EQ(parse_error("a: 1\n", {.max_bytes = 3}), "t.yaml: larger than 3 bytes");
}

TEST(Yaml, AStreamThatNeverEndsItsDocumentsIsCutOff) {
  // yaml-cpp 0.7 reports an endless series of empty documents for this stream (found by fuzzing).
  const std::string stream = "a: &x [1, 2]\nb: *x\n---\n, 2]\nb: *x\n---\nkind: Gra: &kind: Gra: &";
  const std::string message = parse_error(stream);
  EXPECT_NE(message.find("more than 64 documents"), std::string::npos) << message;
}

}  // namespace
}  // namespace choir
