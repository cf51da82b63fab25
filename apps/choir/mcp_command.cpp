#include "apps/choir/mcp_command.hpp"

#include <atomic>
#include <iostream>

#include "apps/choir/kernel_commands.hpp"
#include "apps/choir/run_command.hpp"
#include "choir/mcp/server.hpp"
#include "choir/runtime/actions/services.hpp"
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

/// The tools a session's contract asks for, each call an effect of the session's run: checked,
/// journaled and audited by the gate (`runtime::call_tool`).
class gated_tools final : public mcp::server_provider {
 public:
  gated_tools(std::shared_ptr<const runtime::action_services> services,
              std::shared_ptr<const kernel::agent_contract> contract, std::string run_id)
      : services_(std::move(services)), contract_(std::move(contract)), run_id_(std::move(run_id)) {}

  std::vector<mcp::tool_descriptor> tools() override {
    std::vector<mcp::tool_descriptor> out;
    for (const auto& spec : services_->tools->list()) {
      if (!contract_->allows(spec.name)) continue;
      out.push_back({.name = spec.name,
                     .description = spec.description,
                     .input_schema = spec.input_schema,
                     .output_schema = spec.output_schema,
                     .annotations = value{{"idempotentHint", spec.idempotent}}});
    }
    return out;
  }

  result<mcp::tool_result> call_tool(const std::string& name, const value& arguments) override {
    auto text = [](std::string message, bool error) {
      return mcp::tool_result{.content = value::array({{{"type", "text"}, {"text", std::move(message)}}}),
                              .is_error = error};
    };
    const std::string key = run_id_ + "/0/mcp/" + std::to_string(++calls_);
    auto outcome = runtime::call_tool(*services_, run_id_, 0, key, name, arguments);
    if (!outcome.ok()) return text(outcome.err().message, true);  // refused by the kernel, or the journal failed
    if (!outcome->ok) return text(outcome->message, true);
    mcp::tool_result r = text(dump_json(outcome->result), false);
    if (outcome->result.is_object()) r.structured = outcome->result;
    return r;
  }

 private:
  std::shared_ptr<const runtime::action_services> services_;
  std::shared_ptr<const kernel::agent_contract> contract_;
  std::string run_id_;
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
  use_gate(*gate);
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
  gated_tools provider(services, (*agent)->contract, run_id);
  mcp::server server(provider, {.name = "choir",
                                .version = "0.1.0",
                                .instructions = "ChoirOS tools; every call is checked by the kernel and audited."});
  mcp::serve_lines(server, in, out);
  (void)runtime::settle_run(**store, run_id, "completed", gate->get());
  return exit_ok;
}

}  // namespace choir::cli
