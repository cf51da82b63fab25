#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "choir/core/json_access.hpp"
#include "choir/models/providers.hpp"
#include "choir/models/wire.hpp"
#include "choir/net/sse.hpp"

namespace choir::models {
namespace {

constexpr std::string_view who = "OpenAI Responses endpoint";
constexpr std::string_view who_mid_stream = "OpenAI Responses endpoint (mid-stream)";

/// The HTTP status an error `code` of a Responses body stands for, so that `status_error` sorts it
/// the way it sorts statuses: `rate_limit_exceeded` is a 429, `invalid_…` codes (`invalid_prompt`,
/// `invalid_image`, …) are 400s, anything else (`server_error`, no code) is a 500 and so retried.
int status_of(std::string_view code) {
  if (code == "rate_limit_exceeded") return 429;
  if (code.starts_with("invalid_")) return 400;
  return 500;
}

/// The error an `error` object (`{code, message}`) of a response or a stream stands for.
error failure(const value& e, std::string_view from) {
  return status_error(status_of(string_at(e, "code")), dump_json(value{{"error", e}}), from);
}

/// The Responses request for ours: messages become input items in order (system and user text as
/// messages, an assistant's tool calls as `function_call` items, tool results as
/// `function_call_output` items); tools are flat and not strict, as in Chat Completions.
value responses_body(const chat_request& request, bool stream) {
  value input = value::array();
  for (const auto& m : request.messages) {
    if (m.role == "tool") {
      input.push_back({{"type", "function_call_output"}, {"call_id", m.tool_call_id}, {"output", m.content}});
    } else if (m.role == "assistant") {
      if (!m.content.empty() || m.tool_calls.empty())
        input.push_back({{"type", "message"}, {"role", "assistant"}, {"content", m.content}});
      for (const auto& c : m.tool_calls) {
        input.push_back({{"type", "function_call"},
                         {"call_id", c.id},
                         {"name", c.name},
                         {"arguments", wire::arguments_text(c.arguments)}});
      }
    } else {
      input.push_back({{"type", "message"}, {"role", m.role}, {"content", m.content}});
    }
  }
  value body{{"model", request.model}, {"input", std::move(input)}, {"store", false}};
  if (!request.tools.empty()) {
    value tools = value::array();
    for (const auto& t : request.tools) {
      // Omitted, `strict` means true here (unlike Chat Completions), which would rewrite the
      // schema so that every property is required.
      tools.push_back({{"type", "function"},
                       {"name", t.name},
                       {"description", t.description},
                       {"parameters", t.input_schema},
                       {"strict", false}});
    }
    body["tools"] = std::move(tools);
  }
  if (request.max_tokens) body["max_output_tokens"] = *request.max_tokens;
  if (request.temperature) body["temperature"] = *request.temperature;
  if (request.json_output) body["text"] = {{"format", {{"type", "json_object"}}}};
  if (stream) body["stream"] = true;
  return body;
}

void read_usage(const value& response, chat_response& r) {
  if (!response.contains("usage") || !response["usage"].is_object()) return;
  r.usage.input_tokens = int_at(response["usage"], "input_tokens");
  r.usage.output_tokens = int_at(response["usage"], "output_tokens");
}

/// The finish reason a finished response's `status` means (`stop` or `tool_calls` when completed;
/// `length` for an answer cut at `max_output_tokens`, an incomplete answer's own reason
/// otherwise), or the error of a failed one.
result<std::string> finish_of(const value& response, bool has_calls, std::string_view from) {
  if (response.contains("error") && response["error"].is_object()) return failure(response["error"], from);
  const std::string status = string_at(response, "status", "completed");
  if (status == "completed") return std::string(has_calls ? "tool_calls" : "stop");
  if (status == "incomplete") {
    const std::string reason =
        response.contains("incomplete_details") ? string_at(response["incomplete_details"], "reason") : "";
    if (reason == "max_output_tokens") return std::string("length");
    return reason.empty() ? status : reason;
  }
  if (status == "failed") return make_error(model_errc::provider_error, std::string(from) + ": the response failed");
  return make_error(model_errc::bad_response, "the response is " + status + ", not finished");
}

class openai_responses final : public provider {
 public:
  explicit openai_responses(http_provider_options options) : options_(std::move(options)) {
    options_.base_url = wire::without_trailing_slashes(std::move(options_.base_url));
  }

  result<chat_response> complete(const chat_request& request, chat_stream* stream) override {
    net::http_request http{.method = "POST", .url = options_.base_url + "/responses"};
    http.keep_alive = true;  // the same endpoint is asked again and again
    http.headers = wire::openai_headers(options_);
    http.body = dump_json(responses_body(request, stream != nullptr));
    http.timeout = options_.timeout;
    if (stream == nullptr) {
      CHOIR_TRY(net::http_response response, net::http_call(http));
      if (response.status / 100 != 2) return status_error(response.status, response.body, who);
      return parse_answer_impl(response.body);
    }
    return streamed(http, *stream);
  }

  static result<chat_response> parse_answer_impl(std::string_view text) {
    const value v = value::parse(text, nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded() || !v.is_object())
      return make_error(model_errc::bad_response, "the answer is not a JSON object");
    if (v.contains("error") && v["error"].is_object()) return failure(v["error"], who);
    if (!v.contains("output") || !v["output"].is_array())
      return make_error(model_errc::bad_response, "the answer has no output array");
    chat_response r;
    r.message.role = "assistant";
    for (const auto& item : v["output"]) {
      const std::string type = string_at(item, "type");
      if (type == "message" && item.contains("content") && item["content"].is_array()) {
        for (const auto& part : item["content"]) {
          if (string_at(part, "type") == "output_text") r.message.content += string_at(part, "text");
        }
      } else if (type == "function_call") {
        const value& args = item.contains("arguments") ? item["arguments"] : value();
        r.message.tool_calls.push_back({.id = string_at(item, "call_id"),
                                        .name = string_at(item, "name"),
                                        .arguments = args.is_string()
                                                         ? wire::tool_arguments(args.get_ref<const std::string&>())
                                                         : (args.is_null() ? value::object() : args)});
      }
    }
    CHOIR_TRY(r.finish_reason, finish_of(v, !r.message.tool_calls.empty(), who));
    read_usage(v, r);
    return r;
  }

 private:
  static result<chat_response> streamed(const net::http_request& http, chat_stream& stream) {
    // A function call as its events arrive. Its arguments are the joined deltas (as the SDKs
    // accumulate them); the full text of a `.done` event or item fills them only if none came.
    struct partial_call {
      std::string item_id, call_id, name, arguments;
      bool ready = false;
    };
    chat_response r;
    r.message.role = "assistant";
    std::map<std::int64_t, partial_call> calls;  // by output_index, in output order
    std::optional<value> final_response;         // of response.completed, .incomplete or .failed
    std::optional<error> failure_seen;

    // The call an event is about: by its `output_index`, else by its `item_id`.
    auto call_of = [&](const value& v) -> partial_call* {
      if (v.contains("output_index") && v["output_index"].is_number_integer()) {
        auto it = calls.find(v["output_index"].get<std::int64_t>());
        if (it != calls.end()) return &it->second;
      }
      const std::string item_id = string_at(v, "item_id");
      for (auto& [index, c] : calls) {
        if (!item_id.empty() && c.item_id == item_id) return &c;
      }
      return nullptr;
    };
    auto finish_call = [&](partial_call& c) {
      if (c.ready) return;
      c.ready = true;
      tool_call call{.id = c.call_id, .name = c.name, .arguments = wire::tool_arguments(c.arguments)};
      stream.tool_call_ready(call);
      r.message.tool_calls.push_back(std::move(call));
    };
    auto on_event = [&](const net::sse_event& e) {
      const value v = value::parse(e.data, nullptr, /*allow_exceptions=*/false);
      if (v.is_discarded() || !v.is_object()) {
        failure_seen = make_error(model_errc::bad_response, "a streamed event is not a JSON object");
        return;
      }
      const std::string type = string_at(v, "type", e.event);
      if (type == "response.output_text.delta") {
        const std::string piece = string_at(v, "delta");
        r.message.content += piece;
        if (!piece.empty()) stream.text(piece);
      } else if (type == "response.output_item.added" || type == "response.output_item.done") {
        const value& item = v.contains("item") ? v["item"] : value();
        if (string_at(item, "type") != "function_call") return;
        auto& c = calls[int_at(v, "output_index")];
        if (c.item_id.empty()) c.item_id = string_at(item, "id");
        if (c.call_id.empty()) c.call_id = string_at(item, "call_id");
        if (c.name.empty()) c.name = string_at(item, "name");
        if (c.arguments.empty()) c.arguments = string_at(item, "arguments");
        if (type == "response.output_item.done") finish_call(c);
      } else if (type == "response.function_call_arguments.delta") {
        if (partial_call* c = call_of(v)) c->arguments += string_at(v, "delta");
      } else if (type == "response.function_call_arguments.done") {
        if (partial_call* c = call_of(v)) {
          if (c->arguments.empty()) c->arguments = string_at(v, "arguments");
          finish_call(*c);
        }
      } else if (type == "response.completed" || type == "response.incomplete" || type == "response.failed") {
        final_response = v.contains("response") && v["response"].is_object() ? v["response"] : value::object();
        if (type == "response.failed" && string_at(*final_response, "status").empty())
          (*final_response)["status"] = "failed";
      } else if (type == "error") {
        failure_seen = failure(v.contains("error") && v["error"].is_object() ? v["error"] : v, who_mid_stream);
      }
    };
    CHOIR_CHECK(stream_events(
        http,
        [&](const net::sse_event& e) {
          on_event(e);
          return !final_response && !failure_seen;
        },
        who));
    if (failure_seen) return *failure_seen;
    if (!final_response) return make_error(model_errc::provider_error, "the stream ended before response.completed");
    for (auto& [index, c] : calls) finish_call(c);
    CHOIR_TRY(r.finish_reason, finish_of(*final_response, !r.message.tool_calls.empty(), who_mid_stream));
    read_usage(*final_response, r);
    return r;
  }

  http_provider_options options_;
};

}  // namespace

result<chat_response> parse_openai_responses_answer(std::string_view body) {
  return openai_responses::parse_answer_impl(body);
}

std::shared_ptr<provider> openai_responses_provider(http_provider_options options) {
  return std::make_shared<openai_responses>(std::move(options));
}

}  // namespace choir::models
