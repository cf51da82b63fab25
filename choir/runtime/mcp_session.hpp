#pragma once
/// An MCP client's session with ChoirOS (`choir mcp serve` over stdio, `/mcp` of `choir serve`
/// over Streamable HTTP) is a run: started and admitted by the kernel like any other, for the
/// person the client authenticated as, under an agent's contract (the built-in `mcp-session`
/// agent unless one is named). The session serves the tools that contract asks for; each call is
/// an effect of the run — checked, journaled and audited by the gate (`call_tool`).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "choir/mcp/server.hpp"
#include "choir/runtime/actions/services.hpp"
#include "choir/runtime/agent_catalog.hpp"

namespace choir::graph {
class application;
}

namespace choir::runtime {

/// The agent of a session that names none: it may read and list its workspace.
[[nodiscard]] result<std::shared_ptr<const agent_definition>> mcp_session_agent(const graph::action_registry& registry);

class mcp_session final : public mcp::server_provider {
 public:
  /// Starts the session's run of `agent` for `who` (admitted by `services.gate`, recorded in
  /// `services.store`), and makes its workspace. Errors: those of admission (`not_admitted`,
  /// naming the clause), of the store.
  [[nodiscard]] static result<std::unique_ptr<mcp_session>> open(std::shared_ptr<const action_services> services,
                                                                 std::shared_ptr<const agent_definition> agent,
                                                                 const principal& who, std::int64_t lease_ttl_ms);
  ~mcp_session() override;

  [[nodiscard]] const std::string& run_id() const noexcept { return run_id_; }
  [[nodiscard]] const agent_definition& agent() const noexcept { return *agent_; }

  /// The registry's tools that the contract asks for, and the agents it may call: each agent its
  /// `agent.call` capability names (a plain name, not a pattern) is the tool `agent.<name>`.
  [[nodiscard]] std::vector<mcp::tool_descriptor> tools() override;
  /// One call, as an effect of the session's run (key `<run>/0/mcp/<n>`). The kernel's refusals and
  /// the tool's failures are results with `is_error`, their reason as text. `agent.<name>` runs
  /// that agent as a child run of the session (`<run>.mcp.<n>`), checked by the gate as
  /// `agent.call` and admitted under its own contract, with the arguments over its initial state;
  /// its result is the child's final state. A child that fails, waits for input or for a consent
  /// is an `is_error` result naming its run.
  ///
  /// With a client that can be asked (stdio), an agent call reports each committed step of the child
  /// as progress, and a child waiting for input at a `human` action asks the person at the client
  /// for it (elicitation, the action's `prompt` and inputs) and goes on with the answer; declined,
  /// the call is an `is_error` result and the child stays waiting.
  [[nodiscard]] result<mcp::tool_result> call_tool(const std::string& name, const value& arguments) override;
  [[nodiscard]] result<mcp::tool_result> call_tool(const std::string& name, const value& arguments,
                                                   const mcp::call_context& context) override;

  /// Runs of the session's tenant as resources (docs/mcp.md, "Resources and prompts"):
  /// `choir://runs/{run_id}` (the run and its steps), `…/state` (its state now) and
  /// `…/steps/{sequence_id}` (one step and the state after it). Another tenant's run is not found.
  [[nodiscard]] std::vector<mcp::resource_descriptor> resources() override;
  [[nodiscard]] std::vector<mcp::resource_descriptor> resource_templates() override;
  [[nodiscard]] result<std::vector<mcp::resource_content>> read_resource(const std::string& uri) override;
  /// A run's resource (`choir://runs/{run_id}` or its `/state`) changes when a step commits or its
  /// status changes — also by another process sharing the store: the session looks every 250 ms.
  [[nodiscard]] bool can_subscribe() const override { return true; }
  [[nodiscard]] result<void> subscribe(const std::string& uri, std::function<void()> updated) override;
  void unsubscribe(const std::string& uri) override;
  /// `explain_run` and `diagnose_run`, each embedding the run's resources.
  [[nodiscard]] std::vector<mcp::prompt_descriptor> prompts() override;
  [[nodiscard]] result<mcp::prompt_result> get_prompt(const std::string& name, const value& arguments) override;
  /// Run ids (for `run_id`) and step numbers (for `sequence_id`, given `run_id`).
  [[nodiscard]] completion complete(const value& ref, const std::string& argument, const std::string& prefix,
                                    const value& known) override;

  /// Ends the session: its run is recorded `completed` (and released by the gate). Idempotent.
  void close();

 private:
  mcp_session(std::shared_ptr<const action_services> services, std::shared_ptr<const agent_definition> agent,
              std::unique_ptr<graph::application> app, principal who);
  /// The session's tenant's run, or `core_errc::not_found`.
  [[nodiscard]] result<store::run_record> tenant_run(const std::string& run_id);
  /// The newest `limit` runs of the session's tenant (none if the store cannot be read).
  [[nodiscard]] std::vector<store::run_record> tenant_runs(std::size_t limit);
  /// The agents the contract lets the session call, by name.
  [[nodiscard]] std::vector<std::shared_ptr<const agent_definition>> callable_agents();
  [[nodiscard]] mcp::tool_result call_agent(const agent_definition& agent, const value& arguments,
                                            const mcp::call_context& context);

  std::shared_ptr<const action_services> services_;
  principal who_;
  graph::action_registry registry_;  ///< for agents the catalog loads from its folders
  std::shared_ptr<const agent_definition> agent_;
  std::unique_ptr<graph::application> app_;  ///< the session's run, held (and leased) while it is open
  std::string run_id_;
  std::atomic<std::int64_t> calls_{0};
  std::atomic<bool> closed_{false};

  struct subscription {
    std::string run_id;
    std::string seen;  ///< the run's last step and status when last looked at
    std::function<void()> updated;
  };
  void watch();
  std::mutex watch_mutex_;  ///< held while a subscription's `updated` runs
  std::condition_variable watch_wake_;
  std::map<std::string, subscription> subscriptions_;
  bool watching_stopped_ = false;
  std::thread watcher_;
};

}  // namespace choir::runtime
