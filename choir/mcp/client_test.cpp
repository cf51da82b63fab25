#include "choir/mcp/client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <future>

#include "choir/mcp/jsonrpc.hpp"
#include "choir/net/test_http_server.hpp"

namespace choir::mcp {
namespace {

using namespace std::chrono_literals;

// ---- a peer the test scripts: the server side runs as a function on its own thread ----

class fake_peer final : public transport {
 public:
  using script_fn = std::function<void(fake_peer&)>;
  explicit fake_peer(script_fn script) : script_(std::move(script)) {}
  ~fake_peer() override { close(); }

  result<void> start(message_handler on_message, close_handler on_close) override {
    on_message_ = std::move(on_message);
    on_close_ = std::move(on_close);
    thread_ = std::thread([this] { script_(*this); });
    return {};
  }
  result<void> send(const std::string& message) override {
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(mcp_errc::closed, "closed");
    inbox_.push_back(value::parse(message));
    changed_.notify_all();
    return {};
  }
  void close() override {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::string describe() const override { return "fake"; }

  // The server's side.
  value next(std::chrono::milliseconds wait = 5s) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, wait, [&] { return closed_ || !inbox_.empty(); });
    if (inbox_.empty()) return nullptr;
    value v = std::move(inbox_.front());
    inbox_.pop_front();
    return v;
  }
  void say(const value& message) { on_message_(dump_json(message)); }
  void say_raw(const std::string& text) { on_message_(text); }
  void hang_up(const std::string& why) { on_close_(why); }
  void answer(const value& request, value result) {
    say({{"jsonrpc", "2.0"}, {"id", request["id"]}, {"result", std::move(result)}});
  }
  /// Answers `initialize` with `version` and takes `notifications/initialized`.
  value handshake(const std::string& version = "2025-11-25", value capabilities = {{"tools", value::object()}}) {
    value init = next();
    if (init.is_null()) return init;
    answer(init, {{"protocolVersion", version},
                  {"capabilities", std::move(capabilities)},
                  {"serverInfo", {{"name", "fake"}, {"version", "1"}}}});
    if (version == "2025-11-25" || version == "2025-06-18" || version == "2025-03-26") next();  // initialized
    return init;
  }

 private:
  script_fn script_;
  message_handler on_message_;
  close_handler on_close_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<value> inbox_;
  bool closed_ = false;
};

class demo_tools final : public server_provider {
 public:
  std::vector<tool_descriptor> tools() override {
    std::vector<tool_descriptor> out;
    for (int i = 0; i < 3; ++i) out.push_back({.name = "t" + std::to_string(i), .description = "tool"});
    out.push_back({.name = "echo",
                   .description = "say it back",
                   .input_schema = {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}},
                   .output_schema = {
                       {"type", "object"}, {"properties", {{"said", {{"type", "string"}}}}}, {"required", {"said"}}}});
    return out;
  }
  result<tool_result> call_tool(const std::string& name, const value& arguments) override {
    if (name == "t0") return make_error(core_errc::invalid_argument, "refused by the kernel");
    if (!arguments.contains("text")) {
      return tool_result{.content = value::array({{{"type", "text"}, {"text", "text is required"}}}), .is_error = true};
    }
    return tool_result{.content = value::array({{{"type", "text"}, {"text", arguments["text"]}}}),
                       .structured = {{"said", arguments["text"]}}};
  }
};

TEST(McpClient, TalksToOurOwnServerThroughEveryPage) {
  demo_tools tools;
  server s(tools, {.name = "choir-test"}, /*page_size=*/2);
  auto c = client::connect(in_process_transport(s));  // our own server engine as the peer
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto& mcp = **c;
  EXPECT_EQ(mcp.protocol_version(), "2025-11-25");
  EXPECT_EQ(mcp.server_info()["name"], "choir-test");
  auto listed = mcp.list_tools();
  ASSERT_TRUE(listed.ok()) << listed.err().message;
  ASSERT_EQ(listed->size(), 4u);  // two pages of two
  EXPECT_EQ(listed->back().name, "echo");
  EXPECT_EQ(listed->back().output_schema["required"][0], "said");

  auto said = mcp.call_tool("echo", {{"text", "hi"}});
  ASSERT_TRUE(said.ok()) << said.err().message;
  EXPECT_FALSE(said->is_error);
  EXPECT_EQ(said->text(), "hi");
  EXPECT_EQ(said->structured["said"], "hi");

  auto wrong = mcp.call_tool("echo", value::object());
  ASSERT_TRUE(wrong.ok());
  EXPECT_TRUE(wrong->is_error);
  EXPECT_EQ(wrong->text(), "text is required");
  auto refused = mcp.call_tool("t0", value::object());
  ASSERT_TRUE(refused.ok());
  EXPECT_TRUE(refused->is_error);
  EXPECT_NE(refused->text().find("refused by the kernel"), std::string::npos);

  auto unknown = mcp.call_tool("nope", value::object());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.err().code, make_error_code(mcp_errc::rpc_error));
  EXPECT_TRUE(mcp.ping().ok());
}

TEST(McpClient, NegotiatesDownAndRefusesWhatItDoesNotSpeak) {
  auto older = client::connect(std::make_unique<fake_peer>([](fake_peer& p) {
    auto init = p.handshake("2025-03-26");
    EXPECT_EQ(init["params"]["protocolVersion"], "2025-11-25");
    EXPECT_EQ(init["params"]["clientInfo"]["name"], "choir");
    EXPECT_FALSE(init["params"]["capabilities"].contains("sampling"));
  }));
  ASSERT_TRUE(older.ok()) << older.err().message;
  EXPECT_EQ((*older)->protocol_version(), "2025-03-26");

  auto alien = client::connect(std::make_unique<fake_peer>([](fake_peer& p) { p.handshake("1999-01-01"); }));
  ASSERT_FALSE(alien.ok());
  EXPECT_EQ(alien.err().code, make_error_code(mcp_errc::unsupported_version));
  EXPECT_NE(alien.err().message.find("1999-01-01"), std::string::npos);
}

TEST(McpClient, MatchesAnswersByIdInAnyOrderWithNotificationsBetween) {
  std::atomic<int> changes{0};
  client_options options;
  options.on_tools_changed = [&] { ++changes; };
  auto c = client::connect(
      std::make_unique<fake_peer>([](fake_peer& p) {
        p.handshake();
        value first = p.next();
        value second = p.next();
        ASSERT_FALSE(first.is_null());
        ASSERT_FALSE(second.is_null());
        p.say({{"jsonrpc", "2.0"}, {"method", "notifications/tools/list_changed"}});
        p.say_raw("this is not JSON");  // ignored
        p.answer(second, {{"content", value::array({{{"type", "text"}, {"text", second["params"]["name"]}}})}});
        p.answer(first, {{"content", value::array({{{"type", "text"}, {"text", first["params"]["name"]}}})}});
      }),
      options);
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto a = std::async(std::launch::async, [&] { return (*c)->call_tool("alpha", value::object()); });
  std::this_thread::sleep_for(50ms);
  auto b = std::async(std::launch::async, [&] { return (*c)->call_tool("beta", value::object()); });
  auto ra = a.get();
  auto rb = b.get();
  ASSERT_TRUE(ra.ok()) << ra.err().message;
  ASSERT_TRUE(rb.ok()) << rb.err().message;
  EXPECT_EQ(ra->text(), "alpha");
  EXPECT_EQ(rb->text(), "beta");
  EXPECT_EQ(changes.load(), 1);
}

TEST(McpClient, ProgressReachesTheCallerAndKeepsALongCallAlive) {
  client_options options;
  options.request_timeout = 300ms;
  auto c = client::connect(std::make_unique<fake_peer>([](fake_peer& p) {
                             p.handshake();
                             value call = p.next();
                             ASSERT_FALSE(call.is_null());
                             const value token = call["params"]["_meta"]["progressToken"];
                             EXPECT_FALSE(token.is_null());
                             for (int i = 1; i <= 3; ++i) {
                               std::this_thread::sleep_for(200ms);  // 600 ms in all: past the timeout
                               p.say({{"jsonrpc", "2.0"},
                                      {"method", "notifications/progress"},
                                      {"params", {{"progressToken", token}, {"progress", i}, {"total", 3}}}});
                             }
                             p.answer(call, {{"content", value::array()}});
                           }),
                           options);
  ASSERT_TRUE(c.ok()) << c.err().message;
  std::vector<double> seen;
  call_options call;
  call.on_progress = [&](const progress_update& u) {
    seen.push_back(u.progress);
    EXPECT_EQ(u.total, 3.0);
  };
  auto done = (*c)->call_tool("slow", value::object(), call);
  ASSERT_TRUE(done.ok()) << done.err().message;
  EXPECT_EQ(seen, (std::vector<double>{1, 2, 3}));
}

TEST(McpClient, ATimedOutRequestIsCancelledAndItsLateAnswerDropped) {
  std::promise<value> cancelled;
  client_options options;
  options.request_timeout = 100ms;
  auto c = client::connect(std::make_unique<fake_peer>([&](fake_peer& p) {
                             p.handshake();
                             value call = p.next();
                             value cancel = p.next();
                             cancelled.set_value(cancel);
                             p.answer(call, {{"content", value::array()}});  // too late
                             value ping = p.next();
                             if (!ping.is_null()) p.answer(ping, value::object());
                           }),
                           options);
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto slow = (*c)->call_tool("slow", value::object());
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.err().code, make_error_code(mcp_errc::timed_out));
  const value cancel = cancelled.get_future().get();
  EXPECT_EQ(cancel["method"], "notifications/cancelled");
  EXPECT_TRUE(cancel["params"]["requestId"].is_number_integer());
  EXPECT_TRUE((*c)->ping().ok());
}

TEST(McpClient, AnswersTheServersRequestsForTheCallInFlight) {
  std::vector<std::string> tags_seen;
  client_options options;
  options.on_sampling = [&](const value& params, const std::vector<std::string>& tags) -> result<value> {
    tags_seen = tags;
    return value{
        {"role", "assistant"},
        {"content",
         {{"type", "text"}, {"text", "sampled: " + params["messages"][0]["content"]["text"].get<std::string>()}}},
        {"model", "scripted"},
        {"stopReason", "endTurn"}};
  };
  options.roots = {"file:///workspace"};
  value sampled, roots, elicited, pinged;
  auto c = client::connect(
      std::make_unique<fake_peer>([&](fake_peer& p) {
        value init = p.handshake();
        EXPECT_TRUE(init["params"]["capabilities"].contains("sampling"));
        EXPECT_TRUE(init["params"]["capabilities"].contains("roots"));
        value call = p.next();
        p.say({{"jsonrpc", "2.0"},
               {"id", "s1"},
               {"method", "sampling/createMessage"},
               {"params",
                {{"messages", value::array({{{"role", "user"}, {"content", {{"type", "text"}, {"text", "hi"}}}}})},
                 {"maxTokens", 10}}}});
        sampled = p.next();
        p.say({{"jsonrpc", "2.0"}, {"id", "r1"}, {"method", "roots/list"}});
        roots = p.next();
        p.say({{"jsonrpc", "2.0"}, {"id", "e1"}, {"method", "elicitation/create"}, {"params", value::object()}});
        elicited = p.next();
        p.say({{"jsonrpc", "2.0"}, {"id", 7}, {"method", "ping"}});
        pinged = p.next();
        p.answer(call, {{"content", value::array()}});
      }),
      options);
  ASSERT_TRUE(c.ok()) << c.err().message;
  call_options call;
  call.tag = "run-1";
  auto done = (*c)->call_tool("asks-back", value::object(), call);
  ASSERT_TRUE(done.ok()) << done.err().message;
  EXPECT_EQ(tags_seen, std::vector<std::string>{"run-1"});
  EXPECT_EQ(sampled["id"], "s1");
  EXPECT_EQ(sampled["result"]["content"]["text"], "sampled: hi");
  EXPECT_EQ(roots["result"]["roots"][0]["uri"], "file:///workspace");
  EXPECT_EQ(elicited["error"]["code"], rpc_code::method_not_found);
  EXPECT_EQ(pinged["id"], 7);
  EXPECT_TRUE(pinged["result"].is_object());
}

TEST(McpClient, AServerThatHangsUpFailsWhatIsPending) {
  auto c = client::connect(std::make_unique<fake_peer>([](fake_peer& p) {
    p.handshake();
    p.next();
    p.hang_up("the server exited; its last words: out of memory");
  }));
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto call = (*c)->call_tool("x", value::object());
  ASSERT_FALSE(call.ok());
  EXPECT_EQ(call.err().code, make_error_code(mcp_errc::closed));
  EXPECT_NE(call.err().message.find("out of memory"), std::string::npos);
  EXPECT_TRUE((*c)->closed());
  EXPECT_FALSE((*c)->ping().ok());
}

TEST(McpClient, RefusesAnswersThatBreakTheProtocol) {
  auto c = client::connect(std::make_unique<fake_peer>([](fake_peer& p) {
    p.handshake();
    value list = p.next();
    p.answer(list, {{"tools", "many"}});
    list = p.next();
    p.answer(list,
             {{"tools",
               value::array(
                   {{{"name", "weather"},
                     {"inputSchema", {{"type", "object"}}},
                     {"outputSchema",
                      {{"type", "object"}, {"properties", {{"t", {{"type", "number"}}}}}, {"required", {"t"}}}}}})}});
    value call = p.next();
    p.answer(call, {{"content", value::array()}, {"structuredContent", {{"t", "warm"}}}});
    call = p.next();
    p.say({{"jsonrpc", "2.0"}, {"id", call["id"]}, {"error", {{"code", -32602}, {"message", "Tool nope not found"}}}});
  }));
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto bad = (*c)->list_tools();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.err().code, make_error_code(mcp_errc::bad_response));
  ASSERT_TRUE((*c)->list_tools().ok());
  auto mismatch = (*c)->call_tool("weather", value::object());
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.err().message.find("/t"), std::string::npos) << mismatch.err().message;
  auto rpc = (*c)->call_tool("nope", value::object());
  ASSERT_FALSE(rpc.ok());
  EXPECT_NE(rpc.err().message.find("-32602: Tool nope not found"), std::string::npos) << rpc.err().message;
}

// ---- stdio: a real child process ----

const char* const init_answer =
    R"({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"sh","version":"1"}}})";

TEST(McpStdio, ASmallServerInAShellScriptAndItsLastWords) {
  const std::string script = std::string("read -r line; echo '") + init_answer +
                             "'; read -r line; read -r line; "
                             "echo '{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"x\"}]}}'; "
                             "echo 'disk on fire' >&2; exit 3";
  auto c = client::connect(stdio_transport({.argv = {"sh", "-c", script}}));
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ((*c)->protocol_version(), "2025-06-18");
  EXPECT_NE((*c)->describe().find("stdio: sh"), std::string::npos);
  auto tools = (*c)->list_tools();
  ASSERT_TRUE(tools.ok()) << tools.err().message;
  EXPECT_EQ(tools->front().name, "x");
  auto after = (*c)->ping();
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.err().code, make_error_code(mcp_errc::closed));
  EXPECT_NE(after.err().message.find("disk on fire"), std::string::npos) << after.err().message;
}

TEST(McpStdio, CloseStopsAServerThatIgnoresItsInputAndSigterm) {
  const std::string script =
      std::string("trap '' TERM; read -r line; echo '") + init_answer + "'; read -r line; while :; do sleep 1; done";
  auto c = client::connect(stdio_transport({.argv = {"sh", "-c", script}, .grace = 100ms}));
  ASSERT_TRUE(c.ok()) << c.err().message;
  const auto started = std::chrono::steady_clock::now();
  (*c)->close();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_TRUE((*c)->closed());
}

TEST(McpStdio, AProgramThatDoesNotExistIsAClearError) {
  auto c = client::connect(stdio_transport({.argv = {"no-such-mcp-server-here"}}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.err().code, make_error_code(mcp_errc::transport_failed));
  EXPECT_NE(c.err().message.find("no-such-mcp-server-here"), std::string::npos);
}

// ---- Streamable HTTP ----

TEST(McpHttp, KeepsTheSessionStreamsAnswersAndEndsWithDelete) {
  net::testing::test_http_server server([](const net::testing::received_request& r) {
    net::testing::canned_reply reply;
    if (r.method == "DELETE") return reply;
    if (r.method == "GET") {  // no server stream here
      reply.status = 405;
      return reply;
    }
    const value m = value::parse(r.body);
    if (!m.contains("id")) {
      reply.status = 202;
      return reply;
    }
    const std::string method = m["method"];
    if (method == "initialize") {
      reply.headers = {{"Content-Type", "text/event-stream"}, {"Mcp-Session-Id", "s-123"}};
      reply.chunks = {"event: message\nid: 1\ndata: ", dump_json(value{{"jsonrpc", "2.0"},
                                                                       {"id", m["id"]},
                                                                       {"result",
                                                                        {{"protocolVersion", "2025-11-25"},
                                                                         {"capabilities", value::object()},
                                                                         {"serverInfo", {{"name", "h"}}}}}}) +
                                                           "\n\n"};
    } else if (method == "tools/call") {
      // A notification first, then the answer, in one event stream.
      reply.headers = {{"Content-Type", "text/event-stream"}};
      reply.chunks = {
          ": priming\n\n",
          "data: " +
              dump_json(value{{"jsonrpc", "2.0"},
                              {"method", "notifications/progress"},
                              {"params", {{"progressToken", m["id"]}, {"progress", 1}}}}) +
              "\n\n",
          "data: " +
              dump_json(value{{"jsonrpc", "2.0"},
                              {"id", m["id"]},
                              {"result", {{"content", value::array({{{"type", "text"}, {"text", "ok"}}})}}}}) +
              "\n\n"};
    } else if (method == "ping") {
      reply.status = 404;  // the session is gone
    } else {
      reply.chunks = {dump_json(value{{"jsonrpc", "2.0"}, {"id", m["id"]}, {"result", {{"tools", value::array()}}}})};
    }
    return reply;
  });
  auto c = client::connect(http_transport({.url = server.url("/mcp"), .headers = {{"Authorization", "Bearer t"}}}));
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto tools = (*c)->list_tools();
  ASSERT_TRUE(tools.ok()) << tools.err().message;
  EXPECT_TRUE(tools->empty());
  int progress = 0;
  call_options call;
  call.on_progress = [&](const progress_update&) { ++progress; };
  auto done = (*c)->call_tool("x", value::object(), call);
  ASSERT_TRUE(done.ok()) << done.err().message;
  EXPECT_EQ(done->text(), "ok");
  EXPECT_EQ(progress, 1);
  auto gone = (*c)->ping();
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.err().code, make_error_code(mcp_errc::session_expired));
  (*c)->close();

  const auto seen = server.requests();
  ASSERT_GE(seen.size(), 6u);
  EXPECT_EQ(seen[0].header("mcp-session-id"), "");
  EXPECT_EQ(seen[0].header("accept"), "application/json, text/event-stream");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer t");
  for (std::size_t i = 1; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].header("mcp-session-id"), "s-123") << i;
    EXPECT_EQ(seen[i].header("mcp-protocol-version"), "2025-11-25") << i;
  }
  EXPECT_EQ(seen.back().method, "DELETE");
}

TEST(McpHttp, AnErrorStatusIsAClearError) {
  net::testing::test_http_server server([](const net::testing::received_request&) {
    net::testing::canned_reply reply;
    reply.status = 403;
    reply.chunks = {"Forbidden: Origin not allowed"};
    return reply;
  });
  auto c = client::connect(http_transport({.url = server.url("/mcp")}));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.err().message.find("HTTP 403 Forbidden"), std::string::npos) << c.err().message;
}

}  // namespace
}  // namespace choir::mcp
