#include "choir/runtime/gate.hpp"

#include <algorithm>

#include "choir/runtime/agent_run.hpp"

namespace choir::runtime {

gate::gate(std::shared_ptr<kernel::audit_log> audit, std::shared_ptr<const kernel::policy> policy)
    : audit_(std::move(audit)), policy_(std::move(policy)) {}

void gate::set_policy(std::shared_ptr<const kernel::policy> policy) {
  std::lock_guard lock(mutex_);
  policy_ = std::move(policy);
}

std::shared_ptr<const kernel::policy> gate::current_policy() const {
  std::lock_guard lock(mutex_);
  return policy_;
}

result<void> gate::admit(const agent_definition& agent, const principal& who, std::string_view run_id) {
  const auto policy = current_policy();
  kernel::audit_event event{.kind = "admission", .tenant = who.tenant, .user = who.user, .agent = agent.name,
                            .run_id = std::string(run_id)};
  std::string refusal;
  if (!agent.contract) {
    refusal = "agent " + agent.name + " has no contract (an agent file holds a kind: AgentContract document "
              "before its graph; see docs/agent-contract.md)";
  } else if (who.tenant.empty() || who.user.empty()) {
    refusal = "agent " + agent.name + " was started for no one (a run needs a tenant and a user)";
  } else if (policy == nullptr || !policy->has_user(who.tenant, who.user)) {
    refusal = "agent " + agent.name + " is not admitted: '" + who.user + "' is not a user of tenant '" +
              who.tenant + "'" + (policy == nullptr ? " (no policy is loaded)" : "");
  } else {
    const auto decided = policy->admit(*agent.contract, who.tenant, who.user);
    if (!decided.allowed) refusal = decided.reason;
  }
  event.decision = refusal.empty() ? "allow" : "deny";
  event.reason = refusal;
  if (agent.contract) {
    event.details = {{"contract", agent.contract->to_json()}, {"graph_version", agent.version}};
  }
  // Audited before it takes effect: an admission the log does not hold did not happen.
  CHOIR_CHECK(audit_->append(event));
  if (!refusal.empty()) return make_error(kernel::kernel_errc::not_admitted, refusal);
  std::lock_guard lock(mutex_);
  runs_[std::string(run_id)] = admitted_run{who, agent.name, agent.contract};
  return {};
}

result<void> gate::adopt(std::string_view run_id, std::string_view parent_run) {
  std::lock_guard lock(mutex_);
  const auto parent = runs_.find(std::string(parent_run));
  if (parent == runs_.end()) {
    return make_error(kernel::kernel_errc::not_admitted, "run " + std::string(parent_run) + " is not admitted");
  }
  admitted_run copy = parent->second;
  runs_[std::string(run_id)] = std::move(copy);
  return {};
}

void gate::release(std::string_view run_id) {
  std::lock_guard lock(mutex_);
  runs_.erase(std::string(run_id));
}

std::optional<admitted_run> gate::admitted(std::string_view run_id) const {
  std::lock_guard lock(mutex_);
  const auto it = runs_.find(std::string(run_id));
  if (it == runs_.end()) return std::nullopt;
  return it->second;
}

result<void> gate::check(const gated_call& call) {
  const auto run = admitted(call.run_id);
  const auto policy = current_policy();
  kernel::audit_event event{.kind = "call", .run_id = call.run_id};
  event.step = call.step;
  event.capability = call.capability;
  event.argument = call.argument;
  std::string refusal;
  if (!run) {
    refusal = "run " + call.run_id + " is not admitted";
  } else {
    event.tenant = run->who.tenant;
    event.user = run->who.user;
    event.agent = run->agent;
    const auto& caps = run->contract->capabilities;
    const auto asked = std::find_if(caps.begin(), caps.end(),
                                    [&](const kernel::capability& c) { return c.name == call.capability; });
    if (asked == caps.end()) {
      refusal = "agent " + run->agent + "'s contract does not ask for " + call.capability;
    } else if (!asked->allow.empty() &&
               std::none_of(asked->allow.begin(), asked->allow.end(),
                            [&](const std::string& p) { return kernel::glob_match(p, call.argument); })) {
      refusal = "agent " + run->agent + "'s contract allows " + call.capability + " only for " +
                value(asked->allow).dump() + ", not '" + call.argument + "'";
    } else if (policy == nullptr) {
      refusal = "no policy is loaded";
    } else {
      const auto decided = policy->decide(run->who.tenant, run->who.user, call.capability, call.argument);
      if (!decided.allowed) refusal = decided.reason;
    }
    event.details = {{"arguments", kernel::redact(call.arguments, run->contract->log_fields)}};
  }
  event.decision = refusal.empty() ? "allow" : "deny";
  event.reason = refusal;
  CHOIR_CHECK(audit_->append(event));
  if (!refusal.empty()) return make_error(kernel::kernel_errc::denied, refusal);
  return {};
}

}  // namespace choir::runtime
