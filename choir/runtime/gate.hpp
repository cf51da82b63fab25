#pragma once
/// The gate: the one path by which an agent affects the world (ARCHITECTURE, "Rules between
/// layers"). A run is admitted once — its agent's contract against the policy, for the person it
/// acts for — and every effect it then asks for (a tool, a model, a memory access, a message to
/// another agent) is checked against the contract and the policy and audited before it runs.
/// Decisions come from the kernel; the gate owns none of their rules. Thread-safe.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "choir/core/clock.hpp"
#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/kernel/admission.hpp"
#include "choir/kernel/audit.hpp"
#include "choir/kernel/contract.hpp"
#include "choir/kernel/policy.hpp"
#include "choir/store/event_store.hpp"

namespace choir::runtime {

struct agent_definition;

/// Who a run acts for: a user of a tenant, whose grants bound what the run may do.
struct principal {
  std::string tenant;
  std::string user;
};

/// What the gate knows of an admitted run.
struct admitted_run {
  principal who;
  std::string agent;
  std::shared_ptr<const kernel::agent_contract> contract;
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
