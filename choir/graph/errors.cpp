#include "choir/graph/errors.hpp"

#include <string>

namespace choir::graph {
namespace {

class graph_category_impl final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "choir.graph"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<graph_errc>(ev)) {
      case graph_errc::invalid_state: return "invalid state";
      case graph_errc::type_mismatch: return "type mismatch";
      case graph_errc::undeclared_read: return "undeclared read";
      case graph_errc::undeclared_write: return "undeclared write";
      case graph_errc::missing_input: return "missing input";
      case graph_errc::invalid_graph: return "invalid graph";
      case graph_errc::expression_syntax: return "expression syntax error";
      case graph_errc::expression_unknown_key: return "unknown key in expression";
      case graph_errc::expression_type: return "expression type error";
      case graph_errc::expression_eval: return "expression evaluation error";
      case graph_errc::action_failed: return "action failed";
      case graph_errc::invalid_document: return "invalid document";
      case graph_errc::no_next_action: return "no next action";
      case graph_errc::suspended: return "suspended";
    }
    return "unknown graph error";
  }
};

}  // namespace

const std::error_category& graph_category() noexcept {
  static const graph_category_impl category;
  return category;
}

std::error_code make_error_code(graph_errc e) noexcept { return {static_cast<int>(e), graph_category()}; }

}  // namespace choir::graph
