#include "choir/models/providers.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <utility>

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

/// `body` in pieces of `size` bytes, split at awkward places as a network does.
std::vector<std::string> pieces_of(const std::string& body, std::size_t size) {
  std::vector<std::string> pieces;
  for (std::size_t i = 0; i < body.size(); i += size) pieces.push_back(body.substr(i, size));
  return pieces;
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
    return canned_reply{.headers = {{"Content-Type", "text/event-stream"}}, .chunks = pieces_of(body, 37)};
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
    return canned_reply{.headers = {{"Content-Type", "text/event-stream"}}, .chunks = pieces_of(body, 29)};
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

/// Typed server-sent events, as the Responses API sends them: `event: <type>` and its JSON data
/// (written on one line, as a `data:` field must be).
std::string typed_sse(const std::vector<std::pair<std::string, std::string>>& events) {
  std::string out;
  for (const auto& [type, data] : events) out += "event: " + type + "\ndata: " + dump_json(value::parse(data)) + "\n\n";
  return out;
}

TEST(OpenAiResponsesProvider, SendsTheConversationAsInputItemsAndToolsFlat) {
  test_http_server server([](const received_request&) {
    return canned_reply{.chunks = {R"({"id":"resp_1","object":"response","status":"completed","output":[
      {"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"ok","annotations":[]}]}]})"}};
  });
  auto p = openai_responses_provider({.base_url = server.url("/v1/"), .api_key = "sk-test"});
  chat_request request = tool_request();
  request.temperature = 0.25;
  request.json_output = true;
  auto r = p->complete(request, nullptr);
  ASSERT_TRUE(r.ok()) << r.err().message;

  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/v1/responses");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer sk-test");
  const value body = value::parse(seen[0].body);
  EXPECT_EQ(body["model"], "gpt-test");
  EXPECT_EQ(body["store"], false);
  EXPECT_EQ(body["max_output_tokens"], 64);
  EXPECT_EQ(body["temperature"], 0.25);
  EXPECT_EQ(body["text"]["format"]["type"], "json_object");
  EXPECT_FALSE(body.contains("stream"));
  EXPECT_FALSE(body.contains("messages"));
  EXPECT_FALSE(body.contains("max_tokens"));
  EXPECT_EQ(body["input"], value::parse(R"([
    {"type":"message","role":"system","content":"be brief"},
    {"type":"message","role":"user","content":"read a"},
    {"type":"function_call","call_id":"call_1","name":"fs.read","arguments":"{\"path\":\"a\"}"},
    {"type":"function_call_output","call_id":"call_1","output":"contents"}])"));
  EXPECT_EQ(body["tools"], value::parse(R"([{"type":"function","name":"fs.read","description":"read",
    "parameters":{"type":"object"},"strict":false}])"));
}

TEST(OpenAiResponsesProvider, ReadsTextAndAFunctionCallFromAWholeAnswer) {
  test_http_server server([](const received_request&) {
    return canned_reply{.chunks = {R"({"id":"resp_2","object":"response","status":"completed","error":null,
      "incomplete_details":null,"output":[
      {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"thinking aloud"}]},
      {"type":"message","id":"msg_1","role":"assistant","content":[
        {"type":"output_text","text":"Writing ","annotations":[]},{"type":"output_text","text":"b.","annotations":[]}]},
      {"type":"function_call","id":"fc_1","call_id":"call_9","name":"fs.write","arguments":"{\"path\":\"b\",\"content\":\"x\"}","status":"completed"}],
      "usage":{"input_tokens":31,"output_tokens":7,"total_tokens":38}})"}};
  });
  auto p = openai_responses_provider({.base_url = server.url("/v1")});
  auto r = p->complete(tool_request(), nullptr);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->message.role, "assistant");
  EXPECT_EQ(r->message.content, "Writing b.");
  ASSERT_EQ(r->message.tool_calls.size(), 1u);
  EXPECT_EQ(r->message.tool_calls[0].id, "call_9");
  EXPECT_EQ(r->message.tool_calls[0].name, "fs.write");
  EXPECT_EQ(r->message.tool_calls[0].arguments, value::parse(R"({"path":"b","content":"x"})"));
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->usage.input_tokens, 31);
  EXPECT_EQ(r->usage.output_tokens, 7);
}

TEST(OpenAiResponsesProvider, FeedsAFunctionCallAndItsOutputBack) {
  int calls = 0;
  test_http_server server([&](const received_request&) {
    if (++calls == 1) {
      return canned_reply{.chunks = {R"({"status":"completed","output":[{"type":"function_call","id":"fc_7",
        "call_id":"call_7","name":"fs.list","arguments":"{\"path\":\".\"}"}]})"}};
    }
    return canned_reply{.chunks = {R"({"status":"completed","output":[{"type":"message","role":"assistant",
      "content":[{"type":"output_text","text":"Two files."}]}]})"}};
  });
  auto p = openai_responses_provider({.base_url = server.url("/v1")});
  chat_request request{.model = "gpt-test", .messages = {{.role = "user", .content = "what is here?"}}};
  auto first = p->complete(request, nullptr);
  ASSERT_TRUE(first.ok()) << first.err().message;
  ASSERT_EQ(first->message.tool_calls.size(), 1u);
  request.messages.push_back(first->message);
  request.messages.push_back(
      {.role = "tool", .content = "a.txt b.txt", .tool_call_id = first->message.tool_calls[0].id, .name = "fs.list"});
  auto second = p->complete(request, nullptr);
  ASSERT_TRUE(second.ok()) << second.err().message;
  EXPECT_EQ(second->message.content, "Two files.");
  EXPECT_EQ(second->finish_reason, "stop");

  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 2u);
  const value input = value::parse(seen[1].body)["input"];
  ASSERT_EQ(input.size(), 3u);
  EXPECT_EQ(input[1], value::parse(R"({"type":"function_call","call_id":"call_7","name":"fs.list",
    "arguments":"{\"path\":\".\"}"})"));
  EXPECT_EQ(input[2], value::parse(R"({"type":"function_call_output","call_id":"call_7","output":"a.txt b.txt"})"));
}

TEST(OpenAiResponsesProvider, JoinsStreamedTextAndArgumentDeltas) {
  test_http_server server([](const received_request&) {
    const std::string body = typed_sse({
        {"response.created",
         R"({"type":"response.created","sequence_number":0,"response":{"id":"resp_3","status":"in_progress","output":[]}})"},
        {"response.output_item.added",
         R"({"type":"response.output_item.added","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}})"},
        {"response.output_item.added",
         R"({"type":"response.output_item.added","output_index":1,"item":{"type":"message","id":"msg_1","role":"assistant","content":[]}})"},
        {"response.output_text.delta",
         R"({"type":"response.output_text.delta","item_id":"msg_1","output_index":1,"content_index":0,"delta":"Let me "})"},
        {"response.output_text.delta",
         R"({"type":"response.output_text.delta","item_id":"msg_1","output_index":1,"content_index":0,"delta":"look."})"},
        {"response.output_text.done",
         R"({"type":"response.output_text.done","item_id":"msg_1","output_index":1,"content_index":0,"text":"Let me look."})"},
        {"response.output_item.added",
         R"({"type":"response.output_item.added","output_index":2,"item":{"type":"function_call","id":"fc_a","call_id":"call_a","name":"fs.read","arguments":""}})"},
        {"response.function_call_arguments.delta",
         R"({"type":"response.function_call_arguments.delta","item_id":"fc_a","output_index":2,"delta":"{\"pa"})"},
        {"response.function_call_arguments.delta",
         R"({"type":"response.function_call_arguments.delta","item_id":"fc_a","output_index":2,"delta":"th\":"})"},
        {"response.function_call_arguments.delta",
         R"({"type":"response.function_call_arguments.delta","item_id":"fc_a","output_index":2,"delta":"\"a\"}"})"},
        {"response.function_call_arguments.done",
         R"({"type":"response.function_call_arguments.done","item_id":"fc_a","output_index":2,"arguments":"{\"path\":\"a\"}"})"},
        {"response.output_item.added",
         R"({"type":"response.output_item.added","output_index":3,"item":{"type":"function_call","id":"fc_b","call_id":"call_b","name":"fs.list","arguments":""}})"},
        // Deltas named by item only, and a `.done` without the full text: only the joined deltas
        // can give these arguments.
        {"response.function_call_arguments.delta",
         R"({"type":"response.function_call_arguments.delta","item_id":"fc_b","delta":"{\"path\""})"},
        {"response.function_call_arguments.delta",
         R"({"type":"response.function_call_arguments.delta","item_id":"fc_b","delta":":\".\"}"})"},
        {"response.function_call_arguments.done",
         R"({"type":"response.function_call_arguments.done","item_id":"fc_b","output_index":3})"},
        {"response.completed",
         R"({"type":"response.completed","response":{"id":"resp_3","status":"completed","error":null,"output":[],
           "usage":{"input_tokens":12,"output_tokens":9,"total_tokens":21}}})"},
    });
    return canned_reply{.headers = {{"Content-Type", "text/event-stream"}}, .chunks = pieces_of(body, 37)};
  });
  auto p = openai_responses_provider({.base_url = server.url("/v1")});
  collect sink;
  auto r = p->complete(tool_request(), &sink);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->message.content, "Let me look.");
  EXPECT_EQ(sink.text_so_far, "Let me look.");
  EXPECT_EQ(sink.pieces, 2);
  ASSERT_EQ(r->message.tool_calls.size(), 2u);
  EXPECT_EQ(r->message.tool_calls[0].id, "call_a");
  EXPECT_EQ(r->message.tool_calls[0].name, "fs.read");
  EXPECT_EQ(r->message.tool_calls[0].arguments, value::parse(R"({"path":"a"})"));
  EXPECT_EQ(r->message.tool_calls[1].id, "call_b");
  EXPECT_EQ(r->message.tool_calls[1].arguments, value::parse(R"({"path":"."})"));
  EXPECT_EQ(sink.calls, (std::vector<std::string>{"fs.read", "fs.list"}));
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->usage.input_tokens, 12);
  EXPECT_EQ(r->usage.output_tokens, 9);
  EXPECT_EQ(value::parse(server.requests()[0].body)["stream"], true);
}

TEST(OpenAiResponsesProvider, MapsStatusesToErrors) {
  int status = 429;
  test_http_server server([&](const received_request&) {
    return canned_reply{
        .status = status,
        .chunks = {R"({"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}})"}};
  });
  auto p = openai_responses_provider({.base_url = server.url("/v1")});
  auto r = p->complete(tool_request(), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::rate_limited);
  EXPECT_TRUE(retryable(r.err()));
  EXPECT_NE(r.err().message.find("Rate limit reached"), std::string::npos) << r.err().message;
  status = 400;
  r = p->complete(tool_request(), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::rejected);
  EXPECT_FALSE(retryable(r.err()));
  collect sink;
  EXPECT_EQ(p->complete(tool_request(), &sink).err().code, model_errc::rejected) << "streamed requests too";
}

TEST(OpenAiResponsesProvider, AStreamThatStopsBeforeResponseCompletedIsAnError) {
  test_http_server server([](const received_request&) {
    return canned_reply{
        .chunks = {
            typed_sse({{"response.created", R"({"type":"response.created","response":{"status":"in_progress"}})"},
                       {"response.output_text.delta",
                        R"({"type":"response.output_text.delta","output_index":0,"delta":"Hal"})"}}),
            ""}};
  });
  auto p = openai_responses_provider({.base_url = server.url("/v1")});
  collect sink;
  auto r = p->complete(tool_request(), &sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::provider_error);
  EXPECT_EQ(sink.text_so_far, "Hal");
}

TEST(OpenAiResponsesProvider, AResponseThatFailsMidStreamIsRetryable) {
  test_http_server server([](const received_request&) {
    return canned_reply{
        .chunks = {typed_sse({
            {"response.created", R"({"type":"response.created","response":{"status":"in_progress"}})"},
            {"response.output_text.delta", R"({"type":"response.output_text.delta","output_index":0,"delta":"Hal"})"},
            {"response.failed",
             R"({"type":"response.failed","response":{"status":"failed","error":{"code":"server_error",
           "message":"The server had an error while processing your request."},"output":[]}})"},
        })}};
  });
  auto p = openai_responses_provider({.base_url = server.url("/v1")});
  collect sink;
  auto r = p->complete(tool_request(), &sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::provider_error);
  EXPECT_TRUE(retryable(r.err()));
  EXPECT_NE(r.err().message.find("server had an error"), std::string::npos) << r.err().message;
}

TEST(OpenAiResponsesProvider, AnErrorEventMidStreamIsTheErrorItsCodeMeans) {
  test_http_server server([](const received_request&) {
    return canned_reply{
        .chunks = {typed_sse({
            {"response.created", R"({"type":"response.created","response":{"status":"in_progress"}})"},
            {"error", R"({"type":"error","code":"rate_limit_exceeded","message":"Slow down","param":null})"},
            {"response.completed", R"({"type":"response.completed","response":{"status":"completed","output":[]}})"},
        })}};
  });
  auto p = openai_responses_provider({.base_url = server.url("/v1")});
  collect sink;
  auto r = p->complete(tool_request(), &sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::rate_limited);
  EXPECT_NE(r.err().message.find("Slow down"), std::string::npos) << r.err().message;
}

TEST(OpenAiResponsesProvider, AFailedWholeAnswerIsTheErrorItsCodeMeans) {
  auto r = parse_openai_responses_answer(
      R"({"status":"failed","error":{"code":"invalid_prompt","message":"The prompt was refused."},"output":[]})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::rejected);
  EXPECT_NE(r.err().message.find("The prompt was refused."), std::string::npos) << r.err().message;
  r = parse_openai_responses_answer(R"({"status":"failed","error":{"code":"server_error","message":"oops"}})");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(retryable(r.err())) << r.err().message;
}

TEST(OpenAiResponsesProvider, AGarbledAnswerIsABadResponse) {
  test_http_server server([](const received_request&) { return canned_reply{.chunks = {"<html>oops</html>"}}; });
  auto p = openai_responses_provider({.base_url = server.url("/v1")});
  EXPECT_EQ(p->complete(tool_request(), nullptr).err().code, model_errc::bad_response);
  EXPECT_EQ(parse_openai_responses_answer(R"({"id":"resp_1","output":"nope"})").err().code, model_errc::bad_response);
  EXPECT_EQ(parse_openai_responses_answer("[1,2]").err().code, model_errc::bad_response);
}

TEST(OpenAiResponsesProvider, AnAnswerCutAtMaxOutputTokensFinishesWithLength) {
  auto r = parse_openai_responses_answer(R"({"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},
    "output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Once upon"}]}],
    "usage":{"input_tokens":5,"output_tokens":16}})");
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->finish_reason, "length");
  EXPECT_EQ(r->message.content, "Once upon");
  EXPECT_EQ(r->usage.output_tokens, 16);
}

TEST(OpenAiResponsesProvider, AStreamCutAtMaxOutputTokensFinishesWithLength) {
  test_http_server server([](const received_request&) {
    return canned_reply{
        .chunks = {typed_sse({
            {"response.output_text.delta", R"({"type":"response.output_text.delta","output_index":0,"delta":"Once "})"},
            {"response.output_text.delta", R"({"type":"response.output_text.delta","output_index":0,"delta":"upon"})"},
            {"response.incomplete",
             R"({"type":"response.incomplete","response":{"status":"incomplete",
           "incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":5,"output_tokens":16}}})"},
        })}};
  });
  auto p = openai_responses_provider({.base_url = server.url("/v1")});
  collect sink;
  auto r = p->complete(tool_request(), &sink);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->finish_reason, "length");
  EXPECT_EQ(r->message.content, "Once upon");
  EXPECT_EQ(r->usage.output_tokens, 16);
}

TEST(GatewayOverHttp, AnOpenAiResponsesRouteFromTheModelsFileCallsTheResponsesEndpoint) {
  test_http_server server([](const received_request&) {
    return canned_reply{.chunks = {R"({"status":"completed","output":[{"type":"message","role":"assistant",
      "content":[{"type":"output_text","text":"hello"}]}],"usage":{"input_tokens":3,"output_tokens":1}})"}};
  });
  ASSERT_EQ(::setenv("CHOIR_RESPONSES_TEST_KEY", "sk-responses", 1), 0);
  value config{{"kind", "Models"},
               {"models",
                {{"cloud",
                  {{"provider", "openai-responses"},
                   {"base_url", server.url("/v1")},
                   {"model", "gpt-5"},
                   {"api_key_env", "CHOIR_RESPONSES_TEST_KEY"}}}}}};
  auto g = gateway::from_config(config, ".");
  ASSERT_TRUE(g.ok()) << g.err().message;
  auto r = (*g)->complete({.model = "cloud", .messages = {{.role = "user", .content = "hi"}}});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->message.content, "hello");
  EXPECT_FALSE(r->usage.estimated);
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/v1/responses");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer sk-responses");
  EXPECT_EQ(value::parse(seen[0].body)["model"], "gpt-5");
}

}  // namespace
}  // namespace choir::models
