#include "choir/runtime/agent_run.hpp"

#include "choir/store/group_commit.hpp"

#include "choir/core/clock.hpp"
#include "choir/core/id.hpp"
#include "choir/store/upgrade.hpp"

namespace choir::runtime {

std::string agent_definition::listening_action() const {
  for (const auto& n : graph->nodes()) {
    if (n.act->spec().awaits_input) return n.act->name();
  }
  return graph->nodes()[graph->entrypoint()].act->name();
}

result<std::shared_ptr<const agent_definition>> load_agent(std::string_view text, std::string_view label,
                                                           const graph::action_registry& registry) {
  CHOIR_TRY(auto doc, graph::load_graph(text, label, registry));
  CHOIR_TRY(auto g, doc.builder.build_graph());
  auto agent = std::make_shared<agent_definition>();
  auto contract = kernel::load_contract(text, label);
  if (contract.ok()) {
    if (contract->contract.name != doc.name) {
      return make_error(kernel::kernel_errc::invalid_contract, std::string(label) + ": the contract is for '" +
                                                                   contract->contract.name + "' but the graph is '" +
                                                                   doc.name + "'");
    }
    for (const auto& mode : contract->contract.modes) {
      for (const auto& action : mode.actions) {
        if (!g->index_of(action)) {
          return make_error(
              kernel::kernel_errc::invalid_contract,
              std::string(label) + ": modes." + mode.name + ".actions: the graph has no action '" + action + "'");
        }
      }
    }
    agent->contract = std::make_shared<const kernel::agent_contract>(std::move(contract->contract));
    agent->not_enforced = std::move(contract->not_enforced);
  } else if (contract.err().code != kernel::kernel_errc::no_contract) {
    return std::move(contract).err();
  }
  agent->name = doc.name;
  agent->source = std::string(text);
  agent->version = g->fingerprint();
  agent->doc = std::move(doc);
  agent->graph = std::move(g);
  return std::shared_ptr<const agent_definition>(std::move(agent));
}

namespace {

graph::application_builder hosted_builder(store::event_store& store, const agent_definition& agent,
                                          const std::string& run_id, const std::string& partition,
                                          const run_hosting& hosting) {
  graph::application_builder b = agent.doc.builder;
  b.with_identifiers(run_id, partition);
  if (hosting.committer) {
    b.with_persister(std::make_shared<store::group_persister>(*hosting.committer, run_id, agent.version, &store,
                                                              hosting.lease_ttl_ms));
  } else {
    b.with_persister(std::make_shared<store::run_persister>(store, run_id, agent.version, hosting.lease_ttl_ms));
  }
  for (const auto& h : hosting.hooks) b.with_hooks(h);
  return b;
}

/// Gives the lease back when an open fails after taking it.
template <class T>
result<T> releasing(store::event_store& store, std::string_view run_id, result<T> r) {
  if (!r.ok()) (void)store.release_lease(run_id);
  return r;
}

}  // namespace

result<std::unique_ptr<graph::application>> start_run(store::event_store& store, const agent_definition& agent,
                                                      const run_start& start, const run_hosting& hosting) {
  store::run_record record;
  record.run_id = start.run_id.empty() ? new_id().to_string() : start.run_id;
  record.partition_key = start.partition_key;
  record.agent = agent.name;
  record.graph_version = agent.version;
  record.status = "running";
  record.next_action = agent.graph->nodes()[agent.graph->entrypoint()].act->name();
  record.pinned = start.pin;
  record.owner = store.owner();
  record.lease_expires_ms = system_clock().unix_ms() + hosting.lease_ttl_ms;
  record.parent_run = start.parent_run;
  record.parent_step = start.parent_step;
  record.tenant = start.who.tenant;
  record.user = start.who.user;
  record.start_inputs = dump_json(start.inputs);
  if (hosting.gate) CHOIR_CHECK(hosting.gate->admit(agent, start.who, record.run_id));
  graph::state initial = agent.graph->initial_state();
  if (start.initial.is_object() && !start.initial.empty()) {
    graph::state_delta overrides;
    for (const auto& [key, v] : start.initial.items()) overrides.set(key, v);
    CHOIR_TRY(initial, initial.apply(overrides));
  }
  const std::int64_t start_after = start.parent_step.value_or(-1);
  auto created = [&]() -> result<void> {
    CHOIR_CHECK(store.put_graph({agent.version, agent.name, agent.source}));
    return store.create_run(record, initial, start_after);
  }();
  if (!created.ok()) {
    if (hosting.gate) hosting.gate->release(record.run_id);
    return std::move(created).err();
  }
  // Created leased to us; take it again so that its expiry follows the store's own clock.
  CHOIR_CHECK(store.acquire_lease(record.run_id, hosting.lease_ttl_ms));
  auto b = hosted_builder(store, agent, record.run_id, record.partition_key, hosting);
  b.with_position(record.next_action, std::move(initial), static_cast<std::uint64_t>(start_after + 1));
  auto app = b.build(agent.graph);
  if (!app.ok()) (void)settle_run(store, record.run_id, "halted", hosting.gate.get());  // it will never run
  return app;
}

result<std::unique_ptr<graph::application>> open_run(store::event_store& store, std::string_view run_id,
                                                     const agent_definition& agent, const run_hosting& hosting,
                                                     run_opening* opening) {
  CHOIR_TRY(auto seen, store.get_run(run_id));
  auto leased = store.acquire_lease(run_id, hosting.lease_ttl_ms);
  if (!leased.ok() && leased.err().code == store::store_errc::run_leased && store::owner_known_dead(seen.owner)) {
    leased = store.acquire_lease(run_id, hosting.lease_ttl_ms, seen.owner);  // its owner died on this host
    if (leased.ok() && opening != nullptr) opening->taken_over_from = seen.owner;
  }
  CHOIR_CHECK(leased);
  // Taken from nobody, from an owner that died or whose lease ran out: nobody was running it. (A
  // lease this process held may belong to something still driving the run here.)
  const bool abandoned = seen.owner != store::default_owner();
  // Read the run again under the lease: what it looked like before may be stale.
  auto opened = [&]() -> result<std::unique_ptr<graph::application>> {
    CHOIR_TRY(auto run, store.get_run(run_id));
    if (opening != nullptr && opening->admit) CHOIR_CHECK(opening->admit(run));
    // Admitted again at each opening: the policy may have changed since the run last ran.
    if (hosting.gate) CHOIR_CHECK(hosting.gate->admit(agent, principal{run.tenant, run.user}, run.run_id));
    if (run.graph_version != agent.version) {
      if (run.pinned) {
        return make_error(store::store_errc::invalid_argument, "run " + run.run_id + " is pinned to graph version " +
                                                                   run.graph_version + "; the agent is now version " +
                                                                   agent.version);
      }
      CHOIR_TRY(auto stored, store.get_graph(run.graph_version));
      CHOIR_TRY(auto before, load_agent(stored.source, "stored graph " + run.graph_version,
                                        graph::action_registry::with_builtins()));
      if (auto safe = store::check_upgrade(*before->graph, *agent.graph, run.next_action); !safe.ok()) {
        return make_error(safe.err().code, "cannot move run " + run.run_id + " from graph " + run.graph_version +
                                               " to " + agent.version + ": " + safe.err().message);
      }
      CHOIR_CHECK(store.put_graph({agent.version, agent.name, agent.source}));
      CHOIR_CHECK(store.set_graph_version(run.run_id, agent.version));
      if (opening != nullptr) opening->moved_from = run.graph_version;
    }
    const std::int64_t base = run.position();
    CHOIR_TRY(auto st, store.state_at(run.run_id, base));
    auto b = hosted_builder(store, agent, run.run_id, run.partition_key, hosting);
    b.with_position(run.next_action, std::move(st), static_cast<std::uint64_t>(base + 1));
    return b.build(agent.graph);
  }();
  if (!opened.ok()) {
    if (hosting.gate) hosting.gate->release(run_id);
    // A run recorded `running` that nobody was running would look driven forever: it is
    // `halted`, for whoever may continue it.
    if (auto run = store.get_run(run_id); abandoned && run.ok() && run->status == "running") {
      (void)store.set_status(run_id, "halted");
    }
  }
  return releasing(store, run_id, std::move(opened));
}

result<std::unique_ptr<graph::application>> reposition(store::event_store& store, const graph::application& app,
                                                       const agent_definition& agent, std::string_view action,
                                                       const run_hosting& hosting) {
  const auto& who = app.identity();
  auto b = hosted_builder(store, agent, who.app_id, who.partition_key, hosting);
  b.with_position(std::string(action), app.current_state(), app.sequence_id());
  return b.build(agent.graph);
}

std::string_view status_after(graph::halt_reason reason) {
  switch (reason) {
    case graph::halt_reason::completed: return "completed";
    case graph::halt_reason::failed: return "failed";
    case graph::halt_reason::waiting_input: return "waiting";
    case graph::halt_reason::suspended: return "waiting_consent";
    default: return "halted";
  }
}

result<void> settle_run(store::event_store& store, std::string_view run_id, std::string_view status,
                        gate* admitted_by) {
  if (admitted_by != nullptr) admitted_by->release(run_id);
  auto saved = store.set_status(run_id, status);
  auto released = store.release_lease(run_id);
  CHOIR_CHECK(saved);
  return released;
}

result<store::run_record> fork_run(store::event_store& store, std::string_view run_id, std::optional<std::int64_t> at) {
  CHOIR_TRY(auto parent, store.get_run(run_id));
  const std::int64_t point = at.value_or(parent.position());
  CHOIR_TRY(auto steps, store.steps(parent.run_id, point, 1));
  if (steps.empty() || steps.front().sequence_id != point) {
    return make_error(store::store_errc::step_not_found,
                      "run " + parent.run_id + " has no step " + std::to_string(point));
  }
  CHOIR_TRY(auto state, store.state_at(parent.run_id, point));
  store::run_record fork = parent;
  fork.run_id = new_id().to_string();
  fork.parent_run = parent.run_id;
  fork.parent_step = point;
  fork.status = "halted";
  fork.owner.clear();
  fork.lease_expires_ms = 0;
  fork.next_action = steps.front().next_action;
  fork.last_sequence.reset();
  CHOIR_CHECK(store.create_run(fork, state, point));
  return store.get_run(fork.run_id);
}

}  // namespace choir::runtime
