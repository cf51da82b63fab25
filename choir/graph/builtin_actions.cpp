// The built-in action types that need no C++ and have no effect on the world: `set`, `pass` and
// `human`. Their YAML form is documented in docs/graph-yaml.md.
#include <algorithm>
#include <set>

#include "choir/graph/errors.hpp"
#include "choir/graph/expression.hpp"
#include "choir/graph/loader.hpp"

namespace choir::graph {

value_ref step_scope::find(std::string_view name) const {
  const value& inputs = view_.inputs();
  if (inputs.is_object()) {
    auto it = inputs.find(name);
    if (it != inputs.end()) return value_ref{&*it, nullptr};
  }
  return view_.find(name);
}

namespace {

struct set_operation {
  state_op::kind op;
  std::string key;
  std::optional<expression> expr;  // absent: `literal` is the operand
  value literal;
};

/// `set`: computes state changes from expressions over what the action reads and its inputs.
class set_action final : public action {
 public:
  set_action(action_spec spec, std::vector<set_operation> ops) : action(std::move(spec)), ops_(std::move(ops)) {}

  result<action_output> execute(const state_view& view, stream_sink& /*sink*/) override {
    action_output out;
    out.result = value::object();
    const step_scope scope(view);
    for (const auto& op : ops_) {
      value operand;
      if (op.op != state_op::kind::remove) {
        if (op.expr) {
          auto computed = op.expr->evaluate(scope);
          if (!computed.ok()) {
            return make_error(computed.err().code, "action '" + name() + "', key '" + op.key + "' (" +
                                                       op.expr->source() + "): " + computed.err().message);
          }
          operand = std::move(computed).value();
        } else {
          operand = op.literal;
        }
      }
      switch (op.op) {
        case state_op::kind::set: out.changes.set(op.key, operand); break;
        case state_op::kind::append: out.changes.append(op.key, operand); break;
        case state_op::kind::extend:
          if (!operand.is_array()) {
            return make_error(graph_errc::type_mismatch, "action '" + name() + "', extend '" + op.key +
                                                             "': the value is " + operand.type_name() + ", not a list");
          }
          out.changes.extend(op.key, operand);
          break;
        case state_op::kind::increment:
          if (!operand.is_number_integer()) {
            return make_error(graph_errc::type_mismatch, "action '" + name() + "', increment '" + op.key +
                                                             "': the amount is " + operand.type_name() +
                                                             ", not an integer");
          }
          out.changes.increment(op.key, operand.get<std::int64_t>());
          break;
        case state_op::kind::remove: out.changes.remove(op.key); break;
      }
      if (op.op != state_op::kind::remove) out.result[op.key] = std::move(operand);
    }
    return out;
  }

 private:
  std::vector<set_operation> ops_;
};

class pass_action final : public action {
 public:
  using action::action;
  result<action_output> execute(const state_view& /*view*/, stream_sink& /*sink*/) override { return action_output{}; }
};

/// `human`: the run waits before it until a person gives its required inputs; it copies each input
/// that is in `writes` into the state key of the same name, and its result is the inputs received.
class human_action final : public action {
 public:
  using action::action;
  result<action_output> execute(const state_view& view, stream_sink& /*sink*/) override {
    action_output out;
    out.result = value::object();
    for (const auto& in : spec().inputs) {
      const value& given = view.input(in.name);
      if (spec().writes_key(in.name)) out.changes.set(in.name, given);
      out.result[in.name] = given;
    }
    return out;
  }
};

result<std::shared_ptr<action>> make_set(const action_decl& decl) {
  action_spec spec = decl.spec();
  const value& config = decl.config();
  std::vector<set_operation> ops;
  std::set<std::string> names;
  std::set<std::string> written;
  static const std::pair<const char*, state_op::kind> op_fields[] = {{"update", state_op::kind::set},
                                                                     {"append", state_op::kind::append},
                                                                     {"extend", state_op::kind::extend},
                                                                     {"increment", state_op::kind::increment}};
  for (const auto& [field, kind] : op_fields) {
    if (!config.contains(field)) continue;
    const value& entries = config[field];
    if (!entries.is_object()) return decl.fail(field, "expected a mapping of key: expression");
    for (const auto& [key, source] : entries.items()) {
      const std::string path = std::string(field) + "." + key;
      set_operation op{kind, key, std::nullopt, value()};
      if (source.is_string()) {
        auto compiled = expression::compile(source.get<std::string>());
        if (!compiled.ok()) return decl.fail(path, compiled.err().message);
        names.insert(compiled->names().begin(), compiled->names().end());
        op.expr = std::move(compiled).value();
      } else {
        op.literal = source;  // numbers, booleans, null, lists and mappings are taken as they are
      }
      if (!written.insert(key).second) return decl.fail(path, "the key '" + key + "' is changed twice");
      ops.push_back(std::move(op));
    }
  }
  if (config.contains("remove")) {
    const value& keys = config["remove"];
    if (!keys.is_array()) return decl.fail("remove", "expected a list of keys");
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (!keys[i].is_string()) return decl.fail("remove." + std::to_string(i), "expected a key name");
      const std::string key = keys[i].get<std::string>();
      if (!written.insert(key).second)
        return decl.fail("remove." + std::to_string(i), "the key '" + key + "' is changed twice");
      ops.push_back({state_op::kind::remove, key, std::nullopt, value()});
    }
  }
  if (ops.empty()) return decl.fail("", "a set action needs at least one of update, append, extend, increment, remove");

  std::set<std::string> inputs;
  for (const auto& in : spec.inputs) inputs.insert(in.name);
  if (decl.declared_reads()) {
    for (const auto& n : names) {
      if (!inputs.count(n) && !spec.reads_key(n)) {
        return decl.fail("reads", "an expression reads '" + n + "', which is neither in reads nor an input");
      }
    }
    for (const auto& r : spec.reads) {
      if (inputs.count(r)) return decl.fail("reads", "'" + r + "' is both a state key it reads and an input");
    }
  } else {
    for (const auto& n : names) {
      if (!inputs.count(n)) spec.reads.push_back(n);
    }
  }
  if (decl.declared_writes()) {
    for (const auto& key : written) {
      if (!spec.writes_key(key)) return decl.fail("writes", "it changes '" + key + "', which is not in writes");
    }
  } else {
    spec.writes.assign(written.begin(), written.end());
  }
  value shown = value::object();
  for (const char* field : {"update", "append", "extend", "increment", "remove"}) {
    if (config.contains(field)) shown[field] = config[field];
  }
  spec.config = std::move(shown);
  return std::shared_ptr<action>(std::make_shared<set_action>(std::move(spec), std::move(ops)));
}

result<std::shared_ptr<action>> make_pass(const action_decl& decl) {
  action_spec spec = decl.spec();
  if (!spec.writes.empty()) return decl.fail("writes", "a pass action writes nothing");
  return std::shared_ptr<action>(std::make_shared<pass_action>(std::move(spec)));
}

result<std::shared_ptr<action>> make_human(const action_decl& decl) {
  action_spec spec = decl.spec();
  const bool any_required =
      std::any_of(spec.inputs.begin(), spec.inputs.end(), [](const input_spec& in) { return in.required; });
  if (!any_required) {
    return decl.fail("inputs", "a human action needs at least one required input (the answer it waits for)");
  }
  for (const auto& key : spec.writes) {
    const bool is_input =
        std::any_of(spec.inputs.begin(), spec.inputs.end(), [&](const input_spec& in) { return in.name == key; });
    if (!is_input)
      return decl.fail("writes", "'" + key + "' is not one of its inputs (a human action writes only those)");
  }
  value shown = value::object();
  if (decl.config().contains("prompt")) {
    const value& prompt = decl.config()["prompt"];
    if (!prompt.is_string()) return decl.fail("prompt", "expected a string");
    shown["prompt"] = prompt;
  }
  spec.config = std::move(shown);
  spec.awaits_input = true;
  return std::shared_ptr<action>(std::make_shared<human_action>(std::move(spec)));
}

}  // namespace

action_registry action_registry::with_builtins() {
  action_registry registry;
  registry.add("set", {"update", "append", "extend", "increment", "remove"}, make_set);
  registry.add("pass", {}, make_pass);
  registry.add("human", {"prompt"}, make_human);
  return registry;
}

}  // namespace choir::graph
