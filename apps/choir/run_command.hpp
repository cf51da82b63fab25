#pragma once
/// `choir run`: loads a YAML graph, runs it in memory and prints each step.
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/graph/loader.hpp"
#include "choir/runtime/actions/services.hpp"
#include "choir/runtime/agent_run.hpp"
#include "choir/store/event_store.hpp"

namespace choir::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_step_failed = 1;
inline constexpr int exit_invalid = 2;
inline constexpr int exit_max_steps = 3;

struct run_options {
  std::string file;
  std::vector<std::string> inputs;  ///< key=value
  std::vector<std::string> halt_after;
  std::vector<std::string> halt_before;
  std::uint64_t max_steps = 100000;  ///< 0: no limit
  bool json = false;
  std::string store;                ///< the store file; empty: the default store
  bool no_store = false;            ///< run in memory only
  bool pin = false;                 ///< the run resumes only under the graph version it started with
  std::vector<std::string> agents;  ///< folders where `agent:` names are found as NAME.yaml
  std::string tenant;               ///< whom the run acts for (empty: `principal_for`'s default)
  std::string user;
};

/// How long a `choir` process's lease on the run it drives lasts; it is renewed every third of it.
inline constexpr std::int64_t lease_ttl_ms = 30'000;

/// The store `choir` uses when none is named: a SQLite file under the current folder.
inline constexpr const char* default_store_path = ".choir/choir.db";

/// Parses `key=value` inputs and checks that some action of `agent` declares each.
[[nodiscard]] result<value> checked_inputs(const runtime::agent_definition& agent,
                                           const std::vector<std::string>& pairs);
/// Opens the store at `path`: a SQLite file, or `postgresql://…` (the default store if empty).
[[nodiscard]] result<std::shared_ptr<store::event_store>> open_store(const std::string& path);
/// Runs `app` as `options` say, printing each step, and records the run's final status in
/// `store` (if any), releasing this process's lease on it (`runtime::settle_run`). Returns the
/// exit code.
int drive(graph::application& app, const std::string& name, const run_options& options, const value& inputs,
          store::event_store* store, std::ostream& out, std::ostream& err, const std::string& command);
/// Prints one step as a line: sequence id, action, and its changes or its failure.
void print_step_line(std::ostream& out, std::int64_t sequence_id, const std::string& action, bool failed, int attempts,
                     const std::string& failure, const graph::state_delta& delta);

/// Makes the agents in `folders`, and beside `file` if given, known to `agent:` references, and
/// sets up the model gateway `llm` steps use, from the first of: `set_models_file`'s file
/// (`--models`), `$CHOIR_MODELS`, a `models.yaml` in those folders, or else one offline model
/// named `scripted` that answers with the user's message (docs/models.md). Errors: the models
/// file cannot be read or is invalid.
[[nodiscard]] result<void> search_agents(const std::vector<std::string>& folders, const std::string& file = "");
/// The models file `search_agents` uses before any other (empty: search).
void set_models_file(std::string path);
/// The MCP servers file (`kind: McpServers`, docs/mcp.md) `search_agents` starts before any
/// other: else `$CHOIR_MCP`, else `mcp.yaml` beside the agents, else none. Its servers' tools
/// join the registry as `mcp.<server>.<tool>`.
void set_mcp_file(std::string path);
/// One line per MCP server the process uses (empty: none).
[[nodiscard]] std::vector<std::string> mcp_server_lines();
/// Stops the MCP servers (at shutdown).
void stop_mcp_servers();
/// What this process's steps use (`map` workers, the store `open_store` opened, the model gateway
/// `search_agents` set up, the built-in tools, the agents' workspaces). One per process.
[[nodiscard]] const std::shared_ptr<runtime::action_services>& process_services();
/// The model aliases the gateway serves (admission's model clause).
[[nodiscard]] std::vector<std::string> served_models();

/// Makes the child runs of `map` and `agent` steps pass `gate` (the kernel of the run being driven).
void use_gate(std::shared_ptr<runtime::gate> gate);

/// The action types `choir` knows.
[[nodiscard]] graph::action_registry default_registry();
/// Reads a whole file; errors name the file.
[[nodiscard]] result<std::string> read_file(const std::string& path);
/// Parses `key=value` pairs into an object; a value that parses as JSON is taken as JSON,
/// anything else as a string.
[[nodiscard]] result<value> parse_inputs(const std::vector<std::string>& pairs);
/// `choir run`: returns its exit code.
int run_command(const run_options& options, std::ostream& out, std::ostream& err);

/// `choir runs …`.
struct runs_options {
  std::string store;
  std::string run_id;
  std::optional<std::int64_t> at;
  std::size_t limit = 50;
  bool json = false;
  run_options run;         ///< for resume and input: inputs, halts, max steps
  std::string graph_file;  ///< resume: continue under this graph file's version (a checked upgrade)
  std::string older_than;  ///< prune: an age such as 30d, 12h, 45m
  std::optional<std::size_t> keep_last;
  std::optional<std::string> partition;
};
int runs_list(const runs_options& options, std::ostream& out, std::ostream& err);
int runs_show(const runs_options& options, std::ostream& out, std::ostream& err);
int runs_state(const runs_options& options, std::ostream& out, std::ostream& err);
int runs_resume(const runs_options& options, std::ostream& out, std::ostream& err);
int runs_fork(const runs_options& options, std::ostream& out, std::ostream& err);
int runs_input(const runs_options& options, std::ostream& out, std::ostream& err);
int runs_replay(const runs_options& options, std::ostream& out, std::ostream& err);
int runs_prune(const runs_options& options, std::ostream& out, std::ostream& err);

}  // namespace choir::cli
