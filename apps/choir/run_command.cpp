#include "apps/choir/run_command.hpp"

#include <fmt/core.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <ostream>
#include <sstream>

#include <signal.h>
#include <unistd.h>

#include "apps/choir/kernel_commands.hpp"
#include "choir/core/id.hpp"
#include "choir/core/yaml.hpp"
#include "choir/graph/application.hpp"
#include "choir/models/gateway.hpp"
#include "choir/runtime/actions/map.hpp"
#include "choir/runtime/actor.hpp"
#include "choir/runtime/mcp_servers.hpp"
#include "choir/store/event_store.hpp"
#include "choir/store/synchronized.hpp"
#include "choir/tools/builtin.hpp"

namespace choir::cli {
namespace {

std::string shorten(std::string text, std::size_t limit = 96) {
  if (text.size() <= limit) return text;
  text.resize(limit - 1);
  return text + "…";
}

/// What a run waiting at a `human` action waits for: `{action, inputs, prompt}`.
value waiting_for(const graph::application& app) {
  value out = {{"action", app.next_action()}, {"inputs", value::array()}};
  if (auto index = app.graph_def().index_of(app.next_action())) {
    const auto& spec = app.graph_def().nodes()[*index].act->spec();
    for (const auto& in : spec.inputs) {
      if (in.required) out["inputs"].push_back(in.name);
    }
    if (spec.config.is_object() && spec.config.contains("prompt")) out["prompt"] = spec.config["prompt"];
  }
  return out;
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

}  // namespace

void print_step_line(std::ostream& out, std::int64_t sequence_id, const std::string& action, bool failed, int attempts,
                     const std::string& failure, const graph::state_delta& delta) {
  std::string line = fmt::format("{:>4}  {:<14}", sequence_id, action);
  if (failed) {
    line += "FAILED";
    if (attempts > 1) line += fmt::format(" after {} attempts", attempts);
    line += ": " + failure;
    if (!delta.empty()) line += "  (" + describe_change(delta.ops().front()) + ")";
  } else if (delta.empty()) {
    line += "(no change)";
  } else {
    std::string changes;
    for (const auto& op : delta.ops()) changes += (changes.empty() ? "" : ", ") + describe_change(op);
    line += changes;
  }
  out << line << "\n";
}

/// The tools of this process: the built-ins, then those of its MCP servers (added before any run starts).
const std::shared_ptr<tools::tool_registry>& process_tools();

/// What this process's steps use: worker actors, the store the command opened, models and tools.
const std::shared_ptr<runtime::action_services>& process_services() {
  static runtime::actor_system actors;
  static const auto services = [] {
    auto s = std::make_shared<runtime::action_services>();
    s->actors = &actors;
    s->lease_ttl_ms = lease_ttl_ms;
    s->agents = std::make_shared<runtime::agent_catalog>();
    s->tools = process_tools();
    return s;
  }();
  return services;
}

const std::shared_ptr<tools::tool_registry>& process_tools() {
  static const auto registry = [] {
    auto r = std::make_shared<tools::tool_registry>();
    (void)tools::add_builtin_tools(*r);  // the built-ins' schemas are fixed: this cannot fail
    return r;
  }();
  return registry;
}

namespace {

std::string& models_file() {
  static std::string file;
  return file;
}

std::string& mcp_file() {
  static std::string file;
  return file;
}

/// The MCP servers this process started; they stop with it.
std::shared_ptr<runtime::mcp_servers>& process_mcp() {
  static std::shared_ptr<runtime::mcp_servers> servers;
  return servers;
}

/// Starts the servers of a `kind: McpServers` file and adds their tools to the process's registry.
result<void> start_mcp(const std::filesystem::path& path) {
  CHOIR_TRY(std::string text, read_file(path.string()));
  CHOIR_TRY(auto docs, parse_yaml(text, path.string()));
  if (docs.size() != 1) {
    return make_error(core_errc::invalid_argument, path.string() + ": expected one kind: McpServers document");
  }
  auto configs = runtime::parse_mcp_servers(docs.front().root(), path.parent_path());
  if (!configs.ok()) return make_error(configs.err().code, path.string() + ": " + configs.err().message);
  const auto state = process_services()->workspaces.parent_path();
  auto started = runtime::mcp_servers::start(std::move(configs).value(), *process_tools(), state);
  if (!started.ok()) return make_error(started.err().code, path.string() + ": " + started.err().message);
  for (const auto& w : (*started)->warnings()) std::cerr << "warning: " << w << "\n";
  (*started)->route_sampling(process_services());
  process_mcp() = std::move(started).value();
  return {};
}

/// The gateway of a `kind: Models` file; its scripted models' rule files are beside it.
result<std::shared_ptr<const models::gateway>> load_models(const std::filesystem::path& path) {
  CHOIR_TRY(std::string text, read_file(path.string()));
  CHOIR_TRY(auto docs, parse_yaml(text, path.string()));
  if (docs.size() != 1)
    return make_error(core_errc::invalid_argument, path.string() + ": expected one kind: Models document");
  auto gateway = models::gateway::from_config(docs.front().root(), path.parent_path().string());
  if (!gateway.ok()) return make_error(gateway.err().code, path.string() + ": " + gateway.err().message);
  return std::shared_ptr<const models::gateway>(std::move(gateway).value());
}

/// With no models file anywhere: one offline model, `scripted`, that answers with what it was told.
std::shared_ptr<const models::gateway> default_models() {
  auto g = models::gateway::from_config(
      value{{"kind", "Models"},
            {"models", {{"scripted", {{"provider", "scripted"}, {"rules", value::array({{{"reply", "{{user}}"}}})}}}}}},
      ".");
  return std::move(g).value();
}

}  // namespace

void set_models_file(std::string path) { models_file() = std::move(path); }
void set_mcp_file(std::string path) { mcp_file() = std::move(path); }

std::vector<std::string> mcp_server_lines() {
  return process_mcp() ? process_mcp()->describe() : std::vector<std::string>{};
}

void stop_mcp_servers() {
  if (process_mcp()) process_mcp()->stop();
}

std::vector<std::string> served_models() {
  const auto& g = process_services()->models;
  return g ? g->aliases() : std::vector<std::string>{};
}

result<void> search_agents(const std::vector<std::string>& folders, const std::string& file) {
  std::vector<std::filesystem::path> dirs(folders.begin(), folders.end());
  if (!file.empty()) {
    const auto beside = std::filesystem::path(file).parent_path();
    dirs.push_back(beside.empty() ? std::filesystem::path(".") : beside);
  }
  for (const auto& d : dirs) process_services()->agents->search_in(d);
  // The first of: the file named on the command line, the environment's, one beside the agents.
  auto choose = [&](const std::string& given, const char* env_name, const char* beside) {
    std::filesystem::path chosen = given;
    if (chosen.empty()) {
      if (const char* env = std::getenv(env_name); env != nullptr && *env != '\0') chosen = env;
    }
    for (const auto& d : dirs) {
      if (!chosen.empty()) break;
      if (std::filesystem::exists(d / beside)) chosen = d / beside;
    }
    return chosen;
  };
  if (!process_services()->models) {
    const auto chosen = choose(models_file(), "CHOIR_MODELS", "models.yaml");
    if (chosen.empty()) {
      process_services()->models = default_models();
    } else {
      CHOIR_TRY(process_services()->models, load_models(chosen));
    }
  }
  if (!process_mcp()) {
    const auto chosen = choose(mcp_file(), "CHOIR_MCP", "mcp.yaml");
    if (!chosen.empty()) CHOIR_CHECK(start_mcp(chosen));
  }
  return {};
}

graph::action_registry default_registry() { return runtime::runtime_registry(process_services()); }

void use_gate(std::shared_ptr<runtime::gate> gate) { process_services()->gate = std::move(gate); }

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

result<value> checked_inputs(const runtime::agent_definition& agent, const std::vector<std::string>& pairs) {
  CHOIR_TRY(value inputs, parse_inputs(pairs));
  const auto declared = agent.graph->declared_inputs();
  for (const auto& [key, _] : inputs.items()) {
    if (std::find(declared.begin(), declared.end(), key) == declared.end()) {
      std::string known;
      for (const auto& d : declared) known += (known.empty() ? "" : ", ") + d;
      return make_error(core_errc::invalid_argument,
                        "no action of '" + agent.name + "' takes the input '" + key + "'" +
                            (known.empty() ? std::string(" (it takes none)") : " (inputs: " + known + ")"));
    }
  }
  return inputs;
}

result<std::shared_ptr<store::event_store>> open_store(const std::string& path) {
  store::store_options options;
  // Crash tests set CHOIR_FAULT_KILL=<point>:<n> to kill this process the n-th time a commit
  // reaches <point> (docs/event-log.md, "Fault injection").
  if (const char* spec = std::getenv("CHOIR_FAULT_KILL"); spec != nullptr) {
    const std::string text(spec);
    const auto colon = text.rfind(':');
    if (colon != std::string::npos) {
      auto point = std::make_shared<std::string>(text.substr(0, colon));
      auto remaining = std::make_shared<long>(std::atol(text.c_str() + colon + 1));
      options.fault = [point, remaining](std::string_view at) {
        if (at == *point && --*remaining <= 0) ::kill(::getpid(), SIGKILL);
      };
    }
  }
  CHOIR_TRY(auto opened, store::open_store(path.empty() ? std::string(default_store_path) : path, options));
  // Shared with the worker threads that run `map` children, which record their runs in it.
  auto shared = store::synchronized(std::move(opened));
  process_services()->store = shared;
  // Agents' workspaces live beside a SQLite store, or under .choir/ for PostgreSQL.
  const std::string where = path.empty() ? std::string(default_store_path) : path;
  const bool sqlite = where.rfind("postgres", 0) != 0;
  const char* env = std::getenv("CHOIR_WORKSPACES");
  process_services()->workspaces = env != nullptr && *env != '\0'
                                       ? std::filesystem::path(env)
                                       : (sqlite ? std::filesystem::path(where).parent_path() / "workspaces"
                                                 : std::filesystem::path(".choir/workspaces"));
  return shared;
}

int drive(graph::application& app, const std::string& name, const run_options& options, const value& inputs,
          store::event_store* store, std::ostream& out, std::ostream& err, const std::string& command) {
  graph::run_options run;
  run.halt_after = options.halt_after;
  run.halt_before = options.halt_before;
  if (options.max_steps > 0) run.max_steps = options.max_steps;

  if (!options.json) {
    out << "run " << app.identity().app_id << " of " << name << " (graph " << app.identity().graph_version << ")\n";
  }
  auto range = app.iterate(run, inputs);
  for (const auto& step : range) {
    if (options.json) {
      out << dump_json(step.to_json()) << "\n";
    } else {
      print_step_line(out, static_cast<std::int64_t>(step.sequence_id), step.action,
                      step.status == graph::step_status::failed, step.attempts,
                      step.failure ? step.failure->message : std::string(), step.delta);
    }
  }
  const std::string& run_id = app.identity().app_id;
  if (range.engine_error()) {
    err << command << ": " << range.engine_error()->message << "\n";
    if (store != nullptr) (void)runtime::settle_run(*store, run_id, "halted");
    return exit_invalid;
  }
  const auto& outcome = range.outcome();
  if (store != nullptr) {
    auto saved = runtime::settle_run(*store, run_id, runtime::status_after(outcome.reason));
    if (!saved.ok()) {
      err << command << ": the run's status could not be recorded: " << saved.err().message << "\n";
      return exit_invalid;
    }
  }
  value waiting;
  if (outcome.reason == graph::halt_reason::waiting_input) waiting = waiting_for(app);
  const value final_state = app.current_state().to_json();
  if (options.json) {
    value summary = {{"outcome", std::string(graph::to_string(outcome.reason))},
                     {"steps", outcome.steps},
                     {"app_id", app.identity().app_id},
                     {"next", app.has_next_action() ? value(app.next_action()) : value()},
                     {"state", final_state}};
    if (outcome.failure) summary["error"] = outcome.failure->message;
    if (outcome.reason == graph::halt_reason::suspended) summary["waiting_for"] = "consent";
    if (!waiting.is_null()) summary["waiting_for"] = waiting;
    out << dump_json(summary) << "\n";
  } else {
    std::string why;
    std::string answer;
    switch (outcome.reason) {
      case graph::halt_reason::completed: why = "completed"; break;
      case graph::halt_reason::halted_after: why = "halted after " + outcome.last_step->action; break;
      case graph::halt_reason::halted_before: why = "halted before " + app.next_action(); break;
      case graph::halt_reason::max_steps: why = "stopped at --max-steps"; break;
      case graph::halt_reason::failed: why = "failed at " + outcome.last_step->action; break;
      case graph::halt_reason::suspended:
        why = "waiting at " + app.next_action() + " (" + (outcome.failure ? outcome.failure->message : "") + ")";
        if (store != nullptr) answer = "answer with: choir consent list, then choir consent approve|deny ID\n";
        break;
      case graph::halt_reason::waiting_input: {
        std::string needs;
        for (const auto& in : waiting["inputs"]) needs += (needs.empty() ? "" : " ") + in.get<std::string>() + "=…";
        why = "waiting for input at " + app.next_action();
        if (waiting.contains("prompt")) why += " (" + waiting["prompt"].get<std::string>() + ")";
        if (store != nullptr) answer = "answer with: choir runs input " + run_id + " " + needs + "\n";
        break;
      }
    }
    out << why << " after " << outcome.steps << (outcome.steps == 1 ? " step" : " steps")
        << "; state: " << shorten(dump_json(final_state), 400) << "\n"
        << answer;
  }
  switch (outcome.reason) {
    case graph::halt_reason::failed: return exit_step_failed;
    case graph::halt_reason::max_steps: return exit_max_steps;
    default: return exit_ok;
  }
}

int run_command(const run_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir run";
  auto text = read_file(options.file);
  if (!text.ok()) {
    err << command << ": " << text.err().message << "\n";
    return exit_invalid;
  }
  if (auto found = search_agents(options.agents, options.file); !found.ok()) {
    err << command << ": " << found.err().message << "\n";
    return exit_invalid;
  }
  auto agent = runtime::load_agent(*text, options.file, default_registry());
  if (!agent.ok()) {
    err << command << ": " << agent.err().message << "\n";
    return exit_invalid;
  }
  auto inputs = checked_inputs(**agent, options.inputs);
  if (!inputs.ok()) {
    err << command << ": " << inputs.err().message << "\n";
    return exit_invalid;
  }
  std::shared_ptr<store::event_store> store;
  std::shared_ptr<runtime::gate> gate;
  if (!options.no_store) {
    auto opened = open_store(options.store);
    if (!opened.ok()) {
      err << command << ": " << opened.err().message << "\n";
      return exit_invalid;
    }
    store = std::move(opened).value();
    auto kernel = open_gate(store, options.store);
    if (!kernel.ok()) {
      err << command << ": " << kernel.err().message << "\n";
      return exit_invalid;
    }
    gate = std::move(kernel).value();
    use_gate(gate);
  }
  auto app = [&]() -> result<std::unique_ptr<graph::application>> {
    if (store) {
      return runtime::start_run(
          *store, **agent,
          runtime::run_start{.who = principal_for(options.tenant, options.user), .pin = options.pin, .inputs = *inputs},
          runtime::run_hosting{.lease_ttl_ms = lease_ttl_ms, .gate = gate});
    }
    graph::application_builder in_memory = (*agent)->doc.builder;
    return in_memory.with_identifiers(new_id().to_string()).build((*agent)->graph);
  }();
  if (!app.ok()) {
    err << command << ": " << app.err().message << "\n";
    if (gate && !gate->current_policy()) {
      err << command << ": no policy is stored: apply one with choir policy apply FILE "
          << "(examples/policy.yaml grants what the examples use)\n";
    }
    return exit_invalid;
  }
  return drive(**app, (*agent)->name, options, *inputs, store.get(), out, err, command);
}

}  // namespace choir::cli
