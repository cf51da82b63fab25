// `choir runs list|show|state|resume|fork`: runs kept in the event store.
#include <fmt/core.h>

#include <ctime>
#include <ostream>

#include "apps/choir/run_command.hpp"
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

/// The sequence id a run's next step follows: its last step, or where it started.
std::int64_t position_of(const store::run_record& run) {
  return run.last_sequence.value_or(run.parent_step.value_or(-1));
}

/// Opens the store or prints why not.
std::unique_ptr<store::event_store> open_or_report(const runs_options& options, std::ostream& err,
                                                   const std::string& command) {
  auto opened = open_store(options.store);
  if (!opened.ok()) {
    err << command << ": " << opened.err().message << "\n";
    return nullptr;
  }
  return std::move(opened).value();
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
  out << fmt::format("{:<36}  {:<16}  {:<9}  {:>6}  {:<14}  {}\n", "RUN", "AGENT", "STATUS", "STEPS", "NEXT",
                     "CREATED (UTC)");
  for (const auto& r : *runs) {
    const std::int64_t steps = r.last_sequence ? *r.last_sequence - r.parent_step.value_or(-1) : 0;
    out << fmt::format("{:<36}  {:<16}  {:<9}  {:>6}  {:<14}  {}\n", r.run_id, r.agent, r.status, steps,
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
  if (options.json) {
    value shown = run->to_json();
    shown["steps"] = value::array();
    for (const auto& s : *steps) shown["steps"].push_back(s.to_json());
    out << dump_json(shown) << "\n";
    return exit_ok;
  }
  out << "run " << run->run_id << " of " << run->agent << " (graph " << run->graph_version << ")\n";
  out << "status " << run->status << ", next " << (run->next_action.empty() ? "-" : run->next_action) << ", created "
      << utc_time(run->created_ms) << " UTC\n";
  if (!run->parent_run.empty()) out << "forked from " << run->parent_run << " at step " << *run->parent_step << "\n";
  for (const auto& s : *steps) {
    auto delta = graph::state_delta::from_json(s.delta);
    print_step_line(out, s.sequence_id, s.action, s.status == "failed", s.attempts,
                    s.error.is_object() ? s.error.value("message", std::string()) : std::string(),
                    delta.ok() ? *delta : graph::state_delta());
  }
  return exit_ok;
}

int runs_state(const runs_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir runs state";
  auto store = open_or_report(options, err, command);
  if (!store) return exit_invalid;
  auto run = store->get_run(options.run_id);
  if (!run.ok()) return report(err, command, run.err());
  auto st = store->state_at(options.run_id, options.at.value_or(position_of(*run)));
  if (!st.ok()) return report(err, command, st.err());
  out << dump_json(st->to_json(), options.json ? -1 : 2) << "\n";
  return exit_ok;
}

int runs_resume(const runs_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir runs resume";
  auto store = open_or_report(options, err, command);
  if (!store) return exit_invalid;
  auto run = store->get_run(options.run_id);
  if (!run.ok()) return report(err, command, run.err());
  if (run->next_action.empty()) {
    out << "run " << run->run_id << " is complete: nothing to resume\n";
    return exit_ok;
  }
  auto stored = store->get_graph(run->graph_version);
  if (!stored.ok()) return report(err, command, stored.err());
  auto loaded = load_graph_text(stored->source, "stored graph " + run->graph_version);
  if (!loaded.ok()) return report(err, command, loaded.err());
  auto inputs = checked_inputs(*loaded, options.run.inputs);
  if (!inputs.ok()) return report(err, command, inputs.err());
  const std::int64_t base = position_of(*run);
  auto st = store->state_at(run->run_id, base);
  if (!st.ok()) return report(err, command, st.err());
  loaded->doc.builder.with_identifiers(run->run_id, run->partition_key)
      .with_position(run->next_action, *st, static_cast<std::uint64_t>(base + 1))
      .with_persister(std::make_shared<store::run_persister>(*store, run->run_id, run->graph_version));
  auto app = loaded->doc.builder.build(loaded->g);
  if (!app.ok()) return report(err, command, app.err());
  auto running = store->set_status(run->run_id, "running");
  if (!running.ok()) return report(err, command, running.err());
  return drive(**app, loaded->doc.name, options.run, *inputs, store.get(), out, err, command);
}

int runs_fork(const runs_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir runs fork";
  auto store = open_or_report(options, err, command);
  if (!store) return exit_invalid;
  auto parent = store->get_run(options.run_id);
  if (!parent.ok()) return report(err, command, parent.err());
  const std::int64_t at = options.at.value_or(position_of(*parent));
  auto steps = store->steps(parent->run_id, at, 1);
  if (!steps.ok()) return report(err, command, steps.err());
  if (steps->empty() || steps->front().sequence_id != at) {
    err << command << ": run " << parent->run_id << " has no step " << at << "\n";
    return exit_invalid;
  }
  auto st = store->state_at(parent->run_id, at);
  if (!st.ok()) return report(err, command, st.err());
  store::run_record fork = *parent;
  fork.run_id = new_id().to_string();
  fork.parent_run = parent->run_id;
  fork.parent_step = at;
  fork.status = "halted";
  fork.next_action = steps->front().next_action;
  fork.last_sequence.reset();
  auto created = store->create_run(fork, *st, at);
  if (!created.ok()) return report(err, command, created.err());
  if (options.json) {
    auto shown = store->get_run(fork.run_id);
    out << dump_json(shown.ok() ? shown->to_json() : fork.to_json()) << "\n";
  } else {
    out << "forked " << parent->run_id << " at step " << at << " into " << fork.run_id
        << " (next: " << (fork.next_action.empty() ? "-" : fork.next_action)
        << "); continue it with: choir runs resume " << fork.run_id << "\n";
  }
  return exit_ok;
}

}  // namespace choir::cli
