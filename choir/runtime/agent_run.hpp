#pragma once
/// Durable runs of an agent: the one way ChoirOS starts a run in the event store, reopens it from
/// its last committed step as its single owner, and records how it ended. The `choir` CLI and the
/// conversation actors both go through here. No threads of its own; the store must be one the
/// caller may use from its thread (see `store::synchronized`).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/graph/application.hpp"
#include "choir/graph/loader.hpp"
#include "choir/kernel/contract.hpp"
#include "choir/runtime/gate.hpp"
#include "choir/store/event_store.hpp"

namespace choir::store {
class group_committer;
}

namespace choir::runtime {

/// An agent — its contract and its graph — loaded and validated once and shared by all of its runs.
struct agent_definition {
  std::string name;
  /// What it may do and is promised (the file's `kind: AgentContract` document); null if the file
  /// has none, and then no gate admits it.
  std::shared_ptr<const kernel::agent_contract> contract;
  std::vector<std::string> not_enforced;  ///< contract fields nothing enforces yet, with why
  std::string source;                     ///< the YAML text it was loaded from (stored with each version)
  std::string version;                    ///< the graph's fingerprint
  graph::graph_document doc;
  std::shared_ptr<const graph::graph> graph;

  /// The action a new message is delivered to: the first action (in the graph's order) that waits
  /// for input, else the entrypoint.
  [[nodiscard]] std::string listening_action() const;
};

/// Loads an agent from YAML: its graph and, if the text holds one, its contract, which must name
/// the same agent (`label` names the text in errors).
[[nodiscard]] result<std::shared_ptr<const agent_definition>> load_agent(std::string_view text, std::string_view label,
                                                                         const graph::action_registry& registry);

/// How a run is held and observed while this process drives it.
struct run_hosting {
  std::int64_t lease_ttl_ms = 30'000;                ///< renewed every third of it while steps commit
  std::vector<std::shared_ptr<graph::hooks>> hooks;  ///< observers of every step
  /// If set, a run is admitted by it before it starts or reopens (`not_admitted` otherwise), and
  /// the run's effects go through it.
  std::shared_ptr<runtime::gate> gate;
  /// If set, steps commit through it, sharing transactions with other runs' steps (group commit;
  /// it must write to the same store).
  std::shared_ptr<store::group_committer> committer;
};

struct run_start {
  std::string run_id;  ///< empty: a new id
  std::string partition_key;
  principal who;     ///< whom the run acts for (recorded with it; required by a gate)
  bool pin = false;  ///< the run resumes only under this graph version
  /// A child run (of a `map` or `agent` step): the run and step it starts from. Its first step
  /// follows `parent_step` and its starting state is stored there.
  std::string parent_run;
  std::optional<std::int64_t> parent_step;
  /// Keys set over the graph's initial state (a child's inputs), if any.
  value initial = value::object();
  /// The inputs its first step is given (recorded with the run, for a resume before that step).
  value inputs = value::object();
};

/// Creates a run of `agent` (already leased by `store`'s owner, so no other process can take it
/// before its first step) and returns its application, positioned at the entrypoint. If the
/// application cannot be built, the run is recorded as `halted` and its lease given up.
[[nodiscard]] result<std::unique_ptr<graph::application>> start_run(store::event_store& store,
                                                                    const agent_definition& agent,
                                                                    const run_start& start, const run_hosting& hosting);

/// What a caller of `open_run` checks before the run is touched, and learns of what was done.
struct run_opening {
  /// If set, called (on the caller's thread) under the lease with the run as it now stands, before
  /// the run is checked against the agent, moved or rebuilt. An error it returns is `open_run`'s,
  /// and the lease is given back.
  std::function<result<void>(const store::run_record&)> admit;
  std::string taken_over_from;  ///< out: the dead owner whose lease was taken over, else empty
  std::string moved_from;       ///< out: the graph version the run moved from, else empty
};

/// Takes `run_id`'s lease (also from a dead process of this host) and rebuilds its application at
/// its last committed step. The run continues under `agent`'s graph: if that is not the version
/// the run was on, the change must keep the run's next action with its reads and writes
/// (`store::check_upgrade`), the run must not be pinned, and the run moves to the new version.
/// A run with no next action (completed) opens with none. `opening`, if given, checks the run
/// first and is told what was done.
/// Errors: `run_not_found`, `run_leased` (a live owner drives it), `invalid_argument` (pinned, or
/// an unsafe upgrade, explained), or what `opening->admit` returns. A run that cannot be opened
/// is left unowned, and `halted` if it was recorded `running` though nobody ran it (unowned, or
/// its owner died or let its lease run out).
[[nodiscard]] result<std::unique_ptr<graph::application>> open_run(store::event_store& store, std::string_view run_id,
                                                                   const agent_definition& agent,
                                                                   const run_hosting& hosting,
                                                                   run_opening* opening = nullptr);

/// Rebuilds `app` at `action` with its current state and position: the next step runs `action`
/// instead of what the transitions chose (a conversation starts a new message there after an
/// interruption). Nothing is written until that step commits.
[[nodiscard]] result<std::unique_ptr<graph::application>> reposition(store::event_store& store,
                                                                     const graph::application& app,
                                                                     const agent_definition& agent,
                                                                     std::string_view action,
                                                                     const run_hosting& hosting);

/// The run status a halt is recorded as: `completed`, `failed`, `waiting` (for input),
/// `waiting_consent` (suspended until a consent request is answered) or `halted`.
[[nodiscard]] std::string_view status_after(graph::halt_reason reason);

/// Forks run `run_id` at its committed step `at` (default: its last) into a new run that records
/// its parent and step: the new run starts from the state after that step, at the action that came
/// next, `halted` and unowned until something continues it. Errors: `run_not_found`,
/// `step_not_found` (no such step), store errors.
[[nodiscard]] result<store::run_record> fork_run(store::event_store& store, std::string_view run_id,
                                                 std::optional<std::int64_t> at = std::nullopt);

/// Records `status` for the run and gives up this process's lease on it (and the gate's
/// admission, if a gate is given).
[[nodiscard]] result<void> settle_run(store::event_store& store, std::string_view run_id, std::string_view status,
                                      gate* admitted_by = nullptr);

}  // namespace choir::runtime
