#include "choir/runtime/actions/map.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "choir/core/id.hpp"
#include "choir/runtime/actions/effect_support.hpp"
#include "choir/runtime/actor.hpp"
#include "choir/runtime/agent_run.hpp"

namespace choir::runtime {
namespace {

enum class reducer { list, concat, sum, min, max, merge };

std::optional<reducer> parse_reducer(std::string_view name) {
  if (name == "list") return reducer::list;
  if (name == "concat") return reducer::concat;
  if (name == "sum") return reducer::sum;
  if (name == "min") return reducer::min;
  if (name == "max") return reducer::max;
  if (name == "merge") return reducer::merge;
  return std::nullopt;
}

/// Everything a map action fixed at load time.
struct map_plan {
  bool single = false;  ///< the `agent` type: one child, its answer written as is
  std::string action;
  std::string over;
  std::string as = "item";
  std::vector<std::string> with;
  std::string collect;
  std::string into;
  reducer reduce = reducer::list;
  std::size_t max_concurrency = 8;
  std::shared_ptr<const agent_definition> child;
  /// The child is another agent (`agent:`), admitted under its own contract and reached through
  /// the gate (`agent.call`); an inline graph or a branch is part of the caller's own agent.
  bool other_agent = false;
  /// MapActions: one one-action child graph per branch, all over the same state (then no `over`).
  std::vector<std::shared_ptr<const agent_definition>> branches;
  std::shared_ptr<const action_services> services;
};

/// One child: its run id, the parent step it starts from, and its starting keys.
struct child_job {
  std::size_t index = 0;
  std::shared_ptr<const agent_definition> child;  ///< what the child runs
  std::string run_id;
  std::string partition_key;
  std::string parent_run;
  std::optional<std::int64_t> parent_step;
  value initial;
};

error child_error(const map_plan& plan, const child_job& job, const std::string& what) {
  return make_error(graph::graph_errc::action_failed, (plan.single ? "agent '" : "map '") + plan.action + "': child " +
                                                          std::to_string(job.index) + " (run " + job.run_id + ") " +
                                                          what);
}

value answer_of(const map_plan& plan, const graph::state& final_state) {
  if (plan.collect.empty()) return final_state.to_json();
  const value* v = final_state.get_if(plan.collect);
  return v != nullptr ? *v : final_state.get(plan.collect);
}

/// Runs `app` until it halts; the child must complete (a child cannot wait for a person).
task<result<graph::state>> drive(const map_plan& plan, const child_job& job, graph::application& app) {
  graph::run_options options;
  options.max_steps = 1'000'000;
  auto outcome = co_await app.run_async(options, value::object());
  if (!outcome.ok()) co_return child_error(plan, job, "stopped: " + outcome.err().message);
  switch (outcome->reason) {
    case graph::halt_reason::completed: co_return app.current_state();
    case graph::halt_reason::failed:
      co_return child_error(plan, job, "failed: " + (outcome->failure ? outcome->failure->message : std::string()));
    case graph::halt_reason::waiting_input:
      co_return child_error(plan, job, "waits for input at '" + app.next_action() + "': a child cannot");
    case graph::halt_reason::suspended:  // so is its caller's step, until the child can go on
      co_return make_error(graph::graph_errc::suspended,
                           "child " + job.run_id + ": " + (outcome->failure ? outcome->failure->message : ""));
    default: co_return child_error(plan, job, "did not complete (step limit)");
  }
}

/// Through the gate, if there is one: calling another agent is an effect of the caller's
/// (`agent.call`, checked and audited), and the child is admitted under its own contract for the
/// caller's principal; an inline child acts as part of its caller. Sets `who` to that principal.
result<void> pass_gate(const map_plan& plan, const child_job& job, principal& who, bool admit_here) {
  gate* g = plan.services->gate.get();
  if (g == nullptr) return {};
  const auto caller = g->admitted(job.parent_run);
  if (!caller) return child_error(plan, job, "has a caller that is not admitted (run " + job.parent_run + ")");
  who = caller->who;
  if (!plan.other_agent) return g->adopt(job.run_id, job.parent_run);
  CHOIR_CHECK(g->check(gated_call{.key = "agent.call:" + job.run_id,  // one consent per child
                                  .run_id = job.parent_run,
                                  .step = job.parent_step,
                                  .capability = "agent.call",
                                  .argument = job.child->name,
                                  .arguments = {{"agent", job.child->name}, {"inputs", job.initial}}}));
  if (admit_here) return g->admit(*job.child, who, job.run_id);
  return {};
}

/// Runs one child to completion — or reuses it, if its run already completed — and returns its answer.
task<result<value>> run_child(std::shared_ptr<const map_plan> plan, child_job job) {
  const agent_definition& child = *job.child;
  store::event_store* s = plan->services->store.get();
  gate* g = plan->services->gate.get();
  principal who;
  if (s == nullptr) {  // in memory only
    if (auto passed = pass_gate(*plan, job, who, /*admit_here=*/true); !passed.ok()) co_return std::move(passed).err();
    auto b = child.doc.builder;
    b.with_identifiers(job.run_id, job.partition_key);
    graph::state initial = child.graph->initial_state();
    for (const auto& [key, v] : job.initial.items()) initial = initial.update(key, v);
    b.with_position(child.graph->nodes()[child.graph->entrypoint()].act->name(), std::move(initial), 0);
    auto app = b.build(child.graph);
    if (!app.ok()) co_return std::move(app).err();
    auto done = co_await drive(*plan, job, **app);
    if (g != nullptr) g->release(job.run_id);
    if (!done.ok()) co_return std::move(done).err();
    co_return answer_of(*plan, *done);
  }
  run_hosting hosting;
  hosting.lease_ttl_ms = plan->services->lease_ttl_ms;
  if (plan->other_agent) hosting.gate = plan->services->gate;  // start_run and open_run admit the child
  auto existing = s->get_run(job.run_id);
  if (existing.ok() && existing->status == "completed") {
    // Ran to completion before (the parent step is running again): reuse what it recorded.
    auto final_state = s->state_at(job.run_id, existing->position());
    if (!final_state.ok()) co_return std::move(final_state).err();
    co_return answer_of(*plan, *final_state);
  }
  if (auto passed = pass_gate(*plan, job, who, /*admit_here=*/false); !passed.ok()) co_return std::move(passed).err();
  result<std::unique_ptr<graph::application>> app = [&]() -> result<std::unique_ptr<graph::application>> {
    if (existing.ok()) return open_run(*s, job.run_id, child, hosting);  // caught midway: continue it
    if (existing.err().code != store::store_errc::run_not_found) return std::move(existing).err();
    run_start start{.run_id = job.run_id,
                    .partition_key = job.partition_key,
                    .who = who,
                    .parent_run = job.parent_run,
                    .parent_step = job.parent_step,
                    .initial = job.initial};
    return start_run(*s, child, start, hosting);
  }();
  if (!app.ok()) {
    if (g != nullptr) g->release(job.run_id);
    co_return child_error(*plan, job, "could not start: " + app.err().message);
  }
  auto done = co_await drive(*plan, job, **app);
  const bool suspended = !done.ok() && done.err().code == graph::graph_errc::suspended;
  const auto status = done.ok()   ? "completed"
                      : suspended ? "waiting_consent"
                                  : ((*app)->has_next_action() ? "failed" : "completed");
  (void)settle_run(*s, job.run_id, status, g);
  if (!done.ok()) co_return std::move(done).err();
  co_return answer_of(*plan, *done);
}

/// Hosts one child run on a worker thread of the actor system.
struct child_host {
  static task<result<value>> run(std::shared_ptr<const map_plan> plan, child_job job) {
    return run_child(std::move(plan), std::move(job));
  }
};

result<value> reduce_answers(const map_plan& plan, std::vector<value> answers) {
  auto fail = [&](const std::string& what) {
    return make_error(graph::graph_errc::action_failed, "map '" + plan.action + "': cannot reduce with " + what);
  };
  switch (plan.reduce) {
    case reducer::list: return value(std::move(answers));
    case reducer::concat: {
      value out = value::array();
      for (auto& a : answers) {
        if (!a.is_array()) return fail("concat: a child's answer is not a list");
        for (auto& item : a) out.push_back(std::move(item));
      }
      return out;
    }
    case reducer::sum: {
      bool integral = true;
      std::int64_t isum = 0;
      double dsum = 0;
      for (const auto& a : answers) {
        if (!a.is_number()) return fail("sum: a child's answer is not a number");
        integral = integral && a.is_number_integer();
        if (a.is_number_integer()) isum += a.get<std::int64_t>();
        dsum += a.get<double>();
      }
      return integral ? value(isum) : value(dsum);
    }
    case reducer::min:
    case reducer::max: {
      value best;
      for (const auto& a : answers) {
        if (!a.is_number()) return fail("min/max: a child's answer is not a number");
        if (best.is_null() || (plan.reduce == reducer::min ? a < best : a > best)) best = a;
      }
      return best;
    }
    case reducer::merge: {
      value out = value::object();
      for (auto& a : answers) {
        if (!a.is_object()) return fail("merge: a child's answer is not an object");
        for (auto& [k, v] : a.items()) out[k] = std::move(v);
      }
      return out;
    }
  }
  return fail("an unknown reducer");
}

value read_key(const graph::state_view& view, const std::string& key) {
  const auto ref = view.find(key);
  if (!ref) return value();
  if (ref.json != nullptr) return *ref.json;
  value out = value::array();
  for (const auto& item : *ref.list) out.push_back(item);
  return out;
}

class map_action final : public graph::action {
 public:
  map_action(graph::action_spec spec, std::shared_ptr<const map_plan> plan)
      : action(std::move(spec)), plan_(std::move(plan)) {}

  [[nodiscard]] bool is_async() const override { return true; }
  result<graph::action_output> execute(const graph::state_view& view, graph::stream_sink& sink) override {
    return sync_wait(execute_async(view, sink));
  }

  task<result<graph::action_output>> execute_async(graph::state_view view, graph::stream_sink& /*sink*/) override {
    const map_plan& plan = *plan_;
    const bool branching = !plan.branches.empty();
    const value items = plan.single || branching ? value(value::array_t(branching ? plan.branches.size() : 1))
                                                 : read_key(view, plan.over);
    if (!items.is_array()) {
      co_return make_error(graph::graph_errc::type_mismatch,
                           "map '" + plan.action + "': '" + plan.over + "' is not a list");
    }
    value shared = value::object();
    for (const auto& key : plan.with) shared[key] = read_key(view, key);

    const auto& origin = view.origin();
    const std::string parent(origin.app_id);
    const std::string base = parent.empty() ? new_id().to_string() : parent;
    std::vector<child_job> jobs;
    jobs.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      child_job job;
      job.index = i;
      job.child = branching ? plan.branches[i] : plan.child;
      job.run_id = base + "." + plan.action + "." + std::to_string(origin.sequence_id);
      if (!plan.single) job.run_id += "." + std::to_string(i);
      job.partition_key = std::string(origin.partition_key);
      if (!parent.empty()) {
        job.parent_run = parent;
        job.parent_step = static_cast<std::int64_t>(origin.sequence_id);
      }
      job.initial = shared;
      if (!plan.single && !branching) job.initial[plan.as] = items[i];
      jobs.push_back(std::move(job));
    }

    std::vector<value> answers(jobs.size());
    std::optional<error> first_failure;
    // Children waiting for consent do not stop the others: every request is raised at once, and
    // the step is suspended until they are answered (completed children are reused then).
    std::string suspended;
    auto take = [&](std::size_t index, result<value> answer) {
      if (answer.ok()) {
        answers[index] = std::move(answer).value();
      } else if (answer.err().code == graph::graph_errc::suspended) {
        suspended += (suspended.empty() ? "" : "; ") + answer.err().message;
      } else {
        first_failure = std::move(answer).err();
      }
    };
    if (plan.services->actors == nullptr) {
      for (auto& job : jobs) {
        auto answer = co_await run_child(plan_, job);
        take(job.index, std::move(answer));
        if (first_failure) break;
      }
    } else {
      // A window of at most `max_concurrency` children in flight, each on a worker actor owned by
      // the actor running this step (so they die with it); answers are awaited in input order.
      actor_system& sys = *plan.services->actors;
      struct in_flight {
        std::size_t index;
        actor_ref<child_host> host;
        reply<value> pending;
      };
      std::deque<in_flight> window;
      std::size_t next = 0;
      while ((next < jobs.size() || !window.empty()) && !first_failure) {
        while (next < jobs.size() && window.size() < plan.max_concurrency) {
          auto host = sys.spawn<child_host>({});
          if (!host.ok()) {
            first_failure = std::move(host).err();
            break;
          }
          auto pending = host->ask([p = plan_, job = jobs[next]](child_host&) { return child_host::run(p, job); });
          window.push_back({next, std::move(host).value(), std::move(pending)});
          ++next;
        }
        if (window.empty()) break;
        in_flight& front = window.front();
        auto answer = co_await front.pending;
        front.host.kill("its child run is done");
        take(front.index, std::move(answer));
        window.pop_front();
      }
      for (auto& f : window) {  // after a failure: let the others finish; they are durable
        (void)co_await f.pending;
        f.host.kill("its map step failed");
      }
    }
    if (first_failure) co_return std::move(*first_failure);
    if (!suspended.empty()) co_return make_error(graph::graph_errc::suspended, suspended);

    auto reduced = plan.single ? result<value>(std::move(answers.front())) : reduce_answers(plan, std::move(answers));
    if (!reduced.ok()) co_return std::move(reduced).err();
    graph::action_output out;
    value children = value::array();
    for (const auto& job : jobs) children.push_back(job.run_id);
    out.result = value{{"children", std::move(children)}, {plan.into, *reduced}};
    out.changes.set(plan.into, std::move(reduced).value());
    co_return out;
  }

 private:
  std::shared_ptr<const map_plan> plan_;
};

using detail::string_field;

result<std::shared_ptr<graph::action>> make_plan(const graph::action_decl& decl,
                                                 const std::shared_ptr<const action_services>& services, bool single) {
  auto plan = std::make_shared<map_plan>();
  plan->single = single;
  plan->action = decl.spec().name;
  plan->services = services;
  const value& config = decl.config();
  const bool branching = !single && config.contains("actions");
  if (!single && !branching) {
    CHOIR_TRY(plan->over, string_field(decl, "over", true));
    CHOIR_TRY(plan->as, string_field(decl, "as", false, "item"));
  }
  CHOIR_TRY(plan->collect, string_field(decl, "collect", false));
  if (config.contains("with")) {
    if (!config["with"].is_array()) return decl.fail("with", "expected a list of state keys");
    for (const auto& k : config["with"]) {
      if (!k.is_string()) return decl.fail("with", "expected a list of state keys");
      plan->with.push_back(k.get<std::string>());
    }
  }
  graph::action_spec spec = decl.spec();
  std::string default_into = spec.writes.size() == 1 ? spec.writes.front() : std::string();
  CHOIR_TRY(plan->into, string_field(decl, "into", default_into.empty(), default_into));
  std::string reduce_name = "list";
  if (!single) {
    CHOIR_TRY(reduce_name, string_field(decl, "reduce", false, "list"));
    auto reduce = parse_reducer(reduce_name);
    if (!reduce) return decl.fail("reduce", "expected list, concat, sum, min, max or merge");
    plan->reduce = *reduce;
    if (config.contains("max_concurrency")) {
      const value& n = config["max_concurrency"];
      if (!n.is_number_integer() || n.get<std::int64_t>() < 1 || n.get<std::int64_t>() > 10'000) {
        return decl.fail("max_concurrency", "expected an integer from 1 to 10000");
      }
      plan->max_concurrency = static_cast<std::size_t>(n.get<std::int64_t>());
    }
  }
  const bool inline_graph = config.contains("graph");
  const bool named_agent = config.contains("agent");
  if (single && !named_agent) return decl.fail("agent", "an agent action needs the name of the agent it runs");
  if (static_cast<int>(inline_graph) + static_cast<int>(named_agent) + static_cast<int>(branching) != 1) {
    return decl.fail("graph",
                     "a map action needs one of: the child graph (graph:), a registered agent (agent:), or "
                     "actions to run side by side over the same state (actions:)");
  }
  if (branching) {
    const value& branches = config["actions"];
    if (!branches.is_object() || branches.empty()) {
      return decl.fail("actions", "expected a mapping of actions (name: definition) to run side by side");
    }
    for (const auto& [name, definition] : branches.items()) {
      value doc = {{"apiVersion", "agentos/v0.2"}, {"kind", "Graph"},          {"name", plan->action + "." + name},
                   {"entrypoint", name},           {"state", value::object()}, {"actions", value{{name, definition}}}};
      for (const auto& k : plan->with) doc["state"][k] = nullptr;
      auto branch = load_agent(dump_json(doc), "actions." + plan->action + ".actions", runtime_registry(services));
      if (!branch.ok()) return decl.fail("actions." + name, branch.err().message);
      plan->branches.push_back(std::move(branch).value());
    }
  } else if (named_agent) {
    std::string name;
    CHOIR_TRY(name, string_field(decl, "agent", true));
    if (!services->agents) return decl.fail("agent", "no agents are registered here");
    auto found = services->agents->find(name, runtime_registry(services));
    if (!found.ok()) return decl.fail("agent", found.err().message);
    plan->child = std::move(found).value();
    plan->other_agent = true;
    if (!single) {  // the child starts with its item: its graph must hold the key
      bool declared = plan->child->graph->initial_state().contains(plan->as);
      if (!declared) {
        return decl.fail("as", "agent '" + name + "' has no key '" + plan->as + "' in its state to start with");
      }
    }
  } else {
    if (!config["graph"].is_object()) {
      return decl.fail("graph", "a map action needs the child graph (entrypoint, actions, transitions)");
    }
    value doc = config["graph"];
    // A child starts with its item and the `with` keys: the child graph may read them undeclared.
    if (!doc.contains("state") || !doc["state"].is_object()) doc["state"] = value::object();
    if (!doc["state"].contains(plan->as)) doc["state"][plan->as] = nullptr;
    for (const auto& k : plan->with) {
      if (!doc["state"].contains(k)) doc["state"][k] = nullptr;
    }
    doc["apiVersion"] = "agentos/v0.2";
    doc["kind"] = "Graph";
    if (!doc.contains("name")) doc["name"] = plan->action;
    auto child = load_agent(dump_json(doc), "actions." + plan->action + ".graph", runtime_registry(services));
    if (!child.ok()) return decl.fail("graph", child.err().message);
    plan->child = std::move(child).value();
  }

  // What it reads and writes follows from its fields unless declared.
  if (!decl.declared_reads()) {
    spec.reads.clear();
    if (!single && !branching) spec.reads.push_back(plan->over);
    for (const auto& k : plan->with) spec.reads.push_back(k);
  }
  if (!decl.declared_writes()) spec.writes = {plan->into};
  if (!single && !branching && !spec.reads_key(plan->over)) {
    return decl.fail("reads", "must include '" + plan->over + "' (over)");
  }
  for (const auto& k : plan->with) {
    if (!spec.reads_key(k)) return decl.fail("reads", "must include '" + k + "' (with)");
  }
  if (!spec.writes_key(plan->into)) return decl.fail("writes", "must include '" + plan->into + "' (into)");
  spec.config = value{{"into", plan->into}, {"collect", plan->collect}};
  if (plan->child) spec.config["child"] = plan->child->name;
  if (branching) {
    spec.config["actions"] = value::array();
    for (const auto& b : plan->branches) spec.config["actions"].push_back(b->name);
  }
  if (!single) {
    spec.config["over"] = plan->over;
    spec.config["as"] = plan->as;
    spec.config["reduce"] = reduce_name;
    spec.config["max_concurrency"] = plan->max_concurrency;
  }
  return std::shared_ptr<graph::action>(std::make_shared<map_action>(std::move(spec), std::move(plan)));
}

}  // namespace

void register_map_action(graph::action_registry& registry, std::shared_ptr<const action_services> services) {
  registry.add("map",
               {"over", "as", "with", "graph", "agent", "actions", "collect", "into", "reduce", "max_concurrency"},
               [services](const graph::action_decl& decl) { return make_plan(decl, services, false); });
  registry.add("agent", {"agent", "with", "collect", "into"},
               [services](const graph::action_decl& decl) { return make_plan(decl, services, true); });
}

}  // namespace choir::runtime
