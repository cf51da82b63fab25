#pragma once
/// The expression language of conditions and `set` actions: small, safe and side-effect free.
/// Its grammar and semantics are documented in docs/expressions.md.
///
/// An expression is parsed and compiled once (`expression::compile`) and evaluated many times
/// against a scope; evaluation never re-parses, never loops, allocates only for values it builds
/// (strings, lists) and is bounded by the size of the expression.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/graph/errors.hpp"
#include "choir/graph/state.hpp"

namespace choir::graph {

/// Where an expression finds the names it reads.
class expr_scope {
 public:
  virtual ~expr_scope() = default;
  /// What `name` is bound to, or an empty reference if nothing is.
  [[nodiscard]] virtual value_ref find(std::string_view name) const = 0;
};

/// A scope in which every key of a state is visible.
class state_scope final : public expr_scope {
 public:
  explicit state_scope(const state& s) : state_(&s) {}
  [[nodiscard]] value_ref find(std::string_view name) const override { return state_->find(name); }

 private:
  const state* state_;
};

namespace detail {
struct expr_node;
}

class expression {
 public:
  /// Parses and compiles `source`. Fails with `graph_errc::expression_syntax` and a message that
  /// gives the 1-based column and what was expected (e.g. "column 7: expected ')'").
  [[nodiscard]] static result<expression> compile(std::string_view source);

  /// The source text it was compiled from.
  [[nodiscard]] const std::string& source() const noexcept { return source_; }
  /// The root names it reads (the first identifier of each path), sorted and unique. Builders use
  /// them to reject unknown keys before anything runs.
  [[nodiscard]] const std::vector<std::string>& names() const noexcept { return names_; }

  /// Evaluates against `scope`. Fails with `expression_unknown_key` for a name the scope does not
  /// bind, `expression_type` for operands of the wrong type, `expression_eval` for division by
  /// zero, integer overflow, an index out of range and similar. Thread-safe (const).
  [[nodiscard]] result<value> evaluate(const expr_scope& scope) const;
  /// Evaluates and requires a boolean result (`expression_type` otherwise).
  [[nodiscard]] result<bool> test(const expr_scope& scope) const;

 private:
  std::string source_;
  std::vector<std::string> names_;
  std::shared_ptr<const detail::expr_node> root_;
};

}  // namespace choir::graph
