#include "apps/choir/mcp_command.hpp"

#include <iostream>

#include "apps/choir/kernel_commands.hpp"
#include "apps/choir/run_command.hpp"
#include "choir/mcp/server.hpp"
#include "choir/runtime/actions/services.hpp"
#include "choir/runtime/agent_run.hpp"
#include "choir/runtime/mcp_session.hpp"

namespace choir::cli {

int mcp_serve(const mcp_options& options, std::istream& in, std::ostream& out, std::ostream& err) {
  const std::string command = "choir mcp serve";
  auto fail = [&](const error& e) {
    err << command << ": " << e.message << "\n";
    return exit_invalid;
  };
  if (auto found = search_agents(options.agents, options.agent_file); !found.ok()) return fail(found.err());
  result<std::shared_ptr<const runtime::agent_definition>> agent = make_error(core_errc::not_found, "");
  if (options.agent_file.empty()) {
    agent = runtime::mcp_session_agent(default_registry());
  } else {
    auto read = read_file(options.agent_file);
    if (!read.ok()) return fail(read.err());
    agent = runtime::load_agent(*read, options.agent_file, default_registry());
  }
  if (!agent.ok()) return fail(agent.err());
  auto store = open_store(options.store);
  if (!store.ok()) return fail(store.err());
  auto gate = open_gate(*store, options.store);
  if (!gate.ok()) return fail(gate.err());
  use_gate(*gate);
  const auto who = principal_for(options.tenant, options.user);
  const auto& services = process_services();
  auto session = runtime::mcp_session::open(services, *agent, who, lease_ttl_ms);
  if (!session.ok()) return fail(session.err());
  auto& provider = **session;
  const auto workspace = services->workspaces / who.tenant / (*agent)->name;
  err << command << ": session run " << provider.run_id() << " as " << who.tenant << "/" << who.user << " under agent "
      << (*agent)->name << "; workspace " << workspace.string() << "\n";
  mcp::server server(provider, {.name = "choir",
                                .version = "0.1.0",
                                .instructions = "ChoirOS tools; every call is checked by the kernel and audited."});
  mcp::serve_lines(server, in, out);
  provider.close();  // the session's run is recorded completed
  return exit_ok;
}

}  // namespace choir::cli
