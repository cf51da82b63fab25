#pragma once
/// MCP servers as tool providers. A `kind: McpServers` document names the servers a process uses
/// (docs/mcp.md, "Client"); each is started (stdio, inside the sandbox unless told otherwise) or
/// reached (Streamable HTTP) when the process starts, and each of its tools joins the tool
/// registry as `mcp.<server>.<tool>` — which is also the capability a contract must ask for and
/// the policy must grant. From then on an MCP tool is called like any other: through the gate,
/// checked, journaled and audited (ARCHITECTURE, "Rules between layers").
///
/// A server that asks the client for a model (`sampling/createMessage`) while a run's call is in
/// flight is answered through the gate under that run's contract: its `modelPolicy`, its budgets,
/// the journal and the audit, as an `llm` step's call would be.
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"

namespace choir::tools {
class tool_registry;
}

namespace choir::runtime {

struct action_services;

struct mcp_server_config {
  std::string name;  ///< lowercase letters, digits, `_` and `-`: the `<server>` of `mcp.<server>.<tool>`
  // stdio
  std::vector<std::string> command;  ///< program and arguments; `./` and `../` arguments are from the file's folder
  std::vector<std::pair<std::string, std::string>> env;  ///< `${VAR}` is read from this process's environment
  bool sandbox = true;                                   ///< run it under bubblewrap
  std::vector<std::filesystem::path> read_only;          ///< folders the sandbox shows (the server's own files)
  std::filesystem::path workspace;  ///< its /workspace in the sandbox; default `<state>/mcp/<name>`
  // Streamable HTTP
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  ///< `${VAR}` expanded
  // both
  std::chrono::milliseconds timeout{60'000};  ///< per request (progress restarts it)
  std::vector<std::string> idempotent;        ///< tools safe to run again after a crash
  std::vector<std::string> only;              ///< if not empty, only these tools are imported
};

/// Reads a `kind: McpServers` document. `base` is the file's folder. Errors:
/// `core_errc::invalid_argument` naming the field at fault (`servers.everything.command: …`).
[[nodiscard]] result<std::vector<mcp_server_config>> parse_mcp_servers(const value& document,
                                                                       const std::filesystem::path& base);

/// The connected servers of a process.
class mcp_servers {
 public:
  /// Connects every server and adds its tools to `registry`, which must outlive the servers. When
  /// a server says its tool list changed, its tools are listed again and replace its old ones in
  /// the registry (a call in flight keeps the tool it started with). `state` is where default sandbox
  /// workspaces go (`<state>/mcp/<name>`). A server that cannot be reached fails the whole start
  /// (an agent that needs it would fail later, less clearly). Tools that cannot be imported (a
  /// name that is not a capability name, a schema this project cannot compile) are skipped and
  /// listed in `warnings()`.
  [[nodiscard]] static result<std::shared_ptr<mcp_servers>> start(std::vector<mcp_server_config> configs,
                                                                  tools::tool_registry& registry,
                                                                  const std::filesystem::path& state);
  ~mcp_servers();
  mcp_servers(const mcp_servers&) = delete;
  mcp_servers& operator=(const mcp_servers&) = delete;

  /// Where sampling requests go: the gate and the model gateway of these services. Held weakly
  /// (the services hold the registry that holds these servers' tools).
  void route_sampling(const std::shared_ptr<const action_services>& services);

  /// One line per server: `everything: stdio: node index.js stdio (MCP 2025-11-25, 13 tools)`.
  [[nodiscard]] std::vector<std::string> describe() const;
  /// What was skipped, at the start and at each re-import since.
  [[nodiscard]] std::vector<std::string> warnings() const;
  /// Tool lists imported again after a server said its list changed (`notifications/tools/list_changed`).
  [[nodiscard]] std::size_t reimports() const;
  /// Stops every server (stdio servers: stdin closed, then SIGTERM, then SIGKILL).
  void stop();

  struct connection;  ///< private to mcp_servers.cpp
  struct changes;     ///< the servers whose tools changed, waiting to be imported again

 private:
  mcp_servers() = default;
  /// Lists `c`'s tools and puts them in the registry in place of its old ones.
  [[nodiscard]] result<void> import(const std::shared_ptr<connection>& c);
  void reimport_loop();

  tools::tool_registry* registry_ = nullptr;  ///< outlives the servers (the process's tools)
  std::vector<std::shared_ptr<connection>> connections_;
  mutable std::mutex mutex_;
  std::vector<std::string> warnings_;
  std::size_t reimports_ = 0;
  std::shared_ptr<changes> changes_;
  std::thread reimporter_;
};

}  // namespace choir::runtime
