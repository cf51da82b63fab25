#include "apps/choir/run_command.hpp"

#include <fmt/core.h>

#include <fstream>
#include <ostream>
#include <sstream>

#include "choir/core/id.hpp"
#include "choir/graph/application.hpp"

namespace choir::cli {
namespace {

std::string shorten(std::string text, std::size_t limit = 96) {
  if (text.size() <= limit) return text;
  text.resize(limit - 1);
  return text + "…";
}

std::string describe_change(const graph::state_op& op) {
  switch (op.op) {
    case graph::state_op::kind::set: return op.key + " = " + shorten(dump_json(op.operand));
    case graph::state_op::kind::append: return op.key + " += [" + shorten(dump_json(op.operand)) + "]";
    case graph::state_op::kind::extend: return op.key + " += " + shorten(dump_json(op.operand));
    case graph::state_op::kind::increment: return op.key + " += " + dump_json(op.operand);
    case graph::state_op::kind::remove: return "removed " + op.key;
  }
  return {};
}

void print_step(std::ostream& out, const graph::step_record& step) {
  std::string line = fmt::format("{:>4}  {:<14}", step.sequence_id, step.action);
  if (step.status == graph::step_status::failed) {
    line += "FAILED";
    if (step.attempts > 1) line += fmt::format(" after {} attempts", step.attempts);
    line += ": " + (step.failure ? step.failure->message : std::string("unknown error"));
    if (!step.delta.empty()) line += "  (" + describe_change(step.delta.ops().front()) + ")";
  } else if (step.delta.empty()) {
    line += "(no change)";
  } else {
    std::string changes;
    for (const auto& op : step.delta.ops()) changes += (changes.empty() ? "" : ", ") + describe_change(op);
    line += changes;
  }
  out << line << "\n";
}

}  // namespace

graph::action_registry default_registry() { return graph::action_registry::with_builtins(); }

result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(core_errc::io_error, path + ": cannot open the file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return make_error(core_errc::io_error, path + ": read failed");
  return buffer.str();
}

result<value> parse_inputs(const std::vector<std::string>& pairs) {
  value inputs = value::object();
  for (const auto& pair : pairs) {
    const auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) {
      return make_error(core_errc::invalid_argument, "input '" + pair + "' is not of the form key=value");
    }
    const std::string key = pair.substr(0, eq);
    const std::string text = pair.substr(eq + 1);
    value parsed = value::parse(text, nullptr, /*allow_exceptions=*/false);
    inputs[key] = parsed.is_discarded() ? value(text) : std::move(parsed);
  }
  return inputs;
}

int run_command(const run_options& options, std::ostream& out, std::ostream& err) {
  auto text = read_file(options.file);
  if (!text.ok()) {
    err << "choir run: " << text.err().message << "\n";
    return exit_invalid;
  }
  const auto registry = default_registry();
  auto doc = graph::load_graph(*text, options.file, registry);
  if (!doc.ok()) {
    err << "choir run: " << doc.err().message << "\n";
    return exit_invalid;
  }
  auto inputs = parse_inputs(options.inputs);
  if (!inputs.ok()) {
    err << "choir run: " << inputs.err().message << "\n";
    return exit_invalid;
  }
  auto g = doc->builder.build_graph();
  if (!g.ok()) {
    err << "choir run: " << g.err().message << "\n";
    return exit_invalid;
  }
  const auto declared = (*g)->declared_inputs();
  for (const auto& [key, _] : inputs->items()) {
    if (std::find(declared.begin(), declared.end(), key) == declared.end()) {
      std::string known;
      for (const auto& d : declared) known += (known.empty() ? "" : ", ") + d;
      err << "choir run: no action of '" << doc->name << "' takes the input '" << key << "'"
          << (known.empty() ? std::string(" (it takes none)") : " (inputs: " + known + ")") << "\n";
      return exit_invalid;
    }
  }
  doc->builder.with_identifiers(new_id().to_string());
  auto app = doc->builder.build(*g);
  if (!app.ok()) {
    err << "choir run: " << app.err().message << "\n";
    return exit_invalid;
  }

  graph::run_options run;
  run.halt_after = options.halt_after;
  run.halt_before = options.halt_before;
  if (options.max_steps > 0) run.max_steps = options.max_steps;

  if (!options.json) {
    out << "run " << (*app)->identity().app_id << " of " << doc->name << " (graph " << (*app)->identity().graph_version
        << ")\n";
  }
  auto range = (*app)->iterate(run, *inputs);
  for (const auto& step : range) {
    if (options.json) {
      out << dump_json(step.to_json()) << "\n";
    } else {
      print_step(out, step);
    }
  }
  if (range.engine_error()) {
    err << "choir run: " << range.engine_error()->message << "\n";
    return exit_invalid;
  }
  const auto& outcome = range.outcome();
  const value final_state = (*app)->current_state().to_json();
  if (options.json) {
    value summary = {{"outcome", std::string(graph::to_string(outcome.reason))},
                     {"steps", outcome.steps},
                     {"app_id", (*app)->identity().app_id},
                     {"next", (*app)->has_next_action() ? value((*app)->next_action()) : value()},
                     {"state", final_state}};
    if (outcome.failure) summary["error"] = outcome.failure->message;
    out << dump_json(summary) << "\n";
  } else {
    std::string why;
    switch (outcome.reason) {
      case graph::halt_reason::completed: why = "completed"; break;
      case graph::halt_reason::halted_after: why = "halted after " + outcome.last_step->action; break;
      case graph::halt_reason::halted_before: why = "halted before " + (*app)->next_action(); break;
      case graph::halt_reason::max_steps: why = "stopped at --max-steps"; break;
      case graph::halt_reason::failed: why = "failed at " + outcome.last_step->action; break;
    }
    out << why << " after " << outcome.steps << (outcome.steps == 1 ? " step" : " steps")
        << "; state: " << shorten(dump_json(final_state), 400) << "\n";
  }
  switch (outcome.reason) {
    case graph::halt_reason::failed: return exit_step_failed;
    case graph::halt_reason::max_steps: return exit_max_steps;
    default: return exit_ok;
  }
}

}  // namespace choir::cli
