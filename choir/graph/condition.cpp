#include "choir/graph/condition.hpp"

#include <algorithm>
#include <variant>

#include "choir/graph/errors.hpp"
#include "choir/graph/expression.hpp"

namespace choir::graph::detail {

struct condition_node {
  enum class kind { always, when, expr, predicate, negate, all, any };
  kind type = kind::always;
  value equals;                                                 // when
  std::optional<expression> compiled;                           // expr
  std::optional<error> compile_failure;                         // expr that did not compile
  std::string source;                                           // expr source or predicate description
  std::function<bool(const state&)> fn;                         // predicate
  std::vector<std::string> fn_keys;                             // predicate
  std::vector<std::shared_ptr<const condition_node>> children;  // negate, all, any
};

}  // namespace choir::graph::detail

namespace choir::graph {

using detail::condition_node;

namespace {

std::shared_ptr<condition_node> make_node(condition_node::kind k) {
  auto node = std::make_shared<condition_node>();
  node->type = k;
  return node;
}

result<bool> evaluate_node(const condition_node& node, const state& s) {
  switch (node.type) {
    case condition_node::kind::always: return true;
    case condition_node::kind::when:
      for (const auto& [key, expected] : node.equals.items()) {
        const value* actual = s.get_if(key);
        if (actual == nullptr) {
          return make_error(graph_errc::expression_unknown_key,
                            "condition when(" + key + "=…) reads '" + key + "', which is not in state");
        }
        if (*actual != expected) return false;
      }
      return true;
    case condition_node::kind::expr:
      if (!node.compiled) return node.compile_failure.value_or(error{});
      return node.compiled->test(state_scope(s));
    case condition_node::kind::predicate:
      for (const auto& key : node.fn_keys) {
        if (!s.contains(key)) {
          return make_error(graph_errc::expression_unknown_key,
                            "condition '" + node.source + "' reads '" + key + "', which is not in state");
        }
      }
      return node.fn(s);
    case condition_node::kind::negate: {
      CHOIR_TRY(bool inner, evaluate_node(*node.children[0], s));
      return !inner;
    }
    case condition_node::kind::all:
      for (const auto& child : node.children) {
        CHOIR_TRY(bool v, evaluate_node(*child, s));
        if (!v) return false;
      }
      return true;
    case condition_node::kind::any:
      for (const auto& child : node.children) {
        CHOIR_TRY(bool v, evaluate_node(*child, s));
        if (v) return true;
      }
      return false;
  }
  return false;
}

void collect_keys(const condition_node& node, std::vector<std::string>& out) {
  switch (node.type) {
    case condition_node::kind::always: break;
    case condition_node::kind::when:
      for (const auto& [key, _] : node.equals.items()) out.push_back(key);
      break;
    case condition_node::kind::expr:
      if (node.compiled) out.insert(out.end(), node.compiled->names().begin(), node.compiled->names().end());
      break;
    case condition_node::kind::predicate: out.insert(out.end(), node.fn_keys.begin(), node.fn_keys.end()); break;
    case condition_node::kind::negate:
    case condition_node::kind::all:
    case condition_node::kind::any:
      for (const auto& child : node.children) collect_keys(*child, out);
      break;
  }
}

std::string describe_node(const condition_node& node, bool nested) {
  auto wrap = [nested](std::string s) { return nested ? "(" + s + ")" : s; };
  switch (node.type) {
    case condition_node::kind::always: return "default";
    case condition_node::kind::when: {
      std::string out;
      for (const auto& [key, v] : node.equals.items()) {
        if (!out.empty()) out += " and ";
        out += key + " == " + dump_json(v);
      }
      return node.equals.size() > 1 ? wrap(out) : out;
    }
    case condition_node::kind::expr: return nested ? "(" + node.source + ")" : node.source;
    case condition_node::kind::predicate: return node.source;
    case condition_node::kind::negate: return "not " + describe_node(*node.children[0], true);
    case condition_node::kind::all:
    case condition_node::kind::any: {
      std::string out;
      for (const auto& child : node.children) {
        if (!out.empty()) out += node.type == condition_node::kind::all ? " and " : " or ";
        out += describe_node(*child, true);
      }
      return wrap(out);
    }
  }
  return {};
}

std::optional<error> first_error(const condition_node& node) {
  if (node.compile_failure) return node.compile_failure;
  for (const auto& child : node.children) {
    if (auto e = first_error(*child)) return e;
  }
  return std::nullopt;
}

}  // namespace

condition condition::always() {
  static const auto node = make_node(condition_node::kind::always);
  return condition(node);
}

condition condition::when(value equals) {
  auto node = make_node(condition_node::kind::when);
  if (!equals.is_object()) {
    node->compile_failure = make_error(graph_errc::invalid_graph, "when(…) needs an object of key = value pairs");
    equals = value::object();
  }
  node->equals = std::move(equals);
  return condition(std::move(node));
}

condition condition::expr(std::string_view source) {
  auto node = make_node(condition_node::kind::expr);
  node->source = std::string(source);
  auto compiled = expression::compile(source);
  if (compiled.ok()) {
    node->compiled = std::move(compiled).value();
  } else {
    node->compile_failure = std::move(compiled).err();
  }
  return condition(std::move(node));
}

condition condition::predicate(std::function<bool(const state&)> fn, std::vector<std::string> keys,
                               std::string description) {
  auto node = make_node(condition_node::kind::predicate);
  node->fn = std::move(fn);
  node->fn_keys = std::move(keys);
  node->source = std::move(description);
  return condition(std::move(node));
}

condition condition::operator!() const {
  auto node = make_node(condition_node::kind::negate);
  node->children.push_back(node_);
  return condition(std::move(node));
}

condition operator&&(const condition& a, const condition& b) {
  auto node = make_node(condition_node::kind::all);
  node->children = {a.node_, b.node_};
  return condition(std::move(node));
}

condition operator||(const condition& a, const condition& b) {
  auto node = make_node(condition_node::kind::any);
  node->children = {a.node_, b.node_};
  return condition(std::move(node));
}

result<bool> condition::evaluate(const state& s) const { return evaluate_node(*node_, s); }

std::vector<std::string> condition::keys() const {
  std::vector<std::string> out;
  collect_keys(*node_, out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string condition::describe() const { return describe_node(*node_, false); }
bool condition::is_default() const { return node_->type == condition_node::kind::always; }
std::optional<error> condition::compile_error() const { return first_error(*node_); }

}  // namespace choir::graph
