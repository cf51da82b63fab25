#pragma once
/// What the runtime's effectful action types (`map`, `agent`, `llm`, `tool`) need from their
/// process, shared by the registry and every action it makes.
#include <cstdint>
#include <filesystem>
#include <memory>

#include "choir/graph/loader.hpp"
#include "choir/runtime/agent_catalog.hpp"
#include "choir/runtime/gate.hpp"
#include "choir/store/event_store.hpp"

namespace choir::models {
class gateway;
}
namespace choir::tools {
class tool_registry;
}

namespace choir::runtime {

class actor_system;

struct action_services {
  /// Where child runs are recorded (shared by threads: `store::synchronized`); null: children
  /// run in memory only.
  std::shared_ptr<store::event_store> store;
  /// Runs children on worker actors (owned by the actor running the parent step, if any), so
  /// they proceed in parallel; null: children run one after another on the parent's thread.
  actor_system* actors = nullptr;
  std::int64_t lease_ttl_ms = 30'000;
  /// Where `agent:` names are looked up; null: only inline `graph:` children.
  std::shared_ptr<agent_catalog> agents;
  /// The kernel's gate. `map`/`agent` calling another agent pass it (`agent.call`) and each child
  /// agent is admitted under its own contract, acting for its caller's principal. `llm` and `tool`
  /// steps refuse to run without it: every model and tool call passes the gate.
  std::shared_ptr<runtime::gate> gate;
  /// The model gateway `llm` steps call; null: they fail saying no model is configured.
  std::shared_ptr<const models::gateway> models;
  /// The tools `tool` steps and `llm` tool loops call.
  std::shared_ptr<const tools::tool_registry> tools;
  /// Each agent works in `<workspaces>/<tenant>/<agent>/`, created on first use.
  std::filesystem::path workspaces = ".choir/workspaces";
};

/// A tool call's outcome as the journal keeps it: the tool's result, or the error it gave (a
/// failed tool call still happened, and is replayed as the same failure).
struct tool_outcome {
  bool ok = true;
  value result;         ///< when ok
  std::string message;  ///< when not: why, for the model or the person who asked
};

/// Calls tool `name` with `arguments` as an effect of run `run_id` at step `step`, through the
/// gate: arguments checked against the tool's schema (refused ones are an outcome, not a call),
/// then checked against the contract and policy (capability = the tool's name, argument = its
/// subject), journaled under `key`, run in the run's workspace (`<workspaces>/<tenant>/<agent>`),
/// audited. Used by `tool` and `llm` steps and by the MCP server's sessions. Returns the tool's
/// outcome, or an error for what is not the tool's: `denied`, `suspended`,
/// `effect_outcome_unknown`, a journal failure.
[[nodiscard]] result<tool_outcome> call_tool(const action_services& services, const std::string& run_id,
                                             std::int64_t step, const std::string& key, const std::string& name,
                                             const value& arguments);

/// The built-in action types plus the runtime's own: `map`, `agent`, `llm`, `tool`.
[[nodiscard]] graph::action_registry runtime_registry(std::shared_ptr<const action_services> services);

}  // namespace choir::runtime
