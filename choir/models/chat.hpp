#pragma once
/// The model gateway's vocabulary: a chat request (messages, tools), the answer (a message that may
/// carry tool calls), token usage, and the errors a provider reports. Provider-neutral: each
/// provider translates to and from its own wire format. The JSON forms (used by the effect
/// journal, the `llm` action's state and the scripted model) are documented in docs/models.md.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"

namespace choir::models {

enum class model_errc {
  unknown_model = 1,  ///< the alias is not configured
  rate_limited,       ///< the provider answered 429 (retried, then given up)
  provider_error,     ///< the provider answered 5xx or broke the connection (retried, then given up)
  rejected,           ///< the provider refused the request (4xx other than 429): not retried
  bad_response,       ///< the answer could not be understood
  context_too_long,   ///< the request is over the context limit
  budget_exhausted,   ///< the run has used its token or cost budget
};

[[nodiscard]] const std::error_category& model_category() noexcept;
[[nodiscard]] std::error_code make_error_code(model_errc e) noexcept;

struct tool_call {
  std::string id;  ///< the provider's id, echoed in the tool's result message
  std::string name;
  value arguments = value::object();
};

struct chat_message {
  std::string role;  ///< `system`, `user`, `assistant` or `tool`
  std::string content;
  std::vector<tool_call> tool_calls;  ///< assistant messages only
  std::string tool_call_id;           ///< tool messages: the call this answers
  std::string name;                   ///< tool messages: the tool's name
  bool is_error = false;              ///< tool messages: the call failed (the content says why)
};

struct tool_definition {
  std::string name;
  std::string description;
  value input_schema = value::object();
};

struct chat_request {
  std::string model;  ///< the alias asked for (`local/8B`)
  /// The run asking. Not sent to a provider: it routes an `mcp-client` alias to the client that
  /// answers for the run (choir/models/sampling.hpp).
  std::string run_id;
  std::vector<chat_message> messages;
  std::vector<tool_definition> tools;
  std::optional<std::int64_t> max_tokens;  ///< of the answer
  std::optional<double> temperature;
  /// Ask for a JSON answer (the provider's JSON mode where it has one); the caller validates it.
  bool json_output = false;
};

struct token_usage {
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  bool estimated = false;  ///< the provider gave no figures; `estimate_tokens` was used
  [[nodiscard]] std::int64_t total() const { return input_tokens + output_tokens; }
};

struct chat_response {
  chat_message message;       ///< role `assistant`
  std::string finish_reason;  ///< `stop`, `length`, `tool_calls`, … as the provider said it
  token_usage usage;
  std::string model;  ///< the alias that answered (after fallback, maybe not the one asked for)
  double cost_usd = 0;
};

/// Receives an answer as it is produced (tokens of text, then each tool call once complete).
class chat_stream {
 public:
  virtual ~chat_stream() = default;
  virtual void text(std::string_view delta) = 0;
  virtual void tool_call_ready(const tool_call& /*call*/) {}
};

/// The documented estimate used where a provider gives no usage figures and to check a request
/// against a context limit before sending it: one token per 4 bytes of text (rounded up), plus 4
/// per message and the size of the tool definitions. It over-counts English a little, which is
/// the safe side for a limit.
[[nodiscard]] std::int64_t estimate_tokens(std::string_view text);
[[nodiscard]] std::int64_t estimate_tokens(const chat_request& request);

[[nodiscard]] value to_json(const tool_call& call);
[[nodiscard]] value to_json(const chat_message& message);
[[nodiscard]] value to_json(const chat_request& request);
[[nodiscard]] value to_json(const chat_response& response);
/// The inverse of `to_json`; `core_errc::invalid_argument` naming the field at fault.
[[nodiscard]] result<chat_message> message_from_json(const value& v);
[[nodiscard]] result<chat_response> response_from_json(const value& v);

}  // namespace choir::models

template <>
struct std::is_error_code_enum<choir::models::model_errc> : std::true_type {};
