#include "choir/models/providers.hpp"

#include <gtest/gtest.h>

#include "choir/net/test_http_server.hpp"

namespace choir::models {
namespace {

using net::testing::canned_reply;
using net::testing::received_request;
using net::testing::test_http_server;

struct collect final : chat_stream {
  std::string text_so_far;
  int pieces = 0;
  std::vector<std::string> calls;
  void text(std::string_view d) override {
    text_so_far += d;
    ++pieces;
  }
  void tool_call_ready(const tool_call& c) override { calls.push_back(c.name); }
};

chat_request tool_request() {
  chat_request r{.model = "gpt-test"};
  r.messages = {
      {.role = "system", .content = "be brief"},
      {.role = "user", .content = "read a"},
      {.role = "assistant", .tool_calls = {{.id = "call_1", .name = "fs.read", .arguments = {{"path", "a"}}}}},
      {.role = "tool", .content = "contents", .tool_call_id = "call_1", .name = "fs.read"}};
  r.tools = {{.name = "fs.read", .description = "read", .input_schema = {{"type", "object"}}}};
  r.max_tokens = 64;
  return r;
}

std::string sse(const std::vector<std::string>& datas) {
  std::string out;
  for (const auto& d : datas) out += "data: " + d + "\n\n";
  return out;
}

TEST(OpenAiProvider, SendsTheChatCompletionsWireFormatAndReadsToolCalls) {
  test_http_server server([](const received_request&) {
    return canned_reply{
        .chunks = {
            R"({"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,
      "tool_calls":[{"id":"call_9","type":"function","function":{"name":"fs.write","arguments":"{\"path\":\"b\",\"content\":\"x\"}"}}]},
      "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":31,"completion_tokens":7,"total_tokens":38}})"}};
  });
  auto p = openai_chat_provider({.base_url = server.url("/v1/"), .api_key = "sk-test"});
  auto r = p->complete(tool_request(), nullptr);
  ASSERT_TRUE(r.ok()) << r.err().message;
  ASSERT_EQ(r->message.tool_calls.size(), 1u);
  EXPECT_EQ(r->message.tool_calls[0].id, "call_9");
  EXPECT_EQ(r->message.tool_calls[0].arguments["path"], "b");
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->usage.input_tokens, 31);
  EXPECT_EQ(r->usage.output_tokens, 7);

  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/v1/chat/completions");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer sk-test");
  const value body = value::parse(seen[0].body);
  EXPECT_EQ(body["model"], "gpt-test");
  EXPECT_EQ(body["max_tokens"], 64);
  EXPECT_EQ(body["tools"][0]["type"], "function");
  EXPECT_EQ(body["tools"][0]["function"]["name"], "fs.read");
  EXPECT_EQ(body["messages"][2]["tool_calls"][0]["function"]["arguments"], R"({"path":"a"})");
  EXPECT_EQ(body["messages"][3]["role"], "tool");
  EXPECT_EQ(body["messages"][3]["tool_call_id"], "call_1");
}

TEST(OpenAiProvider, JoinsStreamedToolCallDeltasByIndex) {
  test_http_server server([](const received_request&) {
    const std::string body = sse(
        {R"({"choices":[{"index":0,"delta":{"role":"assistant","content":"Let me "},"finish_reason":null}]})",
         R"({"choices":[{"index":0,"delta":{"content":"look."},"finish_reason":null}]})",
         R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"fs.read","arguments":""}}]}}]})",
         R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"fs.list","arguments":"{\"pa"}}]}}]})",
         R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]}}]})",
         R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"a\"}"}}]}}]})",
         R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"th\":\".\"}"}}]}}]})",
         R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
         R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9}})", "[DONE]"});
    // Split at awkward places, as a network does.
    std::vector<std::string> pieces;
    for (std::size_t i = 0; i < body.size(); i += 37) pieces.push_back(body.substr(i, 37));
    return canned_reply{.headers = {{"Content-Type", "text/event-stream"}}, .chunks = pieces};
  });
  auto p = openai_chat_provider({.base_url = server.url("/v1")});
  collect sink;
  auto r = p->complete(tool_request(), &sink);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->message.content, "Let me look.");
  EXPECT_EQ(sink.text_so_far, "Let me look.");
  EXPECT_EQ(sink.pieces, 2);
  ASSERT_EQ(r->message.tool_calls.size(), 2u);
  EXPECT_EQ(r->message.tool_calls[0].name, "fs.read");
  EXPECT_EQ(r->message.tool_calls[0].arguments["path"], "a");
  EXPECT_EQ(r->message.tool_calls[1].name, "fs.list");
  EXPECT_EQ(r->message.tool_calls[1].arguments["path"], ".");
  EXPECT_EQ(sink.calls, (std::vector<std::string>{"fs.read", "fs.list"}));
  EXPECT_EQ(r->usage.input_tokens, 12);
  EXPECT_EQ(value::parse(server.requests()[0].body)["stream"], true);
}

TEST(OpenAiProvider, MapsStatusesToErrors) {
  int status = 429;
  test_http_server server([&](const received_request&) {
    return canned_reply{.status = status, .chunks = {R"({"error":{"message":"slow down","type":"rate_limit"}})"}};
  });
  auto p = openai_chat_provider({.base_url = server.url("/v1")});
  auto r = p->complete(tool_request(), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::rate_limited);
  EXPECT_NE(r.err().message.find("slow down"), std::string::npos);
  status = 503;
  EXPECT_EQ(p->complete(tool_request(), nullptr).err().code, model_errc::provider_error);
  status = 401;
  collect sink;
  EXPECT_EQ(p->complete(tool_request(), &sink).err().code, model_errc::rejected) << "streamed requests too";
}

TEST(OpenAiProvider, AStreamThatStopsEarlyIsAnError) {
  test_http_server server([](const received_request&) {
    return canned_reply{.chunks = {sse({R"({"choices":[{"index":0,"delta":{"content":"Hal"}}]})"}), ""}};
  });
  auto p = openai_chat_provider({.base_url = server.url("/v1")});
  collect sink;
  auto r = p->complete(tool_request(), &sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::provider_error);
}

TEST(OpenAiProvider, AGarbledAnswerIsABadResponse) {
  test_http_server server([](const received_request&) { return canned_reply{.chunks = {"<html>oops</html>"}}; });
  auto p = openai_chat_provider({.base_url = server.url("/v1")});
  EXPECT_EQ(p->complete(tool_request(), nullptr).err().code, model_errc::bad_response);
}

TEST(GatewayOverHttp, RetriesA429ThenFallsBackAfterATimeout) {
  int calls = 0;
  test_http_server flaky([&](const received_request&) {
    ++calls;
    if (calls == 1) return canned_reply{.status = 429, .chunks = {R"({"error":{"message":"busy"}})"}};
    return canned_reply{.hang = true};
  });
  test_http_server steady([](const received_request&) {
    return canned_reply{
        .chunks = {
            R"({"choices":[{"index":0,"message":{"role":"assistant","content":"steady"},"finish_reason":"stop"}]})"}};
  });
  gateway g([](std::chrono::milliseconds) {});
  g.add({.alias = "flaky",
         .backend = openai_chat_provider({.base_url = flaky.url("/v1"), .timeout = std::chrono::milliseconds(300)}),
         .max_attempts = 2});
  g.add({.alias = "steady", .backend = openai_chat_provider({.base_url = steady.url("/v1")})});
  const std::vector<std::string> allowed{"flaky", "steady"};
  call_report report;
  auto r = g.complete({.model = "flaky", .messages = {{.role = "user", .content = "hi"}}}, allowed, nullptr, &report);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->message.content, "steady");
  EXPECT_EQ(r->model, "steady");
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(report.attempts.size(), 3u);
  EXPECT_NE(report.attempts[0].find("429"), std::string::npos);
  EXPECT_NE(report.attempts[1].find("within"), std::string::npos) << report.attempts[1];
}

TEST(AnthropicProvider, SendsTheMessagesWireFormatAndReadsToolUse) {
  test_http_server server([](const received_request&) {
    return canned_reply{.chunks = {R"({"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[
      {"type":"text","text":"Writing."},{"type":"tool_use","id":"toolu_1","name":"fs.write","input":{"path":"b"}}],
      "stop_reason":"tool_use","usage":{"input_tokens":20,"output_tokens":6}})"}};
  });
  auto p = anthropic_provider({.base_url = server.url("/v1"), .api_key = "ak"});
  auto r = p->complete(tool_request(), nullptr);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->message.content, "Writing.");
  ASSERT_EQ(r->message.tool_calls.size(), 1u);
  EXPECT_EQ(r->message.tool_calls[0].id, "toolu_1");
  EXPECT_EQ(r->message.tool_calls[0].arguments["path"], "b");
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->usage.total(), 26);
  const auto seen = server.requests();
  EXPECT_EQ(seen[0].target, "/v1/messages");
  EXPECT_EQ(seen[0].header("x-api-key"), "ak");
  EXPECT_EQ(seen[0].header("anthropic-version"), "2023-06-01");
  const value body = value::parse(seen[0].body);
  EXPECT_EQ(body["system"], "be brief");
  EXPECT_EQ(body["max_tokens"], 64);
  EXPECT_EQ(body["tools"][0]["input_schema"]["type"], "object");
  EXPECT_EQ(body["messages"][1]["content"][0]["type"], "tool_use");
  EXPECT_EQ(body["messages"][2]["role"], "user");
  EXPECT_EQ(body["messages"][2]["content"][0]["type"], "tool_result");
  EXPECT_EQ(body["messages"][2]["content"][0]["tool_use_id"], "call_1");
}

TEST(AnthropicProvider, JoinsStreamedInputJsonDeltas) {
  test_http_server server([](const received_request&) {
    std::string body;
    auto ev = [&](const std::string& type, const std::string& data) {
      body += "event: " + type + "\ndata: " + data + "\n\n";
    };
    ev("message_start",
       R"({"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":15,"output_tokens":1}}})");
    ev("content_block_start", R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
    ev("ping", R"({"type":"ping"})");
    ev("content_block_delta",
       R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}})");
    ev("content_block_delta",
       R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"check."}})");
    ev("content_block_stop", R"({"type":"content_block_stop","index":0})");
    ev("content_block_start",
       R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_2","name":"fs.read","input":{}}})");
    ev("content_block_delta",
       R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"pa"}})");
    ev("content_block_delta",
       R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"th\":\"a\"}"}})");
    ev("content_block_stop", R"({"type":"content_block_stop","index":1})");
    ev("message_delta", R"({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":11}})");
    ev("message_stop", R"({"type":"message_stop"})");
    std::vector<std::string> pieces;
    for (std::size_t i = 0; i < body.size(); i += 29) pieces.push_back(body.substr(i, 29));
    return canned_reply{.headers = {{"Content-Type", "text/event-stream"}}, .chunks = pieces};
  });
  auto p = anthropic_provider({.base_url = server.url("/v1")});
  collect sink;
  auto r = p->complete(tool_request(), &sink);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->message.content, "Let me check.");
  EXPECT_EQ(sink.text_so_far, "Let me check.");
  ASSERT_EQ(r->message.tool_calls.size(), 1u);
  EXPECT_EQ(r->message.tool_calls[0].arguments["path"], "a");
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->usage.input_tokens, 15);
  EXPECT_EQ(r->usage.output_tokens, 11);
}

TEST(AnthropicProvider, AnOverloadedErrorMidStreamIsRetryable) {
  test_http_server server([](const received_request&) {
    return canned_reply{
        .chunks = {"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n",
                   "event: error\ndata: "
                   "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"}};
  });
  auto p = anthropic_provider({.base_url = server.url("/v1")});
  collect sink;
  auto r = p->complete(tool_request(), &sink);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(retryable(r.err())) << r.err().message;
  EXPECT_NE(r.err().message.find("Overloaded"), std::string::npos);
}

}  // namespace
}  // namespace choir::models
