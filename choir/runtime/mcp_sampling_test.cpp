#include "choir/runtime/mcp_sampling.hpp"

#include <gtest/gtest.h>

namespace choir::runtime {
namespace {

models::chat_request conversation_with_tools() {
  models::chat_request r;
  r.messages = {
      {.role = "system", .content = "Be brief."},
      {.role = "user", .content = "What is in notes?"},
      {.role = "assistant",
       .content = "Looking.",
       .tool_calls = {{.id = "c1", .name = "fs.list", .arguments = {{"path", "notes"}}},
                      {.id = "c2", .name = "fs.read", .arguments = {{"path", "notes/a.txt"}}}}},
      {.role = "tool", .content = "[\"a.txt\"]", .tool_call_id = "c1", .name = "fs.list"},
      {.role = "tool", .content = "no such file", .tool_call_id = "c2", .name = "fs.read", .is_error = true},
  };
  r.tools = {{.name = "fs.list", .description = "List a folder", .input_schema = {{"type", "object"}}}};
  r.max_tokens = 300;
  r.temperature = 0.2;
  return r;
}

TEST(McpSampling, AChatRequestBecomesCreateMessageParamsAndBack) {
  const auto request = conversation_with_tools();
  auto params = sampling_params(request, {.hints = {"claude-sonnet"}, .speed_priority = 0.5}, /*with_tools=*/true);
  ASSERT_TRUE(params.ok()) << params.err().message;
  const value& p = *params;
  EXPECT_EQ(p["systemPrompt"], "Be brief.");
  EXPECT_EQ(p["maxTokens"], 300);
  EXPECT_EQ(p["temperature"], 0.2);
  EXPECT_EQ(p["includeContext"], "none");
  EXPECT_EQ(p["modelPreferences"], value::parse(R"({"hints": [{"name": "claude-sonnet"}], "speedPriority": 0.5})"));
  ASSERT_EQ(p["messages"].size(), 3U);
  EXPECT_EQ(p["messages"][0],
            value::parse(R"({"role": "user", "content": {"type": "text", "text": "What is in notes?"}})"));
  EXPECT_EQ(p["messages"][1]["content"].size(), 3U);  // the text and both tool calls
  EXPECT_EQ(p["messages"][1]["content"][1],
            value::parse(R"({"type": "tool_use", "id": "c1", "name": "fs.list", "input": {"path": "notes"}})"));
  // Both results answer in one user message, holding nothing else.
  EXPECT_EQ(p["messages"][2], value::parse(R"({"role": "user", "content": [
      {"type": "tool_result", "toolUseId": "c1", "content": [{"type": "text", "text": "[\"a.txt\"]"}]},
      {"type": "tool_result", "toolUseId": "c2", "content": [{"type": "text", "text": "no such file"}], "isError": true}]})"));
  EXPECT_EQ(p["tools"][0],
            value::parse(R"({"name": "fs.list", "description": "List a folder", "inputSchema": {"type": "object"}})"));
  EXPECT_EQ(p["toolChoice"]["mode"], "auto");

  // ChoirOS as the client reads the same params back into the same conversation.
  auto back = sampled_request(p);
  ASSERT_TRUE(back.ok()) << back.err().message;
  ASSERT_EQ(back->messages.size(), request.messages.size());
  for (std::size_t i = 0; i < request.messages.size(); ++i) {
    const auto& want = request.messages[i];
    const auto& got = back->messages[i];
    EXPECT_EQ(got.role, want.role) << i;
    EXPECT_EQ(got.content, want.content) << i;
    EXPECT_EQ(got.tool_call_id, want.tool_call_id) << i;
    EXPECT_EQ(got.is_error, want.is_error) << i;
    ASSERT_EQ(got.tool_calls.size(), want.tool_calls.size()) << i;
    for (std::size_t c = 0; c < want.tool_calls.size(); ++c) {
      EXPECT_EQ(got.tool_calls[c].id, want.tool_calls[c].id);
      EXPECT_EQ(got.tool_calls[c].arguments, want.tool_calls[c].arguments);
    }
  }
  EXPECT_EQ(back->max_tokens, 300);
  EXPECT_EQ(back->temperature, 0.2);
  ASSERT_EQ(back->tools.size(), 1U);
  EXPECT_EQ(back->tools[0].description, "List a folder");
}

TEST(McpSampling, AClientWithoutSamplingToolsIsAskedOnlyForText) {
  models::chat_request plain;
  plain.messages = {{.role = "user", .content = "hi"}};
  plain.json_output = true;
  auto params = sampling_params(plain, {}, /*with_tools=*/false);
  ASSERT_TRUE(params.ok());
  EXPECT_EQ((*params)["maxTokens"], default_sampling_max_tokens);
  EXPECT_EQ((*params)["systemPrompt"], "Answer with JSON only.");
  EXPECT_FALSE(params->contains("modelPreferences"));
  EXPECT_FALSE(params->contains("tools"));

  auto with_tools = conversation_with_tools();
  auto refused = sampling_params(with_tools, {}, /*with_tools=*/false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, models::model_errc::rejected);  // so the gateway falls back
  EXPECT_NE(refused.err().message.find("sampling.tools"), std::string::npos) << refused.err().message;
  with_tools.tools.clear();  // still: the history holds tool calls
  EXPECT_FALSE(sampling_params(with_tools, {}, false).ok());
  models::chat_request only_system;
  only_system.messages = {{.role = "system", .content = "x"}};
  EXPECT_FALSE(sampling_params(only_system, {}, false).ok());
}

TEST(McpSampling, TheClientsAnswerBecomesTheGatewaysAnswer) {
  auto text = sampling_answer(value::parse(
      R"({"role": "assistant", "content": {"type": "text", "text": "Three lines."}, "model": "claude-x", "stopReason": "endTurn"})"));
  ASSERT_TRUE(text.ok()) << text.err().message;
  EXPECT_EQ(text->message.content, "Three lines.");
  EXPECT_EQ(text->finish_reason, "stop");
  EXPECT_EQ(text->usage.total(), 0);

  auto calls = sampling_answer(value::parse(R"({"role": "assistant", "model": "m", "stopReason": "toolUse", "content": [
      {"type": "text", "text": "Listing."}, {"type": "tool_use", "id": "t1", "name": "fs.list", "input": {"path": "."}}]})"));
  ASSERT_TRUE(calls.ok()) << calls.err().message;
  EXPECT_EQ(calls->finish_reason, "tool_calls");
  ASSERT_EQ(calls->message.tool_calls.size(), 1U);
  EXPECT_EQ(calls->message.tool_calls[0].arguments, (value{{"path", "."}}));
  const auto cut = sampling_answer(
      value::parse(R"({"role": "assistant", "content": {"type": "text", "text": ""}, "stopReason": "maxTokens"})"));
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->finish_reason, "length");

  for (const char* bad :
       {R"([])", R"({"role": "user", "content": {"type": "text", "text": "x"}})", R"({"role": "assistant"})",
        R"({"role": "assistant", "content": {"type": "image", "data": "", "mimeType": "image/png"}})",
        R"({"role": "assistant", "content": {"type": "text"}})",
        R"({"role": "assistant", "content": [{"type": "tool_use", "name": "x"}]})",
        R"({"role": "assistant", "content": [7]})"}) {
    auto r = sampling_answer(value::parse(bad));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.err().code, models::model_errc::bad_response) << bad;
  }
}

TEST(McpSampling, TheGatewaysAnswerBecomesACreateMessageResult) {
  models::chat_response text{
      .message = {.role = "assistant", .content = "ok"}, .finish_reason = "length", .model = "local/8B"};
  EXPECT_EQ(sampling_result(text), value::parse(R"({"role": "assistant", "content": {"type": "text", "text": "ok"},
      "model": "local/8B", "stopReason": "maxTokens"})"));
  models::chat_response calls{
      .message = {.role = "assistant", .tool_calls = {{.id = "a", .name = "get", .arguments = value::object()}}},
      .model = "m"};
  EXPECT_EQ(sampling_result(calls), value::parse(R"({"role": "assistant", "model": "m", "stopReason": "toolUse",
      "content": {"type": "tool_use", "id": "a", "name": "get", "input": {}}})"));
}

TEST(McpSampling, MalformedParamsFromAServerAreRefusedByName) {
  for (const auto& [params, what] : std::vector<std::pair<const char*, const char*>>{
           {R"(7)", "params must be an object"},
           {R"({})", "messages are required"},
           {R"({"messages": []})", "messages are required"},
           {R"({"messages": [{"role": "system", "content": {"type": "text", "text": "x"}}]})",
            "role is user or assistant"},
           {R"({"messages": [{"role": "user"}]})", "has no content"},
           {R"({"messages": [{"role": "user", "content": {"type": "image", "data": ""}}]})", "only text"},
           {R"({"messages": [{"role": "user", "content": {"type": "tool_use", "id": "a", "name": "b"}}]})",
            "only text"},
           {R"({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]})", "toolUseId"},
           {R"({"messages": [{"role": "user", "content": {"type": "text", "text": "x"}}], "maxTokens": 0})",
            "maxTokens"},
           {R"({"messages": [{"role": "user", "content": {"type": "text", "text": "x"}}], "systemPrompt": 3})",
            "systemPrompt"},
           {R"({"messages": [{"role": "user", "content": {"type": "text", "text": "x"}}], "tools": [{}]})",
            "a tool needs a name"}}) {
    auto r = sampled_request(value::parse(params));
    ASSERT_FALSE(r.ok()) << params;
    EXPECT_EQ(r.err().code, core_errc::invalid_argument);
    EXPECT_NE(r.err().message.find(what), std::string::npos) << r.err().message;
  }
  // toolChoice none: the model gets no tools.
  auto none = sampled_request(value::parse(R"({"messages": [{"role": "user", "content": {"type": "text", "text": "x"}}],
      "tools": [{"name": "t", "inputSchema": {"type": "object"}}], "toolChoice": {"mode": "none"}})"));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->tools.empty());
}

}  // namespace
}  // namespace choir::runtime
