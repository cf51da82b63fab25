#include <map>

#include "choir/core/json_access.hpp"
#include "choir/models/providers.hpp"
#include "choir/models/wire.hpp"
#include "choir/net/sse.hpp"

namespace choir::models {
namespace {

std::string finish_of(const std::string& stop_reason) {
  if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
  if (stop_reason == "max_tokens") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  return stop_reason;
}

/// Anthropic's `messages` and `system` from ours: system messages become `system`; a run of tool
/// results becomes one user message of `tool_result` blocks.
value anthropic_body(const chat_request& request, const http_provider_options& options, bool stream) {
  value body{{"model", request.model}, {"max_tokens", request.max_tokens.value_or(options.default_max_tokens)}};
  std::string system;
  value messages = value::array();
  for (const auto& m : request.messages) {
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n\n") + m.content;
    } else if (m.role == "tool") {
      value block{{"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.content}};
      if (m.is_error) block["is_error"] = true;
      if (!messages.empty() && messages.back()["role"] == "user" && messages.back()["content"].is_array() &&
          !messages.back()["content"].empty() &&
          string_at(messages.back()["content"].back(), "type") == "tool_result") {
        messages.back()["content"].push_back(std::move(block));
      } else {
        messages.push_back({{"role", "user"}, {"content", value::array({std::move(block)})}});
      }
    } else if (m.role == "assistant") {
      value blocks = value::array();
      if (!m.content.empty()) blocks.push_back({{"type", "text"}, {"text", m.content}});
      for (const auto& c : m.tool_calls) {
        blocks.push_back({{"type", "tool_use"},
                          {"id", c.id},
                          {"name", c.name},
                          {"input", c.arguments.is_object() ? c.arguments : value::object()}});
      }
      messages.push_back({{"role", "assistant"}, {"content", std::move(blocks)}});
    } else {
      messages.push_back({{"role", "user"}, {"content", m.content}});
    }
  }
  if (!system.empty()) body["system"] = system;
  body["messages"] = std::move(messages);
  if (!request.tools.empty()) {
    value tools = value::array();
    for (const auto& t : request.tools) {
      tools.push_back({{"name", t.name}, {"description", t.description}, {"input_schema", t.input_schema}});
    }
    body["tools"] = std::move(tools);
  }
  if (request.temperature) body["temperature"] = *request.temperature;
  if (stream) body["stream"] = true;
  return body;
}

class anthropic final : public provider {
 public:
  explicit anthropic(http_provider_options options) : options_(std::move(options)) {
    options_.base_url = wire::without_trailing_slashes(std::move(options_.base_url));
  }

  result<chat_response> complete(const chat_request& request, chat_stream* stream) override {
    net::http_request http{.method = "POST", .url = options_.base_url + "/messages"};
    http.keep_alive = true;  // the same endpoint is asked again and again
    http.headers = {{"content-type", "application/json"}, {"anthropic-version", options_.api_version}};
    if (!options_.api_key.empty()) http.headers.emplace_back("x-api-key", options_.api_key);
    for (const auto& h : options_.extra_headers) http.headers.push_back(h);
    http.body = dump_json(anthropic_body(request, options_, stream != nullptr));
    http.timeout = options_.timeout;
    if (stream == nullptr) {
      CHOIR_TRY(net::http_response response, net::http_call(http));
      if (response.status / 100 != 2) return status_error(response.status, response.body, "Anthropic endpoint");
      return parse_answer_impl(response.body);
    }
    return streamed(http, *stream);
  }

 public:
  static result<chat_response> parse_answer_impl(std::string_view text) {
    const value v = value::parse(text, nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded() || !v.is_object() || !v.contains("content") || !v["content"].is_array()) {
      return make_error(model_errc::bad_response, "the answer is not a message with content");
    }
    chat_response r;
    r.message.role = "assistant";
    for (const auto& block : v["content"]) {
      if (!block.is_object()) continue;
      const std::string type = string_at(block, "type");
      if (type == "text" && block.contains("text") && block["text"].is_string()) {
        r.message.content += block["text"].get<std::string>();
      } else if (type == "tool_use") {
        r.message.tool_calls.push_back({.id = string_at(block, "id"),
                                        .name = string_at(block, "name"),
                                        .arguments = block.contains("input") ? block["input"] : value::object()});
      }
    }
    if (v.contains("stop_reason") && v["stop_reason"].is_string()) r.finish_reason = finish_of(v["stop_reason"]);
    if (v.contains("usage") && v["usage"].is_object()) {
      r.usage.input_tokens = int_at(v["usage"], "input_tokens");
      r.usage.output_tokens = int_at(v["usage"], "output_tokens");
    }
    return r;
  }

 private:
  static result<chat_response> streamed(const net::http_request& http, chat_stream& stream) {
    struct block {
      std::string type, id, name, json;
    };
    chat_response r;
    r.message.role = "assistant";
    std::map<std::int64_t, block> blocks;
    bool stopped = false;
    std::optional<error> failure;
    auto on_event = [&](const net::sse_event& e) {
      if (stopped || failure) return;
      const value v = value::parse(e.data, nullptr, /*allow_exceptions=*/false);
      if (v.is_discarded() || !v.is_object()) {
        failure = make_error(model_errc::bad_response, "a streamed event is not a JSON object");
        return;
      }
      const std::string type = string_at(v, "type", e.event);
      const std::int64_t index =
          v.contains("index") && v["index"].is_number_integer() ? v["index"].get<std::int64_t>() : 0;
      if (type == "message_start" && v.contains("message") && v["message"].is_object()) {
        const value& m = v["message"];
        if (m.contains("usage") && m["usage"].is_object()) {
          r.usage.input_tokens = int_at(m["usage"], "input_tokens");
          r.usage.output_tokens = int_at(m["usage"], "output_tokens");
        }
      } else if (type == "content_block_start" && v.contains("content_block") && v["content_block"].is_object()) {
        const value& b = v["content_block"];
        auto& blk = blocks[index];
        blk.type = string_at(b, "type");
        blk.id = string_at(b, "id");
        blk.name = string_at(b, "name");
      } else if (type == "content_block_delta" && v.contains("delta") && v["delta"].is_object()) {
        const value& d = v["delta"];
        const std::string dtype = string_at(d, "type");
        if (dtype == "text_delta" && d.contains("text") && d["text"].is_string()) {
          const auto& piece = d["text"].get_ref<const std::string&>();
          r.message.content += piece;
          if (!piece.empty()) stream.text(piece);
        } else if (dtype == "input_json_delta" && d.contains("partial_json") && d["partial_json"].is_string()) {
          blocks[index].json += d["partial_json"].get<std::string>();
        }
      } else if (type == "content_block_stop") {
        auto it = blocks.find(index);
        if (it != blocks.end() && it->second.type == "tool_use") {
          tool_call call{
              .id = it->second.id, .name = it->second.name, .arguments = wire::tool_arguments(it->second.json)};
          stream.tool_call_ready(call);
          r.message.tool_calls.push_back(std::move(call));
        }
      } else if (type == "message_delta") {
        if (v.contains("delta") && v["delta"].is_object() && v["delta"].contains("stop_reason") &&
            v["delta"]["stop_reason"].is_string()) {
          r.finish_reason = finish_of(v["delta"]["stop_reason"]);
        }
        if (v.contains("usage") && v["usage"].is_object() && v["usage"].contains("output_tokens")) {
          r.usage.output_tokens = int_at(v["usage"], "output_tokens");
        }
      } else if (type == "message_stop") {
        stopped = true;
      } else if (type == "error") {
        const std::string kind = v.contains("error") && v["error"].is_object() ? string_at(v["error"], "type") : "";
        failure = status_error(kind == "overloaded_error" ? 529 : (kind == "rate_limit_error" ? 429 : 500), e.data,
                               "Anthropic endpoint (mid-stream)");
      }
    };
    CHOIR_CHECK(stream_events(
        http,
        [&](const net::sse_event& e) {
          on_event(e);
          return !stopped && !failure;
        },
        "Anthropic endpoint"));
    if (failure) return *failure;
    if (!stopped) return make_error(model_errc::provider_error, "the stream ended before message_stop");
    return r;
  }

  http_provider_options options_;
};

}  // namespace

result<chat_response> parse_anthropic_answer(std::string_view body) { return anthropic::parse_answer_impl(body); }

std::shared_ptr<provider> anthropic_provider(http_provider_options options) {
  return std::make_shared<anthropic>(std::move(options));
}

}  // namespace choir::models
