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

/// The built-in action types plus the runtime's own: `map`, `agent`, `llm`, `tool`.
[[nodiscard]] graph::action_registry runtime_registry(std::shared_ptr<const action_services> services);

}  // namespace choir::runtime
