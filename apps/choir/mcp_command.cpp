#include "apps/choir/mcp_command.hpp"

#include <atomic>
#include <iostream>

#include "apps/choir/kernel_commands.hpp"
#include "apps/choir/run_command.hpp"
#include "choir/mcp/server.hpp"
#include "choir/runtime/agent_run.hpp"
#include "choir/tools/tool.hpp"

namespace choir::cli {
namespace {

/// The contract an MCP session acts under when no agent is named: reading the session's workspace.
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

/// The tools a session's contract asks for, each call checked, journaled and audited by the gate
/// under the session's run.
class gated_tools final : public mcp::server_provider {
 public:
  gated_tools(std::shared_ptr<runtime::gate> gate, std::shared_ptr<const tools::tool_registry> registry,
              std::shared_ptr<const kernel::agent_contract> contract, std::string run_id,
              std::filesystem::path workspace)
      : gate_(std::move(gate)),
        registry_(std::move(registry)),
        contract_(std::move(contract)),
        run_id_(std::move(run_id)),
        workspace_(std::move(workspace)) {}

  std::vector<mcp::tool_descriptor> tools() override {
    std::vector<mcp::tool_descriptor> out;
    for (const auto& spec : registry_->list()) {
      if (!contract_->allows(spec.name)) continue;
      value annotations{{"idempotentHint", spec.idempotent}};
      out.push_back({.name = spec.name,
                     .description = spec.description,
                     .input_schema = spec.input_schema,
                     .output_schema = spec.output_schema,
                     .annotations = std::move(annotations)});
    }
    return out;
  }

  result<mcp::tool_result> call_tool(const std::string& name, const value& arguments) override {
    auto text = [](std::string message, bool error) {
      return mcp::tool_result{.content = value::array({{{"type", "text"}, {"text", std::move(message)}}}),
                              .is_error = error};
    };
    if (auto valid = registry_->validate(name, arguments); !valid.ok()) return text(valid.err().message, true);
    const auto t = registry_->find(name);
    const std::string key = run_id_ + "/0/mcp/" + std::to_string(++calls_);
    const runtime::gated_call call{.key = key,
                                   .run_id = run_id_,
                                   .step = 0,
                                   .capability = name,
                                   .argument = registry_->subject_of(name, arguments),
                                   .arguments = arguments};
    const tools::tool_context context{.workspace = workspace_, .idempotency_key = key};
    auto performed = gate_->perform(
        call,
        {.kind = "tool:" + name,
         .request = kernel::redact(arguments, contract_->log_fields),
         .idempotent = t->spec().idempotent},
        [&]() -> result<value> {
          auto answer = registry_->call(name, arguments, context);
          if (answer.ok()) return std::move(answer).value();
          return value{{"is_error", true}, {"code", answer.err().code.message()}, {"message", answer.err().message}};
        });
    if (!performed.ok()) return text(performed.err().message, true);
    const value& outcome = performed->outcome;
    if (outcome.is_object() && outcome.contains("is_error") && outcome["is_error"] == true) {
      return text(outcome.contains("message") && outcome["message"].is_string() ? outcome["message"].get<std::string>()
                                                                                : "the tool failed",
                  true);
    }
    mcp::tool_result r = text(dump_json(outcome), false);
    if (outcome.is_object()) r.structured = outcome;
    return r;
  }

 private:
  std::shared_ptr<runtime::gate> gate_;
  std::shared_ptr<const tools::tool_registry> registry_;
  std::shared_ptr<const kernel::agent_contract> contract_;
  std::string run_id_;
  std::filesystem::path workspace_;
  std::atomic<std::int64_t> calls_{0};
};

}  // namespace

int mcp_serve(const mcp_options& options, std::istream& in, std::ostream& out, std::ostream& err) {
  const std::string command = "choir mcp serve";
  auto fail = [&](const error& e) {
    err << command << ": " << e.message << "\n";
    return exit_invalid;
  };
  if (auto found = search_agents(options.agents, options.agent_file); !found.ok()) return fail(found.err());
  std::string text = session_agent;
  std::string label = "the built-in mcp-session agent";
  if (!options.agent_file.empty()) {
    auto read = read_file(options.agent_file);
    if (!read.ok()) return fail(read.err());
    text = std::move(read).value();
    label = options.agent_file;
  }
  auto agent = runtime::load_agent(text, label, default_registry());
  if (!agent.ok()) return fail(agent.err());
  auto store = open_store(options.store);
  if (!store.ok()) return fail(store.err());
  auto gate = open_gate(*store, options.store);
  if (!gate.ok()) return fail(gate.err());
  const auto who = principal_for(options.tenant, options.user);
  auto app = runtime::start_run(**store, **agent, runtime::run_start{.who = who},
                                runtime::run_hosting{.lease_ttl_ms = lease_ttl_ms, .gate = *gate});
  if (!app.ok()) return fail(app.err());
  const std::string run_id = (*app)->identity().app_id;
  const auto& services = process_services();
  const auto workspace = services->workspaces / who.tenant / (*agent)->name;
  std::error_code ec;
  std::filesystem::create_directories(workspace, ec);
  err << command << ": session run " << run_id << " as " << who.tenant << "/" << who.user << " under agent "
      << (*agent)->name << "; workspace " << workspace.string() << "\n";
  gated_tools provider(*gate, services->tools, (*agent)->contract, run_id, workspace);
  mcp::server server(provider, {.name = "choir",
                                .version = "0.1.0",
                                .instructions = "ChoirOS tools; every call is checked by the kernel and audited."});
  mcp::serve_lines(server, in, out);
  (void)runtime::settle_run(**store, run_id, "completed", gate->get());
  return exit_ok;
}

}  // namespace choir::cli
