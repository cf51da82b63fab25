// The API end to end on 127.0.0.1: a real server, store, kernel and scripted model, reached by
// HTTP (choir/net's client) and by a WebSocket client (Beast). docs/api.md is what is checked.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "choir/api/server.hpp"
#include "choir/api/service.hpp"
#include "choir/kernel/audit.hpp"
#include "choir/kernel/policy.hpp"
#include "choir/models/gateway.hpp"
#include "choir/models/scripted.hpp"
#include "choir/net/http_client.hpp"
#include "choir/runtime/actions/services.hpp"
#include "choir/runtime/actor.hpp"
#include "choir/runtime/agent_catalog.hpp"
#include "choir/runtime/mcp_session.hpp"
#include "choir/runtime/test_kernel.hpp"
#include "choir/store/group_commit.hpp"
#include "choir/store/synchronized.hpp"
#include "choir/tools/builtin.hpp"
#include "choir/tools/tool.hpp"

namespace choir::api {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

constexpr const char* ada_token = "choir_test_ada_0123456789";
constexpr const char* carol_token = "choir_test_carol_0123456789";

std::string policy_text() {
  return std::string(R"(apiVersion: agentos/v0.2
kind: Policy
tenants:
  acme:
    roles:
      member: {grants: [{name: fs.write, allow: ["notes/**"]}, {name: consent.answer, allow: [fs.write]}, fs.read, fs.list,
                        {name: agent.register, allow: ["echo*"]}]}
    users:
      ada: {roles: [member]}
    tokens:
      t-ada: {user: ada, sha256: )") +
         kernel::sha256_hex(ada_token) + R"(}
  globex:
    roles:
      member: {grants: []}
    users:
      carol: {roles: [member]}
    tokens:
      t-carol: {user: carol, sha256: )" +
         kernel::sha256_hex(carol_token) + "}\n";
}

constexpr const char* chat_agent = R"(apiVersion: agentos/v0.2
kind: AgentContract
name: chat
class: {latency: SRT}
capabilities: []
modelPolicy: {allow: [local/chat]}
---
apiVersion: agentos/v0.2
kind: Graph
name: chat
description: Chats.
entrypoint: listen
state: {messages: []}
actions:
  listen: {type: human, prompt: Say something, inputs: [message], writes: [message]}
  think: {type: llm, model: local/chat, prompt: "{{message}}", history: messages, into: reply, stream: true}
transitions:
  - {from: listen, to: think}
  - {from: think, to: listen}
)";

constexpr const char* counter_agent = R"(apiVersion: agentos/v0.2
kind: AgentContract
name: counter
class: {latency: DT}
capabilities: []
---
apiVersion: agentos/v0.2
kind: Graph
name: counter
entrypoint: count
state: {n: 0}
actions:
  count: {type: set, update: {n: n + 1}}
)";

constexpr const char* scribe_agent = R"(apiVersion: agentos/v0.2
kind: AgentContract
name: scribe
class: {latency: SRT}
capabilities: [{name: fs.write, allow: ["notes/**"]}]
security: {consent_for: [fs.write]}
modelPolicy: {allow: [local/chat]}
---
apiVersion: agentos/v0.2
kind: Graph
name: scribe
entrypoint: listen
state: {messages: []}
actions:
  listen: {type: human, prompt: Say something, inputs: [message], writes: [message]}
  think: {type: llm, model: local/chat, prompt: "{{message}}", history: messages, tools: [fs.write], into: reply}
transitions:
  - {from: listen, to: think}
  - {from: think, to: listen}
)";

/// Not a conversation: its `review` waits for an `approved` input.
constexpr const char* approver_agent = R"(apiVersion: agentos/v0.2
kind: AgentContract
name: approver
class: {latency: SRT}
capabilities: []
---
apiVersion: agentos/v0.2
kind: Graph
name: approver
entrypoint: draft
actions:
  draft: {type: set, update: {text: "'hello'"}}
  review: {type: human, prompt: Publish it, inputs: [approved], writes: [approved]}
  publish: {type: set, update: {published: approved}}
transitions:
  - {from: draft, to: review}
  - {from: review, to: publish}
)";

constexpr const char* script = R"(kind: ScriptedModel
rules:
  - when: {user_matches: "^save ", last_role: user, tools_include: fs.write}
    tool_calls: [{name: fs.write, arguments: {path: notes/chat.txt, content: "{{user}}"}}]
  - when: {last_role: tool, tool: fs.write}
    reply: "tool said {{tool_result}}"
  - reply: "you said {{user}} and that is all"
)";

/// A WebSocket client with a read timeout.
class ws_client {
 public:
  ws_client() : ws_(ioc_) {}
  /// Connects and upgrades; false if the server refused.
  bool connect(std::uint16_t port, const std::string& origin = "") {
    beast::error_code ec;
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    ws_.next_layer().connect(ep, ec);
    if (ec) return false;
    timeval tv{.tv_sec = 10, .tv_usec = 0};
    ::setsockopt(ws_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ws_.set_option(websocket::stream_base::decorator([origin](websocket::request_type& req) {
      if (!origin.empty()) req.set(beast::http::field::origin, origin);
    }));
    ws_.handshake("127.0.0.1:" + std::to_string(port), "/api/v1/stream", ec);
    return !ec;
  }
  void send(const value& v) {
    beast::error_code ec;
    ws_.write(asio::buffer(dump_json(v)), ec);
  }
  void send_raw(const std::string& text) {
    beast::error_code ec;
    ws_.write(asio::buffer(text), ec);
  }
  /// The next frame, or nothing if the connection closed or timed out.
  std::optional<value> read() {
    beast::flat_buffer buffer;
    beast::error_code ec;
    ws_.read(buffer, ec);
    if (ec) return std::nullopt;
    return value::parse(beast::buffers_to_string(buffer.data()));
  }
  /// Frames until one of type `type` (and, for events, `kind`) arrives; all of them, in order.
  std::vector<value> read_until(const std::string& type, const std::string& kind = "") {
    std::vector<value> out;
    while (auto f = read()) {
      out.push_back(*f);
      if ((*f)["type"] == type && (kind.empty() || f->value("kind", "") == kind)) return out;
    }
    ADD_FAILURE() << "the stream ended before a " << type << " " << kind << " frame";
    return out;
  }

 private:
  asio::io_context ioc_;
  websocket::stream<asio::ip::tcp::socket> ws_;
};

class Api : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = runtime::test_support::test_kernel::make(
        std::string("api-") + ::testing::UnitTest::GetInstance()->current_test_info()->name(), policy_text(),
        {"local/chat"});
    ASSERT_TRUE(k.ok()) << k.err().message;
    dir_ = k->dir;
    store_ = k->store;
    gate_ = k->gate;
    const auto audit_options = k->audit;
    auto models = std::make_shared<models::gateway>();
    models->add({.alias = "local/chat", .backend = models::scripted_from_yaml(script, "script.yaml").value()});
    services_ = std::make_shared<runtime::action_services>();
    services_->store = store_;
    services_->gate = gate_;
    services_->models = models;
    auto tools = std::make_shared<tools::tool_registry>();
    ASSERT_TRUE(tools::add_builtin_tools(*tools).ok());
    services_->tools = tools;
    services_->agents = std::make_shared<runtime::agent_catalog>();
    services_->workspaces = dir_ / "workspaces";
    system_ = std::make_unique<runtime::actor_system>(runtime::system_options{.threads = 2});
    services_->actors = system_.get();
    std::map<std::string, std::shared_ptr<const runtime::agent_definition>, std::less<>> agents;
    for (const char* text : {chat_agent, counter_agent, scribe_agent, approver_agent}) {
      auto agent = runtime::load_agent(text, "agent.yaml", runtime::runtime_registry(services_));
      ASSERT_TRUE(agent.ok()) << agent.err().message;
      agents[(*agent)->name] = *agent;
    }
    hub_ = std::make_shared<event_hub>(store_);
    auto hub = hub_;
    dispatcher_ = std::make_shared<runtime::step_dispatcher>(runtime::dispatch_options{.workers = 2});
    committer_ = std::make_shared<store::group_committer>(*store_);  // as choir serve does
    directory_ = std::make_shared<runtime::conversation_directory>(
        *system_,
        runtime::directory_options{.store = store_,
                                   .gate = gate_,
                                   .observer = [hub](const runtime::conversation_event& e) { hub->publish(e); },
                                   .dispatcher = dispatcher_,
                                   .committer = committer_});
    auto session_agent = runtime::mcp_session_agent(runtime::runtime_registry(services_));
    ASSERT_TRUE(session_agent.ok()) << session_agent.err().message;
    web_ = dir_ / "web";
    fs::create_directories(web_ / "assets");
    std::ofstream(web_ / "index.html") << "<!doctype html><title>desk</title>";
    std::ofstream(web_ / "assets" / "app.js") << "console.log(1)";
    service_ = std::make_shared<service>(service_options{.store = store_,
                                                         .gate = gate_,
                                                         .hub = hub_,
                                                         .directory = directory_,
                                                         .agents = agents,
                                                         .load_agent = loader(),
                                                         .web_dir = web_,
                                                         .audit = audit_options,
                                                         .policy_document = "policy",
                                                         .services = services_,
                                                         .mcp_agent = *session_agent,
                                                         .dispatcher = dispatcher_,
                                                         .committer = committer_});
    server_ = std::make_unique<server>(service_, server_options{.port = 0, .body_limit = 1 << 20});
    auto port = server_->listen();
    ASSERT_TRUE(port.ok()) << port.err().message;
    port_ = *port;
    service_->allow_host("127.0.0.1:" + std::to_string(port_));
    service_->allow_host("localhost:" + std::to_string(port_));
    server_->run();
  }
  void TearDown() override {
    if (server_) server_->stop();
    system_.reset();
    committer_.reset();                                              // after the conversations, before the store
    if (services_ && services_->agents) services_->agents->clear();  // registered agents hold the services
    server_.reset();
    service_.reset();
    directory_.reset();
    services_.reset();
    gate_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  /// What `choir serve` loads agent files with.
  std::function<result<std::shared_ptr<const runtime::agent_definition>>(std::string_view, std::string_view)> loader() {
    auto services = services_;
    return [services](std::string_view text, std::string_view label) {
      return runtime::load_agent(text, label, runtime::runtime_registry(services));
    };
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  net::http_response call(const std::string& method, const std::string& path, const std::string& token = ada_token,
                          const std::string& body = "", net::header_list headers = {}) {
    net::http_request req{.method = method, .url = url(path)};
    if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
    if (!body.empty() || method == "POST") req.headers.emplace_back("Content-Type", "application/json");
    for (auto& h : headers) req.headers.push_back(std::move(h));
    req.body = body;
    req.timeout = std::chrono::seconds(20);
    auto res = net::http_call(req);
    EXPECT_TRUE(res.ok()) << (res.ok() ? "" : res.err().message);
    return res.ok() ? *res : net::http_response{};
  }
  /// The JSON of an answer; of an event stream (an MCP tool call's), its last event's data.
  static value json_of(const net::http_response& r) {
    std::string_view body = r.body;
    if (r.header("Content-Type").starts_with("text/event-stream")) {
      const auto at = body.rfind("data: ");
      body = at == std::string_view::npos ? std::string_view() : body.substr(at + 6);
      body = body.substr(0, body.find('\n'));
    }
    return value::parse(body, nullptr, false);
  }

  /// Opens a conversation with `agent` for ada; its run id.
  /// Opens a conversation and waits until its first turn (up to where it listens) has ended:
  /// the answer comes at once, the turn runs on the conversation's actor.
  std::string open_chat(const std::string& agent = "chat") {
    auto res = call("POST", "/api/v1/conversations", ada_token, dump_json(value{{"agent", agent}}));
    EXPECT_EQ(res.status, 201) << res.body;
    const auto run_id = json_of(res).value("run_id", "");
    if (!run_id.empty()) settled(run_id);
    return run_id;
  }
  /// Waits (up to 10 s) until the run is no longer `running`, and returns its record.
  value settled(const std::string& run_id) {
    value run;
    for (int i = 0; i < 1'000; ++i) {
      run = json_of(call("GET", "/api/v1/runs/" + run_id));
      if (run.value("status", "") != "running") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return run;
  }

  /// A stream client of ada's, subscribed to `run_id` from its start (the replay read).
  std::unique_ptr<ws_client> watch(const std::string& run_id) {
    auto ws = std::make_unique<ws_client>();
    EXPECT_TRUE(ws->connect(port_));
    ws->send({{"type", "auth"}, {"token", ada_token}});
    ws->send({{"type", "subscribe"}, {"run_id", run_id}});
    ws->read_until("subscribed");
    return ws;
  }
  /// Sends ada's message `text` and returns the stream's frames up to the turn's end.
  std::vector<value> turn(ws_client& ws, const std::string& run_id, const std::string& text) {
    auto posted =
        call("POST", "/api/v1/conversations/" + run_id + "/messages", ada_token, dump_json(value{{"text", text}}));
    EXPECT_EQ(posted.status, 202) << posted.body;
    return ws.read_until("event", "turn_ended");
  }

  fs::path dir_;
  fs::path web_;
  std::shared_ptr<store::event_store> store_;
  std::shared_ptr<runtime::gate> gate_;
  std::shared_ptr<runtime::action_services> services_;
  std::unique_ptr<runtime::actor_system> system_;
  std::shared_ptr<event_hub> hub_;
  std::shared_ptr<runtime::conversation_directory> directory_;
  std::shared_ptr<runtime::step_dispatcher> dispatcher_;
  std::shared_ptr<store::group_committer> committer_;
  std::shared_ptr<service> service_;
  std::unique_ptr<server> server_;
  std::uint16_t port_ = 0;
};

TEST_F(Api, HealthNeedsNoTokenAndEveryApiRouteDoes) {
  EXPECT_EQ(call("GET", "/healthz", "").status, 200);
  auto missing = call("GET", "/api/v1/agents", "");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(json_of(missing)["error"]["code"], "unauthorized");
  EXPECT_EQ(call("GET", "/api/v1/agents", "choir_not_a_token").status, 401);
  // A token in the URL is not a token.
  EXPECT_EQ(call("GET", std::string("/api/v1/agents?token=") + ada_token, "").status, 401);
  auto basic = call("GET", "/api/v1/agents", "", "", {{"Authorization", std::string("Basic ") + ada_token}});
  EXPECT_EQ(basic.status, 401);
  EXPECT_EQ(call("GET", "/api/v1/agents").status, 200);
  auto me = json_of(call("GET", "/api/v1/me", carol_token));
  EXPECT_EQ(me, (value{{"tenant", "globex"}, {"user", "carol"}}));
}

TEST_F(Api, ForeignHostAndOriginAreRefused) {
  // DNS rebinding: a page on evil.example resolves its name to 127.0.0.1; its Host gives it away.
  EXPECT_EQ(call("GET", "/api/v1/agents", ada_token, "", {{"Host", "evil.example:" + std::to_string(port_)}}).status,
            421);
  EXPECT_EQ(call("GET", "/healthz", "", "", {{"Host", "evil.example"}}).status, 421);
  EXPECT_EQ(call("GET", "/api/v1/agents", ada_token, "", {{"Origin", "http://evil.example"}}).status, 403);
  EXPECT_EQ(call("GET", "/api/v1/agents", ada_token, "", {{"Origin", "null"}}).status, 403);
  EXPECT_EQ(
      call("GET", "/api/v1/agents", ada_token, "",
           {{"Origin", "http://localhost:" + std::to_string(port_)}, {"Host", "localhost:" + std::to_string(port_)}})
          .status,
      200);
  auto res = call("GET", "/api/v1/agents");
  EXPECT_EQ(res.header("Access-Control-Allow-Origin"), "");
  // The WebSocket upgrade is checked the same way (cross-site WebSocket hijacking).
  ws_client evil;
  EXPECT_FALSE(evil.connect(port_, "http://evil.example"));
}

TEST_F(Api, AgentsAreListedWithTheirContracts) {
  auto list = json_of(call("GET", "/api/v1/agents"));
  ASSERT_EQ(list["agents"].size(), 4u);
  EXPECT_EQ(list["agents"][0]["name"], "approver");
  EXPECT_EQ(list["agents"][1]["name"], "chat");
  EXPECT_EQ(list["agents"][1]["conversable"], true);
  EXPECT_EQ(list["agents"][1]["models"], value::array({"local/chat"}));
  EXPECT_EQ(list["agents"][2]["name"], "counter");
  EXPECT_EQ(list["agents"][2]["conversable"], false);
  EXPECT_EQ(list["agents"][2]["latency"], "DT");
  auto one = json_of(call("GET", "/api/v1/agents/chat"));
  EXPECT_EQ(one["listening_action"], "listen");
  EXPECT_EQ(one["contract"]["name"], "chat");
  EXPECT_NE(one["mermaid"].get<std::string>().find("listen"), std::string::npos);
  EXPECT_EQ(call("GET", "/api/v1/agents/nobody").status, 404);
  EXPECT_EQ(call("POST", "/api/v1/agents", ada_token, "{}").status, 400);
  EXPECT_EQ(call("DELETE", "/api/v1/agents").status, 405);
}

TEST_F(Api, AnAgentFileIsRegisteredAuditedAndServedAgainAfterARestart) {
  std::string echo = chat_agent;
  for (std::size_t at; (at = echo.find("name: chat")) != std::string::npos;) echo.replace(at, 10, "name: echo");
  const net::header_list yaml{{"Content-Type", "application/yaml"}};
  // Bad files, bad bodies, and who may not.
  auto bad = call("POST", "/api/v1/agents", ada_token, "{\"source\": \"kind: Graph\\nname: [\"}");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json_of(bad)["error"]["code"], "invalid_agent");
  std::string no_contract = echo.substr(echo.find("---\n") + 4);
  EXPECT_EQ(call("POST", "/api/v1/agents", ada_token, dump_json(value{{"source", no_contract}})).status, 400);
  EXPECT_EQ(call("POST", "/api/v1/agents", ada_token, "{\"source\": 7}").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/agents", ada_token, "[1]").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/agents", ada_token, echo, {{"Content-Type", "text/plain"}}).status, 415);
  EXPECT_EQ(call("POST", "/api/v1/agents", ada_token, std::string(2 << 20, 'a'), yaml).status, 413);
  EXPECT_EQ(call("POST", "/api/v1/agents", "", echo, yaml).status, 401);
  EXPECT_EQ(call("POST", "/api/v1/agents", carol_token, echo, yaml).status, 403);  // no grant
  std::string other = echo;
  for (std::size_t at; (at = other.find("name: echo")) != std::string::npos;) other.replace(at, 10, "name: other");
  EXPECT_EQ(call("POST", "/api/v1/agents", ada_token, other, yaml).status, 403);  // not a name granted
  EXPECT_EQ(call("GET", "/api/v1/agents/echo").status, 404);

  auto made = call("POST", "/api/v1/agents", ada_token, echo, yaml);
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(json_of(made)["name"], "echo");
  EXPECT_EQ(json_of(made)["registered"], true);
  EXPECT_EQ(json_of(call("GET", "/api/v1/agents/echo"))["contract"]["name"], "echo");
  auto again = call("POST", "/api/v1/agents", ada_token, dump_json(value{{"source", echo}}));
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(json_of(again)["registered"], false);
  // It holds conversations like any other.
  const auto run_id = open_chat("echo");
  auto ws = watch(run_id);
  turn(*ws, run_id, "hi");
  EXPECT_EQ(json_of(call("GET", "/api/v1/conversations/" + run_id))["messages"].size(), 2u);
  // The gate decided each attempt, and the audit log says so.
  auto entries = json_of(call("GET", "/api/v1/audit?limit=1000"))["entries"];
  int allowed = 0;
  int denied = 0;
  for (const auto& e : entries) {
    if (e.value("kind", "") != "agent.register") continue;
    (e.value("decision", "") == "allow" ? allowed : denied) += 1;
  }
  EXPECT_EQ(allowed, 2);
  EXPECT_EQ(denied, 1);  // ada's `other` (carol's entry is in her tenant)

  // A server started again over the same store serves it too.
  service restarted(service_options{.store = store_, .gate = gate_, .load_agent = loader(), .services = services_});
  ASSERT_NE(restarted.find_agent("echo"), nullptr);
  EXPECT_EQ(restarted.find_agent("echo")->version, json_of(made)["version"]);
  EXPECT_TRUE(restarted.stored_agent_errors().empty());
}

TEST_F(Api, ARunThatIsNotAConversationIsResumedGivenInputAndCancelled) {
  // Runs started elsewhere (`choir run`) and left: one per case.
  auto approver = service_->find_agent("approver");
  ASSERT_NE(approver, nullptr);
  auto started = [&] {
    runtime::run_hosting hosting;
    hosting.gate = gate_;
    auto app = runtime::start_run(*store_, *approver, {.who = {"acme", "ada"}}, hosting);
    EXPECT_TRUE(app.ok()) << app.err().message;
    const std::string id = (*app)->identity().app_id;
    app->reset();
    EXPECT_TRUE(runtime::settle_run(*store_, id, "halted", gate_.get()).ok());
    return id;
  };
  const auto run_id = started();
  auto ws = watch(run_id);
  // Messages are for conversations; input is for a waiting run; other tenants see nothing.
  EXPECT_EQ(call("POST", "/api/v1/conversations/" + run_id + "/messages", ada_token, "{\"text\": \"hi\"}").status, 409);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/input", ada_token, "{\"inputs\": {\"approved\": true}}").status,
            409);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/resume", carol_token, "{}").status, 404);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/resume", ada_token, "{\"inputs\": 3}").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/runs/" + run_id + "/resume").status, 405);

  auto resumed = call("POST", "/api/v1/runs/" + run_id + "/resume", ada_token, "");
  ASSERT_EQ(resumed.status, 202) << resumed.body;
  auto frames = ws->read_until("event", "turn_ended");
  EXPECT_EQ(frames.back()["data"]["ended"], "waiting");
  auto waiting = settled(run_id);
  EXPECT_EQ(waiting["status"], "waiting");
  EXPECT_EQ(waiting["next_action"], "review");

  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/input", ada_token, "{}").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/input", ada_token, "{\"inputs\": {}}").status, 400);
  EXPECT_EQ(
      call("POST", "/api/v1/runs/" + run_id + "/input", ada_token, "{\"inputs\": {\"approved\": 1, \"x\": 2}}").status,
      400);
  auto given = call("POST", "/api/v1/runs/" + run_id + "/input", ada_token, "{\"inputs\": {\"approved\": true}}");
  ASSERT_EQ(given.status, 202) << given.body;
  frames = ws->read_until("event", "turn_ended");
  EXPECT_EQ(frames.back()["data"]["ended"], "completed");
  EXPECT_EQ(settled(run_id)["status"], "completed");
  EXPECT_EQ(json_of(call("GET", "/api/v1/runs/" + run_id + "/state"))["state"]["published"], true);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/resume", ada_token, "").status, 409);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/cancel", ada_token, "").status, 409);

  // Cancelled while it waits: recorded, told on the stream, and never continued.
  const auto other = started();
  auto ws2 = watch(other);
  ASSERT_EQ(call("POST", "/api/v1/runs/" + other + "/resume", ada_token, "").status, 202);
  ws2->read_until("event", "turn_ended");
  auto cancelled = call("POST", "/api/v1/runs/" + other + "/cancel", ada_token, "");
  ASSERT_EQ(cancelled.status, 202) << cancelled.body;
  auto told = ws2->read_until("event", "status");
  EXPECT_EQ(told.back()["data"]["status"], "cancelled");
  EXPECT_EQ(json_of(call("GET", "/api/v1/runs/" + other))["status"], "cancelled");
  EXPECT_EQ(call("POST", "/api/v1/runs/" + other + "/input", ada_token, "{\"inputs\": {\"approved\": true}}").status,
            409);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + other + "/resume", ada_token, "").status, 409);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + other + "/cancel", ada_token, "").status, 202);  // again: nothing changes
  // A fork of it is a run of its own.
  auto fork = call("POST", "/api/v1/runs/" + other + "/fork", ada_token, "{}");
  ASSERT_EQ(fork.status, 201) << fork.body;
  const auto fork_id = json_of(fork).value("run_id", "");
  auto ws3 = watch(fork_id);
  ASSERT_EQ(call("POST", "/api/v1/runs/" + fork_id + "/resume", ada_token, "").status, 202);
  ws3->read_until("event", "turn_ended");
  ASSERT_EQ(call("POST", "/api/v1/runs/" + fork_id + "/input", ada_token, "{\"inputs\": {\"approved\": false}}").status,
            202);
  ws3->read_until("event", "turn_ended");
  EXPECT_EQ(settled(fork_id)["status"], "completed");
}

TEST_F(Api, ARunOfAnyAgentIsStartedAndRunsOnTheServer) {
  EXPECT_EQ(call("POST", "/api/v1/runs", ada_token, "{}").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/runs", ada_token, "{\"agent\": \"nobody\"}").status, 404);
  EXPECT_EQ(call("POST", "/api/v1/runs", ada_token, "{\"agent\": \"counter\", \"inputs\": 3}").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/runs", ada_token, "{\"agent\": \"counter\", \"inputs\": {\"x\": 1}}").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/runs", "", "{\"agent\": \"counter\"}").status, 401);
  EXPECT_EQ(call("PUT", "/api/v1/runs", ada_token, "{}").status, 405);
  auto started = call("POST", "/api/v1/runs", ada_token, "{\"agent\": \"counter\"}");
  ASSERT_EQ(started.status, 201) << started.body;
  const auto id = json_of(started).value("run_id", "");
  EXPECT_EQ(json_of(started)["agent"], "counter");
  EXPECT_EQ(settled(id)["status"], "completed");
  EXPECT_EQ(json_of(call("GET", "/api/v1/runs/" + id + "/state"))["state"]["n"], 1);
  // One that waits for a person: it runs until its human action, then takes its input.
  auto waits = call("POST", "/api/v1/runs", ada_token, "{\"agent\": \"approver\"}");
  ASSERT_EQ(waits.status, 201) << waits.body;
  const auto approver = json_of(waits).value("run_id", "");
  auto run = settled(approver);
  EXPECT_EQ(run["status"], "waiting");
  EXPECT_EQ(run["next_action"], "review");
  EXPECT_EQ(run["tenant"], "acme");
  ASSERT_EQ(call("POST", "/api/v1/runs/" + approver + "/input", ada_token, "{\"inputs\": {\"approved\": true}}").status,
            202);
  for (int i = 0; i < 500 && settled(approver)["status"] != "completed"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(settled(approver)["status"], "completed");
  EXPECT_EQ(call("GET", "/api/v1/runs/" + approver, carol_token).status, 404);
}

TEST_F(Api, AForkOfAConversationShowsItsParentsMessagesUpToTheFork) {
  const auto run_id = open_chat();
  auto ws = watch(run_id);
  turn(*ws, run_id, "one");
  turn(*ws, run_id, "two");  // steps 0–3
  auto forked = call("POST", "/api/v1/runs/" + run_id + "/fork", ada_token, "{\"at\": 1}");
  ASSERT_EQ(forked.status, 201) << forked.body;
  const auto fork_id = json_of(forked).value("run_id", "");
  auto chat = json_of(call("GET", "/api/v1/conversations/" + fork_id));
  ASSERT_EQ(chat["messages"].size(), 2u) << chat.dump();
  EXPECT_EQ(chat["messages"][0]["text"], "one");
  auto ws2 = watch(fork_id);
  turn(*ws2, fork_id, "three");
  chat = json_of(call("GET", "/api/v1/conversations/" + fork_id));
  ASSERT_EQ(chat["messages"].size(), 4u) << chat.dump();
  EXPECT_EQ(chat["messages"][1]["text"], "you said one and that is all");
  EXPECT_EQ(chat["messages"][2]["text"], "three");
  // A fork of the fork: the line of both parents.
  auto again = call("POST", "/api/v1/runs/" + fork_id + "/fork", ada_token, "{}");
  ASSERT_EQ(again.status, 201);
  chat = json_of(call("GET", "/api/v1/conversations/" + json_of(again).value("run_id", "")));
  EXPECT_EQ(chat["messages"].size(), 4u);
  // The parent is untouched.
  EXPECT_EQ(json_of(call("GET", "/api/v1/conversations/" + run_id))["messages"].size(), 4u);
  EXPECT_EQ(json_of(call("GET", "/api/v1/conversations/" + run_id))["messages"][2]["text"], "two");
}

TEST_F(Api, AConversationStreamsItsStepsAndTokens) {
  const auto run_id = open_chat();
  ASSERT_FALSE(run_id.empty());
  ws_client ws;
  ASSERT_TRUE(ws.connect(port_));
  ws.send({{"type", "auth"}, {"token", ada_token}});
  auto ready = ws.read();
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["type"], "ready");
  EXPECT_EQ((*ready)["tenant"], "acme");
  ws.send({{"type", "subscribe"}, {"run_id", run_id}, {"cursor", -1}});
  auto subscribed = ws.read_until("subscribed");
  EXPECT_EQ(subscribed.back()["run"]["status"], "waiting");

  auto posted =
      call("POST", "/api/v1/conversations/" + run_id + "/messages", ada_token, dump_json(value{{"text", "owls"}}));
  ASSERT_EQ(posted.status, 202) << posted.body;
  auto frames = ws.read_until("event", "turn_ended");
  std::vector<std::int64_t> steps;
  std::string streamed;
  for (const auto& f : frames) {
    if (f.value("kind", "") == "step") steps.push_back(f["data"]["sequence_id"].get<std::int64_t>());
    if (f.value("kind", "") == "token") streamed += f["data"]["text"].get<std::string>();
  }
  ASSERT_EQ(steps.size(), 2u);  // listen (the message), think (the reply)
  EXPECT_EQ(steps[1], steps[0] + 1);
  EXPECT_EQ(streamed, "you said owls and that is all");
  EXPECT_EQ(frames.back()["data"]["ended"], "waiting");
  EXPECT_FALSE(frames.back()["data"].contains("state"));

  auto chat = json_of(call("GET", "/api/v1/conversations/" + run_id));
  ASSERT_EQ(chat["messages"].size(), 2u);
  EXPECT_EQ(chat["messages"][0]["role"], "user");
  EXPECT_EQ(chat["messages"][0]["text"], "owls");
  EXPECT_EQ(chat["messages"][1]["role"], "agent");
  EXPECT_EQ(chat["messages"][1]["text"], "you said owls and that is all");
  auto listed = json_of(call("GET", "/api/v1/conversations"));
  ASSERT_EQ(listed["conversations"].size(), 1u);
  EXPECT_EQ(listed["conversations"][0]["run_id"], run_id);
}

TEST_F(Api, AReconnectingClientGetsExactlyTheStepsItMissed) {
  const auto run_id = open_chat();
  for (const char* text : {"one", "two", "three"}) {
    ws_client ws;
    ASSERT_TRUE(ws.connect(port_));
    ws.send({{"type", "auth"}, {"token", ada_token}});
    ws.send({{"type", "subscribe"}, {"run_id", run_id}});
    ws.read_until("subscribed");
    ASSERT_EQ(call("POST", "/api/v1/conversations/" + run_id + "/messages", ada_token, dump_json(value{{"text", text}}))
                  .status,
              202);
    ws.read_until("event", "turn_ended");
  }
  // Six steps committed (0–5). A client that saw up to step 2 reconnects.
  ws_client ws;
  ASSERT_TRUE(ws.connect(port_));
  ws.send({{"type", "auth"}, {"token", ada_token}});
  ws.send({{"type", "subscribe"}, {"run_id", run_id}, {"cursor", 2}});
  auto frames = ws.read_until("subscribed");
  std::vector<std::int64_t> seen;
  for (const auto& f : frames) {
    if (f.value("kind", "") == "step") seen.push_back(f["cursor"].get<std::int64_t>());
  }
  EXPECT_EQ(seen, (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_EQ(frames.back()["cursor"], 5);
  // And then live, with nothing repeated.
  ASSERT_EQ(call("POST", "/api/v1/conversations/" + run_id + "/messages", ada_token, dump_json(value{{"text", "four"}}))
                .status,
            202);
  auto live = ws.read_until("event", "turn_ended");
  std::vector<std::int64_t> more;
  for (const auto& f : live) {
    if (f.value("kind", "") == "step") more.push_back(f["cursor"].get<std::int64_t>());
  }
  EXPECT_EQ(more, (std::vector<std::int64_t>{6, 7}));
}

TEST_F(Api, AnotherTenantsRunsDoNotExistForIt) {
  const auto run_id = open_chat();
  EXPECT_EQ(call("GET", "/api/v1/runs/" + run_id, carol_token).status, 404);
  EXPECT_EQ(call("GET", "/api/v1/runs/" + run_id + "/steps", carol_token).status, 404);
  EXPECT_EQ(call("GET", "/api/v1/conversations/" + run_id, carol_token).status, 404);
  EXPECT_EQ(call("POST", "/api/v1/conversations/" + run_id + "/messages", carol_token, dump_json(value{{"text", "hi"}}))
                .status,
            404);
  EXPECT_EQ(json_of(call("GET", "/api/v1/runs", carol_token))["runs"].size(), 0u);
  EXPECT_EQ(json_of(call("GET", "/api/v1/conversations", carol_token))["conversations"].size(), 0u);
  EXPECT_EQ(call("GET", "/api/v1/runs/" + run_id).status, 200);
  ws_client ws;
  ASSERT_TRUE(ws.connect(port_));
  ws.send({{"type", "auth"}, {"token", carol_token}});
  ws.read_until("ready");
  ws.send({{"type", "subscribe"}, {"run_id", run_id}});
  auto refused = ws.read();
  ASSERT_TRUE(refused);
  EXPECT_EQ((*refused)["type"], "error");
}

TEST_F(Api, BadBodiesAreRefusedClearly) {
  auto post = [&](const std::string& body, net::header_list headers = {}) {
    return call("POST", "/api/v1/conversations", ada_token, body, std::move(headers));
  };
  auto malformed = post("{\"agent\": ");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_NE(json_of(malformed)["error"]["message"].get<std::string>().find("not valid JSON"), std::string::npos);
  EXPECT_EQ(post("[1, 2]").status, 400);
  EXPECT_EQ(post("{\"agent\": 5}").status, 400);
  EXPECT_EQ(post("{}").status, 400);
  EXPECT_EQ(post("{\"agent\": \"nobody\"}").status, 404);
  EXPECT_EQ(post("{\"agent\": \"counter\"}").status, 409);  // it cannot hold a conversation
  EXPECT_EQ(post("{\"agent\": \"../../etc\"}").status, 404);
  const auto big = "{\"agent\": \"" + std::string(2 << 20, 'a') + "\"}";
  EXPECT_EQ(post(big).status, 413);

  const auto run_id = open_chat();
  const auto messages = "/api/v1/conversations/" + run_id + "/messages";
  EXPECT_EQ(call("POST", messages, ada_token, "{\"text\": 7}").status, 400);
  EXPECT_EQ(call("POST", messages, ada_token, "{\"text\": \"\"}").status, 400);
  EXPECT_EQ(call("POST", messages, ada_token, "not json").status, 400);
  EXPECT_EQ(call("GET", messages).status, 405);
  EXPECT_EQ(call("POST", "/api/v1/conversations/no-such-run/messages", ada_token, "{\"text\": \"x\"}").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/runs/%2e%2e").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/runs?limit=0").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/runs?limit=abc").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/runs/" + run_id + "/steps?from=-1").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/nothing").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/stream").status, 426);
}

TEST_F(Api, OversizedHeadersAndGarbageAreRefused) {
  auto huge = call("GET", "/api/v1/agents", ada_token, "", {{"X-Filler", std::string(20'000, 'x')}});
  EXPECT_EQ(huge.status, 431);
  // Not HTTP at all: a 400, then the connection closes.
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  s.connect({asio::ip::make_address("127.0.0.1"), port_});
  asio::write(s, asio::buffer(std::string("\x16\x03\x01 hello\r\n\r\n")));
  std::string reply(256, '\0');
  beast::error_code ec;
  const auto n = s.read_some(asio::buffer(reply), ec);
  EXPECT_EQ(reply.substr(0, std::min<std::size_t>(n, 12)), "HTTP/1.1 400");
}

TEST_F(Api, RunsArePagedAndStepsListed) {
  const auto run_id = open_chat();
  auto ws = watch(run_id);
  turn(*ws, run_id, "a");
  auto page = json_of(call("GET", "/api/v1/runs/" + run_id + "/steps?limit=1"));
  ASSERT_EQ(page["steps"].size(), 1u);
  EXPECT_EQ(page["steps"][0]["action"], "listen");
  EXPECT_EQ(page["next"], 1);
  auto rest = json_of(call("GET", "/api/v1/runs/" + run_id + "/steps?from=1&limit=10"));
  ASSERT_EQ(rest["steps"].size(), 1u);
  EXPECT_EQ(rest["steps"][0]["action"], "think");
  EXPECT_TRUE(rest["next"].is_null());
  auto runs = json_of(call("GET", "/api/v1/runs?limit=5"));
  ASSERT_EQ(runs["runs"].size(), 1u);
  EXPECT_EQ(runs["runs"][0]["tenant"], "acme");
  EXPECT_TRUE(runs["next_before"].is_null());

  // Pages of the tenant's runs, newest first: `next_before` goes on where a page ended.
  std::vector<std::string> started;
  for (int i = 0; i < 5; ++i) {
    auto made = call("POST", "/api/v1/runs", ada_token, "{\"agent\": \"counter\"}");
    ASSERT_EQ(made.status, 201);
    started.push_back(json_of(made).value("run_id", ""));
  }
  // Another tenant's runs are never in the pages, nor usable as a cursor.
  auto theirs = call("POST", "/api/v1/runs", carol_token, "{\"agent\": \"counter\"}");
  std::vector<std::string> paged;
  std::string before;
  for (int n = 0; n < 10; ++n) {
    auto got = json_of(call("GET", "/api/v1/runs?limit=2" + (before.empty() ? "" : "&before=" + before)));
    for (const auto& r : got["runs"]) paged.push_back(r.value("run_id", ""));
    if (got["next_before"].is_null()) break;
    before = got["next_before"].get<std::string>();
  }
  std::vector<std::string> expected(started.rbegin(), started.rend());
  expected.push_back(run_id);
  EXPECT_EQ(paged, expected);
  EXPECT_EQ(call("GET", "/api/v1/runs?before=nothing-here").status, 400);
  if (theirs.status == 201) {
    EXPECT_EQ(call("GET", "/api/v1/runs?before=" + json_of(theirs).value("run_id", "")).status, 400);
  }
  auto counters = json_of(call("GET", "/api/v1/runs?agent=counter&limit=3"));
  EXPECT_EQ(counters["runs"].size(), 3u);
  EXPECT_EQ(counters["next_before"], started[2]);
}

TEST_F(Api, TheStreamNeedsAuthFirstAndValidFrames) {
  {
    ws_client ws;
    ASSERT_TRUE(ws.connect(port_));
    ws.send({{"type", "subscribe"}, {"run_id", "x"}});  // not authenticated: closed
    EXPECT_FALSE(ws.read());
  }
  {
    ws_client ws;
    ASSERT_TRUE(ws.connect(port_));
    ws.send({{"type", "auth"}, {"token", "choir_wrong"}});
    auto f = ws.read();
    ASSERT_TRUE(f);
    EXPECT_EQ((*f)["type"], "error");
    EXPECT_FALSE(ws.read());  // then closed
  }
  {
    ws_client ws;
    ASSERT_TRUE(ws.connect(port_));
    ws.send({{"type", "auth"}, {"token", ada_token}});
    ws.read_until("ready");
    ws.send_raw("{not json");
    EXPECT_EQ((*ws.read())["type"], "error");
    ws.send({{"type", "subscribe"}});
    EXPECT_EQ((*ws.read())["type"], "error");
    ws.send({{"type", "subscribe"}, {"run_id", "r"}, {"cursor", "soon"}});
    EXPECT_EQ((*ws.read())["type"], "error");
    ws.send({{"type", "dance"}});
    EXPECT_EQ((*ws.read())["type"], "error");
    ws.send_raw(std::string(70'000, ' '));  // over the frame limit: closed
    EXPECT_FALSE(ws.read());
  }
}

TEST_F(Api, TheDesktopsFilesAreServedAndNothingElse) {
  auto index = call("GET", "/", "");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.body, "<!doctype html><title>desk</title>");
  EXPECT_NE(index.header("Content-Security-Policy").find("default-src 'self'"), std::string::npos);
  auto js = call("GET", "/assets/app.js", "");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.header("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(call("GET", "/assets/../index.html", "").status, 404);
  EXPECT_EQ(call("GET", "/../choir.db", "").status, 404);
  EXPECT_EQ(call("GET", "/assets/%2e%2e/index.html", "").status, 404);
  EXPECT_EQ(call("GET", "/.hidden", "").status, 404);
  EXPECT_EQ(call("POST", "/", "", "{}").status, 405);
}

TEST_F(Api, AConsentIsAnsweredAndTheConversationGoesOn) {
  const auto run_id = open_chat("scribe");
  auto ws = watch(run_id);
  auto first = turn(*ws, run_id, "save milk");
  EXPECT_EQ(first.back()["data"]["ended"], "waiting_consent");

  auto pending = json_of(call("GET", "/api/v1/consents"));
  ASSERT_EQ(pending["consents"].size(), 1u);
  const auto& request = pending["consents"][0];
  EXPECT_EQ(request["capability"], "fs.write");
  EXPECT_EQ(request["run_id"], run_id);
  const auto id = request["id"].get<std::string>();
  // Another tenant neither sees it nor answers it.
  EXPECT_EQ(json_of(call("GET", "/api/v1/consents", carol_token))["consents"].size(), 0u);
  EXPECT_EQ(call("POST", "/api/v1/consents/" + id + "/approve", carol_token, "{}").status, 404);
  EXPECT_EQ(call("POST", "/api/v1/consents/" + id + "/approve", ada_token, "{\"reason\": 5}").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/consents?status=maybe").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/consents/" + id + "/approve").status, 405);

  auto approved = call("POST", "/api/v1/consents/" + id + "/approve", ada_token, "{\"reason\": \"fine\"}");
  ASSERT_EQ(approved.status, 200) << approved.body;
  EXPECT_EQ(json_of(approved)["continued"], true);
  EXPECT_EQ(json_of(approved)["consent"]["status"], "approved");
  auto rest = ws->read_until("event", "turn_ended");
  EXPECT_EQ(rest.back()["data"]["ended"], "waiting");
  std::ifstream written(dir_ / "workspaces" / "acme" / "scribe" / "notes" / "chat.txt");
  std::string content((std::istreambuf_iterator<char>(written)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "save milk");
  EXPECT_EQ(call("POST", "/api/v1/consents/" + id + "/approve").status, 409);  // answered already
  EXPECT_EQ(json_of(call("GET", "/api/v1/consents"))["consents"].size(), 0u);
  EXPECT_EQ(json_of(call("GET", "/api/v1/consents?status=all"))["consents"].size(), 1u);

  // Denied: the model is told, and the conversation goes on.
  turn(*ws, run_id, "save more");
  const auto second = json_of(call("GET", "/api/v1/consents"))["consents"][0]["id"].get<std::string>();
  ASSERT_EQ(call("POST", "/api/v1/consents/" + second + "/deny").status, 200);
  auto denied = ws->read_until("event", "turn_ended");
  EXPECT_EQ(denied.back()["data"]["ended"], "waiting");
  auto chat = json_of(call("GET", "/api/v1/conversations/" + run_id));
  EXPECT_NE(chat["messages"].back()["text"].get<std::string>().find("tool said"), std::string::npos);
}

TEST_F(Api, TheAuditLogIsReadAndVerifiedPerTenant) {
  const auto run_id = open_chat();
  ASSERT_EQ(call("POST", "/api/v1/conversations/" + run_id + "/messages", ada_token, "{\"text\": \"x\"}").status, 202);
  // The model call is audited once its turn ran; wait for the run to listen again.
  for (int i = 0; i < 200 && json_of(call("GET", "/api/v1/runs/" + run_id)).value("last_sequence", value()) != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto entries = json_of(call("GET", "/api/v1/audit?run=" + run_id))["entries"];
  ASSERT_GE(entries.size(), 2u);  // the admission, the model call
  std::set<std::string> kinds;
  for (const auto& e : entries) {
    EXPECT_EQ(e["tenant"], "acme");
    EXPECT_EQ(e["run"], run_id);
    kinds.insert(e["kind"].get<std::string>());
  }
  EXPECT_TRUE(kinds.contains("admission")) << entries.dump();
  EXPECT_EQ(json_of(call("GET", "/api/v1/audit?limit=1"))["entries"].size(), 1u);
  // Pages, newest first: each page's entries oldest first, `next_before` to the page before.
  const auto all = json_of(call("GET", "/api/v1/audit?limit=1000"));
  ASSERT_TRUE(all["next_before"].is_null());
  std::vector<std::int64_t> paged;
  value cursor;
  for (int page = 0; page < 100; ++page) {
    const std::string more = cursor.is_null() ? std::string() : "&before=" + std::to_string(cursor.get<std::int64_t>());
    const auto got = json_of(call("GET", "/api/v1/audit?limit=2" + more));
    ASSERT_LE(got["entries"].size(), 2u);
    std::vector<std::int64_t> seqs;
    for (const auto& e : got["entries"]) seqs.push_back(e["seq"].get<std::int64_t>());
    EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
    paged.insert(paged.begin(), seqs.begin(), seqs.end());
    cursor = got["next_before"];
    if (cursor.is_null()) break;
    EXPECT_EQ(cursor, got["entries"][0]["seq"]);
  }
  ASSERT_EQ(paged.size(), all["entries"].size());
  for (std::size_t i = 0; i < paged.size(); ++i) EXPECT_EQ(paged[i], all["entries"][i]["seq"]);
  EXPECT_EQ(json_of(call("GET", "/api/v1/audit", carol_token))["entries"].size(), 0u);
  EXPECT_EQ(call("GET", "/api/v1/audit?run=../x").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/audit?limit=5000").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/audit?before=0").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/audit?before=x").status, 400);
  auto verified = json_of(call("GET", "/api/v1/audit/verify"));
  EXPECT_EQ(verified["ok"], true) << verified.dump();
  EXPECT_GE(verified["entries"].get<std::int64_t>(), 2);

  auto state = json_of(call("GET", "/api/v1/runs/" + run_id + "/state?at=0"));
  EXPECT_EQ(state["state"]["message"], "x");
  EXPECT_FALSE(state["state"].contains("reply"));
  auto latest = json_of(call("GET", "/api/v1/runs/" + run_id + "/state"));
  EXPECT_EQ(latest["at"], 1);
  EXPECT_EQ(latest["state"]["reply"], "you said x and that is all");
  EXPECT_EQ(call("GET", "/api/v1/runs/" + run_id + "/state?at=99").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/runs/" + run_id + "/state", carol_token).status, 404);
}

TEST_F(Api, MetricsCountResponsesAndStreams) {
  (void)call("GET", "/api/v1/agents");
  (void)call("GET", "/api/v1/agents", "");
  auto m = call("GET", "/metrics", "");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("choir_http_responses_total{class=\"2xx\"}"), std::string::npos);
  EXPECT_NE(m.body.find("choir_http_responses_total{class=\"4xx\"} 1"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("choir_agents 4"), std::string::npos);
  EXPECT_EQ(call("GET", "/metrics", "", "", {{"Host", "evil.example"}}).status, 421);
  // A conversation's turn: its steps went through the dispatcher, by the chat agent's class (SRT).
  const auto run_id = open_chat();
  auto ws = watch(run_id);
  (void)turn(*ws, run_id, "hello");
  const std::string after = call("GET", "/metrics", "").body;
  EXPECT_EQ(after.find("choir_steps_total{class=\"srt\"} 0\n"), std::string::npos) << after;
  EXPECT_NE(after.find("choir_steps_total{class=\"srt\"} "), std::string::npos);
  // Two turns: the one that opened the conversation (up to its listening action), and the message's.
  EXPECT_NE(after.find("choir_turn_seconds_count{class=\"srt\"} 2\n"), std::string::npos) << after;
  EXPECT_NE(after.find("choir_steps_waiting{class=\"dt\"} 0\n"), std::string::npos);
  // The gate's decisions: the run's admission and its model call, both allowed.
  EXPECT_NE(after.find("choir_gate_decisions_total{kind=\"call\",decision=\"allow\"} "), std::string::npos) << after;
  EXPECT_NE(after.find("choir_gate_decisions_total{kind=\"admission\",decision="), std::string::npos);
  // The conversation's steps went through group commit.
  EXPECT_EQ(after.find("choir_step_commits_total 0\n"), std::string::npos) << after;
  EXPECT_NE(after.find("choir_step_commits_total "), std::string::npos);
  EXPECT_NE(after.find("choir_step_commit_transactions_total "), std::string::npos);
}

TEST_F(Api, ARunIsDiffedBetweenStepsAndForked) {
  const auto run_id = open_chat();
  auto ws = watch(run_id);
  turn(*ws, run_id, "owls");
  auto diff = json_of(call("GET", "/api/v1/runs/" + run_id + "/diff?from=0&to=1"));
  EXPECT_EQ(diff["added"]["reply"], "you said owls and that is all");
  EXPECT_TRUE(diff["changed"].contains("messages"));
  EXPECT_TRUE(diff["removed"].empty());
  auto first = json_of(call("GET", "/api/v1/runs/" + run_id + "/diff?to=0"));
  EXPECT_EQ(first["from"], -1);
  EXPECT_EQ(first["added"]["message"], "owls");
  EXPECT_EQ(call("GET", "/api/v1/runs/" + run_id + "/diff?to=x").status, 400);

  auto forked = call("POST", "/api/v1/runs/" + run_id + "/fork", ada_token, "{\"at\": 0}");
  ASSERT_EQ(forked.status, 201) << forked.body;
  auto fork = json_of(forked);
  EXPECT_EQ(fork["parent_run"], run_id);
  EXPECT_EQ(fork["parent_step"], 0);
  EXPECT_EQ(fork["next_action"], "think");
  EXPECT_EQ(fork["tenant"], "acme");
  auto children = json_of(call("GET", "/api/v1/runs?parent=" + run_id));
  ASSERT_EQ(children["runs"].size(), 1u);
  EXPECT_EQ(children["runs"][0]["run_id"], fork["run_id"]);
  EXPECT_EQ(json_of(call("GET", "/api/v1/runs?agent=chat&status=waiting"))["runs"].size(), 1u);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/fork", ada_token, "{\"at\": 99}").status, 404);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/fork", ada_token, "{\"at\": \"one\"}").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/runs/" + run_id + "/fork", carol_token, "{}").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/runs/" + run_id + "/fork").status, 405);
  auto agent = json_of(call("GET", "/api/v1/agents/chat"));
  EXPECT_EQ(agent["graph"]["actions"].size(), 2u);
}

TEST_F(Api, TokensMadeOrRevokedWhileServingTakeEffect) {
  const std::string dave = "choir_test_new_0123456789";
  EXPECT_EQ(call("GET", "/api/v1/me", dave).status, 401);
  // As `choir token create` does: the policy's next version, stored.
  std::string with_new = policy_text();
  const auto globex = with_new.find("  globex:");
  with_new.insert(globex, "      t-new: {user: ada, sha256: " + kernel::sha256_hex(dave) + "}\n");
  auto valid = kernel::policy::load(with_new, "policy.yaml");
  ASSERT_TRUE(valid.ok()) << valid.err().message << "\n" << with_new;
  ASSERT_TRUE(store_->put_document("policy", with_new, 0).ok());
  auto eventually = [&](const std::string& token, int status) {
    for (int i = 0; i < 40; ++i) {
      if (call("GET", "/api/v1/me", token).status == status) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };
  EXPECT_TRUE(eventually(dave, 200));
  EXPECT_EQ(json_of(call("GET", "/api/v1/me", dave))["user"], "ada");
  // Revoked: ada's first token goes.
  std::string without = with_new;
  const auto line = without.find("      t-ada:");
  without.erase(line, without.find('\n', line) + 1 - line);
  ASSERT_TRUE(store_->put_document("policy", without, 1).ok());
  EXPECT_TRUE(eventually(ada_token, 401));
  EXPECT_EQ(call("GET", "/api/v1/me", dave).status, 200);
  // A stored policy that does not load leaves the one in force.
  ASSERT_TRUE(store_->put_document("policy", "kind: Policy\ntenants: 7\n", 2).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1'100));
  EXPECT_EQ(call("GET", "/api/v1/me", dave).status, 200);
}

// The OpenAPI document matches the server: every operation it lists is routed (a made-up id may
// be "not found", but never "no such route" or "method not allowed"), and routes it leaves out are not.
TEST_F(Api, McpOverStreamableHttpIsASessionRunThroughTheGate) {
  auto post = [&](const std::string& session, const value& message, const std::string& token = ada_token,
                  net::header_list extra = {}) {
    extra.emplace_back("Accept", "application/json, text/event-stream");
    if (!session.empty()) extra.emplace_back("Mcp-Session-Id", session);
    return call("POST", "/mcp", token, dump_json(message), extra);
  };
  const value init{{"jsonrpc", "2.0"},
                   {"id", 1},
                   {"method", "initialize"},
                   {"params",
                    {{"protocolVersion", "2025-11-25"},
                     {"capabilities", value::object()},
                     {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}};
  EXPECT_EQ(post("", init, "").status, 401);  // no token, no session
  // A session starts with initialize, and nothing else.
  auto early = post("", {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}});
  EXPECT_EQ(early.status, 400);
  EXPECT_NE(early.body.find("initialize"), std::string::npos);
  // Carol's roles grant nothing: the kernel refuses her session's agent, and says why.
  auto refused = post("", init, carol_token);
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_NE(refused.body.find("fs.read"), std::string::npos) << refused.body;

  auto opened = post("", init);
  ASSERT_EQ(opened.status, 200) << opened.body;
  const std::string session(opened.header("mcp-session-id"));
  ASSERT_EQ(session.size(), 32u);
  EXPECT_EQ(json_of(opened)["result"]["protocolVersion"], "2025-11-25");
  EXPECT_EQ(json_of(opened)["result"]["serverInfo"]["name"], "choir");
  const net::header_list v{{"MCP-Protocol-Version", "2025-11-25"}};
  EXPECT_EQ(post(session, {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, ada_token, v).status, 202);

  auto listed = json_of(post(session, {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}}, ada_token, v));
  std::vector<std::string> names;
  for (const auto& t : listed["result"]["tools"]) names.push_back(t["name"]);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"fs.list", "fs.read"}));

  fs::create_directories(dir_ / "workspaces" / "acme" / "mcp-session");
  std::ofstream(dir_ / "workspaces" / "acme" / "mcp-session" / "hello.txt") << "hi from the workspace";
  auto read = json_of(post(session,
                           {{"jsonrpc", "2.0"},
                            {"id", 3},
                            {"method", "tools/call"},
                            {"params", {{"name", "fs.read"}, {"arguments", {{"path", "hello.txt"}}}}}},
                           ada_token, v));
  EXPECT_EQ(read["result"]["isError"], false) << read;
  EXPECT_EQ(read["result"]["structuredContent"]["content"], "hi from the workspace");
  // A tool call is answered with an event stream for a client that reads them, else with JSON.
  const value call_read{{"jsonrpc", "2.0"},
                        {"id", 30},
                        {"method", "tools/call"},
                        {"params", {{"name", "fs.read"}, {"arguments", {{"path", "hello.txt"}}}}}};
  auto as_stream = post(session, call_read, ada_token, v);
  EXPECT_EQ(as_stream.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(as_stream.body.rfind(": open\n\nevent: message\ndata: {", 0), 0u) << as_stream.body;
  auto as_json =
      call("POST", "/mcp", ada_token, dump_json(call_read),
           {{"Mcp-Session-Id", session}, {"MCP-Protocol-Version", "2025-11-25"}, {"Accept", "application/json"}});
  EXPECT_EQ(as_json.header("Content-Type"), "application/json");
  EXPECT_EQ(json_of(as_json), json_of(as_stream));
  auto escape = json_of(post(session,
                             {{"jsonrpc", "2.0"},
                              {"id", 4},
                              {"method", "tools/call"},
                              {"params", {{"name", "fs.read"}, {"arguments", {{"path", "../../../choir.db"}}}}}},
                             ada_token, v));
  EXPECT_EQ(escape["result"]["isError"], true) << escape;

  // Runs are resources of their tenant only: globex's run is neither listed nor readable.
  // A run of the counter agent recorded for `tenant` and `user`, as another server would.
  const auto record_run = [&](const std::string& id, const std::string& status, const std::string& tenant,
                              const std::string& user) {
    store::run_record r;
    r.run_id = id;
    r.agent = "counter";
    r.graph_version = "v";
    r.status = status;
    r.tenant = tenant;
    r.user = user;
    return store_->create_run(r, *graph::state::from_json({{"count", 0}}), -1);
  };
  ASSERT_TRUE(store_->put_graph({"v", "counter", "(test)"}).ok());
  ASSERT_TRUE(record_run("globex-run-1", "completed", "globex", "carol").ok());
  auto resources = json_of(post(session, {{"jsonrpc", "2.0"}, {"id", 6}, {"method", "resources/list"}}, ada_token, v));
  std::vector<std::string> titles;
  for (const auto& r : resources["result"]["resources"]) titles.push_back(r["title"]);
  EXPECT_NE(std::find(titles.begin(), titles.end(), "mcp-session (running)"), titles.end()) << resources;
  EXPECT_EQ(std::find(titles.begin(), titles.end(), "counter (completed)"), titles.end()) << resources;
  auto foreign = json_of(post(session,
                              {{"jsonrpc", "2.0"},
                               {"id", 7},
                               {"method", "resources/read"},
                               {"params", {{"uri", "choir://runs/globex-run-1/state"}}}},
                              ada_token, v));
  EXPECT_EQ(foreign["error"]["code"], -32002) << foreign;
  auto hint = json_of(post(session,
                           {{"jsonrpc", "2.0"},
                            {"id", 8},
                            {"method", "completion/complete"},
                            {"params",
                             {{"ref", {{"type", "ref/resource"}, {"uri", "choir://runs/{run_id}"}}},
                              {"argument", {{"name", "run_id"}, {"value", "globex"}}}}}},
                           ada_token, v));
  EXPECT_EQ(hint["result"]["completion"]["values"], value::array()) << hint;

  // The GET stream: resource updates of a subscription arrive on it as server-sent events.
  EXPECT_EQ(call("GET", "/mcp", ada_token, "", {{"Accept", "text/event-stream"}}).status, 400) << "needs a session";
  EXPECT_EQ(call("GET", "/mcp", ada_token, "", {{"Mcp-Session-Id", session}, {"Accept", "application/json"}}).status,
            406);
  ASSERT_TRUE(record_run("acme-run-1", "halted", "acme", "ada").ok());
  auto subscribed = json_of(post(session,
                                 {{"jsonrpc", "2.0"},
                                  {"id", 9},
                                  {"method", "resources/subscribe"},
                                  {"params", {{"uri", "choir://runs/acme-run-1"}}}},
                                 ada_token, v));
  EXPECT_EQ(subscribed["result"], value::object()) << subscribed;
  std::atomic<bool> stop_stream{false};
  std::mutex events_mutex;
  std::string events_text;
  int stream_status = 0;
  std::thread listener([&] {
    net::http_request req{.method = "GET", .url = url("/mcp")};
    req.headers = {{"Authorization", std::string("Bearer ") + ada_token},
                   {"Mcp-Session-Id", session},
                   {"Accept", "text/event-stream"}};
    req.timeout = std::chrono::seconds(20);
    req.cancel = &stop_stream;
    (void)net::http_call(req, [&](const net::http_response& head, std::string_view chunk) {
      std::lock_guard lock(events_mutex);
      stream_status = head.status;
      events_text += chunk;
      return events_text.find("resources/updated") == std::string::npos;
    });
  });
  for (int i = 0; i < 500; ++i) {  // the stream opens with a comment
    {
      std::lock_guard lock(events_mutex);
      if (!events_text.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // A second stream for the same session is refused while the first is open.
  EXPECT_EQ(call("GET", "/mcp", ada_token, "", {{"Mcp-Session-Id", session}, {"Accept", "text/event-stream"}}).status,
            409);
  ASSERT_TRUE(store_->set_status("acme-run-1", "failed").ok());  // as another process would
  listener.join();
  {
    std::lock_guard lock(events_mutex);
    EXPECT_EQ(stream_status, 200);
    EXPECT_NE(events_text.find(R"("method":"notifications/resources/updated")"), std::string::npos) << events_text;
    EXPECT_NE(events_text.find(R"("uri":"choir://runs/acme-run-1")"), std::string::npos) << events_text;
    EXPECT_EQ(events_text.rfind(": open\n\nevent: message\ndata: ", 0), 0u) << events_text;
  }

  // Hostile and malformed: another user's token with this session, a version nobody speaks, garbage.
  EXPECT_EQ(post(session, {{"jsonrpc", "2.0"}, {"id", 5}, {"method", "ping"}}, carol_token).status, 404);
  EXPECT_EQ(post(session, {{"jsonrpc", "2.0"}, {"id", 5}, {"method", "ping"}}, ada_token,
                 {{"MCP-Protocol-Version", "1999-01-01"}})
                .status,
            400);
  auto garbage = call("POST", "/mcp", ada_token, "{not json", {{"Mcp-Session-Id", session}});
  EXPECT_EQ(garbage.status, 200);  // answered in JSON-RPC, as over stdio
  EXPECT_EQ(json_of(garbage)["error"]["code"], -32700);
  EXPECT_EQ(call("POST", "/mcp", ada_token, "[]", {{"Content-Type", "text/plain"}}).status, 415);
  EXPECT_EQ(call("PUT", "/mcp", ada_token, "{}").status, 405);
  EXPECT_EQ(call("GET", "/mcp", ada_token, "", {{"Mcp-Session-Id", "no-such-session"}}).status, 404);
  EXPECT_EQ(post("no-such-session", {{"jsonrpc", "2.0"}, {"id", 6}, {"method", "ping"}}).status, 404);
  EXPECT_EQ(call("POST", "/mcp", ada_token, dump_json(init), {{"Origin", "http://evil.example"}}).status, 403);
  EXPECT_NE(call("GET", "/metrics", "").body.find("choir_mcp_sessions 1"), std::string::npos);

  // Each call is in the tenant's audit log, under the session's run.
  auto audit = json_of(call("GET", "/api/v1/audit"));
  bool seen = false;
  for (const auto& e : audit["entries"]) seen = seen || (e.value("capability", "") == "fs.read");
  EXPECT_TRUE(seen) << audit;

  EXPECT_EQ(call("DELETE", "/mcp", ada_token, "", {{"Mcp-Session-Id", session}}).status, 200);
  EXPECT_EQ(call("DELETE", "/mcp", ada_token, "", {{"Mcp-Session-Id", session}}).status, 404);
  EXPECT_EQ(post(session, {{"jsonrpc", "2.0"}, {"id", 7}, {"method", "ping"}}).status, 404);
}

TEST_F(Api, ToolsAndModelsAndWhatAnAgentMayUse) {
  EXPECT_EQ(call("GET", "/api/v1/tools", "").status, 401);
  auto tools = json_of(call("GET", "/api/v1/tools"));
  std::set<std::string> names;
  for (const auto& t : tools["tools"]) names.insert(t["name"].get<std::string>());
  for (const char* expected : {"fs.read", "fs.write", "fs.list", "shell.exec", "web.fetch"}) {
    EXPECT_TRUE(names.count(expected)) << expected << " in " << tools;
  }
  EXPECT_TRUE(tools["tools"][0]["input_schema"].is_object());
  auto models = json_of(call("GET", "/api/v1/models"));
  ASSERT_EQ(models["models"].size(), 1u);
  EXPECT_EQ(models["models"][0]["alias"], "local/chat");
  EXPECT_EQ(call("POST", "/api/v1/models", ada_token, "{}").status, 405);

  auto chat = json_of(call("GET", "/api/v1/agents/chat"));
  EXPECT_EQ(chat["models"], (value::array({{{"alias", "local/chat"}, {"served", true}}})));
  EXPECT_TRUE(chat["tools"].empty());
  auto scribe = json_of(call("GET", "/api/v1/agents/scribe"));
  ASSERT_EQ(scribe["tools"].size(), 1u);
  EXPECT_EQ(scribe["tools"][0]["name"], "fs.write");
}

TEST_F(Api, TheOpenApiDocumentMatchesTheRoutes) {
  auto res = call("GET", "/api/v1/openapi.json", "");
  ASSERT_EQ(res.status, 200);
  auto doc = json_of(res);
  ASSERT_EQ(doc["openapi"], "3.1.0");
  const auto run_id = open_chat();
  int operations = 0;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      std::string concrete = path;
      for (const auto& [param, with] :
           {std::pair{std::string("{id}"), run_id}, {std::string("{name}"), std::string("chat")}}) {
        if (auto at = concrete.find(param); at != std::string::npos) concrete.replace(at, param.size(), with);
      }
      std::string upper = method;
      for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (concrete == "/api/v1/stream") continue;  // the WebSocket: tested above
      const std::string body =
          upper == "POST" ? (concrete.ends_with("messages") ? "{\"text\": \"hi\"}" : "{\"agent\": \"chat\"}") : "";
      auto answer = call(upper, concrete, ada_token, body);
      EXPECT_NE(answer.status, 405) << upper << " " << concrete;
      EXPECT_FALSE(answer.status == 404 && answer.body.find("no such route") != std::string::npos)
          << upper << " " << concrete << " is documented but not routed";
      const std::string documented = std::to_string(answer.status);
      EXPECT_TRUE(op["responses"].contains(documented))
          << upper << " " << concrete << " answered " << answer.status << ", which the document does not list";
      ++operations;
    }
  }
  EXPECT_GE(operations, 24);
  EXPECT_NE(call("GET", "/api/v1/runs/" + run_id + "/nothing").body.find("no such route"), std::string::npos);
}

}  // namespace
}  // namespace choir::api
