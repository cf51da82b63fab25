#include "choir/runtime/gate.hpp"

#include <algorithm>

#include "choir/core/id.hpp"
#include "choir/graph/errors.hpp"
#include "choir/runtime/agent_run.hpp"

namespace choir::runtime {
namespace {

/// An audit entry about `call`, with whom and which agent it is for when the run is admitted.
kernel::audit_event event_about(std::string kind, const gated_call& call, const std::optional<admitted_run>& run) {
  kernel::audit_event event{.kind = std::move(kind), .run_id = call.run_id};
  event.step = call.step;
  event.capability = call.capability;
  event.argument = call.argument;
  if (run) {
    event.tenant = run->who.tenant;
    event.user = run->who.user;
    event.agent = run->agent;
  }
  return event;
}

}  // namespace

gate::gate(std::shared_ptr<store::event_store> store, std::shared_ptr<kernel::audit_log> audit,
           std::shared_ptr<const kernel::policy> policy, gate_options options)
    : store_(std::move(store)),
      options_(options),
      admission_(options_.node),
      audit_(std::move(audit)),
      policy_(std::move(policy)) {}

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
  kernel::audit_event event{
      .kind = "admission", .tenant = who.tenant, .user = who.user, .agent = agent.name, .run_id = std::string(run_id)};
  std::string refusal;
  if (!agent.contract) {
    refusal = "agent " + agent.name +
              " has no contract (an agent file holds a kind: AgentContract document "
              "before its graph; see docs/agent-contract.md)";
  } else if (who.tenant.empty() || who.user.empty()) {
    refusal = "agent " + agent.name + " was started for no one (a run needs a tenant and a user)";
  } else if (policy == nullptr || !policy->has_user(who.tenant, who.user)) {
    refusal = "agent " + agent.name + " is not admitted: '" + who.user + "' is not a user of tenant '" + who.tenant +
              "'" + (policy == nullptr ? " (no policy is loaded)" : "");
  } else if (const auto decided = policy->admit(*agent.contract, who.tenant, who.user); !decided.allowed) {
    refusal = decided.reason;
  } else if (const auto reserved = admission_.reserve(run_id, *agent.contract, *agent.graph); !reserved.allowed) {
    refusal = reserved.reason;
  }
  event.decision = refusal.empty() ? "allow" : "deny";
  event.reason = refusal;
  if (agent.contract) {
    event.details = {{"contract", agent.contract->to_json()}, {"graph_version", agent.version}};
  }
  // Audited before it takes effect: an admission the log does not hold did not happen.
  if (auto logged = audit_->append(event); !logged.ok()) {
    if (refusal.empty()) admission_.release(run_id);
    return std::move(logged).err();
  }
  if (!refusal.empty()) return make_error(kernel::kernel_errc::not_admitted, refusal);
  // A run admitted again (after a restart) has spent what its journal's model calls used.
  auto spend = std::make_shared<run_spend>();
  if (auto journal = store_->effects(run_id); journal.ok()) {
    for (const auto& e : *journal) {
      if (e.kind.rfind("model:", 0) != 0 || e.status != "succeeded" || !e.outcome.is_object()) continue;
      const value& usage = e.outcome.contains("usage") ? e.outcome["usage"] : value();
      if (usage.is_object()) {
        spend->tokens += usage.value("input_tokens", std::int64_t{0}) + usage.value("output_tokens", std::int64_t{0});
      }
      if (e.outcome.contains("cost_usd") && e.outcome["cost_usd"].is_number())
        spend->cost_usd += e.outcome["cost_usd"].get<double>();
    }
  }
  std::lock_guard lock(mutex_);
  runs_[std::string(run_id)] = admitted_run{who, agent.name, agent.contract, std::move(spend)};
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
  admission_.release(run_id);
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
  kernel::audit_event event = event_about("call", call, run);
  std::string refusal;
  if (!run) {
    refusal = "run " + call.run_id + " is not admitted";
  } else {
    const auto& caps = run->contract->capabilities;
    const auto asked =
        std::find_if(caps.begin(), caps.end(), [&](const kernel::capability& c) { return c.name == call.capability; });
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
  if (refusal.empty() && run) {
    const auto& needs = run->contract->consent_for;
    if (std::find(needs.begin(), needs.end(), call.capability) != needs.end()) {
      auto consented = consent(call, *run, event);
      if (!consented.ok() && consented.err().code == graph::graph_errc::suspended) return consented;
      if (!consented.ok()) refusal = consented.err().message;
    }
  }
  event.decision = refusal.empty() ? "allow" : "deny";
  event.reason = refusal;
  CHOIR_CHECK(audit_->append(event));
  if (!refusal.empty()) return make_error(kernel::kernel_errc::denied, refusal);
  return {};
}

result<void> gate::consent(const gated_call& call, const admitted_run& run, kernel::audit_event& event) {
  std::string key = call.key;
  if (key.empty()) {
    key = call.run_id + "/" + (call.step ? std::to_string(*call.step) : std::string("-")) + "/" + call.capability +
          "/" + call.argument;
  }
  const std::int64_t now = options_.time->unix_ms();
  CHOIR_TRY(auto found, store_->get_consent(key));
  if (found && found->key != key) found.reset();  // an id that happens to equal the key: not ours
  if (!found) {
    store::consent_record request;
    request.id = new_id().to_string().substr(24);  // 12 hex digits: short enough to type
    request.key = key;
    request.tenant = run.who.tenant;
    request.user = run.who.user;
    request.agent = run.agent;
    request.run_id = call.run_id;
    request.step = call.step;
    request.capability = call.capability;
    request.argument = call.argument;
    request.arguments = kernel::redact(call.arguments, run.contract->log_fields);
    request.created_ms = now;
    request.expires_ms = now + options_.consent_ttl.count();
    CHOIR_TRY(auto raised, store_->raise_consent(request));
    kernel::audit_event asked = event;
    asked.kind = "consent.request";
    asked.details = {{"consent", raised.id}, {"expires_ms", raised.expires_ms}, {"arguments", raised.arguments}};
    CHOIR_CHECK(audit_->append(asked));
    found = std::move(raised);
  }
  if (found->status == "pending" && now >= found->expires_ms) {
    auto expired = store_->answer_consent(found->id, "expired", "", "not answered before it expired");
    if (expired.ok()) {
      kernel::audit_event gone = event;
      gone.kind = "consent.answer";
      gone.decision = "deny";
      gone.reason = "expired unanswered";
      gone.details = {{"consent", found->id}};
      CHOIR_CHECK(audit_->append(gone));
      found = std::move(expired).value();
    } else {
      CHOIR_TRY(found, store_->get_consent(found->id));  // answered meanwhile
    }
  }
  event.details["consent"] = found->id;
  if (found->status == "pending") {
    return make_error(graph::graph_errc::suspended, "waiting for consent to " + call.capability +
                                                        (call.argument.empty() ? "" : "(" + call.argument + ")") +
                                                        ": request " + found->id);
  }
  if (found->status == "approved") {
    event.details["approved_by"] = found->answered_by;
    return {};
  }
  return make_error(kernel::kernel_errc::denied, "consent request " + found->id + " was " + found->status +
                                                     (found->answered_by.empty() ? "" : " by " + found->answered_by) +
                                                     (found->reason.empty() ? "" : ": " + found->reason));
}

result<store::effect_result> gate::perform(const gated_call& call, const gated_effect& effect,
                                           const std::function<result<value>()>& run) {
  CHOIR_CHECK(check(call));
  return run_effect(call, effect, run);
}

result<store::effect_result> gate::run_effect(const gated_call& call, const gated_effect& effect,
                                              const std::function<result<value>()>& run) {
  if (call.key.empty()) return make_error(core_errc::invalid_argument, "an effect needs an idempotency key");
  bool ran = false;
  auto outcome = store::perform_effect(*store_,
                                       {.key = call.key,
                                        .run_id = call.run_id,
                                        .sequence_id = call.step.value_or(0),
                                        .kind = effect.kind,
                                        .request = effect.request,
                                        .idempotent = effect.idempotent,
                                        .record_failure = effect.record_failure},
                                       [&]() {
                                         ran = true;
                                         return run();
                                       });
  if (ran || !outcome.ok()) {
    kernel::audit_event event = event_about("effect", call, admitted(call.run_id));
    event.decision = outcome.ok() ? "ok" : "failed";
    if (!outcome.ok()) event.reason = outcome.err().message;
    event.details = {{"key", call.key}, {"kind", effect.kind}};
    if (outcome.ok()) event.details["source"] = outcome->source == store::effect_source::rerun ? "rerun" : "ran";
    if (outcome.ok() && outcome->outcome.is_object() && outcome->outcome.value("is_error", false)) {
      event.decision = "failed";
      event.reason = outcome->outcome.value("message", std::string());
    }
    CHOIR_CHECK(audit_->append(event));
  }
  return outcome;
}

result<model_grant> gate::check_model(const gated_call& call, std::int64_t estimated_tokens) {
  const auto run = admitted(call.run_id);
  kernel::audit_event event = event_about("call", call, run);
  event.capability = "model.call";
  event.details = {{"estimated_tokens", estimated_tokens}};
  std::string refusal;
  model_grant grant;
  if (!run) {
    refusal = "run " + call.run_id + " is not admitted";
  } else {
    const auto& contract = *run->contract;
    const auto& allowed = contract.models_allowed;
    const std::string alias = call.argument.empty() && !allowed.empty() ? allowed.front() : call.argument;
    event.argument = alias;
    std::int64_t tokens = 0;
    double cost = 0;
    if (run->spend) {
      std::lock_guard lock(run->spend->mutex);
      tokens = run->spend->tokens;
      cost = run->spend->cost_usd;
    }
    if (allowed.empty()) {
      refusal = "agent " + run->agent + "'s contract allows no model (modelPolicy.allow is empty)";
    } else if (std::find(allowed.begin(), allowed.end(), alias) == allowed.end()) {
      refusal = "agent " + run->agent + "'s contract does not allow the model '" + alias +
                "' (modelPolicy.allow: " + value(allowed).dump() + ")";
    } else if (contract.max_context_tokens && estimated_tokens > *contract.max_context_tokens) {
      refusal = "the request is about " + std::to_string(estimated_tokens) +
                " tokens, over the contract's modelPolicy.max_context_tokens of " +
                std::to_string(*contract.max_context_tokens);
    } else if (contract.max_tokens_per_run && tokens >= *contract.max_tokens_per_run) {
      refusal = "the run has used " + std::to_string(tokens) + " tokens, its budget (max_tokens_per_run) of " +
                std::to_string(*contract.max_tokens_per_run);
    } else if (contract.max_cost_usd_per_run && cost >= *contract.max_cost_usd_per_run) {
      refusal = "the run has spent $" + std::to_string(cost) + ", its budget (max_cost_usd_per_run) of $" +
                std::to_string(*contract.max_cost_usd_per_run);
    } else {
      grant.aliases.push_back(alias);
      for (const auto& a : allowed) {
        if (a != alias) grant.aliases.push_back(a);
      }
      grant.max_answer_tokens = contract.max_tokens_per_turn;
      if (contract.max_tokens_per_run) {
        const std::int64_t left = *contract.max_tokens_per_run - tokens;
        grant.max_answer_tokens = std::min(grant.max_answer_tokens.value_or(left), left);
      }
    }
    event.details["spent_tokens"] = tokens;
  }
  event.decision = refusal.empty() ? "allow" : "deny";
  event.reason = refusal;
  CHOIR_CHECK(audit_->append(event));
  if (!refusal.empty()) return make_error(kernel::kernel_errc::denied, refusal);
  return grant;
}

void gate::charge(std::string_view run_id, std::int64_t tokens, double cost_usd) {
  const auto run = admitted(run_id);
  if (!run || !run->spend) return;
  std::lock_guard lock(run->spend->mutex);
  run->spend->tokens += tokens;
  run->spend->cost_usd += cost_usd;
}

std::pair<std::int64_t, double> gate::spent(std::string_view run_id) const {
  const auto run = admitted(run_id);
  if (!run || !run->spend) return {0, 0.0};
  std::lock_guard lock(run->spend->mutex);
  return {run->spend->tokens, run->spend->cost_usd};
}

result<void> gate::authorize(const principal& who, std::string_view capability, std::string_view argument,
                             value details) {
  kernel::audit_event event{.kind = std::string(capability), .tenant = who.tenant, .user = who.user};
  event.capability = capability;
  event.argument = argument;
  event.details = std::move(details);
  const auto policy = current_policy();
  std::string refusal;
  if (policy == nullptr) {
    refusal = "no policy is in force";
  } else if (auto may = policy->decide(who.tenant, who.user, capability, argument); !may.allowed) {
    refusal = may.reason;
  }
  event.decision = refusal.empty() ? "allow" : "deny";
  event.reason = refusal;
  CHOIR_CHECK(audit_->append(event));  // before it takes effect
  if (!refusal.empty()) return make_error(kernel::kernel_errc::denied, refusal);
  return {};
}

result<store::consent_record> gate::answer(std::string_view id, bool approve, const principal& who,
                                           std::string_view reason) {
  CHOIR_TRY(auto found, store_->get_consent(id));
  // Another tenant's request is answered exactly like a missing one: its existence is not told.
  if (!found || found->id != id || found->tenant != who.tenant) {
    return make_error(store::store_errc::invalid_argument, "no consent request " + std::string(id));
  }
  kernel::audit_event event{
      .kind = "consent.answer", .tenant = who.tenant, .user = who.user, .agent = found->agent, .run_id = found->run_id};
  event.step = found->step;
  event.capability = found->capability;
  event.argument = found->argument;
  event.details = {{"consent", found->id}, {"answer", approve ? "approve" : "deny"}, {"reason", std::string(reason)}};
  const auto policy = current_policy();
  std::string refusal;
  if (policy == nullptr) {
    refusal = "no policy is in force";
  } else if (auto may = policy->decide(who.tenant, who.user, "consent.answer", found->capability); !may.allowed) {
    refusal = may.reason;
  } else if (found->status == "pending" && options_.time->unix_ms() >= found->expires_ms) {
    (void)store_->answer_consent(found->id, "expired", "", "not answered before it expired");
    refusal = "consent request " + found->id + " expired unanswered";
  }
  event.decision = refusal.empty() ? (approve ? "allow" : "deny") : "deny";
  event.reason = refusal;
  if (!refusal.empty()) {
    CHOIR_CHECK(audit_->append(event));
    return make_error(kernel::kernel_errc::denied, refusal);
  }
  CHOIR_CHECK(audit_->append(event));  // before it takes effect
  return store_->answer_consent(found->id, approve ? "approved" : "denied", who.tenant + "/" + who.user, reason);
}

}  // namespace choir::runtime
