#pragma once
/// JSON Schema validation: tool input schemas, contract inputs and outputs, API bodies.
///
/// `json_schema::compile` reads a schema once (draft 2020-12, 2019-09, draft-07, -06 or -04, chosen
/// by `$schema`; 2020-12 when there is none) and `validate` checks any number of values against it,
/// reporting each violation with the JSON pointer of the value at fault. Every validation keyword of
/// those drafts is implemented, `unevaluatedProperties`/`unevaluatedItems` included, and
/// `dependencies` is read in every draft. `$ref` resolves JSON pointers into the same document
/// (`#`, `#/$defs/x`, `#/definitions/x`, percent-encoded), recursion included. What would change a
/// verdict but is not implemented fails the compile instead of being ignored: a remote `$ref`, a
/// `$ref` to an anchor, `$dynamicRef`, `$recursiveRef`, an `$id` inside a subschema, and tuple
/// keywords of the other draft (an array `items` in 2020-12, `prefixItems` before it).
/// Annotations (`format`, `title`, `description`, `default`, `examples`, `$comment`, …) and unknown
/// keywords are ignored. Patterns are ECMAScript regular expressions, searched anywhere in the
/// string, matched on code points (no back-references, no `\p{…}`).
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"

namespace choir {

/// One way a value fails its schema.
struct schema_violation {
  std::string pointer;  ///< JSON pointer to the offending value ("" is the whole value), e.g. "/items/2/name"
  std::string message;  ///< what is wrong, for a person: "expected integer, got string"

  friend bool operator==(const schema_violation&, const schema_violation&) = default;
};

/// A compiled, immutable JSON Schema. Copies share the compiled form; every member is `const` and
/// safe to call from any number of threads at once.
class json_schema {
 public:
  /// Nesting bound for schema documents and for validated values (arrays and objects).
  static constexpr std::size_t max_depth = 256;
  /// `validate` reports at most this many violations.
  static constexpr std::size_t max_violations = 64;
  /// Strings longer than this (in bytes) are not run through a `pattern`; they are a violation.
  static constexpr std::size_t max_pattern_input = std::size_t{64} * 1024;

  /// Compiles `schema` (an object or a boolean). Fails with `core_errc::invalid_argument` and a
  /// message that starts with the location in the schema at fault, such as
  /// `#/properties/age/minimum: must be a number, got string`, for: a malformed keyword, a `pattern`
  /// that is not a valid (or is a too complex) regular expression, a `$ref` that is remote, names
  /// an anchor or points at nothing, `$ref`s that loop without reaching a schema, an unknown
  /// `$schema`, a keyword not supported (see the file comment), or nesting deeper than `max_depth`.
  [[nodiscard]] static result<json_schema> compile(const value& schema);

  /// Checks `instance`; returns its violations (keyword by keyword, object members in key order),
  /// at most `max_violations`; empty means valid. Never throws on hostile input: a value nested
  /// deeper than `max_depth`, or a schema that would take too long on this value (evaluation is
  /// bounded), is one violation.
  [[nodiscard]] std::vector<schema_violation> validate(const value& instance) const;

  /// True if `instance` is valid (`validate` would return nothing); stops at the first violation.
  [[nodiscard]] bool accepts(const value& instance) const;

 private:
  struct compiled;
  explicit json_schema(std::shared_ptr<const compiled> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const compiled> impl_;
};

/// One line naming the first violations for an error message, e.g.
/// `/a: expected integer, got string; (root): missing required property "b"`, with "(and N more)"
/// when there are more than five. Empty for no violations.
[[nodiscard]] std::string describe(const std::vector<schema_violation>& violations);

}  // namespace choir
