// `choir runs list|show|state|resume|input|fork|replay|prune`: runs kept in the event store.
#include <fmt/core.h>

#include <ctime>
#include <limits>
#include <map>
#include <ostream>

#include "apps/choir/kernel_commands.hpp"
#include "apps/choir/run_command.hpp"

#include <algorithm>
#include "choir/core/id.hpp"

namespace choir::cli {
namespace {

std::string utc_time(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

/// Opens the store or prints why not.
std::shared_ptr<store::event_store> open_or_report(const runs_options& options, std::ostream& err,
                                                   const std::string& command) {
  auto opened = open_store(options.store);
  if (!opened.ok()) {
    err << command << ": " << opened.err().message << "\n";
    return nullptr;
  }
  return std::move(opened).value();
}

std::string shorten_json(const value& v) {
  std::string text = dump_json(v);
  if (text.size() > 200) text = text.substr(0, 199) + "…";
  return text;
}

int report(std::ostream& err, const std::string& command, const error& e) {
  err << command << ": " << e.message << "\n";
  return exit_invalid;
}

}  // namespace

int runs_list(const runs_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir runs list";
  auto store = open_or_report(options, err, command);
  if (!store) return exit_invalid;
  auto runs = store->list_runs(options.limit);
  if (!runs.ok()) return report(err, command, runs.err());
  if (options.json) {
    for (const auto& r : *runs) out << dump_json(r.to_json()) << "\n";
    return exit_ok;
  }
  // Child runs (of map and agent steps) have longer ids: the first column fits the longest.
  std::size_t id_width = 36;
  for (const auto& r : *runs) id_width = std::max(id_width, r.run_id.size());
  out << fmt::format("{:<{}}  {:<16}  {:<9}  {:>6}  {:<14}  {}\n", "RUN", id_width, "AGENT", "STATUS", "STEPS", "NEXT",
                     "CREATED (UTC)");
  for (const auto& r : *runs) {
    const std::int64_t steps = r.last_sequence ? *r.last_sequence - r.parent_step.value_or(-1) : 0;
    out << fmt::format("{:<{}}  {:<16}  {:<9}  {:>6}  {:<14}  {}\n", r.run_id, id_width, r.agent, r.status, steps,
                       r.next_action.empty() ? "-" : r.next_action, utc_time(r.created_ms));
  }
  return exit_ok;
}

int runs_show(const runs_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir runs show";
  auto store = open_or_report(options, err, command);
  if (!store) return exit_invalid;
  auto run = store->get_run(options.run_id);
  if (!run.ok()) return report(err, command, run.err());
  auto steps = store->steps(options.run_id, 0, options.limit);
  if (!steps.ok()) return report(err, command, steps.err());
  auto effects = store->effects(options.run_id);
  if (!effects.ok()) return report(err, command, effects.err());
  if (options.json) {
    value shown = run->to_json();
    shown["steps"] = value::array();
    for (const auto& s : *steps) shown["steps"].push_back(s.to_json());
    shown["effects"] = value::array();
    for (const auto& e : *effects) shown["effects"].push_back(e.to_json());
    out << dump_json(shown) << "\n";
    return exit_ok;
  }
  out << "run " << run->run_id << " of " << run->agent << " (graph " << run->graph_version << ")\n";
  out << "status " << run->status << ", next " << (run->next_action.empty() ? "-" : run->next_action) << ", created "
      << utc_time(run->created_ms) << " UTC\n";
  if (!run->parent_run.empty()) out << "forked from " << run->parent_run << " at step " << *run->parent_step << "\n";
  if (!run->owner.empty()) {
    out << "leased by " << run->owner << " until " << utc_time(run->lease_expires_ms) << " UTC\n";
  }
  if (run->pinned) out << "pinned to its graph version\n";
  for (const auto& s : *steps) {
    auto delta = graph::state_delta::from_json(s.delta);
    print_step_line(out, s.sequence_id, s.action, s.status == "failed", s.attempts,
                    s.error.is_object() ? s.error.value("message", std::string()) : std::string(),
                    delta.ok() ? *delta : graph::state_delta());
  }
  for (const auto& e : *effects) {
    out << fmt::format("effect {} at step {}: {} {}\n", e.key, e.sequence_id, e.kind, e.status);
  }
  return exit_ok;
}

int runs_state(const runs_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir runs state";
  auto store = open_or_report(options, err, command);
  if (!store) return exit_invalid;
  auto run = store->get_run(options.run_id);
  if (!run.ok()) return report(err, command, run.err());
  auto st = store->state_at(options.run_id, options.at.value_or(run->position()));
  if (!st.ok()) return report(err, command, st.err());
  out << dump_json(st->to_json(), options.json ? -1 : 2) << "\n";
  return exit_ok;
}

namespace {

/// The agent a run continues under: its own graph version, or — with `--graph FILE` — that file's
/// (`runtime::open_run` checks the upgrade; docs/upgrades.md).
result<std::shared_ptr<const runtime::agent_definition>> agent_for(store::event_store& s, const store::run_record& run,
                                                                   const runs_options& options) {
  if (!options.graph_file.empty()) {
    CHOIR_TRY(std::string text, read_file(options.graph_file));
    return runtime::load_agent(text, options.graph_file, default_registry());
  }
  CHOIR_TRY(store::graph_record stored, s.get_graph(run.graph_version));
  return runtime::load_agent(stored.source, "stored graph " + run.graph_version, default_registry());
}

/// `resume` and `input`: continue a run from its last committed step, as its single owner.
int continue_run(const runs_options& options, std::ostream& out, std::ostream& err, const std::string& command,
                 bool delivering_input) {
  if (auto found = search_agents(options.run.agents, options.graph_file.empty() ? "./." : options.graph_file);
      !found.ok()) {
    return report(err, command, found.err());
  }
  auto s = open_or_report(options, err, command);
  if (!s) return exit_invalid;
  auto seen = s->get_run(options.run_id);
  if (!seen.ok()) return report(err, command, seen.err());
  auto loaded = agent_for(*s, *seen, options);
  if (!loaded.ok()) return report(err, command, loaded.err());
  const runtime::agent_definition& agent = **loaded;
  // What this command checks under the lease, on the run as it now stands (another process may
  // just have continued it), before anything is written.
  auto kernel = open_gate(s, options.store);
  if (!kernel.ok()) return report(err, command, kernel.err());
  use_gate(*kernel);
  const auto caller = principal_for(options.run.tenant, options.run.user);
  bool complete = false;
  value inputs;
  runtime::run_opening opening;
  opening.admit = [&](const store::run_record& run) -> result<void> {
    if (run.tenant != caller.tenant) {
      // One tenant never drives another's runs (the run still acts for whoever started it).
      return make_error(kernel::kernel_errc::denied, "run " + run.run_id + " belongs to another tenant");
    }
    if (run.status == "cancelled") {
      return make_error(
          core_errc::invalid_argument,
          "run " + run.run_id + " was cancelled: nothing continues it (choir runs fork starts anew from it)");
    }
    if (run.next_action.empty()) {
      complete = true;
      return make_error(core_errc::invalid_argument, "run " + run.run_id + " is complete: it waits for nothing");
    }
    if (delivering_input && run.status != "waiting") {
      return make_error(core_errc::invalid_argument, "run " + run.run_id + " is not waiting for input (it is " +
                                                         run.status + ", next " + run.next_action +
                                                         "); use choir runs resume");
    }
    if (run.graph_version != agent.version) {
      if (options.graph_file.empty()) {
        return make_error(core_errc::invalid_argument, "run " + run.run_id + " moved to graph " + run.graph_version +
                                                           " meanwhile; run the command again");
      }
      if (run.pinned) {
        return make_error(store::store_errc::invalid_argument,
                          "run " + run.run_id + " is pinned to graph version " + run.graph_version + "; " +
                              options.graph_file + " is version " + agent.version + ". Resume it without --graph");
      }
    }
    CHOIR_TRY(inputs, checked_inputs(agent, options.run.inputs));
    if (options.run.inputs.empty() && !run.last_sequence) {
      // Killed before its first step committed: that step gets the inputs the run started with.
      value started = value::parse(run.start_inputs, nullptr, /*allow_exceptions=*/false);
      if (!started.is_object()) {
        return make_error(store::store_errc::corrupt, "run " + run.run_id + ": its start inputs are not a JSON object");
      }
      inputs = std::move(started);
    }
    if (auto index = agent.graph->index_of(run.next_action); delivering_input && index) {
      const auto& spec = agent.graph->nodes()[*index].act->spec();
      std::string needs;
      for (const auto& in : spec.inputs) {
        if (in.required && !inputs.contains(in.name)) needs += (needs.empty() ? "" : ", ") + in.name;
      }
      if (spec.awaits_input && !needs.empty()) {
        return make_error(core_errc::invalid_argument,
                          "run " + run.run_id + " waits at " + run.next_action + " for: " + needs);
      }
    }
    return {};
  };
  auto app = runtime::open_run(*s, options.run_id, agent,
                               runtime::run_hosting{.lease_ttl_ms = lease_ttl_ms, .gate = *kernel}, &opening);
  if (!opening.taken_over_from.empty() && !options.json) {
    out << "took over run " << seen->run_id << " from " << opening.taken_over_from << ", which is gone\n";
  }
  if (complete && !delivering_input) {
    out << "run " << seen->run_id << " is complete: nothing to resume\n";
    return exit_ok;
  }
  if (!app.ok()) return report(err, command, app.err());
  if (!opening.moved_from.empty() && !options.json) {
    out << "run " << seen->run_id << " moves from graph " << opening.moved_from << " to " << agent.version << "\n";
  }
  if (auto running = s->set_status(options.run_id, "running"); !running.ok()) {
    (void)s->release_lease(options.run_id);
    return report(err, command, running.err());
  }
  return drive(**app, agent.name, options.run, inputs, s.get(), out, err, command);
}

/// Parses 90s, 45m, 12h, 30d into milliseconds.
result<std::int64_t> parse_age(const std::string& text) {
  std::size_t used = 0;
  long long n = -1;
  try {
    n = std::stoll(text, &used);
  } catch (const std::exception&) {
    n = -1;
  }
  const std::string unit = text.substr(used);
  std::int64_t scale = 0;
  if (unit == "s") scale = 1000;
  if (unit == "m") scale = 60'000;
  if (unit == "h") scale = 3'600'000;
  if (unit == "d") scale = 86'400'000;
  if (n < 0 || scale == 0 || n > std::numeric_limits<std::int64_t>::max() / scale) {
    return make_error(core_errc::invalid_argument,
                      "'" + text + "' is not an age: use a whole number and s, m, h or d (as in 30d)");
  }
  return static_cast<std::int64_t>(n) * scale;
}

}  // namespace

int runs_resume(const runs_options& options, std::ostream& out, std::ostream& err) {
  return continue_run(options, out, err, "choir runs resume", /*delivering_input=*/false);
}

int runs_input(const runs_options& options, std::ostream& out, std::ostream& err) {
  return continue_run(options, out, err, "choir runs input", /*delivering_input=*/true);
}

int runs_replay(const runs_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir runs replay";
  if (auto found = search_agents(options.run.agents, "./."); !found.ok()) return report(err, command, found.err());
  auto s = open_or_report(options, err, command);
  if (!s) return exit_invalid;
  auto run = s->get_run(options.run_id);
  if (!run.ok()) return report(err, command, run.err());
  const std::int64_t start = run->parent_step.value_or(-1);
  auto st = s->state_at(run->run_id, start);
  if (!st.ok()) return report(err, command, st.err());
  graph::state state = std::move(st).value();
  /// Per graph version the run's steps were taken under: its agent, and a builder over its graph.
  struct replay_graph {
    std::shared_ptr<const runtime::agent_definition> agent;
    graph::application_builder builder;
  };
  std::map<std::string, replay_graph> graphs;
  std::int64_t replayed = 0;
  auto diverged = [&](const store::step_entry& e, const std::string& field, const value& recorded, const value& now) {
    if (options.json) {
      out << dump_json(value{{"run_id", run->run_id},
                             {"identical", false},
                             {"replayed", replayed},
                             {"sequence_id", e.sequence_id},
                             {"action", e.action},
                             {"field", field},
                             {"recorded", recorded},
                             {"replayed_value", now}})
          << "\n";
    } else {
      out << "run " << run->run_id << " diverges at step " << e.sequence_id << " (" << e.action << "): " << field
          << " was " << shorten_json(recorded) << ", replay gives " << shorten_json(now) << "\n";
    }
    return exit_step_failed;
  };
  for (std::int64_t from = start + 1;;) {
    auto page = s->steps(run->run_id, from, 1000);
    if (!page.ok()) return report(err, command, page.err());
    if (page->empty()) break;
    for (const auto& e : *page) {
      auto found = graphs.find(e.graph_version);
      if (found == graphs.end()) {
        auto stored = s->get_graph(e.graph_version);
        if (!stored.ok()) return report(err, command, stored.err());
        auto agent = runtime::load_agent(stored->source, "stored graph " + e.graph_version, default_registry());
        if (!agent.ok()) return report(err, command, agent.err());
        graph::application_builder builder = (*agent)->doc.builder;
        builder.with_identifiers(run->run_id, run->partition_key);
        found = graphs.emplace(e.graph_version, replay_graph{std::move(agent).value(), std::move(builder)}).first;
      }
      replay_graph& replaying = found->second;
      replaying.builder.with_position(e.action, state, static_cast<std::uint64_t>(e.sequence_id));
      auto app = replaying.builder.build(replaying.agent->graph);
      if (!app.ok()) return report(err, command, app.err());
      auto stepped = (*app)->step(e.inputs.is_object() ? e.inputs : value::object());
      if (!stepped.ok()) return diverged(e, "outcome", value(e.status), value(stepped.err().message));
      const graph::step_record& r = **stepped;
      const std::string status = r.status == graph::step_status::failed ? "failed" : "completed";
      if (status != e.status) return diverged(e, "status", value(e.status), value(status));
      if (r.delta.to_json() != e.delta) return diverged(e, "delta", e.delta, r.delta.to_json());
      if (r.result != e.result) return diverged(e, "result", e.result, r.result);
      if (r.next_action != e.next_action) return diverged(e, "next action", value(e.next_action), value(r.next_action));
      if (r.failure && e.error.is_object() && e.error.value("message", std::string()) != r.failure->message) {
        return diverged(e, "error", e.error["message"], value(r.failure->message));
      }
      auto delta = graph::state_delta::from_json(e.delta);
      if (!delta.ok()) return report(err, command, delta.err());
      auto next = state.apply(*delta);
      if (!next.ok()) return report(err, command, next.err());
      state = std::move(next).value();
      ++replayed;
      from = e.sequence_id + 1;
    }
  }
  if (options.json) {
    out << dump_json(value{{"run_id", run->run_id}, {"identical", true}, {"replayed", replayed}}) << "\n";
  } else {
    out << "replayed " << replayed << (replayed == 1 ? " step" : " steps") << " of run " << run->run_id
        << ": identical to the record\n";
  }
  return exit_ok;
}

int runs_prune(const runs_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir runs prune";
  store::retention_policy policy;
  if (!options.older_than.empty()) {
    auto age = parse_age(options.older_than);
    if (!age.ok()) return report(err, command, age.err());
    policy.older_than_ms = *age;
  }
  policy.keep_last = options.keep_last;
  policy.partition = options.partition;
  auto s = open_or_report(options, err, command);
  if (!s) return exit_invalid;
  auto pruned = s->prune(policy);
  if (!pruned.ok()) return report(err, command, pruned.err());
  if (options.json) {
    out << dump_json(value{{"runs", pruned->runs},
                           {"steps", pruned->steps},
                           {"snapshots", pruned->snapshots},
                           {"effects", pruned->effects}})
        << "\n";
  } else {
    out << "pruned " << pruned->runs << (pruned->runs == 1 ? " run" : " runs") << " (" << pruned->steps << " steps, "
        << pruned->snapshots << " snapshots, " << pruned->effects << " effects)\n";
  }
  return exit_ok;
}

int runs_fork(const runs_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir runs fork";
  auto store = open_or_report(options, err, command);
  if (!store) return exit_invalid;
  auto parent = store->get_run(options.run_id);
  if (!parent.ok()) return report(err, command, parent.err());
  auto forked = runtime::fork_run(*store, parent->run_id, options.at);
  if (!forked.ok()) {
    if (forked.err().code == store::store_errc::step_not_found) {
      err << command << ": " << forked.err().message << "\n";
      return exit_invalid;
    }
    return report(err, command, forked.err());
  }
  const auto& fork = *forked;
  if (options.json) {
    out << dump_json(fork.to_json()) << "\n";
  } else {
    out << "forked " << parent->run_id << " at step " << fork.parent_step.value_or(-1) << " into " << fork.run_id
        << " (next: " << (fork.next_action.empty() ? "-" : fork.next_action)
        << "); continue it with: choir runs resume " << fork.run_id << "\n";
  }
  return exit_ok;
}

}  // namespace choir::cli
