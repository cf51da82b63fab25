#pragma once
/// The MCP client's protocol engine (Model Context Protocol 2025-11-25, negotiating down to
/// 2025-06-18 and 2025-03-26) over a `transport`: stdio to a server process this client starts
/// (`stdio_transport`), or Streamable HTTP (`http_transport`).
///
/// Requests may be made from any number of threads at once; responses are matched by id in any
/// order. Messages the server sends on its own are handled as they arrive: notifications
/// (`tools/list_changed`, `progress`, `message`, `cancelled`) and requests (`ping`,
/// `sampling/createMessage`, `elicitation/create`, `roots/list`), the latter on a worker thread of
/// the client so that a slow answer (a model call) never stalls the responses to other requests.
/// A request that times out is cancelled (`notifications/cancelled`); its late answer is dropped.
///
/// The client knows nothing of ChoirOS's kernel: the runtime registers a server's tools as the
/// capabilities `mcp.<server>.<tool>` and gates every call (ARCHITECTURE, "Rules between layers").
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/mcp/server.hpp"

namespace choir::mcp {

enum class mcp_errc {
  closed = 1,           ///< the connection ended (the server exited, or the client was closed)
  timed_out,            ///< no answer within the request's time; the request was cancelled
  rpc_error,            ///< the server answered with a JSON-RPC error (the message has its code and text)
  bad_response,         ///< the server's answer does not follow the protocol
  unsupported_version,  ///< the server speaks no protocol version this client does
  session_expired,      ///< Streamable HTTP: the server forgot the session (404); initialize again
  transport_failed,     ///< the transport could not start or send (the message says why)
};

[[nodiscard]] const std::error_category& mcp_category() noexcept;
[[nodiscard]] std::error_code make_error_code(mcp_errc e) noexcept;

/// A channel carrying JSON-RPC messages to a server and back.
class transport {
 public:
  using message_handler = std::function<void(std::string_view message)>;
  using close_handler = std::function<void(const std::string& why)>;

  virtual ~transport() = default;
  /// Opens the channel; from then on each message the server sends is handed to `on_message`
  /// (on a thread of the transport, or inside `send`), in order, and `on_close` is called once
  /// when the channel ends on its own.
  [[nodiscard]] virtual result<void> start(message_handler on_message, close_handler on_close) = 0;
  /// Sends one serialized message. Thread-safe. May hand the server's answers to `on_message`
  /// before it returns (Streamable HTTP answers a request in the response to its POST).
  [[nodiscard]] virtual result<void> send(const std::string& message) = 0;
  /// Told the protocol version agreed at `initialize` (HTTP sends it on every later request).
  virtual void agreed(const std::string& /*version*/) {}
  /// Ends the channel and waits for its threads (and, for stdio, the server process) to finish.
  /// `on_close` is not called. Idempotent.
  virtual void close() = 0;
  /// For messages: `stdio: node server.js`, `http://127.0.0.1:3001/mcp`.
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// A `tools/call` answer: MCP's `CallToolResult`.
struct call_result {
  value content = value::array();
  value structured;  ///< `structuredContent`, or null
  bool is_error = false;
  /// The text blocks joined by newlines (other blocks are named by their type: `[image]`).
  [[nodiscard]] std::string text() const;
};

struct progress_update {
  double progress = 0;
  std::optional<double> total;
  std::string message;
};

/// A server→client request the application answers: `sampling/createMessage` or
/// `elicitation/create`. `tags` are those of the client's requests in flight when it came (see
/// `call_options::tag`), which tells the application on whose behalf the server asks.
using server_request_handler = std::function<result<value>(const value& params, const std::vector<std::string>& tags)>;

struct client_options {
  std::string name = "choir";
  std::string version = "0.1.0";
  /// The version asked for at `initialize`; the server may answer with an older one among
  /// `supported_versions()`.
  std::string protocol_version = "2025-11-25";
  /// A request with no answer in this time is cancelled. Progress notifications restart the
  /// clock, up to `max_request_time` in all.
  std::chrono::milliseconds request_timeout{60'000};
  std::chrono::milliseconds max_request_time{600'000};
  /// Answers `sampling/createMessage`; null: the client does not declare sampling and refuses it.
  server_request_handler on_sampling;
  /// Declares `sampling.tools`: `on_sampling` takes requests that offer tools and may answer with
  /// tool calls.
  bool sampling_with_tools = false;
  /// Answers `elicitation/create`; null: not declared, refused.
  server_request_handler on_elicitation;
  /// `roots/list`: `file://` URIs the server may work in; empty: roots are not declared.
  std::vector<std::string> roots;
  /// `notifications/message` (the server's log lines: `{level, logger?, data}`).
  std::function<void(const value& params)> on_log;
  /// `notifications/tools/list_changed`.
  std::function<void()> on_tools_changed;
};

struct call_options {
  /// Receives `notifications/progress` for this call (the client then asks for them).
  std::function<void(const progress_update&)> on_progress;
  /// Who the call is for (a run id); handed to server request handlers while it is in flight.
  std::string tag;
  /// Overrides `client_options::request_timeout` for this call.
  std::optional<std::chrono::milliseconds> timeout;
};

class client {
 public:
  /// Starts `channel`, then `initialize` and `notifications/initialized`. Errors:
  /// `unsupported_version` (the server answered with a version this client does not speak: the
  /// channel is closed), `transport_failed`, `closed`, `timed_out`, `rpc_error`, `bad_response`.
  [[nodiscard]] static result<std::unique_ptr<client>> connect(std::unique_ptr<transport> channel,
                                                               client_options options = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// What `initialize` answered.
  [[nodiscard]] const std::string& protocol_version() const { return version_; }
  [[nodiscard]] const value& server_info() const { return server_info_; }
  [[nodiscard]] const value& server_capabilities() const { return capabilities_; }
  [[nodiscard]] const std::string& instructions() const { return instructions_; }
  [[nodiscard]] std::string describe() const { return channel_->describe(); }

  /// Every tool, following `nextCursor` through all pages (at most 1,000 pages). Its
  /// `annotations` are hints only: the server's word, not to be trusted.
  [[nodiscard]] result<std::vector<tool_descriptor>> list_tools();
  /// Calls a tool. A tool's own failure is a result with `is_error` (the model may correct
  /// itself); an error is for the protocol (an unknown tool may come either way, as servers
  /// differ). A declared output schema is checked: `structuredContent` that does not match it is
  /// `bad_response`.
  [[nodiscard]] result<call_result> call_tool(const std::string& name, const value& arguments,
                                              const call_options& options = {});
  [[nodiscard]] result<void> ping();
  /// Any request; its `result`.
  [[nodiscard]] result<value> request(const std::string& method, value params, const call_options& options = {});
  [[nodiscard]] result<void> notify(const std::string& method, value params);

  /// True once the connection has ended.
  [[nodiscard]] bool closed() const;
  /// Why it ended (empty while open).
  [[nodiscard]] std::string close_reason() const;
  /// Ends the connection: pending requests fail with `closed`; a stdio server is stopped (its
  /// stdin closed, then SIGTERM, then SIGKILL).
  void close();

 private:
  client(std::unique_ptr<transport> channel, client_options options);
  struct pending {
    std::optional<value> result;
    std::optional<value> error;
    std::function<void(const progress_update&)> on_progress;
    std::string tag;
    std::chrono::steady_clock::time_point deadline;
    std::chrono::steady_clock::time_point hard_deadline;
    std::chrono::milliseconds timeout{};
  };
  void on_message(std::string_view text);
  void on_closed(const std::string& why);
  void answer_server_request(const value& id, const std::string& method, const value& params);
  void worker_loop();
  [[nodiscard]] result<void> send(const std::string& message);
  [[nodiscard]] result<void> initialize();
  [[nodiscard]] std::vector<std::string> tags_in_flight() const;

  std::unique_ptr<transport> channel_;
  client_options options_;
  std::string version_;
  value server_info_;
  value capabilities_;
  std::string instructions_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::int64_t next_id_ = 1;
  std::map<std::int64_t, pending> pending_;
  bool closed_ = false;
  std::string close_reason_;

  // Server→client requests wait here for the worker thread.
  struct server_request {
    value id;
    std::string method;
    value params;
  };
  std::deque<server_request> inbox_;
  std::condition_variable inbox_changed_;
  bool stopping_ = false;
  std::thread worker_;
  std::mutex schemas_mutex_;
  std::map<std::string, value> output_schemas_;  ///< from the last `list_tools`
};

// ---- transports ----

struct stdio_options {
  /// The program and its arguments. A program without `/` is looked up in PATH.
  std::vector<std::string> argv;
  /// Added to (or, with `clear_environment`, replacing) this process's environment.
  std::vector<std::pair<std::string, std::string>> env;
  bool clear_environment = false;
  /// The working folder; empty: this process's.
  std::string cwd;
  /// How long `close` waits after closing the server's stdin, and again after SIGTERM.
  std::chrono::milliseconds grace{2'000};
  /// A line longer than this from the server ends the connection (a protocol violation).
  std::size_t max_line_bytes = 16u << 20;
};

/// Starts the server as a child process (its own process group) speaking newline-delimited
/// JSON-RPC on its stdin and stdout; its stderr is kept (the last 4 KiB) to explain a failure.
/// The child is started by the calling thread; the sandbox around it, if any, is the caller's
/// business (the runtime runs stdio servers under bubblewrap).
[[nodiscard]] std::unique_ptr<transport> stdio_transport(stdio_options options);

struct http_options {
  std::string url;  ///< the MCP endpoint, `http(s)://host[:port]/mcp`
  /// Sent with every request (`Authorization: Bearer …`).
  std::vector<std::pair<std::string, std::string>> headers;
  /// Bounds each POST and the answer streamed back in it.
  std::chrono::milliseconds request_timeout{600'000};
  std::size_t max_message_bytes = 16u << 20;
};

/// A channel straight into a server engine in this process: each message is answered inside
/// `send`, with no pipe or socket between (tests, benchmarks of the protocol engines alone).
[[nodiscard]] std::unique_ptr<transport> in_process_transport(server& engine);

/// Streamable HTTP: each message is one POST; a request's answer comes back as JSON or as an SSE
/// stream (which may carry the server's requests and notifications first). The session id the
/// server gives at `initialize` and the agreed version are sent on every later request; `close`
/// ends the session with DELETE. A request's POST blocks the thread that sends it until its answer
/// has arrived, so its time limit is the POST's (`request_timeout`).
[[nodiscard]] std::unique_ptr<transport> http_transport(http_options options);

}  // namespace choir::mcp

template <>
struct std::is_error_code_enum<choir::mcp::mcp_errc> : std::true_type {};
