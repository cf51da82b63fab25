#pragma once
/// Transition conditions: `default`, `when(k=v)`, `expr("...")`, C++ predicates, and their
/// combinations with `!`, `&&` and `||`.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/graph/state.hpp"

namespace choir::graph {

namespace detail {
struct condition_node;
}

/// An immutable condition over a state. Cheap to copy (a shared pointer).
class condition {
 public:
  /// `default`: always true. A transition without a condition has it.
  [[nodiscard]] static condition always();
  /// True if every member of the object `equals` is present in state with an equal value.
  [[nodiscard]] static condition when(value equals);
  /// An expression in the language of docs/expressions.md, compiled now. A syntax error is kept
  /// and reported by `compile_error()` (and by `application_builder::build`).
  [[nodiscard]] static condition expr(std::string_view source);
  /// A C++ predicate that reads `keys`; `description` is shown in exports.
  [[nodiscard]] static condition predicate(std::function<bool(const state&)> fn, std::vector<std::string> keys,
                                           std::string description);

  [[nodiscard]] condition operator!() const;
  friend condition operator&&(const condition& a, const condition& b);
  friend condition operator||(const condition& a, const condition& b);

  /// Evaluates against `s`. Fails if a key the condition reads is absent (`expression_unknown_key`)
  /// or an expression fails.
  [[nodiscard]] result<bool> evaluate(const state& s) const;
  /// The state keys the condition reads (sorted, unique).
  [[nodiscard]] std::vector<std::string> keys() const;
  /// A readable form, e.g. `count < 10`, `default`, `not (done == true)`.
  [[nodiscard]] std::string describe() const;
  [[nodiscard]] bool is_default() const;
  /// The first compile error inside this condition, if any.
  [[nodiscard]] std::optional<error> compile_error() const;

 private:
  explicit condition(std::shared_ptr<const detail::condition_node> node) : node_(std::move(node)) {}
  std::shared_ptr<const detail::condition_node> node_;
};

}  // namespace choir::graph
