#pragma once
/// The network providers: OpenAI-compatible Chat Completions (OpenAI, and the servers that speak
/// it: llama.cpp, vLLM, Ollama), the OpenAI Responses API and Anthropic Messages. Wire formats:
/// shared reference in docs/models.md. Each streams with server-sent events when the caller asks
/// for a stream.
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "choir/models/gateway.hpp"
#include "choir/net/http_client.hpp"
#include "choir/net/sse.hpp"

namespace choir::models {

struct http_provider_options {
  std::string base_url;  ///< up to the version: `https://api.openai.com/v1`, `http://127.0.0.1:8080/v1`
  std::string api_key;   ///< sent as `Authorization: Bearer` (OpenAI) or `x-api-key` (Anthropic); may be empty
  std::chrono::milliseconds timeout{120'000};
  net::header_list extra_headers;
  /// OpenAI Chat Completions: the request field for the answer's length (`max_tokens` is
  /// understood by every compatible server; OpenAI's newer models want `max_completion_tokens`).
  /// The Responses API always sends `max_output_tokens`.
  std::string max_tokens_field = "max_tokens";
  /// Anthropic: the `anthropic-version` header, and the answer length sent when none is asked for
  /// (the API requires one).
  std::string api_version = "2023-06-01";
  std::int64_t default_max_tokens = 4096;
};

[[nodiscard]] std::shared_ptr<provider> openai_chat_provider(http_provider_options options);
/// POSTs `{base_url}/responses` with `store: false` (the whole conversation is sent each time, and
/// nothing is kept at OpenAI). A response that failed, or an error event in its stream, is the
/// error its code means (`server_error`: `provider_error`, `rate_limit_exceeded`: `rate_limited`,
/// `invalid_…`: `rejected`); a stream that ends before `response.completed` (or `.incomplete`) is
/// `provider_error`.
[[nodiscard]] std::shared_ptr<provider> openai_responses_provider(http_provider_options options);
[[nodiscard]] std::shared_ptr<provider> anthropic_provider(http_provider_options options);

/// A whole (not streamed) answer in each wire format, as the providers read it. Errors:
/// `model_errc::bad_response`; a Responses answer that carries an `error` (a failed response) is
/// the error its code means, as above. Exposed for tests and fuzzing: the bytes come from the
/// network.
[[nodiscard]] result<chat_response> parse_openai_answer(std::string_view body);
[[nodiscard]] result<chat_response> parse_openai_responses_answer(std::string_view body);
[[nodiscard]] result<chat_response> parse_anthropic_answer(std::string_view body);

/// Sends `http` and hands each server-sent event of a 2xx answer to `on_event` until it returns
/// false or the stream ends. A non-2xx answer is `status_error` (naming `who`) with its body; an
/// event over the parser's limit is `core_errc::parse_error`; transport errors as `http_call`'s.
[[nodiscard]] result<void> stream_events(const net::http_request& http,
                                         const std::function<bool(const net::sse_event&)>& on_event,
                                         std::string_view who);

/// The error a provider's HTTP status means: 429 `rate_limited`, 5xx (and Anthropic's 529)
/// `provider_error`, 408 `core_errc::timed_out`, other 4xx `rejected`. `body` is searched for the
/// provider's own message.
[[nodiscard]] error status_error(int status, std::string_view body, std::string_view who);

}  // namespace choir::models
