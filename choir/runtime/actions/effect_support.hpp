#pragma once
/// Private to choir/runtime/actions: what the effectful action types share — text templates over
/// a step's scope, effect keys, the agent's workspace, and one gated tool call.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "choir/graph/expression.hpp"
#include "choir/graph/loader.hpp"
#include "choir/runtime/actions/services.hpp"

namespace choir::runtime::detail {

/// Text with `{{expression}}` holes: each is an expression of the expression language over the
/// step's inputs and reads; a string result is inserted as is, anything else as JSON.
class text_template {
 public:
  [[nodiscard]] static result<text_template> compile(std::string_view text);
  [[nodiscard]] result<std::string> render(const graph::expr_scope& scope) const;
  /// The names the holes read.
  [[nodiscard]] std::vector<std::string> names() const;
  [[nodiscard]] bool empty() const { return parts_.empty(); }

 private:
  struct part {
    std::string literal;
    std::optional<graph::expression> hole;
  };
  std::vector<part> parts_;
};

/// Where a step's effects come from: its run, step and action.
struct effect_origin {
  std::string run_id;
  std::int64_t step = 0;
  std::string action;
  /// `run/step/action/suffix…`: the idempotency key of one effect of the step.
  [[nodiscard]] std::string key(std::string_view suffix) const {
    return run_id + "/" + std::to_string(step) + "/" + action + (suffix.empty() ? "" : "/" + std::string(suffix));
  }
};

/// The step's origin, or an error if the action runs outside a run (effects need one).
[[nodiscard]] result<effect_origin> origin_of(const graph::state_view& view, const std::string& action_type);

/// The run's workspace, `<workspaces>/<tenant>/<agent>`, created if missing.
[[nodiscard]] result<std::filesystem::path> workspace_of(const action_services& services, const admitted_run& run);

/// A string field of the action's YAML: `fallback` if absent (an error if `required`), an error if
/// it is not a non-empty string.
[[nodiscard]] result<std::string> string_field(const graph::action_decl& decl, const char* field, bool required,
                                               std::string fallback = {});

/// Checks the keys an action's templates and expressions read against its declared reads (or
/// fills its reads in when it declares none); the same for what it writes.
[[nodiscard]] result<void> settle_keys(const graph::action_decl& decl, graph::action_spec& spec,
                                       const std::vector<std::string>& reads, const std::vector<std::string>& writes);

}  // namespace choir::runtime::detail
