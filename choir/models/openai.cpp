#include <map>

#include "choir/core/json_access.hpp"
#include "choir/models/providers.hpp"
#include "choir/models/wire.hpp"
#include "choir/net/sse.hpp"

namespace choir::models {

error status_error(int status, std::string_view body, std::string_view who) {
  std::string detail;
  const value parsed = value::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_discarded() && parsed.is_object()) {
    const value& e = parsed.contains("error") ? parsed["error"] : parsed;
    if (e.is_object() && e.contains("message") && e["message"].is_string())
      detail = e["message"].get<std::string>();
    else if (e.is_string())
      detail = e.get<std::string>();
  }
  if (detail.empty()) detail = std::string(body.substr(0, 200));
  const std::string text =
      std::string(who) + " answered HTTP " + std::to_string(status) + (detail.empty() ? "" : ": " + detail);
  if (status == 429) return make_error(model_errc::rate_limited, text);
  if (status == 408) return make_error(core_errc::timed_out, text);
  if (status >= 500) return make_error(model_errc::provider_error, text);
  return make_error(model_errc::rejected, text);
}

result<void> stream_events(const net::http_request& http, const std::function<bool(const net::sse_event&)>& on_event,
                           std::string_view who) {
  std::string error_body;  // a non-2xx answer's body, kept for its message
  net::sse_parser parser;
  std::optional<error> failure;
  bool more = true;
  auto on_body = [&](const net::http_response& head, std::string_view chunk) {
    if (head.status / 100 != 2) {
      if (error_body.size() < 64 * 1024) error_body.append(chunk);
      return true;
    }
    auto fed = parser.feed(chunk, [&](const net::sse_event& e) {
      if (more) more = on_event(e);
    });
    if (!fed.ok()) failure = fed.err();
    return more && !failure;
  };
  CHOIR_TRY(net::http_response response, net::http_call(http, on_body));
  if (response.status / 100 != 2) return status_error(response.status, error_body, who);
  if (failure) return *failure;
  return {};
}

namespace {

value openai_message(const chat_message& m) {
  if (m.role == "tool") return value{{"role", "tool"}, {"tool_call_id", m.tool_call_id}, {"content", m.content}};
  value v{{"role", m.role}};
  if (m.role == "assistant" && !m.tool_calls.empty()) {
    v["content"] = m.content.empty() ? value(nullptr) : value(m.content);
    value calls = value::array();
    for (const auto& c : m.tool_calls) {
      calls.push_back({{"id", c.id},
                       {"type", "function"},
                       {"function", {{"name", c.name}, {"arguments", wire::arguments_text(c.arguments)}}}});
    }
    v["tool_calls"] = std::move(calls);
  } else {
    v["content"] = m.content;
  }
  return v;
}

class openai_chat final : public provider {
 public:
  explicit openai_chat(http_provider_options options) : options_(std::move(options)) {
    options_.base_url = wire::without_trailing_slashes(std::move(options_.base_url));
  }

  result<chat_response> complete(const chat_request& request, chat_stream* stream) override {
    value body{{"model", request.model}, {"messages", value::array()}};
    for (const auto& m : request.messages) body["messages"].push_back(openai_message(m));
    if (!request.tools.empty()) {
      value tools = value::array();
      for (const auto& t : request.tools) {
        tools.push_back(
            {{"type", "function"},
             {"function", {{"name", t.name}, {"description", t.description}, {"parameters", t.input_schema}}}});
      }
      body["tools"] = std::move(tools);
    }
    if (request.max_tokens) body[options_.max_tokens_field] = *request.max_tokens;
    if (request.temperature) body["temperature"] = *request.temperature;
    if (request.json_output) body["response_format"] = {{"type", "json_object"}};
    if (stream != nullptr) {
      body["stream"] = true;
      body["stream_options"] = {{"include_usage", true}};
    }
    net::http_request http{.method = "POST", .url = options_.base_url + "/chat/completions"};
    http.keep_alive = true;  // the same endpoint is asked again and again
    http.headers = wire::openai_headers(options_);
    http.body = dump_json(body);
    http.timeout = options_.timeout;
    if (stream == nullptr) {
      CHOIR_TRY(net::http_response response, net::http_call(http));
      if (response.status / 100 != 2) return status_error(response.status, response.body, "OpenAI-compatible endpoint");
      return parse_answer_impl(response.body);
    }
    return streamed(http, *stream);
  }

 public:
  static result<chat_response> parse_answer_impl(std::string_view text) {
    const value v = value::parse(text, nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded() || !v.is_object())
      return make_error(model_errc::bad_response, "the answer is not a JSON object");
    if (!v.contains("choices") || !v["choices"].is_array() || v["choices"].empty() || !v["choices"][0].is_object() ||
        !v["choices"][0].contains("message") || !v["choices"][0]["message"].is_object()) {
      return make_error(model_errc::bad_response, "the answer has no choices[0].message");
    }
    const value& choice = v["choices"][0];
    const value& msg = choice["message"];
    chat_response r;
    r.message.role = "assistant";
    if (msg.contains("content") && msg["content"].is_string()) r.message.content = msg["content"].get<std::string>();
    if (msg.contains("tool_calls") && msg["tool_calls"].is_array()) {
      for (const auto& c : msg["tool_calls"]) {
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) {
          return make_error(model_errc::bad_response, "a tool call has no function");
        }
        tool_call call;
        call.id = string_at(c, "id");
        call.name = string_at(c["function"], "name");
        const auto& args = c["function"].contains("arguments") ? c["function"]["arguments"] : value();
        call.arguments = args.is_string() ? wire::tool_arguments(args.get<std::string>())
                                          : (args.is_null() ? value::object() : args);
        r.message.tool_calls.push_back(std::move(call));
      }
    }
    if (choice.contains("finish_reason") && choice["finish_reason"].is_string())
      r.finish_reason = choice["finish_reason"];
    read_usage(v, r);
    return r;
  }

  static void read_usage(const value& v, chat_response& r) {
    if (!v.contains("usage") || !v["usage"].is_object()) return;
    const value& u = v["usage"];
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer())
      r.usage.input_tokens = u["prompt_tokens"];
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
      r.usage.output_tokens = u["completion_tokens"];
    }
  }

 private:
  static result<chat_response> streamed(const net::http_request& http, chat_stream& stream) {
    struct partial_call {
      std::string id, name, arguments;
    };
    chat_response r;
    r.message.role = "assistant";
    std::map<std::int64_t, partial_call> calls;  // joined by index, in index order
    bool done = false;
    std::optional<error> failure;
    auto on_event = [&](const net::sse_event& e) {
      if (done || failure) return;
      if (e.data == "[DONE]") {
        done = true;
        return;
      }
      const value v = value::parse(e.data, nullptr, /*allow_exceptions=*/false);
      if (v.is_discarded() || !v.is_object()) {
        failure = make_error(model_errc::bad_response, "a streamed chunk is not a JSON object");
        return;
      }
      if (v.contains("error")) {
        failure = status_error(500, e.data, "OpenAI-compatible endpoint (mid-stream)");
        return;
      }
      read_usage(v, r);
      if (!v.contains("choices") || !v["choices"].is_array()) return;
      for (const auto& choice : v["choices"]) {
        if (!choice.is_object() || int_at(choice, "index") != 0) continue;
        if (choice.contains("finish_reason") && choice["finish_reason"].is_string())
          r.finish_reason = choice["finish_reason"];
        if (!choice.contains("delta") || !choice["delta"].is_object()) continue;
        const value& delta = choice["delta"];
        if (delta.contains("content") && delta["content"].is_string()) {
          const auto& piece = delta["content"].get_ref<const std::string&>();
          r.message.content += piece;
          if (!piece.empty()) stream.text(piece);
        }
        if (delta.contains("tool_calls") && delta["tool_calls"].is_array()) {
          for (const auto& d : delta["tool_calls"]) {
            if (!d.is_object()) continue;
            const std::int64_t index =
                d.contains("index") && d["index"].is_number_integer() ? d["index"].get<std::int64_t>() : 0;
            auto& call = calls[index];
            if (d.contains("id") && d["id"].is_string()) call.id = d["id"];
            if (d.contains("function") && d["function"].is_object()) {
              const value& f = d["function"];
              if (f.contains("name") && f["name"].is_string()) call.name += f["name"].get<std::string>();
              if (f.contains("arguments") && f["arguments"].is_string())
                call.arguments += f["arguments"].get<std::string>();
            }
          }
        }
      }
    };
    CHOIR_CHECK(stream_events(
        http,
        [&](const net::sse_event& e) {
          on_event(e);
          return !done && !failure;
        },
        "OpenAI-compatible endpoint"));
    if (failure) return *failure;
    if (!done && r.finish_reason.empty()) {
      return make_error(model_errc::provider_error, "the stream ended before the answer was complete");
    }
    for (auto& [index, c] : calls) {
      tool_call call{.id = std::move(c.id), .name = std::move(c.name), .arguments = wire::tool_arguments(c.arguments)};
      stream.tool_call_ready(call);
      r.message.tool_calls.push_back(std::move(call));
    }
    return r;
  }

  http_provider_options options_;
};

}  // namespace

result<chat_response> parse_openai_answer(std::string_view body) { return openai_chat::parse_answer_impl(body); }

std::shared_ptr<provider> openai_chat_provider(http_provider_options options) {
  return std::make_shared<openai_chat>(std::move(options));
}

}  // namespace choir::models
