#include "choir/models/chat.hpp"

#include "choir/core/json_access.hpp"

namespace choir::models {
namespace {

class model_category_impl final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "choir.models"; }
  [[nodiscard]] std::string message(int code) const override {
    switch (static_cast<model_errc>(code)) {
      case model_errc::unknown_model: return "unknown model";
      case model_errc::rate_limited: return "rate limited";
      case model_errc::provider_error: return "provider error";
      case model_errc::rejected: return "request rejected";
      case model_errc::bad_response: return "bad response";
      case model_errc::context_too_long: return "context too long";
      case model_errc::budget_exhausted: return "budget exhausted";
    }
    return "unknown model error";
  }
};

error bad_field(std::string_view field, std::string_view what) {
  return make_error(core_errc::invalid_argument, std::string(field) + ": " + std::string(what));
}

result<std::string> string_field(const value& v, const char* field, bool required) {
  const auto it = v.find(field);
  if (it == v.end() || it->is_null()) {
    if (required) return bad_field(field, "is required");
    return std::string();
  }
  if (!it->is_string()) return bad_field(field, "must be a string");
  return it->get<std::string>();
}

}  // namespace

const std::error_category& model_category() noexcept {
  static const model_category_impl category;
  return category;
}

std::error_code make_error_code(model_errc e) noexcept { return {static_cast<int>(e), model_category()}; }

std::int64_t estimate_tokens(std::string_view text) { return static_cast<std::int64_t>((text.size() + 3) / 4); }

std::int64_t estimate_tokens(const chat_request& request) {
  std::int64_t total = 0;
  for (const auto& m : request.messages) {
    total += 4 + estimate_tokens(m.content);
    for (const auto& call : m.tool_calls)
      total += estimate_tokens(call.name) + estimate_tokens(dump_json(call.arguments));
  }
  for (const auto& t : request.tools) {
    total += estimate_tokens(t.name) + estimate_tokens(t.description) + estimate_tokens(dump_json(t.input_schema));
  }
  return total;
}

value to_json(const tool_call& call) {
  return value{{"id", call.id}, {"name", call.name}, {"arguments", call.arguments}};
}

value to_json(const chat_message& message) {
  value v{{"role", message.role}, {"content", message.content}};
  if (!message.tool_calls.empty()) {
    value calls = value::array();
    for (const auto& c : message.tool_calls) calls.push_back(to_json(c));
    v["tool_calls"] = std::move(calls);
  }
  if (!message.tool_call_id.empty()) v["tool_call_id"] = message.tool_call_id;
  if (!message.name.empty()) v["name"] = message.name;
  if (message.is_error) v["is_error"] = true;
  return v;
}

value to_json(const chat_request& request) {
  value v{{"model", request.model}, {"messages", value::array()}};
  for (const auto& m : request.messages) v["messages"].push_back(to_json(m));
  if (!request.tools.empty()) {
    value tools = value::array();
    for (const auto& t : request.tools) {
      tools.push_back({{"name", t.name}, {"description", t.description}, {"input_schema", t.input_schema}});
    }
    v["tools"] = std::move(tools);
  }
  if (request.max_tokens) v["max_tokens"] = *request.max_tokens;
  if (request.temperature) v["temperature"] = *request.temperature;
  if (request.json_output) v["json_output"] = true;
  return v;
}

value to_json(const chat_response& response) {
  value usage{{"input_tokens", response.usage.input_tokens}, {"output_tokens", response.usage.output_tokens}};
  if (response.usage.estimated) usage["estimated"] = true;
  return value{{"message", to_json(response.message)},
               {"finish_reason", response.finish_reason},
               {"usage", std::move(usage)},
               {"model", response.model},
               {"cost_usd", response.cost_usd}};
}

result<chat_message> message_from_json(const value& v) {
  if (!v.is_object()) return bad_field("message", "must be an object");
  chat_message m;
  CHOIR_TRY(m.role, string_field(v, "role", true));
  if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "tool") {
    return bad_field("role", "must be system, user, assistant or tool (got '" + m.role + "')");
  }
  if (const auto it = v.find("content"); it != v.end() && !it->is_null()) {
    if (it->is_string())
      m.content = it->get<std::string>();
    else
      m.content = dump_json(*it);  // structured content is kept as its JSON text
  }
  if (const auto it = v.find("tool_calls"); it != v.end() && !it->is_null()) {
    if (!it->is_array()) return bad_field("tool_calls", "must be a list");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const value& c = (*it)[i];
      const std::string at = "tool_calls[" + std::to_string(i) + "]";
      if (!c.is_object()) return bad_field(at, "must be an object");
      tool_call call;
      auto id = string_field(c, "id", false);
      auto name = string_field(c, "name", true);
      if (!id.ok() || !name.ok()) return bad_field(at, "needs a string name (and a string id, if any)");
      call.id = *id;
      call.name = *name;
      if (const auto a = c.find("arguments"); a != c.end() && !a->is_null()) {
        if (!a->is_object()) return bad_field(at + ".arguments", "must be an object");
        call.arguments = *a;
      }
      m.tool_calls.push_back(std::move(call));
    }
  }
  CHOIR_TRY(m.tool_call_id, string_field(v, "tool_call_id", false));
  CHOIR_TRY(m.name, string_field(v, "name", false));
  if (const auto it = v.find("is_error"); it != v.end() && it->is_boolean()) m.is_error = it->get<bool>();
  return m;
}

result<chat_response> response_from_json(const value& v) {
  if (!v.is_object()) return bad_field("response", "must be an object");
  chat_response r;
  const auto msg = v.find("message");
  if (msg == v.end()) return bad_field("message", "is required");
  CHOIR_TRY(r.message, message_from_json(*msg));
  CHOIR_TRY(r.finish_reason, string_field(v, "finish_reason", false));
  CHOIR_TRY(r.model, string_field(v, "model", false));
  if (const auto u = v.find("usage"); u != v.end() && u->is_object()) {
    r.usage.input_tokens = int_at(*u, "input_tokens");
    r.usage.output_tokens = int_at(*u, "output_tokens");
    r.usage.estimated = bool_at(*u, "estimated");
  }
  if (const auto c = v.find("cost_usd"); c != v.end() && c->is_number()) r.cost_usd = c->get<double>();
  return r;
}

}  // namespace choir::models
