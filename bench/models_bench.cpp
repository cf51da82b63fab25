// The model gateway's cost per call. Against a local HTTP endpoint that answers a canned OpenAI
// Chat Completions answer: a raw HTTP exchange (the floor; on a kept connection, as the providers
// ask, and on a new one) and the same exchange through the gateway (request building, retries'
// bookkeeping, answer parsing, accounting); the gateway's overhead is the difference to the kept
// raw exchange, in the same run. Also the scripted model, the offline default.
//   build/release/bench/models_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "choir/models/gateway.hpp"
#include "choir/models/providers.hpp"
#include "choir/models/scripted.hpp"
#include "choir/net/test_http_server.hpp"

namespace {

using choir::net::testing::canned_reply;
using choir::net::testing::received_request;

constexpr const char* answer =
    R"({"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",
"content":"The owls are tawny.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"fs.read","arguments":"{\"path\":\"notes.txt\"}"}}]},
"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":120,"completion_tokens":24,"total_tokens":144}})";

choir::net::testing::test_http_server& server() {
  static choir::net::testing::test_http_server s(
      [](const received_request&) { return canned_reply{.chunks = {answer}}; }, /*keep_alive=*/true);
  return s;
}

choir::models::chat_request request() {
  choir::models::chat_request r{.model = "bench"};
  r.messages = {{.role = "system", .content = "You keep notes."},
                {.role = "user", .content = "What do my notes say about owls? Read them first."}};
  r.tools = {{.name = "fs.read", .description = "Read a file", .input_schema = {{"type", "object"}}}};
  return r;
}

/// A raw exchange; `state.range(0)`: on a kept connection (as the providers ask), or a new one each time.
void BM_RawHttpExchange(benchmark::State& state) {
  const std::string body = choir::dump_json(choir::value{{"model", "bench"}, {"messages", choir::value::array()}});
  choir::net::http_request http{.method = "POST", .url = server().url("/v1/chat/completions"), .body = body};
  http.keep_alive = state.range(0) != 0;
  for (auto _ : state) {
    auto r = choir::net::http_call(http);
    if (!r.ok()) state.SkipWithError(r.err().message.c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawHttpExchange)->ArgName("kept")->Arg(1)->Arg(0)->UseRealTime();

void BM_GatewayOpenAiCall(benchmark::State& state) {
  choir::models::gateway g;
  g.add({.alias = "bench",
         .backend = choir::models::openai_chat_provider({.base_url = server().url("/v1")}),
         .usd_per_million_input = 0.4,
         .usd_per_million_output = 1.6});
  const auto req = request();
  for (auto _ : state) {
    auto r = g.complete(req);
    if (!r.ok()) state.SkipWithError(r.err().message.c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GatewayOpenAiCall)->UseRealTime();

void BM_GatewayScriptedCall(benchmark::State& state) {
  choir::models::gateway g;
  g.add({.alias = "bench",
         .backend = choir::models::scripted_from_yaml(
                        "kind: ScriptedModel\nrules:\n  - when: {user_contains: owls, turn: 0}\n"
                        "    tool_calls: [{name: fs.read, arguments: {path: notes.txt}}]\n  - reply: '{{user}}'\n",
                        "bench.yaml")
                        .value()});
  const auto req = request();
  for (auto _ : state) {
    auto r = g.complete(req);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GatewayScriptedCall);

}  // namespace
