#pragma once
/// The MCP server's protocol engine (Model Context Protocol 2025-11-25, negotiating down to
/// 2025-06-18 and 2025-03-26): lifecycle, ping, tools (listed in pages, called), logging level. It
/// knows nothing of ChoirOS's tools or its kernel: it serves what a `server_provider` offers, and
/// the application plugs the runtime's gated tools in (ARCHITECTURE, "Rules between layers").
/// Transport-neutral: `handle` takes one message and returns the answer; `serve_lines` runs it
/// over newline-delimited stdio.
#include <functional>
#include <iosfwd>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"

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

/// What the server serves. Called from the thread that calls `handle`.
class server_provider {
 public:
  virtual ~server_provider() = default;
  [[nodiscard]] virtual std::vector<tool_descriptor> tools() = 0;
  /// Runs tool `name` (one of `tools()`). Invalid arguments and failures of the tool are an
  /// `is_error` result; an error return is for what is not the tool's (the kernel refused, the
  /// journal failed) and also becomes an `is_error` result, with its message.
  [[nodiscard]] virtual result<tool_result> call_tool(const std::string& name, const value& arguments) = 0;
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

  /// Handles one message from the client; returns the answer to send, if any (requests get one,
  /// notifications and responses none). Never throws: malformed input gets a JSON-RPC error.
  [[nodiscard]] std::optional<std::string> handle(std::string_view message);

  /// The protocol version agreed at `initialize` (empty before).
  [[nodiscard]] std::string version() const;

 private:
  [[nodiscard]] value initialize(const value& params);
  [[nodiscard]] std::optional<std::string> dispatch(const value& id, const std::string& method, const value& params);

  server_provider& provider_;
  server_info info_;
  std::size_t page_size_;
  mutable std::mutex mutex_;
  std::string version_;
  std::string log_level_ = "info";
};

/// Serves `s` over newline-delimited JSON-RPC: reads messages from `in` until it ends, writes each
/// answer as one line to `out` (flushed). Blank lines are skipped; a line over 16 MiB is refused.
void serve_lines(server& s, std::istream& in, std::ostream& out);

}  // namespace choir::mcp
