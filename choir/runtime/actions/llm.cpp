// The `llm` action type (the YAML form is in llm.hpp and docs/graph-yaml.md).
#include "choir/runtime/actions/llm.hpp"

#include <algorithm>

#include "choir/core/json_schema.hpp"
#include "choir/graph/errors.hpp"
#include "choir/models/gateway.hpp"
#include "choir/runtime/actions/effect_support.hpp"
#include "choir/runtime/actions/exec.hpp"
#include "choir/runtime/actions/map.hpp"
#include "choir/tools/tool.hpp"

namespace choir::runtime {
namespace {

struct llm_plan {
  std::string model;  ///< empty: the contract's first allowed alias
  std::optional<detail::text_template> system;
  std::optional<detail::text_template> prompt;
  std::string history;
  std::vector<std::string> tools;
  int max_rounds = 8;
  std::string into;
  bool json_output = false;
  std::optional<json_schema> schema;
  std::optional<std::int64_t> max_tokens;
  std::optional<double> temperature;
  bool stream = false;
  std::string usage_into;
};

/// Hands streamed tokens to the step's stream.
class token_forwarder final : public models::chat_stream {
 public:
  explicit token_forwarder(graph::stream_sink& sink) : sink_(sink) {}
  void text(std::string_view delta) override { sink_.item(value{{"token", std::string(delta)}}); }
  void tool_call_ready(const models::tool_call& call) override {
    sink_.item(value{{"tool_call", {{"name", call.name}, {"id", call.id}}}});
  }

 private:
  graph::stream_sink& sink_;
};

class llm_action final : public graph::action {
 public:
  llm_action(graph::action_spec spec, std::shared_ptr<const action_services> services, llm_plan plan)
      : action(std::move(spec)), services_(std::move(services)), plan_(std::move(plan)) {}

  [[nodiscard]] bool is_streaming() const override { return plan_.stream; }

  result<graph::action_output> execute(const graph::state_view& view, graph::stream_sink& sink) override {
    if (!services_->gate) return fail("runs only under the kernel's gate (a run with a store; not --no-store)");
    if (!services_->models) return fail("no model gateway is configured (choir --models FILE; docs/models.md)");
    if (!plan_.tools.empty() && !services_->tools) return fail("no tools are available here");
    CHOIR_TRY(auto origin, detail::origin_of(view, "llm"));
    const graph::step_scope scope(view);

    std::vector<models::chat_message> messages;
    std::vector<models::chat_message> turn;  // what this step adds to the history
    if (plan_.system) {
      auto text = plan_.system->render(scope);
      if (!text.ok()) return fail("system: " + text.err().message);
      messages.push_back({.role = "system", .content = std::move(text).value()});
    }
    if (!plan_.history.empty()) {
      const auto ref = view.find(plan_.history);
      std::vector<const value*> items;
      if (ref.list != nullptr) {
        for (const auto& item : *ref.list) items.push_back(&item);
      } else if (ref.json != nullptr && ref.json->is_array()) {
        for (const auto& item : *ref.json) items.push_back(&item);
      } else if (ref.json != nullptr && !ref.json->is_null()) {
        return fail("history '" + plan_.history + "' holds " + ref.json->type_name() + ", not a list of messages");
      }
      for (std::size_t i = 0; i < items.size(); ++i) {
        auto m = models::message_from_json(*items[i]);
        if (!m.ok()) return fail("history '" + plan_.history + "'[" + std::to_string(i) + "]: " + m.err().message);
        messages.push_back(std::move(m).value());
      }
    }
    if (plan_.prompt) {
      auto text = plan_.prompt->render(scope);
      if (!text.ok()) return fail("prompt: " + text.err().message);
      models::chat_message user{.role = "user", .content = std::move(text).value()};
      messages.push_back(user);
      turn.push_back(std::move(user));
    }
    if (messages.empty()) return fail("nothing to send (give a prompt or a history)");

    std::vector<models::tool_definition> tool_defs;
    for (const auto& name : plan_.tools) {
      const auto t = services_->tools->find(name);
      if (!t) return fail("no tool is named '" + name + "'");
      tool_defs.push_back(
          {.name = t->spec().name, .description = t->spec().description, .input_schema = t->spec().input_schema});
    }

    token_forwarder forward(sink);
    value usage{{"input_tokens", 0}, {"output_tokens", 0}, {"cost_usd", 0.0}, {"model", ""}};
    for (int round = 0; round < plan_.max_rounds; ++round) {
      models::chat_request request{.model = plan_.model,
                                   .run_id = origin.run_id,
                                   .messages = messages,
                                   .tools = tool_defs,
                                   .max_tokens = plan_.max_tokens,
                                   .temperature = plan_.temperature,
                                   .json_output = plan_.json_output};
      const gated_call call{.key = origin.key("model/" + std::to_string(round)),
                            .run_id = origin.run_id,
                            .step = origin.step,
                            .capability = "model.call",
                            .argument = plan_.model,
                            .arguments = value::object()};
      CHOIR_TRY(auto grant, services_->gate->check_model(call, models::estimate_tokens(request)));
      request.model = grant.aliases.front();
      if (grant.max_answer_tokens) {
        request.max_tokens = std::min(request.max_tokens.value_or(*grant.max_answer_tokens), *grant.max_answer_tokens);
      }
      const auto run = services_->gate->admitted(origin.run_id);
      const value journaled =
          kernel::redact(models::to_json(request), run ? run->contract->log_fields : std::vector<std::string>{});
      const std::vector<std::string> fallbacks(grant.aliases.begin() + 1, grant.aliases.end());
      CHOIR_TRY(auto performed,
                services_->gate->run_effect(call,
                                            {.kind = "model:" + request.model,
                                             .request = journaled,
                                             .idempotent = true,
                                             // A model that failed (after the gateway's retries and
                                             // fallbacks) is asked again when the step is retried or resumed.
                                             .record_failure = false},
                                            [&]() -> result<value> {
                                              CHOIR_TRY(auto answer,
                                                        services_->models->complete(request, fallbacks,
                                                                                    plan_.stream ? &forward : nullptr));
                                              return models::to_json(answer);
                                            }));
      CHOIR_TRY(auto answer, models::response_from_json(performed.outcome));
      if (performed.source != store::effect_source::recorded) {
        services_->gate->charge(origin.run_id, answer.usage.total(), answer.cost_usd);
      }
      usage["input_tokens"] = usage["input_tokens"].get<std::int64_t>() + answer.usage.input_tokens;
      usage["output_tokens"] = usage["output_tokens"].get<std::int64_t>() + answer.usage.output_tokens;
      usage["cost_usd"] = usage["cost_usd"].get<double>() + answer.cost_usd;
      usage["model"] = answer.model;
      messages.push_back(answer.message);
      turn.push_back(answer.message);
      if (answer.message.tool_calls.empty()) return finish(answer, turn, usage);
      if (plan_.tools.empty()) return fail("the model called tools, but this action offers none");
      for (std::size_t i = 0; i < answer.message.tool_calls.size(); ++i) {
        const auto& tc = answer.message.tool_calls[i];
        models::chat_message result_message{.role = "tool", .tool_call_id = tc.id, .name = tc.name};
        if (std::find(plan_.tools.begin(), plan_.tools.end(), tc.name) == plan_.tools.end()) {
          result_message.content = "error: no tool named '" + tc.name + "' is available here";
          result_message.is_error = true;
        } else {
          auto outcome =
              call_tool(*services_, origin.run_id, origin.step,
                        origin.key("tool/" + std::to_string(round) + "/" + std::to_string(i)), tc.name, tc.arguments);
          if (!outcome.ok() && outcome.err().code == graph::graph_errc::suspended) return std::move(outcome).err();
          if (!outcome.ok() && outcome.err().code != kernel::kernel_errc::denied) return std::move(outcome).err();
          if (!outcome.ok()) {  // a denial is the model's to know about, and to work around
            result_message.content = "error: denied: " + outcome.err().message;
            result_message.is_error = true;
          } else if (!outcome->ok) {
            result_message.content = "error: " + outcome->message;
            result_message.is_error = true;
          } else {
            result_message.content = dump_json(outcome->result);
          }
        }
        messages.push_back(result_message);
        turn.push_back(std::move(result_message));
      }
    }
    return fail("the model was still calling tools after " + std::to_string(plan_.max_rounds) + " rounds (max_rounds)");
  }

 private:
  result<graph::action_output> finish(const models::chat_response& answer,
                                      const std::vector<models::chat_message>& turn, const value& usage) const {
    graph::action_output out;
    value written = answer.message.content;
    if (plan_.json_output) {
      std::string text = answer.message.content;
      // Models often fence JSON in ```json … ```; take what is inside.
      if (const auto fence = text.find("```"); fence != std::string::npos) {
        const auto start = text.find('\n', fence);
        const auto end = text.rfind("```");
        if (start != std::string::npos && end > start) text = text.substr(start + 1, end - start - 1);
      }
      written = value::parse(text, nullptr, /*allow_exceptions=*/false);
      if (written.is_discarded()) return fail("the answer is not JSON: " + answer.message.content.substr(0, 200));
      if (plan_.schema) {
        const auto violations = plan_.schema->validate(written);
        if (!violations.empty()) return fail("the answer does not match its schema: " + describe(violations));
      }
    }
    out.changes.set(plan_.into, written);
    if (!plan_.history.empty()) {
      value added = value::array();
      for (const auto& m : turn) added.push_back(models::to_json(m));
      out.changes.extend(plan_.history, added);
    }
    if (!plan_.usage_into.empty()) out.changes.set(plan_.usage_into, usage);
    out.result = {{"answer", written}, {"finish_reason", answer.finish_reason}, {"usage", usage}};
    return out;
  }

  error fail(const std::string& what) const {
    return make_error(graph::graph_errc::action_failed, "llm '" + name() + "': " + what);
  }

  std::shared_ptr<const action_services> services_;
  llm_plan plan_;
};

result<std::shared_ptr<graph::action>> make_llm(const graph::action_decl& decl,
                                                const std::shared_ptr<const action_services>& services) {
  graph::action_spec spec = decl.spec();
  const value& config = decl.config();
  llm_plan plan;
  std::vector<std::string> reads;
  CHOIR_TRY(plan.model, detail::string_field(decl, "model", false));
  if (!plan.model.empty() && services->models && !services->models->find(plan.model)) {
    std::string served;
    for (const auto& a : services->models->aliases()) served += (served.empty() ? "" : ", ") + a;
    return decl.fail("model",
                     "the gateway has no model '" + plan.model + "' (it serves " + served +
                         "; models come from --models FILE, $CHOIR_MODELS, or a models.yaml beside the agents)");
  }
  for (const char* field : {"system", "prompt"}) {
    if (!config.contains(field)) continue;
    if (!config[field].is_string()) return decl.fail(field, "expected text");
    auto compiled = detail::text_template::compile(config[field].get<std::string>());
    if (!compiled.ok()) return decl.fail(field, compiled.err().message);
    const auto names = compiled->names();
    reads.insert(reads.end(), names.begin(), names.end());
    (std::string_view(field) == "system" ? plan.system : plan.prompt) = std::move(compiled).value();
  }
  CHOIR_TRY(plan.history, detail::string_field(decl, "history", false));
  if (!plan.prompt && plan.history.empty()) return decl.fail("prompt", "an llm action needs a prompt or a history");
  if (!plan.history.empty()) reads.push_back(plan.history);
  CHOIR_TRY(plan.into, detail::string_field(decl, "into", true));
  CHOIR_TRY(plan.usage_into, detail::string_field(decl, "usage_into", false));
  if (config.contains("tools")) {
    const value& t = config["tools"];
    if (!t.is_array()) return decl.fail("tools", "expected a list of tool names");
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (!t[i].is_string()) return decl.fail("tools." + std::to_string(i), "expected a tool name");
      const std::string name = t[i].get<std::string>();
      if (services->tools && !services->tools->find(name)) {
        return decl.fail("tools." + std::to_string(i), "no tool is named '" + name + "'");
      }
      plan.tools.push_back(name);
    }
  }
  if (config.contains("max_rounds")) {
    const value& m = config["max_rounds"];
    if (!m.is_number_integer() || m.get<std::int64_t>() < 1 || m.get<std::int64_t>() > 100) {
      return decl.fail("max_rounds", "expected a whole number from 1 to 100");
    }
    plan.max_rounds = m.get<int>();
  }
  CHOIR_TRY(std::string output, detail::string_field(decl, "output", false, "text"));
  if (output != "text" && output != "json") return decl.fail("output", "expected text or json");
  plan.json_output = output == "json";
  if (config.contains("schema")) {
    if (!plan.json_output) return decl.fail("schema", "a schema needs output: json");
    auto compiled = json_schema::compile(config["schema"]);
    if (!compiled.ok()) return decl.fail("schema", compiled.err().message);
    plan.schema = std::move(compiled).value();
  }
  if (config.contains("max_tokens")) {
    const value& m = config["max_tokens"];
    if (!m.is_number_integer() || m.get<std::int64_t>() < 1)
      return decl.fail("max_tokens", "expected a whole number ≥ 1");
    plan.max_tokens = m.get<std::int64_t>();
  }
  if (config.contains("temperature")) {
    const value& t = config["temperature"];
    if (!t.is_number() || t.get<double>() < 0 || t.get<double>() > 2)
      return decl.fail("temperature", "expected a number from 0 to 2");
    plan.temperature = t.get<double>();
  }
  if (config.contains("stream")) {
    if (!config["stream"].is_boolean()) return decl.fail("stream", "expected true or false");
    plan.stream = config["stream"].get<bool>();
  }
  std::vector<std::string> writes{plan.into};
  if (!plan.history.empty()) writes.push_back(plan.history);
  if (!plan.usage_into.empty()) writes.push_back(plan.usage_into);
  CHOIR_CHECK(detail::settle_keys(decl, spec, reads, writes));
  value shown = value::object();
  for (const char* field : {"model", "system", "prompt", "history", "tools", "max_rounds", "into", "output", "schema",
                            "max_tokens", "temperature", "stream", "usage_into"}) {
    if (config.contains(field)) shown[field] = config[field];
  }
  spec.config = std::move(shown);
  return std::shared_ptr<graph::action>(std::make_shared<llm_action>(std::move(spec), services, std::move(plan)));
}

}  // namespace

void register_llm_action(graph::action_registry& registry, std::shared_ptr<const action_services> services) {
  registry.add("llm",
               {"model", "system", "prompt", "history", "tools", "max_rounds", "into", "output", "schema", "max_tokens",
                "temperature", "stream", "usage_into"},
               [services](const graph::action_decl& decl) { return make_llm(decl, services); });
}

graph::action_registry runtime_registry(std::shared_ptr<const action_services> services) {
  auto registry = graph::action_registry::with_builtins();
  register_map_action(registry, services);
  register_llm_action(registry, services);
  register_tool_action(registry, services);
  register_exec_actions(registry, std::move(services));
  return registry;
}

}  // namespace choir::runtime
