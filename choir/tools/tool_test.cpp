#include "choir/tools/tool.hpp"

#include <gtest/gtest.h>

namespace choir::tools {
namespace {

class echo final : public tool {
 public:
  explicit echo(value output_schema = nullptr, value answer = {{"said", "hi"}})
      : tool({.name = "echo",
              .description = "say it back",
              .input_schema = {{"type", "object"},
                               {"properties",
                                {{"text", {{"type", "string"}}}, {"times", {{"type", "integer"}, {"minimum", 1}}}}},
                               {"required", {"text"}},
                               {"additionalProperties", false}},
              .output_schema = std::move(output_schema),
              .subject = "text"}),
        answer_(std::move(answer)) {}
  result<value> call(const value&, const tool_context&) override {
    ++calls;
    return answer_;
  }
  int calls = 0;

 private:
  value answer_;
};

TEST(ToolRegistry, CallsAToolWithValidArguments) {
  tool_registry registry;
  auto t = std::make_shared<echo>();
  ASSERT_TRUE(registry.add(t).ok());
  auto r = registry.call("echo", {{"text", "x"}, {"times", 2}}, {});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ((*r)["said"], "hi");
  EXPECT_EQ(registry.subject_of("echo", {{"text", "x"}}), "x");
  EXPECT_EQ(registry.list().size(), 1u);
}

TEST(ToolRegistry, InvalidArgumentsListEveryViolationAndDoNotRunTheTool) {
  tool_registry registry;
  auto t = std::make_shared<echo>();
  ASSERT_TRUE(registry.add(t).ok());
  auto r = registry.call("echo", {{"times", 0}, {"colour", "red"}}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, tool_errc::invalid_arguments);
  EXPECT_NE(r.err().message.find("text"), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find("/times"), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find("colour"), std::string::npos) << r.err().message;
  EXPECT_EQ(t->calls, 0);
  EXPECT_EQ(registry.call("echo", "not an object", {}).err().code, tool_errc::invalid_arguments);
}

TEST(ToolRegistry, AnUnknownToolIsAnError) {
  tool_registry registry;
  EXPECT_EQ(registry.call("nope", value::object(), {}).err().code, tool_errc::unknown_tool);
}

TEST(ToolRegistry, AResultOutsideTheOutputSchemaIsAnError) {
  tool_registry registry;
  ASSERT_TRUE(registry.add(std::make_shared<echo>(value{{"type", "object"}, {"required", {"count"}}})).ok());
  auto r = registry.call("echo", {{"text", "x"}}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, tool_errc::invalid_result);
}

TEST(ToolRegistry, RefusesADuplicateNameAndABadSchema) {
  tool_registry registry;
  ASSERT_TRUE(registry.add(std::make_shared<echo>()).ok());
  EXPECT_FALSE(registry.add(std::make_shared<echo>()).ok());
  tool_registry other;
  auto bad = other.add(std::make_shared<echo>(value{{"type", "colour"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("output schema"), std::string::npos);
}

}  // namespace
}  // namespace choir::tools

namespace choir::tools {
namespace {

/// A tool with a name and an input schema of choice, answering its name.
class named final : public tool {
 public:
  named(std::string name, value schema = {{"type", "object"}})
      : tool({.name = std::move(name), .description = "d", .input_schema = std::move(schema)}) {}
  result<value> call(const value&, const tool_context&) override { return value{{"name", spec().name}}; }
};

TEST(ToolRegistry, ReplacesAPrefixAtOnceAndKeepsTheRest) {
  tool_registry registry;
  ASSERT_TRUE(registry.add(std::make_shared<named>("fs.read")).ok());
  ASSERT_TRUE(registry.add(std::make_shared<named>("mcp.a.one")).ok());
  ASSERT_TRUE(registry.add(std::make_shared<named>("mcp.a.two")).ok());
  ASSERT_TRUE(registry.add(std::make_shared<named>("mcp.ab.x")).ok());
  auto held = registry.find("mcp.a.one");

  const auto refused =
      registry.replace_prefix("mcp.a.", {std::make_shared<named>("mcp.a.two"), std::make_shared<named>("mcp.a.three"),
                                         std::make_shared<named>("fs.write"), std::make_shared<named>("mcp.a.three"),
                                         std::make_shared<named>("mcp.a.bad", value{{"type", 7}})});
  std::vector<std::string> names;
  for (const auto& t : registry.list()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"fs.read", "mcp.ab.x", "mcp.a.two", "mcp.a.three"}));
  ASSERT_EQ(refused.size(), 3u);
  EXPECT_NE(refused[0].find("not under mcp.a."), std::string::npos) << refused[0];
  EXPECT_NE(refused[1].find("named twice"), std::string::npos) << refused[1];
  EXPECT_NE(refused[2].find("mcp.a.bad"), std::string::npos) << refused[2];
  EXPECT_EQ(registry.find("mcp.a.one"), nullptr);
  EXPECT_EQ(registry.call("mcp.a.one", value::object(), {}).err().code, make_error_code(tool_errc::unknown_tool));
  EXPECT_EQ((*registry.call("mcp.a.three", value::object(), {}))["name"], "mcp.a.three");
  // A tool held by a call in flight outlives its removal.
  EXPECT_EQ((*held->call(value::object(), {}))["name"], "mcp.a.one");
  // An empty list removes the prefix's tools.
  EXPECT_TRUE(registry.replace_prefix("mcp.a.", {}).empty());
  EXPECT_EQ(registry.list().size(), 2u);
}

}  // namespace
}  // namespace choir::tools
