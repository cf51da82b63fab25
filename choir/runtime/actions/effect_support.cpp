#include "choir/runtime/actions/effect_support.hpp"

#include <algorithm>
#include <set>

#include "choir/graph/errors.hpp"
#include "choir/tools/tool.hpp"

namespace choir::runtime::detail {

result<text_template> text_template::compile(std::string_view text) {
  text_template t;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto open = text.find("{{", i);
    if (open == std::string_view::npos) break;
    const auto close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      return make_error(core_errc::invalid_argument, "'{{' at offset " + std::to_string(open) + " is never closed");
    }
    auto hole = graph::expression::compile(text.substr(open + 2, close - open - 2));
    if (!hole.ok())
      return make_error(hole.err().code,
                        "in {{" + std::string(text.substr(open + 2, close - open - 2)) + "}}: " + hole.err().message);
    t.parts_.push_back({std::string(text.substr(i, open - i)), std::move(hole).value()});
    i = close + 2;
  }
  if (i < text.size()) t.parts_.push_back({std::string(text.substr(i)), std::nullopt});
  return t;
}

result<std::string> text_template::render(const graph::expr_scope& scope) const {
  std::string out;
  for (const auto& p : parts_) {
    out += p.literal;
    if (!p.hole) continue;
    CHOIR_TRY(value v, p.hole->evaluate(scope));
    out += v.is_string() ? v.get<std::string>() : dump_json(v);
  }
  return out;
}

std::vector<std::string> text_template::names() const {
  std::vector<std::string> out;
  for (const auto& p : parts_) {
    if (p.hole) out.insert(out.end(), p.hole->names().begin(), p.hole->names().end());
  }
  return out;
}

result<effect_origin> origin_of(const graph::state_view& view, const std::string& action_type) {
  const auto& o = view.origin();
  if (o.app_id.empty()) {
    return make_error(
        graph::graph_errc::action_failed,
        action_type + " '" + view.spec().name + "' runs only inside a run (its effects are journaled under it)");
  }
  return effect_origin{std::string(o.app_id), static_cast<std::int64_t>(o.sequence_id), view.spec().name};
}

result<std::filesystem::path> workspace_of(const action_services& services, const admitted_run& run) {
  auto safe = [](const std::string& name) {
    return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
           name.find('\0') == std::string::npos;
  };
  if (!safe(run.who.tenant) || !safe(run.agent)) {
    return make_error(core_errc::invalid_argument,
                      "tenant '" + run.who.tenant + "' or agent '" + run.agent + "' cannot name a folder");
  }
  auto dir = services.workspaces / run.who.tenant / run.agent;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return make_error(core_errc::io_error, "the workspace " + dir.string() + " cannot be created: " + ec.message());
  return dir;
}

}  // namespace choir::runtime::detail

namespace choir::runtime {

result<tool_outcome> call_tool(const action_services& services, const std::string& run_id, std::int64_t step,
                               const std::string& key, const std::string& name, const value& arguments) {
  if (!services.gate || !services.tools) {
    return make_error(kernel::kernel_errc::denied, "tools run only under the kernel's gate");
  }
  const auto run = services.gate->admitted(run_id);
  if (!run) return make_error(kernel::kernel_errc::denied, "run " + run_id + " is not admitted");
  const tools::tool_registry& registry = *services.tools;
  const auto found = registry.find(name);
  if (!found) return tool_outcome{false, value(), "no tool is named '" + name + "'"};
  // Arguments the schema refuses are the caller's to correct: not a call, so nothing is journaled.
  if (auto valid = registry.validate(name, arguments); !valid.ok())
    return tool_outcome{false, value(), valid.err().message};
  CHOIR_TRY(auto workspace, detail::workspace_of(services, *run));
  const gated_call call{.key = key,
                        .run_id = run_id,
                        .step = step,
                        .capability = name,
                        .argument = registry.subject_of(name, arguments),
                        .arguments = arguments};
  tools::tool_context context{.workspace = workspace, .idempotency_key = key, .run_id = run_id};
  for (const auto& c : run->contract->capabilities) {
    if (c.name == name) context.patterns = c.allow;
  }
  // A second place the same call goes to (a redirect) is checked as the first was.
  context.recheck = [&services, &call](const std::string& subject) -> result<void> {
    gated_call again = call;
    again.key = call.key + "/then/" + subject;
    again.argument = subject;
    return services.gate->check(again);
  };
  CHOIR_TRY(
      auto performed,
      services.gate->perform(
          call,
          {.kind = "tool:" + name,
           .request = kernel::redact(arguments, run->contract->log_fields),
           .idempotent = found->spec().idempotent},
          [&]() -> result<value> {
            auto answer = registry.call(name, arguments, context);
            if (answer.ok()) return std::move(answer).value();
            return value{{"is_error", true}, {"code", answer.err().code.message()}, {"message", answer.err().message}};
          }));
  const value& outcome = performed.outcome;
  if (outcome.is_object() && outcome.value("is_error", false)) {
    return tool_outcome{false, value(), outcome.value("message", std::string("the tool failed"))};
  }
  return tool_outcome{true, outcome, {}};
}

}  // namespace choir::runtime

namespace choir::runtime::detail {

result<std::string> string_field(const graph::action_decl& decl, const char* field, bool required,
                                 std::string fallback) {
  const value& config = decl.config();
  if (!config.contains(field)) {
    if (required) return decl.fail(field, "a " + decl.spec().type + " action needs it");
    return fallback;
  }
  if (!config[field].is_string() || config[field].get<std::string>().empty()) {
    return decl.fail(field, "expected a non-empty string");
  }
  return config[field].get<std::string>();
}

result<void> settle_keys(const graph::action_decl& decl, graph::action_spec& spec,
                         const std::vector<std::string>& reads, const std::vector<std::string>& writes) {
  std::set<std::string> inputs;
  for (const auto& in : spec.inputs) inputs.insert(in.name);
  if (decl.declared_reads()) {
    for (const auto& n : reads) {
      if (!inputs.count(n) && !spec.reads_key(n)) {
        return decl.fail("reads", "it reads '" + n + "', which is neither in reads nor an input");
      }
    }
  } else {
    for (const auto& n : reads) {
      if (!inputs.count(n) && !spec.reads_key(n)) spec.reads.push_back(n);
    }
  }
  if (decl.declared_writes()) {
    for (const auto& key : writes) {
      if (!spec.writes_key(key)) return decl.fail("writes", "it changes '" + key + "', which is not in writes");
    }
  } else {
    for (const auto& key : writes) {
      if (!spec.writes_key(key)) spec.writes.push_back(key);
    }
  }
  return {};
}

}  // namespace choir::runtime::detail
