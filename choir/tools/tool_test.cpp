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
