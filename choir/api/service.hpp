#pragma once
/// The REST API and the desktop's files, as plain requests and responses (docs/api.md): routes,
/// authentication, the `Host` and `Origin` checks and input limits. The socket side lives in
/// server.cpp; nothing here knows Beast or Asio.
#include <array>
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "choir/api/event_stream.hpp"
#include "choir/api/stream.hpp"
#include "choir/kernel/audit.hpp"
#include "choir/runtime/actions/services.hpp"
#include "choir/runtime/agent_run.hpp"
#include "choir/runtime/conversation.hpp"
#include "choir/runtime/gate.hpp"

namespace choir::tools {
struct tool_spec;
}

namespace choir::api {

/// A request as the server read it: the method, the target (path and query, as sent) and the
/// headers the API looks at.
struct http_request {
  std::string method;
  std::string target;
  std::string host;
  std::string origin;
  std::string authorization;
  std::string content_type;
  std::string accept;
  std::string mcp_session;           ///< `Mcp-Session-Id` (`/mcp`)
  std::string mcp_protocol_version;  ///< `MCP-Protocol-Version` (`/mcp`)
  std::string body;
};

struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  /// Set: the response is a stream of server-sent events (no `body`), written as they come; the
  /// connection closes when it ends.
  std::shared_ptr<event_stream> events;
};

struct service_options {
  std::shared_ptr<store::event_store> store;  ///< shared by threads (`store::synchronized`)
  std::shared_ptr<runtime::gate> gate;        ///< its policy authenticates tokens; it admits the runs
  std::shared_ptr<event_hub> hub;
  std::shared_ptr<runtime::conversation_directory> directory;  ///< built with `hub` as its observer
  /// The agents served from the start; agent files registered through the API (kept in the store's
  /// document `agents`) are added to them, and replace one of the same name.
  std::map<std::string, std::shared_ptr<const runtime::agent_definition>, std::less<>> agents;
  /// Loads an agent file's text (`label` names it in errors) with the server's action types. Null:
  /// `POST /api/v1/agents` is refused (405) and no registered agent is loaded.
  std::function<result<std::shared_ptr<const runtime::agent_definition>>(std::string_view text, std::string_view label)>
      load_agent;
  std::filesystem::path web_dir;  ///< the desktop's built files; empty or missing: `/` says how to build them
  /// `Host` values accepted (`host:port`, compared without case); `Origin` must be `http://` one of them.
  std::vector<std::string> allowed_hosts;
  std::size_t max_body = 1 << 20;
  kernel::audit_options audit;  ///< where the audit log's key and head are, for `GET /api/v1/audit/verify`
  /// Open connections of the server around the service, for `/metrics` (none: not reported).
  std::function<std::size_t()> connections;
  /// The store document the policy is kept in (`choir policy apply`). If set, the policy is read
  /// again when its stored version changes (looked at once a second at most), so that tokens made
  /// or revoked while the server runs take effect. Empty: the gate's policy stays as it is.
  std::string policy_document;
  /// What MCP sessions at `/mcp` call tools with (the registry, the gate, the store); null: `/mcp`
  /// answers 404.
  std::shared_ptr<const runtime::action_services> services;
  /// The agent an MCP session acts under when it names none (`/mcp?agent=NAME` names one of `agents`).
  std::shared_ptr<const runtime::agent_definition> mcp_agent;
  /// The conversations' step dispatcher, whose per-class figures `/metrics` publishes (none: not reported).
  std::shared_ptr<runtime::step_dispatcher> dispatcher;
  /// The conversations' group committer, whose counts `/metrics` publishes (none: not reported).
  std::shared_ptr<store::group_committer> committer;
};

class mcp_endpoint;

class service {
 public:
  explicit service(service_options options);
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  /// Answers any request that is not a WebSocket upgrade.
  [[nodiscard]] http_response handle(const http_request& request);
  /// The checks every request passes first, the WebSocket upgrade included: its `Host` and
  /// `Origin`. An error response, or nothing if it may go on.
  [[nodiscard]] std::optional<http_response> check_origin(const http_request& request) const;
  /// Whom a token acts for.
  [[nodiscard]] std::optional<identity> authenticate(std::string_view token) const;
  /// What each WebSocket connection of `/api/v1/stream` is made with.
  [[nodiscard]] stream_context stream_settings() const;
  [[nodiscard]] const service_options& options() const noexcept { return opts_; }
  /// Adds a `Host` value the server answers to (the server knows its port once it listens).
  void allow_host(std::string host_port);
  /// Ends the MCP sessions (at shutdown: their runs are recorded completed).
  void close_mcp_sessions();
  /// The agent named `name` that this server serves, or null.
  [[nodiscard]] std::shared_ptr<const runtime::agent_definition> find_agent(std::string_view name) const;
  /// Registered agent files kept in the store that did not load at the start, with why.
  [[nodiscard]] const std::vector<std::string>& stored_agent_errors() const noexcept { return stored_agent_errors_; }

 private:
  http_response route(const http_request& request, std::string_view path, std::string_view query);
  /// `POST /api/v1/agents`: loads, authorizes, stores and serves an agent file.
  http_response register_agent(const http_request& request, const identity& who);
  /// Every agent served, by name.
  [[nodiscard]] std::map<std::string, std::shared_ptr<const runtime::agent_definition>, std::less<>> agents() const;
  /// Loads the agent files registered earlier (the store's document `agents`).
  void load_stored_agents();
  http_response static_file(std::string_view path) const;
  http_response metrics() const;
  /// Puts the stored policy in force if it changed (see `service_options::policy_document`).
  void refresh_policy() const;

  /// A tool as the API shows it.
  [[nodiscard]] static value tool_json(const tools::tool_spec& t);
  /// What an agent may use here: the tools its contract asks for, and its models (served or not).
  [[nodiscard]] value agent_tools(const runtime::agent_definition& agent) const;
  [[nodiscard]] value agent_models(const runtime::agent_definition& agent) const;
  /// Runs a turn of the run hosted here without waiting; one that never starts is told on the stream.
  void post_turn(const std::string& run_id, runtime::conversation_directory::request req);
  /// Starts a run of `agent` for `who` on this server: created and admitted (or refused) now, its
  /// first turn (from `inputs`) posted to its actor. Returns the run as it was created.
  result<store::run_record> start_hosted(const std::shared_ptr<const runtime::agent_definition>& agent,
                                         const identity& who, const value& inputs);
  /// An agent as `GET /api/v1/agents/{name}` shows it.
  [[nodiscard]] value agent_detail(const runtime::agent_definition& agent) const;
  /// Whom the request's bearer token acts for (none: no token, or an unknown one).
  [[nodiscard]] std::optional<identity> caller(const http_request& request) const;

  service_options opts_;
  mutable std::shared_mutex agents_mutex_;  ///< guards `opts_.agents` (registration adds to it)
  std::vector<std::string> stored_agent_errors_;
  std::unique_ptr<mcp_endpoint> mcp_;
  /// Responses by status class (1xx…5xx), for `/metrics`.
  std::array<std::atomic<std::uint64_t>, 6> responses_{};
  mutable std::atomic<std::int64_t> policy_version_{-1};    ///< the stored version in force (-1: not read yet)
  mutable std::atomic<std::int64_t> policy_checked_ms_{0};  ///< when the store was last looked at
};

/// `{"error": {"code", "message"}}` with `status`.
[[nodiscard]] http_response error_response(int status, std::string_view code, std::string_view message);

}  // namespace choir::api
