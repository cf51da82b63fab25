// The `tool` action type: one tool call through the gate, its arguments computed by expressions
// over the step's inputs and reads, its result written to a key. YAML form in docs/graph-yaml.md:
//
//     save:
//       type: tool
//       tool: fs.write
//       args: {path: "'notes/' + topic + '.txt'", content: summary}   # expressions; other values as given
//       into: saved                                                   # the tool's result (optional)
#include "choir/runtime/actions/effect_support.hpp"
#include "choir/runtime/actions/llm.hpp"
#include "choir/tools/tool.hpp"

namespace choir::runtime {
namespace {

struct tool_argument {
  std::string name;
  std::optional<graph::expression> expr;
  value literal;
};

class tool_action final : public graph::action {
 public:
  tool_action(graph::action_spec spec, std::shared_ptr<const action_services> services, std::string tool,
              std::vector<tool_argument> args, std::string into)
      : action(std::move(spec)),
        services_(std::move(services)),
        tool_(std::move(tool)),
        args_(std::move(args)),
        into_(std::move(into)) {}

  result<graph::action_output> execute(const graph::state_view& view, graph::stream_sink& /*sink*/) override {
    if (!services_->gate || !services_->tools) {
      return fail("runs only under the kernel's gate, with tools (a run with a store; not --no-store)");
    }
    CHOIR_TRY(auto origin, detail::origin_of(view, "tool"));
    const graph::step_scope scope(view);
    value arguments = value::object();
    for (const auto& a : args_) {
      if (!a.expr) {
        arguments[a.name] = a.literal;
        continue;
      }
      auto computed = a.expr->evaluate(scope);
      if (!computed.ok()) return fail("args." + a.name + " (" + a.expr->source() + "): " + computed.err().message);
      arguments[a.name] = std::move(computed).value();
    }
    CHOIR_TRY(auto outcome, call_tool(*services_, origin.run_id, origin.step, origin.key(""), tool_, arguments));
    if (!outcome.ok) return fail(outcome.message);
    graph::action_output out;
    out.result = outcome.result;
    if (!into_.empty()) out.changes.set(into_, outcome.result);
    return out;
  }

 private:
  error fail(const std::string& what) const {
    return make_error(graph::graph_errc::action_failed, "tool '" + name() + "' (" + tool_ + "): " + what);
  }

  std::shared_ptr<const action_services> services_;
  std::string tool_;
  std::vector<tool_argument> args_;
  std::string into_;
};

result<std::shared_ptr<graph::action>> make_tool(const graph::action_decl& decl,
                                                 const std::shared_ptr<const action_services>& services) {
  graph::action_spec spec = decl.spec();
  CHOIR_TRY(std::string tool, detail::string_field(decl, "tool", true));
  if (services->tools && !services->tools->find(tool)) {
    std::string known;
    for (const auto& t : services->tools->list()) known += (known.empty() ? "" : ", ") + t.name;
    return decl.fail("tool", "no tool is named '" + tool + "' (tools: " + known + ")");
  }
  CHOIR_TRY(std::string into, detail::string_field(decl, "into", false));
  std::vector<tool_argument> args;
  std::vector<std::string> reads;
  const value& config = decl.config();
  if (config.contains("args")) {
    if (!config["args"].is_object()) return decl.fail("args", "expected a mapping of argument: expression");
    for (const auto& [name, source] : config["args"].items()) {
      tool_argument a{name, std::nullopt, value()};
      if (source.is_string()) {
        auto compiled = graph::expression::compile(source.get<std::string>());
        if (!compiled.ok()) return decl.fail("args." + name, compiled.err().message);
        reads.insert(reads.end(), compiled->names().begin(), compiled->names().end());
        a.expr = std::move(compiled).value();
      } else {
        a.literal = source;
      }
      args.push_back(std::move(a));
    }
  }
  std::vector<std::string> writes;
  if (!into.empty()) writes.push_back(into);
  CHOIR_CHECK(detail::settle_keys(decl, spec, reads, writes));
  value shown{{"tool", tool}};
  if (config.contains("args")) shown["args"] = config["args"];
  if (!into.empty()) shown["into"] = into;
  spec.config = std::move(shown);
  return std::shared_ptr<graph::action>(
      std::make_shared<tool_action>(std::move(spec), services, std::move(tool), std::move(args), std::move(into)));
}

}  // namespace

void register_tool_action(graph::action_registry& registry, std::shared_ptr<const action_services> services) {
  registry.add("tool", {"tool", "args", "into"},
               [services](const graph::action_decl& decl) { return make_tool(decl, services); });
}

}  // namespace choir::runtime
