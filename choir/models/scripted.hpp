#pragma once
/// The scripted model: a deterministic offline provider driven by rules in YAML, the embedded
/// default so that every agent runs with no network and every test is repeatable. A rule matches
/// on the conversation and answers with text, tool calls or both, streamed token by token. The
/// `kind: ScriptedModel` format is in docs/models.md:
///
///     kind: ScriptedModel
///     rules:
///       - when: {user_contains: note, turn: 0}
///         tool_calls: [{name: fs.write, arguments: {path: note.txt, content: "{{user}}"}}]
///       - when: {last_role: tool}
///         reply: "Saved: {{tool_result}}"
///       - reply: "You said: {{user}}"
#include <memory>
#include <string_view>

#include "choir/models/gateway.hpp"

namespace choir::models {

class scripted_model;

/// Loads the rules of a `kind: ScriptedModel` document. `where` names it in errors, which are
/// `core_errc::invalid_argument` (or `parse_error` for YAML text) with the field at fault.
[[nodiscard]] result<std::shared_ptr<provider>> scripted_from_json(const value& document, std::string_view where);
[[nodiscard]] result<std::shared_ptr<provider>> scripted_from_yaml(std::string_view text, std::string_view file);

}  // namespace choir::models
