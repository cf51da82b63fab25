#pragma once
/// The gate: the one path by which an agent affects the world (ARCHITECTURE, "Rules between
/// layers"). A run is admitted once — its agent's contract against the policy, for the person it
/// acts for — and every effect it then asks for (a tool, a model, a memory access, a message to
/// another agent) is checked against the contract and the policy and audited before it runs.
/// Decisions come from the kernel; the gate owns none of their rules. Thread-safe.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "choir/core/clock.hpp"
#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/kernel/admission.hpp"
#include "choir/kernel/audit.hpp"
#include "choir/kernel/contract.hpp"
#include "choir/kernel/policy.hpp"
#include "choir/store/effects.hpp"
#include "choir/store/event_store.hpp"

namespace choir::runtime {

struct agent_definition;

/// Who a run acts for: a user of a tenant, whose grants bound what the run may do.
struct principal {
  std::string tenant;
  std::string user;
};

/// Tokens and money a run has spent on models.
struct run_spend {
  std::mutex mutex;
  std::int64_t tokens = 0;
  double cost_usd = 0;
};

/// What the gate knows of an admitted run.
struct admitted_run {
  principal who;
  std::string agent;
  std::shared_ptr<const kernel::agent_contract> contract;
  /// What its model calls have used so far (recounted from the effect journal when the run is
  /// admitted again, so a budget holds across restarts). Shared by the run and the subgraphs it adopts.
  std::shared_ptr<run_spend> spend;
};

/// One effect a run asks for.
struct gated_call {
  /// The call's identity, the same each time its step runs (a consent request is raised once per
  /// key); empty: `run/step/capability/argument`.
  std::string key;
  std::string run_id;
  std::optional<std::int64_t> step;
  std::string capability;  ///< `fs.read`, `web.fetch`, `agent.call`, `mcp.<server>.<tool>`, …
  std::string argument;    ///< what the capability's patterns are matched against (a path, a URL, an agent)
  value arguments;         ///< the call's arguments, audited as the contract's `log_fields` allow
};

/// An effect to run once `check` allows it, as the effect journal records it.
struct gated_effect {
  std::string kind;  ///< `tool:fs.write`, `model:local/8B`
  value request;     ///< what is journaled as the intent
  /// Safe to run again if the process died while it ran (see `store::effect_call`).
  bool idempotent = false;
  /// Journal a failure as final (see `store::effect_call::record_failure`).
  bool record_failure = true;
};

/// The models a run may call for one request, in the order to try them.
struct model_grant {
  std::vector<std::string> aliases;  ///< the one asked for first, then the contract's other allowed aliases
  std::optional<std::int64_t> max_answer_tokens;  ///< the contract's per-turn token budget, if any
};

struct gate_options {
  /// How long a consent request waits for an answer before it expires (and the call fails).
  std::chrono::milliseconds consent_ttl = std::chrono::hours(24 * 7);
  const clock* time = &system_clock();
  /// What admission may reserve: this machine's cores and memory unless told otherwise.
  kernel::node_resources node = kernel::node_resources::of_this_machine();
};

class gate {
 public:
  /// `store` keeps the consent requests; it must be one every thread may use (`store::synchronized`).
  gate(std::shared_ptr<store::event_store> store, std::shared_ptr<kernel::audit_log> audit,
       std::shared_ptr<const kernel::policy> policy, gate_options options = {});

  /// The policy decisions are taken under; replacing it affects every later decision.
  void set_policy(std::shared_ptr<const kernel::policy> policy);
  [[nodiscard]] std::shared_ptr<const kernel::policy> current_policy() const;
  [[nodiscard]] kernel::audit_log& audit() const { return *audit_; }
  [[nodiscard]] const kernel::admission& resources() const { return admission_; }

  /// Admission: `agent` must carry a contract, `who` must be a user of their tenant, every
  /// capability the contract asks for must be granted to them, and the resource clauses must
  /// hold (compute left on the node, the allowed models served, HRT actions schedulable:
  /// `kernel::admission`), whose reservations last until `release`. Audited, admitted or not; a
  /// refusal is `not_admitted` and names the clause. The run is then known to `check`.
  [[nodiscard]] result<void> admit(const agent_definition& agent, const principal& who, std::string_view run_id);
  /// Registers a run that belongs to an admitted one (an inline subgraph a `map` step runs): it
  /// acts for the same principal under the same contract.
  [[nodiscard]] result<void> adopt(std::string_view run_id, std::string_view parent_run);
  /// Forgets a run that ended (it is admitted again if it is opened again).
  void release(std::string_view run_id);
  [[nodiscard]] std::optional<admitted_run> admitted(std::string_view run_id) const;

  /// Checks one effect: the run is admitted, its contract asks for the capability (and the
  /// argument fits the contract's patterns), and the policy grants it to the run's principal.
  /// Audited either way, arguments redacted; a refusal is `denied` with the reason.
  ///
  /// Consent: if the contract lists the capability in `security.consent_for`, the call also needs
  /// a person's approval. The first time, a consent request is raised (and audited) and the call
  /// returns `graph_errc::suspended`: the step commits nothing and the run halts, to run the step
  /// again once the request is answered. Approved: the call is allowed. Denied, or expired
  /// unanswered: `denied`.
  [[nodiscard]] result<void> check(const gated_call& call);

  /// `check`, then the effect through the journal (`store::perform_effect`: run once; a recorded
  /// outcome is reused, never run again), then an audit entry of its outcome when it ran.
  /// `call.key` is the idempotency key and must be set. Errors: those of `check` (`denied`,
  /// `suspended`), those of the journal (`effect_outcome_unknown`, `effect_failed`), and the
  /// effect's own.
  [[nodiscard]] result<store::effect_result> perform(const gated_call& call, const gated_effect& effect,
                                                     const std::function<result<value>()>& run);
  /// `perform` without its `check`, for a call another check allowed (`check_model`).
  [[nodiscard]] result<store::effect_result> run_effect(const gated_call& call, const gated_effect& effect,
                                                        const std::function<result<value>()>& run);

  /// Checks a model call (capability `model.call`, argument the alias; empty: the contract's first
  /// allowed alias): the contract's `modelPolicy.allow` holds the alias, the request's estimated
  /// size fits `max_context_tokens`, and the run has budget left (`max_tokens_per_run`,
  /// `max_cost_usd_per_run`). Audited like `check`. Returns the aliases to try.
  [[nodiscard]] result<model_grant> check_model(const gated_call& call, std::int64_t estimated_tokens);
  /// Adds what a model call used to its run's spend (the budget `check_model` enforces).
  void charge(std::string_view run_id, std::int64_t tokens, double cost_usd);
  /// What a run has spent so far (zero if it is not admitted).
  [[nodiscard]] std::pair<std::int64_t, double> spent(std::string_view run_id) const;

  /// Decides something a person does through the API rather than a run (registering an agent
  /// file: `agent.register`, argument the agent's name): the policy must grant `capability` for
  /// `argument` to `who`. Audited either way, with `details`. A refusal is `denied` with the reason.
  [[nodiscard]] result<void> authorize(const principal& who, std::string_view capability, std::string_view argument,
                                       value details = value::object());

  /// Answers a pending consent request for `who`, who must be a user of the request's tenant
  /// holding `consent.answer` (for the requested capability). Audited. Returns the answered
  /// request; errors: `denied` (another tenant, or no grant), `store_errc::conflict` (already
  /// answered or expired), `store_errc::invalid_argument` (no such request).
  [[nodiscard]] result<store::consent_record> answer(std::string_view id, bool approve, const principal& who,
                                                     std::string_view reason);

 private:
  /// The call's consent, raising the request if there is none: ok (approved), `denied`, or
  /// `suspended`. Adds what it decided to `event`.
  result<void> consent(const gated_call& call, const admitted_run& run, kernel::audit_event& event);

  std::shared_ptr<store::event_store> store_;
  gate_options options_;
  kernel::admission admission_;
  std::shared_ptr<kernel::audit_log> audit_;
  mutable std::mutex mutex_;
  std::shared_ptr<const kernel::policy> policy_;
  std::unordered_map<std::string, admitted_run> runs_;
};

}  // namespace choir::runtime
