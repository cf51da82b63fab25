#pragma once
/// Error codes of choir/graph.
#include <system_error>

#include "choir/core/result.hpp"

namespace choir::graph {

enum class graph_errc {
  invalid_state = 1,       ///< a state document is not a JSON object, or a delta is malformed
  type_mismatch,           ///< a state operation met a value of the wrong type (append to a number…)
  undeclared_read,         ///< an action read a key it does not declare in `reads`
  undeclared_write,        ///< an action wrote a key it does not declare in `writes`
  missing_input,           ///< a required runtime input was not given
  invalid_graph,           ///< the builder or the YAML describes a graph that cannot run
  expression_syntax,       ///< an expression does not parse
  expression_unknown_key,  ///< an expression names a key no action writes and no state provides
  expression_type,         ///< an expression met values of the wrong type when evaluated
  expression_eval,         ///< an expression failed when evaluated (division by zero, overflow…)
  action_failed,           ///< an action returned an error or threw
  invalid_document,        ///< a YAML document is malformed or has a wrong field
  no_next_action,          ///< `step` was called on an application with nothing left to run
  suspended,               ///< an action waits for something outside the run (a person's consent):
                           ///< its step commits nothing and runs again when the run continues
};

[[nodiscard]] const std::error_category& graph_category() noexcept;
[[nodiscard]] std::error_code make_error_code(graph_errc e) noexcept;

}  // namespace choir::graph

template <>
struct std::is_error_code_enum<choir::graph::graph_errc> : std::true_type {};
