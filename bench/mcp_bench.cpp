// MCP tool-call round trips. ChoirOS's client calls `echo` on the SDK's reference server
// (@modelcontextprotocol/server-everything, Node.js, over stdio; `npm ci --prefix tests/interop`
// installs it), one call at a time and with 4 callers sharing the connection (responses matched
// by id). The floor: the same client against ChoirOS's own server engine in process (no pipes, no
// Node), which is the protocol engines' cost alone.
//   build/release/bench/mcp_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <mutex>

#include "choir/mcp/client.hpp"
#include "choir/mcp/server.hpp"

namespace {

namespace fs = std::filesystem;

const fs::path everything =
    fs::path(CHOIR_SOURCE_DIR) / "tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js";

/// One connection to server-everything for the whole run (starting Node takes ~0.3 s).
choir::mcp::client* everything_client(std::string& why) {
  static std::mutex mutex;
  static std::unique_ptr<choir::mcp::client> client;
  static std::string failure;
  std::lock_guard lock(mutex);
  if (!client && failure.empty()) {
    if (::access("/usr/bin/node", X_OK) != 0 || !fs::exists(everything)) {
      failure = "Node.js or server-everything is missing (npm ci --prefix tests/interop)";
    } else {
      auto c = choir::mcp::client::connect(
          choir::mcp::stdio_transport({.argv = {"/usr/bin/node", everything.string(), "stdio"}}));
      if (c.ok()) {
        client = std::move(c).value();
      } else {
        failure = c.err().message;
      }
    }
  }
  why = failure;
  return client.get();
}

void BM_McpStdioEchoRoundTrip(benchmark::State& state) {
  std::string why;
  auto* c = everything_client(why);
  if (c == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  const choir::value args{{"message", "hello from choir"}};
  for (auto _ : state) {
    auto r = c->call_tool("echo", args);
    if (!r.ok() || r->is_error) {
      state.SkipWithError(r.ok() ? r->text().c_str() : r.err().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_McpStdioEchoRoundTrip)->UseRealTime();
BENCHMARK(BM_McpStdioEchoRoundTrip)->Threads(4)->UseRealTime();

class echo_tools final : public choir::mcp::server_provider {
 public:
  std::vector<choir::mcp::tool_descriptor> tools() override { return {{.name = "echo", .description = "echo"}}; }
  choir::result<choir::mcp::tool_result> call_tool(const std::string&, const choir::value& arguments) override {
    return choir::mcp::tool_result{
        .content =
            choir::value::array({{{"type", "text"}, {"text", "Echo: " + arguments.value("message", std::string())}}})};
  }
};

void BM_McpInProcessEchoRoundTrip(benchmark::State& state) {
  echo_tools tools;
  choir::mcp::server s(tools, {});
  auto c = choir::mcp::client::connect(choir::mcp::in_process_transport(s));
  if (!c.ok()) {
    state.SkipWithError(c.err().message.c_str());
    return;
  }
  const choir::value args{{"message", "hello from choir"}};
  for (auto _ : state) {
    auto r = (*c)->call_tool("echo", args);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_McpInProcessEchoRoundTrip)->UseRealTime();

}  // namespace
