#pragma once
/// YAML documents as JSON values with the source position of every node.
///
/// Every YAML format of ChoirOS (graphs, contracts, policies, model configuration) is read through
/// `parse_yaml`, so all of them share one set of limits and one error style:
/// `file:line:column: message`. Scalars follow the YAML 1.2 core schema (`42` an integer, `1.5` a
/// float, `true`/`false`, `null`/`~`/empty; anything quoted is a string). Positions are looked up by
/// dotted path (`actions.increment.update.count`, list items by index: `transitions.2.when`).
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"

namespace choir {

/// Bounds on what `parse_yaml` accepts; each exceeded bound is a clear error, never a hang or a
/// blow-up (aliases are counted as the nodes they expand to).
struct yaml_limits {
  std::size_t max_bytes = 4u << 20;
  std::size_t max_nodes = 1'000'000;
  std::size_t max_depth = 256;
  std::size_t max_documents = 64;
};

/// One parsed document.
class yaml_document {
 public:
  [[nodiscard]] const value& root() const noexcept { return root_; }
  /// `file:line:column` of the node at `path`, or of its nearest enclosing node that exists.
  [[nodiscard]] std::string locate(std::string_view path) const;
  /// The keys of the mapping at `path` in the order they appear in the file (empty if none).
  [[nodiscard]] const std::vector<std::string>& keys_in_order(std::string_view path) const;

 private:
  friend class yaml_builder;
  struct position {
    int line = 0;
    int column = 0;
  };
  value root_;
  std::string file_;
  std::unordered_map<std::string, position> positions_;
  std::unordered_map<std::string, std::vector<std::string>> key_order_;
};

/// Parses every document of a YAML stream. Fails with `core_errc::parse_error` and a message
/// `file:line:column: …` for malformed YAML, text that is not UTF-8, a mapping key that is not a
/// scalar, a duplicate key, an unknown alias, or a bound of `limits` exceeded.
[[nodiscard]] result<std::vector<yaml_document>> parse_yaml(std::string_view text, std::string_view file,
                                                            const yaml_limits& limits = {});

}  // namespace choir
