#pragma once
/// The AgentContract: what an agent may do and what it is promised, declared next to its graph
/// (`apiVersion: agentos/v0.2`, `kind: AgentContract`). The format is documented in
/// docs/agent-contract.md, with a JSON Schema in docs/agent-contract.schema.json.
///
/// `load_contract` validates every field strictly: an unknown field, a wrong type or an out-of-range
/// value is an error located as `file:line:column: field.path: message`. Fields whose service does
/// not exist yet are validated too, and listed in `contract_report::not_enforced` — never silently
/// ignored.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/graph/action.hpp"

namespace choir::kernel {

enum class kernel_errc {
  invalid_contract = 1,  ///< a contract document is malformed or has a wrong field
  no_contract,           ///< the file holds no `kind: AgentContract` document
  not_admitted,          ///< admission refused an agent (the reason names the clause)
  denied,                ///< the gate refused a call (the reason names the rule)
  no_audit_key,          ///< the audit log has entries but its key file is missing or unreadable
  audit_broken,          ///< the audit log no longer matches its head file; nothing is appended to it
};

[[nodiscard]] const std::error_category& kernel_category() noexcept;
[[nodiscard]] std::error_code make_error_code(kernel_errc e) noexcept;

/// A capability the agent asks for: a name (`fs.read`, `web.fetch`, `mcp.github.create_issue`,
/// `a2a.call`) and, optionally, patterns that narrow it (path globs, URL patterns).
struct capability {
  std::string name;
  std::vector<std::string> allow;  ///< empty: the capability without constraints
};

struct service_level {
  std::optional<std::int64_t> onset_ms;     ///< time to the first visible output of a turn
  std::optional<std::int64_t> turn_ms;      ///< time to the end of a turn
  std::optional<double> jitter_p95_pct;     ///< 0–100
  std::optional<std::int64_t> deadline_ms;  ///< HRT: every step's deadline (required for HRT)
};

/// A mode of the agent with a class of its own: the steps of its actions are scheduled, admitted
/// and measured under its latency class and service levels instead of the agent's (the copilot's
/// PARANOID checks are HRT inside an SRT agent). Written `modes: {NAME: {latency, slo, actions}}`.
struct mode_class {
  std::string name;
  graph::latency_class latency = graph::latency_class::srt;
  service_level slo;                 ///< its own levels; a level it leaves out is the agent's
  std::vector<std::string> actions;  ///< the graph's actions that run in it (each in one mode at most)
};

struct agent_contract {
  std::string name;
  graph::latency_class latency = graph::latency_class::srt;
  service_level slo;
  std::vector<mode_class> modes;
  std::vector<capability> capabilities;
  std::optional<double> cpu;  ///< cores
  std::optional<std::uint64_t> mem_bytes;
  std::optional<std::uint64_t> gpu_mem_bytes;
  std::vector<std::string> models_allowed;  ///< model aliases (`local/8B`, `cloud/70B`)
  std::optional<std::int64_t> max_context_tokens;
  std::vector<std::string> placement;
  std::string memory_namespace;
  std::optional<std::int64_t> retention_days;
  std::optional<std::int64_t> rag_top_k;
  bool rag_require_grounding = false;
  std::vector<std::string> consent_for;  ///< capabilities that need a person's approval per call
  std::vector<std::string> data_scopes;
  std::string tracing;  ///< `opentelemetry` or `none` (empty: not declared)
  std::vector<std::string> log_fields;
  std::optional<std::int64_t> max_tokens_per_turn;
  std::optional<std::int64_t> max_tokens_per_run;
  std::optional<double> max_cost_usd_per_run;

  /// Whether `name` (with an argument, for constrained capabilities) is among the capabilities.
  [[nodiscard]] bool allows(std::string_view capability_name) const;
  /// The mode `action` runs in, or null (it runs under the agent's own class).
  [[nodiscard]] const mode_class* mode_of(std::string_view action) const;
  /// The latency class and service levels a step of `action` runs under: its mode's (levels the
  /// mode leaves out are the agent's), else the agent's.
  [[nodiscard]] std::pair<graph::latency_class, service_level> class_of(std::string_view action) const;
  /// The contract as JSON, in the document's own field names.
  [[nodiscard]] value to_json() const;
};

/// A validated contract, and the fields it declares that nothing enforces yet (with the reason).
struct contract_report {
  agent_contract contract;
  std::vector<std::string> not_enforced;
};

/// Loads the one `kind: AgentContract` document of a YAML stream (an agent file holds its contract
/// and its graph). `file` names the text in errors. Errors: `core_errc::parse_error` (malformed
/// YAML), `kernel_errc::no_contract`, `kernel_errc::invalid_contract` (with the field's location).
[[nodiscard]] result<contract_report> load_contract(std::string_view text, std::string_view file);

}  // namespace choir::kernel

template <>
struct std::is_error_code_enum<choir::kernel::kernel_errc> : std::true_type {};
