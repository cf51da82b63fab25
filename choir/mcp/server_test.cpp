#include "choir/mcp/server.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "choir/mcp/jsonrpc.hpp"

namespace choir::mcp {
namespace {

class fake_tools final : public server_provider {
 public:
  std::vector<tool_descriptor> tools() override {
    std::vector<tool_descriptor> out;
    for (int i = 0; i < count; ++i) out.push_back({.name = "t" + std::to_string(i), .description = "tool"});
    out.push_back({.name = "echo",
                   .description = "say it back",
                   .input_schema = {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}},
                   .output_schema = {{"type", "object"}}});
    return out;
  }
  result<tool_result> call_tool(const std::string& name, const value& arguments) override {
    ++calls;
    if (name == "t0") return make_error(core_errc::invalid_argument, "refused by the kernel");
    if (!arguments.contains("text")) {
      return tool_result{.content = value::array({{{"type", "text"}, {"text", "text is required"}}}), .is_error = true};
    }
    return tool_result{.content = value::array({{{"type", "text"}, {"text", arguments["text"]}}}),
                       .structured = {{"said", arguments["text"]}}};
  }
  int count = 3;
  int calls = 0;
};

value ask(server& s, const std::string& message) {
  auto answer = s.handle(message);
  EXPECT_TRUE(answer) << message;
  return answer ? value::parse(*answer) : value();
}

TEST(McpServer, NegotiatesTheProtocolVersion) {
  fake_tools tools;
  server s(tools, {.name = "choir", .version = "0.1.0"});
  auto r = ask(
      s,
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})");
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "choir");
  EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
  EXPECT_EQ(s.version(), "2025-06-18");
  auto newer = ask(s, R"({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2099-01-01"}})");
  EXPECT_EQ(newer["result"]["protocolVersion"], "2025-11-25") << "an unknown version gets the newest spoken here";
  EXPECT_FALSE(s.handle(R"({"jsonrpc":"2.0","method":"notifications/initialized"})")) << "no answer to a notification";
}

TEST(McpServer, ListsToolsInPages) {
  fake_tools tools;
  tools.count = 5;
  server s(tools, {}, 4);
  auto first = ask(s, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  ASSERT_EQ(first["result"]["tools"].size(), 4u);
  ASSERT_TRUE(first["result"].contains("nextCursor"));
  auto second = ask(s, R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":)" +
                           first["result"]["nextCursor"].dump() + "}}");
  ASSERT_EQ(second["result"]["tools"].size(), 2u);
  EXPECT_FALSE(second["result"].contains("nextCursor"));
  EXPECT_EQ(second["result"]["tools"][1]["name"], "echo");
  EXPECT_EQ(second["result"]["tools"][1]["outputSchema"]["type"], "object");
  auto bad = ask(s, R"({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"zz"}})");
  EXPECT_EQ(bad["error"]["code"], rpc_code::invalid_params);
}

TEST(McpServer, CallsATool) {
  fake_tools tools;
  server s(tools, {});
  auto r =
      ask(s, R"({"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}})");
  EXPECT_EQ(r["id"], "c1");
  EXPECT_EQ(r["result"]["isError"], false);
  EXPECT_EQ(r["result"]["content"][0]["text"], "hi");
  EXPECT_EQ(r["result"]["structuredContent"]["said"], "hi");
}

TEST(McpServer, ToolFailuresAreResultsTheModelCanReadAndUnknownToolsAreProtocolErrors) {
  fake_tools tools;
  server s(tools, {});
  auto invalid = ask(s, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}})");
  EXPECT_EQ(invalid["result"]["isError"], true);
  auto refused = ask(s, R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t0"}})");
  EXPECT_EQ(refused["result"]["isError"], true);
  EXPECT_EQ(refused["result"]["content"][0]["text"], "refused by the kernel");
  auto unknown = ask(s, R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nope"}})");
  EXPECT_EQ(unknown["error"]["code"], rpc_code::invalid_params);
  EXPECT_EQ(tools.calls, 2);
}

TEST(McpServer, AnswersPingLoggingAndUnknownMethods) {
  fake_tools tools;
  server s(tools, {});
  EXPECT_EQ(ask(s, R"({"jsonrpc":"2.0","id":1,"method":"ping"})")["result"], value::object());
  EXPECT_EQ(ask(s, R"({"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}})")["result"],
            value::object());
  EXPECT_EQ(
      ask(s, R"({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"loud"}})")["error"]["code"],
      rpc_code::invalid_params);
  EXPECT_EQ(ask(s, R"({"jsonrpc":"2.0","id":4,"method":"server/discover"})")["error"]["code"],
            rpc_code::method_not_found);
  EXPECT_EQ(ask(s, "{oops")["error"]["code"], rpc_code::parse_error);
}

TEST(McpServer, ServesNewlineDelimitedMessages) {
  fake_tools tools;
  server s(tools, {});
  std::istringstream in(
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n\n"
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
      "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
  std::ostringstream out;
  serve_lines(s, in, out);
  EXPECT_EQ(out.str(), "{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{}}\n{\"id\":2,\"jsonrpc\":\"2.0\",\"result\":{}}\n");
}

}  // namespace
}  // namespace choir::mcp
