#include "choir/runtime/mcp_session.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <optional>
#include <utility>

#include "choir/graph/application.hpp"
#include "choir/models/sampling.hpp"
#include "choir/runtime/agent_run.hpp"
#include "choir/runtime/mcp_sampling.hpp"
#include "choir/tools/tool.hpp"

namespace choir::runtime {
namespace {

constexpr const char* session_agent = R"(apiVersion: agentos/v0.2
kind: AgentContract
name: mcp-session
class: {latency: SRT}
capabilities: [fs.read, fs.list]
observability: {log_fields: [path]}
---
apiVersion: agentos/v0.2
kind: Graph
name: mcp-session
description: An MCP client's session; its tool calls are this run's effects.
entrypoint: serve
actions:
  serve: {type: pass}
)";

}  // namespace

result<std::shared_ptr<const agent_definition>> mcp_session_agent(const graph::action_registry& registry) {
  return load_agent(session_agent, "the built-in mcp-session agent", registry);
}

mcp_session::mcp_session(std::shared_ptr<const action_services> services, std::shared_ptr<const agent_definition> agent,
                         std::unique_ptr<graph::application> app, principal who)
    : services_(std::move(services)),
      who_(std::move(who)),
      registry_(runtime_registry(services_)),
      agent_(std::move(agent)),
      app_(std::move(app)) {
  run_id_ = app_->identity().app_id;
}

mcp_session::~mcp_session() { close(); }

result<std::unique_ptr<mcp_session>> mcp_session::open(std::shared_ptr<const action_services> services,
                                                       std::shared_ptr<const agent_definition> agent,
                                                       const principal& who, std::int64_t lease_ttl_ms) {
  if (!services || !services->store || !services->gate || !services->tools) {
    return make_error(core_errc::invalid_argument, "an MCP session needs a store, the kernel's gate and tools");
  }
  CHOIR_TRY(auto app, start_run(*services->store, *agent, run_start{.who = who},
                                run_hosting{.lease_ttl_ms = lease_ttl_ms, .gate = services->gate}));
  std::error_code ec;
  std::filesystem::create_directories(services->workspaces / who.tenant / agent->name, ec);
  return std::unique_ptr<mcp_session>(new mcp_session(std::move(services), std::move(agent), std::move(app), who));
}

namespace {

constexpr std::string_view agent_tool_prefix = "agent.";

mcp::tool_result text_result(std::string message, bool error) {
  return mcp::tool_result{.content = value::array({{{"type", "text"}, {"text", std::move(message)}}}),
                          .is_error = error};
}

}  // namespace

std::vector<std::shared_ptr<const agent_definition>> mcp_session::callable_agents() {
  std::vector<std::shared_ptr<const agent_definition>> out;
  if (!agent_->contract || !services_->agents) return out;
  for (const auto& c : agent_->contract->capabilities) {
    if (c.name != "agent.call") continue;
    for (const auto& name : c.allow) {
      // A pattern is no agent's name: the catalog refuses it, and it is not listed.
      if (auto found = services_->agents->find(name, registry_); found.ok()) out.push_back(*found);
    }
  }
  return out;
}

std::vector<mcp::tool_descriptor> mcp_session::tools() {
  std::vector<mcp::tool_descriptor> out;
  if (!agent_->contract) return out;
  for (const auto& spec : services_->tools->list()) {
    if (!agent_->contract->allows(spec.name)) continue;
    out.push_back({.name = spec.name,
                   .description = spec.description,
                   .input_schema = spec.input_schema,
                   .output_schema = spec.output_schema,
                   .annotations = value{{"idempotentHint", spec.idempotent}}});
  }
  for (const auto& a : callable_agents()) {
    // Its inputs are the keys of its initial state: what a calling agent's `with:` would give it.
    value properties = value::object();
    const value initial_state = a->graph->initial_state().to_json();
    for (const auto& [key, initial] : initial_state.items()) {
      properties[key] = value{{"description", "starts as " + initial.dump()}};
    }
    const std::string about = a->doc.description.empty() ? "." : ": " + a->doc.description;
    out.push_back(
        {.name = std::string(agent_tool_prefix) + a->name,
         .title = "Agent " + a->name,
         .description = "Run the agent " + a->name + about +
                        " It runs to its end as a child run of this session; the result is its final state.",
         .input_schema = {{"type", "object"}, {"properties", std::move(properties)}, {"additionalProperties", false}},
         .output_schema = {{"type", "object"}},
         .annotations = value{{"idempotentHint", false}, {"openWorldHint", true}}});
  }
  return out;
}

namespace {

/// Reports each committed step of a child run as the call's progress, and each failed one to the
/// client's log.
class reporting_hook final : public graph::hooks {
 public:
  reporting_hook(const mcp::call_context& context, std::string run_id)
      : context_(&context), run_id_(std::move(run_id)) {}
  void post_step(const graph::step_record& record, const graph::state&) override {
    ++steps_;
    const std::string step = "step " + std::to_string(record.sequence_id) + ": " + record.action;
    if (context_->progress) context_->progress(static_cast<double>(steps_), std::nullopt, step);
    if (record.status == graph::step_status::failed && context_->log) {
      context_->log("warning", "choir.runs",
                    {{"message", "run " + run_id_ + ", " + step + " failed" +
                                     (record.failure ? ": " + record.failure->message : std::string())},
                     {"run", run_id_},
                     {"step", record.sequence_id},
                     {"action", record.action}});
    }
  }

 private:
  const mcp::call_context* context_;
  std::string run_id_;
  std::uint64_t steps_ = 0;
};

/// Tells the client's log about a child run (`choir.runs`).
void log_run(const mcp::call_context& context, std::string_view level, const std::string& run_id,
             const std::string& agent, const std::string& what) {
  if (!context.log) return;
  context.log(level, "choir.runs",
              {{"message", "run " + run_id + " of " + agent + " " + what}, {"run", run_id}, {"agent", agent}});
}

/// The form a person fills in for a `human` action: its inputs, typed after their defaults.
value input_form(const graph::action_spec& action) {
  value properties = value::object();
  value required = value::array();
  for (const auto& in : action.inputs) {
    const value& d = in.default_value;
    const char* type = d.is_boolean()          ? "boolean"
                       : d.is_number_integer() ? "integer"
                       : d.is_number()         ? "number"
                                               : "string";
    value p{{"type", type}, {"title", in.name}};
    if (!d.is_null()) p["default"] = d;
    properties[in.name] = std::move(p);
    if (in.required) required.push_back(in.name);
  }
  return {{"type", "object"}, {"properties", std::move(properties)}, {"required", std::move(required)}};
}

/// Answers a child run's `mcp-client` models with the client's own model (`sampling/createMessage`).
models::sampler_registry::sampler client_model(const mcp::call_context& context) {
  return [&context](const models::chat_request& request, const models::sampling_preferences& preferences,
                    models::chat_stream* stream) -> result<models::chat_response> {
    if (!context.sample) {
      return make_error(models::model_errc::rejected,
                        "the MCP client cannot sample: it did not declare sampling, or its answer could not come "
                        "back (over HTTP, a call whose answer is JSON, not an event stream)");
    }
    CHOIR_TRY(value params, sampling_params(request, preferences, context.sample_with_tools));
    auto answer = context.sample(params);
    if (!answer.ok()) {
      if (answer.err().code == core_errc::timed_out) return std::move(answer).err();
      return make_error(models::model_errc::rejected, "the MCP client did not sample: " + answer.err().message);
    }
    CHOIR_TRY(auto response, sampling_answer(*answer));
    if (stream != nullptr) {  // MCP does not stream a sample: it is passed on whole
      if (!response.message.content.empty()) stream->text(response.message.content);
      for (const auto& call : response.message.tool_calls) stream->tool_call_ready(call);
    }
    return response;
  };
}

}  // namespace

mcp::tool_result mcp_session::call_agent(const agent_definition& child, const value& arguments,
                                         const mcp::call_context& context) {
  const std::string child_run = run_id_ + ".mcp." + std::to_string(++calls_);
  const auto known = child.graph->initial_state().to_json();
  for (const auto& [key, v] : arguments.items()) {
    if (!known.contains(key)) {
      return text_result("invalid arguments for agent." + child.name + ": it takes no '" + key + "'", true);
    }
  }
  auto& store = *services_->store;
  auto allowed = services_->gate->check(gated_call{.key = "agent.call:" + child_run,
                                                   .run_id = run_id_,
                                                   .step = 0,
                                                   .capability = "agent.call",
                                                   .argument = child.name,
                                                   .arguments = {{"agent", child.name}, {"inputs", arguments}}});
  if (!allowed.ok()) return text_result(allowed.err().message, true);
  run_start start{.run_id = child_run, .who = who_, .parent_run = run_id_, .initial = arguments};
  run_hosting hosting{.lease_ttl_ms = services_->lease_ttl_ms, .gate = services_->gate};
  if (context.progress || context.log) hosting.hooks.push_back(std::make_shared<reporting_hook>(context, child_run));
  // While the call lasts, the child's (and its children's) `mcp-client` models are the client's.
  models::sampler_registry::attachment lent;
  if (services_->models) lent = services_->models->samplers().attach(child_run, client_model(context));
  auto app = start_run(store, child, start, hosting);
  if (!app.ok()) return text_result("agent " + child.name + " could not start: " + app.err().message, true);
  log_run(context, "info", child_run, child.name, "started");
  graph::run_options options;
  options.max_steps = 1'000'000;
  // A call the client may cancel runs one step at a time, and stops between two steps once it is.
  bool stopped = false;
  const auto run = [&](const value& inputs) -> result<graph::run_outcome> {
    if (!context.cancelled) return (*app)->run(options, inputs);
    graph::run_options one = options;
    one.max_steps = 1;
    value given = inputs;
    for (std::uint64_t steps = 0;; ++steps) {
      if (context.cancelled()) {
        stopped = true;
        return graph::run_outcome{.reason = graph::halt_reason::halted_before, .steps = steps};
      }
      auto step = (*app)->run(one, std::exchange(given, value::object()));
      if (!step.ok() || step->reason != graph::halt_reason::max_steps || steps + 1 >= *options.max_steps) return step;
    }
  };
  auto outcome = run(value::object());
  // A `human` action: the person at the client is asked, as long as they answer.
  std::string declined;
  constexpr int max_asks = 8;  // an answer that never gives what the action needs ends the asking
  for (int asked = 0; outcome.ok() && outcome->reason == graph::halt_reason::waiting_input && context.elicit;) {
    if (++asked > max_asks) {
      declined = "asked " + std::to_string(max_asks) + " times without the inputs it needs";
      break;
    }
    const auto index = child.graph->index_of((*app)->next_action());
    if (!index) break;
    const auto& action = child.graph->nodes()[*index].act->spec();
    const std::string prompt = action.config.is_object() ? action.config.value("prompt", std::string()) : "";
    auto answer = context.elicit(
        "Agent " + child.name + " asks" + (prompt.empty() ? " for input at " + action.name : ": " + prompt),
        input_form(action));
    if (!answer.ok()) {
      declined = answer.err().message;
      break;
    }
    const std::string choice = answer->value("action", std::string());
    if (choice != "accept") {
      declined = "the person chose " + (choice.empty() ? std::string("no answer") : choice);
      break;
    }
    value inputs =
        answer->contains("content") && (*answer)["content"].is_object() ? (*answer)["content"] : value::object();
    outcome = run(inputs);
  }
  if (stopped) {  // nobody reads the answer: the run is left halted, to be resumed or not
    (void)settle_run(store, child_run, "halted", services_->gate.get());
    log_run(context, "notice", child_run, child.name, "halted: the client cancelled the call");
    return text_result("run " + child_run + " of " + child.name + " halted: the call was cancelled", true);
  }
  if (!outcome.ok()) {
    (void)settle_run(store, child_run, "failed", services_->gate.get());
    log_run(context, "error", child_run, child.name, "stopped: " + outcome.err().message);
    return text_result("run " + child_run + " of " + child.name + " stopped: " + outcome.err().message, true);
  }
  const std::string status(status_after(outcome->reason));
  (void)settle_run(store, child_run, status, services_->gate.get());
  const std::string why = outcome->failure ? ": " + outcome->failure->message : std::string();
  log_run(context,
          status == "completed" ? "info"
          : status == "failed"  ? "error"
                                : "notice",
          child_run, child.name, "is " + status + why);
  switch (outcome->reason) {
    case graph::halt_reason::completed: {
      mcp::tool_result r = text_result((*app)->current_state().to_json().dump(), false);
      r.structured = (*app)->current_state().to_json();
      return r;
    }
    case graph::halt_reason::waiting_input:
      return text_result("run " + child_run + " of " + child.name + " waits for input at '" + (*app)->next_action() +
                             "'" + (declined.empty() ? "" : " (" + declined + ")") +
                             "; give it with POST /api/v1/runs/" + child_run + "/input",
                         true);
    case graph::halt_reason::suspended:
      return text_result("run " + child_run + " of " + child.name + " waits for a person's consent" + why, true);
    default: return text_result("run " + child_run + " of " + child.name + " is " + status + why, true);
  }
}

result<mcp::tool_result> mcp_session::call_tool(const std::string& name, const value& arguments) {
  return call_tool(name, arguments, mcp::call_context{});
}

result<mcp::tool_result> mcp_session::call_tool(const std::string& name, const value& arguments,
                                                const mcp::call_context& context) {
  const auto text = text_result;
  if (closed_) return text("the session has ended", true);
  if (name.compare(0, agent_tool_prefix.size(), agent_tool_prefix) == 0) {
    const std::string agent_name = name.substr(agent_tool_prefix.size());
    for (const auto& a : callable_agents()) {
      if (a->name == agent_name) return call_agent(*a, arguments.is_object() ? arguments : value::object(), context);
    }
  }
  const std::string key = run_id_ + "/0/mcp/" + std::to_string(++calls_);
  auto outcome = runtime::call_tool(*services_, run_id_, 0, key, name, arguments);
  if (!outcome.ok()) {  // refused by the kernel, or the journal failed
    if (context.log) {
      context.log("warning", "choir.kernel",
                  {{"message", name + " refused: " + outcome.err().message}, {"tool", name}, {"run", run_id_}});
    }
    return text(outcome.err().message, true);
  }
  if (!outcome->ok) return text(outcome->message, true);
  mcp::tool_result r = text(dump_json(outcome->result), false);
  if (outcome->result.is_object()) r.structured = outcome->result;
  return r;
}

// ---- resources and prompts ----------------------------------------------------------------------

namespace {

constexpr std::string_view runs_scheme = "choir://runs/";
constexpr std::size_t listed_runs = 100;     // resources/list: the newest runs
constexpr std::size_t scanned_runs = 1'000;  // completions: the tenant's newest runs
constexpr std::size_t listed_steps = 1'000;  // steps in a run's resource

/// A run resource's URI taken apart: `choir://runs/ID`, `…/state`, `…/steps/N`.
struct run_uri {
  std::string run_id;
  enum class part { run, state, step } what = part::run;
  std::int64_t sequence_id = 0;
};

std::optional<run_uri> parse_run_uri(const std::string& uri) {
  if (uri.compare(0, runs_scheme.size(), runs_scheme) != 0) return std::nullopt;
  const std::string rest = uri.substr(runs_scheme.size());
  run_uri out;
  const auto slash = rest.find('/');
  out.run_id = rest.substr(0, slash);
  if (out.run_id.empty()) return std::nullopt;
  if (slash == std::string::npos) return out;
  const std::string tail = rest.substr(slash + 1);
  if (tail == "state") {
    out.what = run_uri::part::state;
    return out;
  }
  constexpr std::string_view steps = "steps/";
  if (tail.compare(0, steps.size(), steps) != 0) return std::nullopt;
  const std::string number = tail.substr(steps.size());
  if (number.empty() || number.size() > 18 ||
      !std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  out.what = run_uri::part::step;
  out.sequence_id = std::stoll(number);
  return out;
}

std::string run_uri_of(const std::string& run_id) { return std::string(runs_scheme) + run_id; }

mcp::resource_content json_content(std::string uri, const value& v) {
  return {.uri = std::move(uri), .mime_type = "application/json", .text = v.dump(2)};
}

}  // namespace

result<store::run_record> mcp_session::tenant_run(const std::string& run_id) {
  auto run = services_->store->get_run(run_id);
  if (!run.ok() || run->tenant != who_.tenant) return make_error(core_errc::not_found, "no run " + run_id);
  return run;
}

std::vector<store::run_record> mcp_session::tenant_runs(std::size_t limit) {
  auto runs = services_->store->list_runs(limit, std::nullopt, {.tenant = who_.tenant});
  return runs.ok() ? std::move(runs).value() : std::vector<store::run_record>{};
}

std::vector<mcp::resource_descriptor> mcp_session::resources() {
  std::vector<mcp::resource_descriptor> out;
  for (const auto& r : tenant_runs(listed_runs)) {
    out.push_back({.uri = run_uri_of(r.run_id),
                   .name = r.run_id,
                   .title = r.agent + " (" + r.status + ")",
                   .description = "A run of " + r.agent + ", " + r.status + ", " +
                                  std::to_string(r.last_sequence ? *r.last_sequence + 1 : 0) + " steps",
                   .mime_type = "application/json"});
  }
  return out;
}

std::vector<mcp::resource_descriptor> mcp_session::resource_templates() {
  return {{.uri = "choir://runs/{run_id}",
           .name = "run",
           .title = "A run",
           .description = "A run of an agent: its record (agent, status, parent, position) and its steps",
           .mime_type = "application/json"},
          {.uri = "choir://runs/{run_id}/state",
           .name = "run-state",
           .title = "A run's state",
           .description = "The state of a run after its last committed step",
           .mime_type = "application/json"},
          {.uri = "choir://runs/{run_id}/steps/{sequence_id}",
           .name = "run-step",
           .title = "A step of a run",
           .description = "One committed step: its action, inputs, result, changes, error, and the state after it",
           .mime_type = "application/json"}};
}

result<std::vector<mcp::resource_content>> mcp_session::read_resource(const std::string& uri) {
  const auto parsed = parse_run_uri(uri);
  if (!parsed) return make_error(core_errc::not_found, uri + " is not a ChoirOS resource (choir://runs/…)");
  CHOIR_TRY(store::run_record run, tenant_run(parsed->run_id));
  auto& s = *services_->store;
  switch (parsed->what) {
    case run_uri::part::run: {
      CHOIR_TRY(auto steps, s.steps(run.run_id, 0, listed_steps));
      value list = value::array();
      for (const auto& st : steps) {
        value step{{"sequence_id", st.sequence_id},
                   {"action", st.action},
                   {"status", st.status},
                   {"uri", uri + "/steps/" + std::to_string(st.sequence_id)}};
        if (!st.error.is_null()) step["error"] = st.error;
        list.push_back(std::move(step));
      }
      value out{{"run", run.to_json()}, {"steps", std::move(list)}};
      if (steps.size() == listed_steps) out["steps_truncated"] = true;
      return std::vector{json_content(uri, out)};
    }
    case run_uri::part::state: {
      CHOIR_TRY(graph::state state, s.state_at(run.run_id, run.position()));
      return std::vector{json_content(
          uri, value{{"run_id", run.run_id}, {"sequence_id", run.position()}, {"state", state.to_json()}})};
    }
    case run_uri::part::step: {
      CHOIR_TRY(auto steps, s.steps(run.run_id, parsed->sequence_id, 1));
      if (steps.empty() || steps.front().sequence_id != parsed->sequence_id) {
        return make_error(core_errc::not_found,
                          "run " + run.run_id + " has no step " + std::to_string(parsed->sequence_id));
      }
      value out = steps.front().to_json();
      CHOIR_TRY(graph::state after, s.state_at(run.run_id, parsed->sequence_id));
      out["state_after"] = after.to_json();
      return std::vector{json_content(uri, out)};
    }
  }
  return make_error(core_errc::not_found, uri);
}

namespace {

/// What makes a run's resource change: its last step and its status.
std::string signature_of(const store::run_record& run) {
  return std::to_string(run.last_sequence.value_or(-1)) + "/" + run.status;
}

}  // namespace

result<void> mcp_session::subscribe(const std::string& uri, std::function<void()> updated) {
  const auto parsed = parse_run_uri(uri);
  if (!parsed) return make_error(core_errc::not_found, uri + " is not a ChoirOS resource (choir://runs/…)");
  CHOIR_TRY(store::run_record run, tenant_run(parsed->run_id));
  std::lock_guard lock(watch_mutex_);
  if (closed_ || watching_stopped_) return make_error(core_errc::invalid_argument, "the session has ended");
  subscriptions_[uri] = subscription{.run_id = run.run_id, .seen = signature_of(run), .updated = std::move(updated)};
  if (!watcher_.joinable()) watcher_ = std::thread([this] { watch(); });
  return {};
}

void mcp_session::unsubscribe(const std::string& uri) {
  std::lock_guard lock(watch_mutex_);
  subscriptions_.erase(uri);
}

void mcp_session::watch() {
  constexpr std::chrono::milliseconds every{250};
  std::unique_lock lock(watch_mutex_);
  while (!watching_stopped_) {
    watch_wake_.wait_for(lock, every, [this] { return watching_stopped_; });
    if (watching_stopped_) break;
    for (auto& [uri, sub] : subscriptions_) {
      auto run = services_->store->get_run(sub.run_id);
      if (!run.ok()) continue;
      std::string now = signature_of(*run);
      if (now == sub.seen) continue;
      sub.seen = std::move(now);
      sub.updated();  // under the lock: once `unsubscribe` returns, it is not called again
    }
  }
}

std::vector<mcp::prompt_descriptor> mcp_session::prompts() {
  const mcp::prompt_argument run{.name = "run_id", .description = "The run (choir://runs/{run_id})", .required = true};
  return {{.name = "explain_run",
           .title = "Explain a run",
           .description = "Explain what a ChoirOS run did, step by step, from its record",
           .arguments = {run}},
          {.name = "diagnose_run",
           .title = "Diagnose a run",
           .description = "Find why a ChoirOS run failed or stopped, from its record and its last step",
           .arguments = {run}}};
}

result<mcp::prompt_result> mcp_session::get_prompt(const std::string& name, const value& arguments) {
  const std::string run_id = arguments.value("run_id", std::string());
  CHOIR_TRY(store::run_record run, tenant_run(run_id));
  CHOIR_TRY(auto record, read_resource(run_uri_of(run.run_id)));
  mcp::prompt_result out;
  if (name == "explain_run") {
    out.description = "Explain run " + run.run_id;
    out.messages.push_back({.text = "Explain what this ChoirOS run of the agent '" + run.agent +
                                    "' did, step by step: which actions ran, what each changed in the state, and "
                                    "where the run stands now (" +
                                    run.status + "). Its record follows."});
  } else {
    out.description = "Diagnose run " + run.run_id;
    out.messages.push_back({.text = "This ChoirOS run of the agent '" + run.agent + "' is " + run.status +
                                    ". Find why it failed or stopped, from its steps and their errors, and say what "
                                    "to change. Its record and its last step follow."});
  }
  out.messages.push_back({.resource = record.front()});
  if (name == "diagnose_run" && run.last_sequence) {
    CHOIR_TRY(auto last, read_resource(run_uri_of(run.run_id) + "/steps/" + std::to_string(*run.last_sequence)));
    out.messages.push_back({.resource = last.front()});
  }
  return out;
}

mcp::server_provider::completion mcp_session::complete(const value& ref, const std::string& argument,
                                                       const std::string& prefix, const value& known) {
  completion out;
  const std::string type = ref.value("type", std::string());
  const std::string target = type == "ref/prompt" ? ref.value("name", std::string()) : ref.value("uri", std::string());
  if (target.empty()) return out;
  if (argument == "run_id") {
    for (const auto& r : tenant_runs(scanned_runs)) {
      if (r.run_id.compare(0, prefix.size(), prefix) != 0) continue;
      ++out.total;
      if (out.values.size() < 100) out.values.push_back(r.run_id);
    }
  } else if (argument == "sequence_id" && known.contains("run_id") && known["run_id"].is_string()) {
    auto run = tenant_run(known["run_id"].get<std::string>());
    if (!run.ok() || !run->last_sequence) return out;
    auto steps = services_->store->steps(run->run_id, 0, listed_steps);
    if (!steps.ok()) return out;
    for (const auto& st : *steps) {
      const std::string n = std::to_string(st.sequence_id);
      if (n.compare(0, prefix.size(), prefix) != 0) continue;
      ++out.total;
      if (out.values.size() < 100) out.values.push_back(n);
    }
  }
  return out;
}

void mcp_session::close() {
  {
    std::lock_guard lock(watch_mutex_);
    watching_stopped_ = true;
    subscriptions_.clear();
  }
  watch_wake_.notify_all();
  if (watcher_.joinable() && watcher_.get_id() != std::this_thread::get_id()) watcher_.join();
  if (closed_.exchange(true)) return;
  (void)settle_run(*services_->store, run_id_, "completed", services_->gate.get());
}

}  // namespace choir::runtime
