// The `exec` and `verify` action types (the YAML forms are in exec.hpp and docs/graph-yaml.md).
#include "choir/runtime/actions/exec.hpp"

#include "choir/graph/errors.hpp"
#include "choir/kernel/audit.hpp"
#include "choir/runtime/actions/effect_support.hpp"
#include "choir/tools/builtin.hpp"

namespace choir::runtime {
namespace {

constexpr std::size_t output_tail = 4096;

/// `tools::as_text`, at most its last `limit` bytes.
std::string text_of(const std::string& bytes, std::size_t limit = std::string::npos) {
  std::string text = tools::as_text(bytes);
  if (text.size() > limit) text = "…" + text.substr(text.size() - limit);
  return text;
}

struct program {
  std::vector<std::string> argv;
  std::string shown;  ///< the command's text: what the capability's patterns match
  tools::sandbox_limits limits;
  bool idempotent = false;
};

result<program> read_program(const graph::action_decl& decl, bool idempotent_default) {
  const value& config = decl.config();
  program p;
  if (!config.contains("command")) return decl.fail("command", "a " + decl.spec().type + " action needs a command");
  const value& command = config["command"];
  if (command.is_string() && !command.get<std::string>().empty()) {
    p.shown = command.get<std::string>();
    p.argv = {"/bin/sh", "-c", p.shown};
  } else if (command.is_array() && !command.empty()) {
    for (const auto& a : command) {
      if (!a.is_string()) return decl.fail("command", "expected a list of strings");
      p.argv.push_back(a.get<std::string>());
      p.shown += (p.shown.empty() ? "" : " ") + a.get<std::string>();
    }
  } else {
    return decl.fail("command", "expected a command (text for /bin/sh -c, or a list: program and arguments)");
  }
  if (config.contains("timeout_ms")) {
    if (!config["timeout_ms"].is_number_integer() || config["timeout_ms"].get<std::int64_t>() <= 0) {
      return decl.fail("timeout_ms", "expected a positive integer");
    }
    p.limits.time = std::chrono::milliseconds(config["timeout_ms"].get<std::int64_t>());
  }
  if (config.contains("memory_mb")) {
    if (!config["memory_mb"].is_number_integer() || config["memory_mb"].get<std::int64_t>() <= 0) {
      return decl.fail("memory_mb", "expected a positive integer");
    }
    p.limits.memory_bytes = static_cast<std::uint64_t>(config["memory_mb"].get<std::int64_t>()) << 20;
  }
  p.idempotent = idempotent_default;
  if (config.contains("idempotent")) {
    if (!config["idempotent"].is_boolean()) return decl.fail("idempotent", "expected true or false");
    p.idempotent = config["idempotent"].get<bool>();
  }
  return p;
}

/// Runs the program as an effect of the step, through the gate. The outcome as journaled:
/// `{exit_code, stdout, stderr, elapsed_ms}`, or `{killed: why}` when a limit stopped it.
result<value> run_program(const action_services& services, const graph::state_view& view, const std::string& type,
                          const std::string& action, const program& p, const value& input) {
  if (!services.gate) {
    return make_error(
        graph::graph_errc::action_failed,
        type + " '" + action + "' runs only under the kernel's gate (a run with a store; not --no-store)");
  }
  CHOIR_TRY(auto origin, detail::origin_of(view, type));
  const auto run = services.gate->admitted(origin.run_id);
  if (!run) return make_error(kernel::kernel_errc::denied, "run " + origin.run_id + " is not admitted");
  CHOIR_TRY(auto workspace, detail::workspace_of(services, *run));
  const gated_call call{.key = origin.key(""),
                        .run_id = origin.run_id,
                        .step = origin.step,
                        .capability = type,
                        .argument = p.shown,
                        .arguments = input};
  const std::string stdin_text = dump_json(input);
  CHOIR_TRY(auto performed,
            services.gate->perform(
                call,
                {.kind = type + ":" + action,
                 .request = kernel::redact(value{{"command", p.shown}, {"input", input}}, run->contract->log_fields),
                 .idempotent = p.idempotent},
                [&]() -> result<value> {
                  auto r = tools::run_sandboxed(p.argv, workspace, stdin_text, p.limits);
                  if (!r.ok()) {
                    // A limit that stopped it is its outcome; a sandbox
                    // that cannot start is not (nothing ran).
                    if (r.err().code == tools::tool_errc::limit_exceeded) {
                      return value{{"killed", r.err().message}};
                    }
                    return r.err();
                  }
                  return value{{"exit_code", r->exit_code},
                               {"stdout", text_of(r->out)},
                               {"stderr", text_of(r->err, output_tail)},
                               {"elapsed_ms", r->elapsed_ms}};
                }));
  return performed.outcome;
}

class exec_action final : public graph::action {
 public:
  exec_action(graph::action_spec spec, std::shared_ptr<const action_services> services, program p)
      : action(std::move(spec)), services_(std::move(services)), program_(std::move(p)) {}

  result<graph::action_output> execute(const graph::state_view& view, graph::stream_sink& /*sink*/) override {
    value input = view.inputs().is_object() ? view.inputs() : value::object();
    for (const auto& key : spec().reads) {
      if (const value* v = view.get_if(key)) input[key] = *v;
    }
    CHOIR_TRY(value outcome, run_program(*services_, view, "exec", name(), program_, input));
    if (outcome.contains("killed")) return fail(outcome["killed"].get<std::string>());
    const auto code = outcome.value("exit_code", -1);
    if (code != 0) {
      return fail("the program exited with " + std::to_string(code) + ": " + outcome.value("stderr", std::string()));
    }
    const std::string out = outcome.value("stdout", std::string());
    graph::action_output result;
    if (out.find_first_not_of(" \t\r\n") == std::string::npos) {
      result.result = value::object();
      return result;  // it wrote nothing
    }
    value written = value::parse(out, nullptr, false);
    if (written.is_discarded() || !written.is_object()) {
      return fail("its output is not one JSON object: " + text_of(out, 200));
    }
    for (const auto& [key, v] : written.items()) {
      if (!spec().writes_key(key)) {
        return fail("it wrote '" + key + "', which is not in writes (" + list(spec().writes) + ")");
      }
      result.changes.set(key, v);
    }
    result.result = std::move(written);
    return result;
  }

 private:
  static std::string list(const std::vector<std::string>& keys) {
    std::string out;
    for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
    return out.empty() ? "none" : out;
  }
  error fail(const std::string& what) const {
    return make_error(graph::graph_errc::action_failed, "exec '" + name() + "': " + what);
  }
  std::shared_ptr<const action_services> services_;
  program program_;
};

class verify_action final : public graph::action {
 public:
  verify_action(graph::action_spec spec, std::shared_ptr<const action_services> services, program p, std::string into)
      : action(std::move(spec)), services_(std::move(services)), program_(std::move(p)), into_(std::move(into)) {}

  result<graph::action_output> execute(const graph::state_view& view, graph::stream_sink& /*sink*/) override {
    value input = view.inputs().is_object() ? view.inputs() : value::object();
    for (const auto& key : spec().reads) {
      if (const value* v = view.get_if(key)) input[key] = *v;
    }
    CHOIR_TRY(value outcome, run_program(*services_, view, "verify", name(), program_, input));
    value verdict;
    if (outcome.contains("killed")) {
      verdict = {{"passed", false}, {"exit_code", nullptr}, {"output", outcome["killed"]}};
    } else {
      std::string output = outcome.value("stdout", std::string());
      const std::string err = outcome.value("stderr", std::string());
      if (!err.empty()) output += (output.empty() || output.back() == '\n' ? "" : "\n") + err;
      if (output.size() > output_tail) output = "…" + output.substr(output.size() - output_tail);
      const auto code = outcome.value("exit_code", -1);
      verdict = {{"passed", code == 0}, {"exit_code", code}, {"output", output}};
    }
    graph::action_output result;
    result.changes.set(into_, verdict);
    result.result = std::move(verdict);
    return result;
  }

 private:
  std::shared_ptr<const action_services> services_;
  program program_;
  std::string into_;
};

result<std::shared_ptr<graph::action>> make_exec(const graph::action_decl& decl,
                                                 const std::shared_ptr<const action_services>& services) {
  CHOIR_TRY(program p, read_program(decl, /*idempotent_default=*/false));
  graph::action_spec spec = decl.spec();
  value shown{{"command", decl.config()["command"]}};
  for (const char* k : {"timeout_ms", "memory_mb", "idempotent"}) {
    if (decl.config().contains(k)) shown[k] = decl.config()[k];
  }
  spec.config = std::move(shown);
  return std::shared_ptr<graph::action>(std::make_shared<exec_action>(std::move(spec), services, std::move(p)));
}

result<std::shared_ptr<graph::action>> make_verify(const graph::action_decl& decl,
                                                   const std::shared_ptr<const action_services>& services) {
  CHOIR_TRY(program p, read_program(decl, /*idempotent_default=*/true));
  CHOIR_TRY(std::string into, detail::string_field(decl, "into", true));
  graph::action_spec spec = decl.spec();
  CHOIR_CHECK(detail::settle_keys(decl, spec, {}, {into}));
  value shown{{"command", decl.config()["command"]}, {"into", into}};
  for (const char* k : {"timeout_ms", "memory_mb", "idempotent"}) {
    if (decl.config().contains(k)) shown[k] = decl.config()[k];
  }
  spec.config = std::move(shown);
  return std::shared_ptr<graph::action>(
      std::make_shared<verify_action>(std::move(spec), services, std::move(p), std::move(into)));
}

}  // namespace

void register_exec_actions(graph::action_registry& registry, std::shared_ptr<const action_services> services) {
  registry.add("exec", {"command", "timeout_ms", "memory_mb", "idempotent"},
               [services](const graph::action_decl& decl) { return make_exec(decl, services); });
  registry.add("verify", {"command", "into", "timeout_ms", "memory_mb", "idempotent"},
               [services](const graph::action_decl& decl) { return make_verify(decl, services); });
}

}  // namespace choir::runtime
