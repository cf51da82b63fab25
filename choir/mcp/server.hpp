#pragma once
/// The MCP server's protocol engine (Model Context Protocol 2025-11-25, negotiating down to
/// 2025-06-18 and 2025-03-26): lifecycle, ping, tools (listed in pages, called), resources and
/// resource templates (listed, read), prompts (listed, got), completions, logging level. It
/// knows nothing of ChoirOS's tools or its kernel: it serves what a `server_provider` offers, and
/// the application plugs the runtime's gated tools in (ARCHITECTURE, "Rules between layers").
/// Transport-neutral: `handle` takes one message and returns the answer; `serve_lines` runs it
/// over newline-delimited stdio.
#include <atomic>
#include <chrono>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/mcp/jsonrpc.hpp"

namespace choir::mcp {

/// The protocol versions the server speaks, newest first.
[[nodiscard]] const std::vector<std::string>& supported_versions();

struct tool_descriptor {
  std::string name;
  std::string title;
  std::string description;
  value input_schema = value{{"type", "object"}};
  value output_schema;  ///< null: none
  value annotations;    ///< null: none (`readOnlyHint`, `idempotentHint`, …)
};

/// What a tool call gave: MCP's `CallToolResult`.
struct tool_result {
  value content = value::array();  ///< content blocks (`{type: "text", text}`, …)
  value structured;                ///< `structuredContent`, or null
  bool is_error = false;           ///< the tool failed; `content` says why (the model may correct itself)
};

/// A resource the server lists (`resources/list`), or a family of them named by an RFC 6570
/// level-1 URI template (`resources/templates/list`: `uri` holds the template).
struct resource_descriptor {
  std::string uri;
  std::string name;
  std::string title;
  std::string description;
  std::string mime_type;
};

/// What `resources/read` gives: one text content (JSON text for ChoirOS's resources).
struct resource_content {
  std::string uri;
  std::string mime_type;
  std::string text;
};

struct prompt_argument {
  std::string name;
  std::string description;
  bool required = false;
};

struct prompt_descriptor {
  std::string name;
  std::string title;
  std::string description;
  std::vector<prompt_argument> arguments;
};

/// One message of a prompt: text, or a resource embedded whole (`resource` set).
struct prompt_message {
  std::string role = "user";  ///< `user` or `assistant`
  std::string text;
  std::optional<resource_content> resource;
};

struct prompt_result {
  std::string description;
  std::vector<prompt_message> messages;
};

/// What a tool call may do besides answering, when the transport carries messages from the server
/// to the client (stdio does; see `server::set_outbound`). Any may be null.
struct call_context {
  /// Reports the call's progress (`notifications/progress`; `progress` must grow from one report
  /// to the next); set only when the client asked for it with `_meta.progressToken`.
  std::function<void(double progress, std::optional<double> total, const std::string& message)> progress;
  /// Asks the person at the client (`elicitation/create`, form mode) with `message` and a flat
  /// object schema of primitive properties; returns the client's answer
  /// (`{action: "accept"|"decline"|"cancel", content?}`) or an error (no answer in time, the
  /// client went away, or it refused the request). Set only when the client declared the
  /// `elicitation` capability.
  std::function<result<value>(const std::string& message, const value& schema)> elicit;
  /// Asks the client's model (`sampling/createMessage` with `params` as given); returns its
  /// `CreateMessageResult` or an error (no answer in time, the client went away, or it refused —
  /// a person at the client may decline). Set only when the client declared `sampling`.
  std::function<result<value>(const value& params)> sample;
  /// The client declared `sampling.tools`: a request may offer tools, and the answer may call them.
  bool sample_with_tools = false;
  /// Logs to the client (`notifications/message`): `level` is an RFC 5424 name (`info`,
  /// `warning`, …); sent only if at or above the level the client set (`logging/setLevel`,
  /// `info` until it does). `data` is any JSON.
  std::function<void(std::string_view level, const std::string& logger, const value& data)> log;
  /// Whether the client has cancelled the call (`notifications/cancelled` naming it); a long call
  /// looks now and then and stops early. Its answer is then not sent. Set on every call.
  std::function<bool()> cancelled;
};

/// The RFC 5424 levels of `logging/setLevel`, least severe first.
[[nodiscard]] const std::vector<std::string>& log_levels();

/// What the server serves. Called from the thread that calls `handle`. Only tools are required;
/// a provider without resources or prompts leaves those lists empty.
class server_provider {
 public:
  virtual ~server_provider() = default;
  [[nodiscard]] virtual std::vector<tool_descriptor> tools() = 0;
  /// Runs tool `name` (one of `tools()`). Invalid arguments and failures of the tool are an
  /// `is_error` result; an error return is for what is not the tool's (the kernel refused, the
  /// journal failed) and also becomes an `is_error` result, with its message.
  [[nodiscard]] virtual result<tool_result> call_tool(const std::string& name, const value& arguments) = 0;
  /// The same with what the call may do besides answering; by default, the call without it.
  [[nodiscard]] virtual result<tool_result> call_tool(const std::string& name, const value& arguments,
                                                      const call_context& context);

  [[nodiscard]] virtual std::vector<resource_descriptor> resources() { return {}; }
  [[nodiscard]] virtual std::vector<resource_descriptor> resource_templates() { return {}; }
  /// The resource at `uri`. `core_errc::not_found` (or any error) for one that is not there or not
  /// the client's to read: MCP's "resource not found" (`-32002`), with the message.
  [[nodiscard]] virtual result<std::vector<resource_content>> read_resource(const std::string& uri);

  /// Whether `subscribe` is served.
  [[nodiscard]] virtual bool can_subscribe() const { return false; }
  /// Watches resource `uri` and calls `updated` (from any thread) each time it changes, until
  /// `unsubscribe(uri)`; `updated` must not be called once `unsubscribe` has returned. Errors: as
  /// `read_resource`'s for a resource that is not there.
  [[nodiscard]] virtual result<void> subscribe(const std::string& uri, std::function<void()> updated);
  virtual void unsubscribe(const std::string& /*uri*/) {}

  [[nodiscard]] virtual std::vector<prompt_descriptor> prompts() { return {}; }
  /// Prompt `name` (one of `prompts()`) with its arguments (strings, required ones present).
  /// Errors become `-32602` with the message.
  [[nodiscard]] virtual result<prompt_result> get_prompt(const std::string& name, const value& arguments);

  /// Values for argument `argument` of a prompt (`ref` `{type: "ref/prompt", name}`) or of a
  /// resource template (`{type: "ref/resource", uri}`) that begin with `prefix`; `known` holds the
  /// arguments already given. At most 100 are sent; `total` is how many there are.
  struct completion {
    std::vector<std::string> values;
    std::size_t total = 0;
  };
  [[nodiscard]] virtual completion complete(const value& ref, const std::string& argument, const std::string& prefix,
                                            const value& known);
};

struct server_info {
  std::string name = "choir";
  std::string version = "0.1.0";
  std::string instructions;
};

class server {
 public:
  /// `page_size` tools per `tools/list` page.
  server(server_provider& provider, server_info info, std::size_t page_size = 100);
  /// Ends the subscriptions the client made.
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Handles one message from the client; returns the answer to send, if any (requests get one,
  /// notifications and responses none). Never throws: malformed input gets a JSON-RPC error.
  [[nodiscard]] std::optional<std::string> handle(std::string_view message);
  /// The same for a message already parsed (`parse_rpc`).
  [[nodiscard]] std::optional<std::string> handle(const rpc_message& message);

  /// The protocol version agreed at `initialize` (empty before).
  [[nodiscard]] std::string version() const;

  /// Lets the server send messages of its own — notifications, and requests to the client — with
  /// `send` (one serialized message; false if it could not go out; the transport makes it safe
  /// from any thread). Without it the server sends none, and tool calls get no progress or
  /// elicitation. `can_request`, asked on the thread of each tool call as it starts: whether the
  /// client's answer to a request could reach that call (stdio: always; HTTP: on a call whose
  /// answer is an event stream); null: always.
  void set_outbound(std::function<bool(const std::string&)> send, std::function<bool()> can_request = nullptr);
  /// If `message` answers one of the server's requests, hands it to the call waiting for it and
  /// returns true (a transport reading on another thread than the one handling requests calls
  /// this first). An answer to no pending request is dropped. A `notifications/cancelled` naming
  /// a tool call in progress is taken too: the call is told (`call_context::cancelled`).
  bool take_response(const rpc_message& message);
  /// The client can no longer answer (its input ended): requests waiting for an answer fail, and
  /// later ones fail at once. Notifications still go out while `send` is set.
  void close_outbound();

 private:
  struct pending_request;
  /// Sends a request to the client and waits for its answer.
  [[nodiscard]] result<value> request(const std::string& method, value params, std::chrono::milliseconds timeout);
  [[nodiscard]] call_context context_for(const value& params);
  /// Sends a notification through the outbound channel, if there is one.
  void notify(std::string_view method, value params);

  [[nodiscard]] value initialize(const value& params);
  [[nodiscard]] std::optional<std::string> dispatch(const value& id, const std::string& method, const value& params);
  [[nodiscard]] std::optional<std::string> resources_and_prompts(const value& id, const std::string& method,
                                                                 const value& params);

  server_provider& provider_;
  server_info info_;
  std::size_t page_size_;
  mutable std::mutex mutex_;
  std::string version_;
  std::string log_level_ = "info";
  value client_capabilities_ = value::object();
  std::function<bool(const std::string&)> send_;
  std::function<bool()> can_request_;
  std::mutex send_mutex_;  ///< held while `send_` runs for `notify`, and while it changes
  std::set<std::string> subscribed_;
  bool outbound_closed_ = false;
  std::int64_t next_request_ = 0;
  std::map<std::string, std::shared_ptr<pending_request>> pending_;
  /// Tool calls in progress, by request id: set once the client cancels one.
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> calls_;
};

/// Serves `s` over newline-delimited JSON-RPC: reads messages from `in` until it ends, writes each
/// answer — and each message the server sends of its own — as one line to `out` (flushed). Requests
/// are handled one at a time, in order, on a thread of their own, so that answers to the server's
/// requests are read while a call waits for them. Blank lines are skipped; a line over 16 MiB is
/// refused. Returns once every request read has been answered.
void serve_lines(server& s, std::istream& in, std::ostream& out);

}  // namespace choir::mcp
