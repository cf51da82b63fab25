#include "choir/runtime/mcp_session.hpp"

#include <filesystem>

#include "choir/graph/application.hpp"
#include "choir/runtime/agent_run.hpp"
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
                         std::unique_ptr<graph::application> app)
    : services_(std::move(services)), agent_(std::move(agent)), app_(std::move(app)) {
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
  return std::unique_ptr<mcp_session>(new mcp_session(std::move(services), std::move(agent), std::move(app)));
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
  return out;
}

result<mcp::tool_result> mcp_session::call_tool(const std::string& name, const value& arguments) {
  auto text = [](std::string message, bool error) {
    return mcp::tool_result{.content = value::array({{{"type", "text"}, {"text", std::move(message)}}}),
                            .is_error = error};
  };
  if (closed_) return text("the session has ended", true);
  const std::string key = run_id_ + "/0/mcp/" + std::to_string(++calls_);
  auto outcome = runtime::call_tool(*services_, run_id_, 0, key, name, arguments);
  if (!outcome.ok()) return text(outcome.err().message, true);  // refused by the kernel, or the journal failed
  if (!outcome->ok) return text(outcome->message, true);
  mcp::tool_result r = text(dump_json(outcome->result), false);
  if (outcome->result.is_object()) r.structured = outcome->result;
  return r;
}

void mcp_session::close() {
  if (closed_.exchange(true)) return;
  (void)settle_run(*services_->store, run_id_, "completed", services_->gate.get());
}

}  // namespace choir::runtime
