#pragma once
/// The `map` action type: fans a subgraph out over a list in state — one child run per item, run
/// in parallel on worker actors with bounded concurrency — and reduces the children's answers
/// into one key of the parent (Burr's MapStates). The YAML form is in docs/graph-yaml.md:
///
///     research:
///       type: map
///       over: topics            # the list to fan out over (read)
///       as: topic               # the key each child starts with its item under (default `item`)
///       with: [goal]            # more keys copied from the parent into each child (read)
///       graph: {entrypoint: …, state: …, actions: …, transitions: …}   # the child graph, or
///       agent: researcher       # a registered agent as the child (see `agent_catalog`)
///       collect: summary        # the key of a child's final state that is its answer
///       into: summaries         # the parent key the reduced answers are written to
///       reduce: list            # list (default) | concat | sum | min | max | merge
///       max_concurrency: 4      # children running at once (default 8)
///
/// Durability: with a store, each child is a run of its own, started from the parent's step
/// (`parent_run`, `parent_step`) under a deterministic id `<parent run>.<action>.<step>.<i>`. When
/// the parent's step runs again — after a crash, or on replay — a child that completed is not run
/// again: its recorded final state is reused; a child caught midway continues from its last
/// committed step. So every child runs exactly once to completion.
///
/// The `agent` action type runs one registered agent as a child run the same way and writes its
/// answer into the caller's state:
///
///     ask_expert: {type: agent, agent: researcher, with: [topic], collect: summary, into: advice}
#include <cstdint>
#include <memory>

#include "choir/graph/loader.hpp"
#include "choir/runtime/actions/services.hpp"

namespace choir::runtime {

/// Registers `map` and `agent` in `registry`. Child graphs may use them too.
void register_map_action(graph::action_registry& registry, std::shared_ptr<const action_services> services);

}  // namespace choir::runtime
