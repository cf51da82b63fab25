#pragma once
/// MCP sampling (`sampling/createMessage`, protocol 2025-11-25) in the model gateway's terms, both
/// ways: ChoirOS's MCP server asks its client's model for a run (`sampling_params`,
/// `sampling_answer`), and ChoirOS's MCP client answers a server's request with the gateway
/// (`sampled_request`, `sampling_result`). The mapping is documented in docs/mcp.md, "Sampling".
#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/models/chat.hpp"
#include "choir/models/sampling.hpp"

namespace choir::runtime {

/// The answer length asked for when the request names none (MCP requires one).
inline constexpr std::int64_t default_sampling_max_tokens = 4096;

/// A chat request as `sampling/createMessage` params: system messages become `systemPrompt`; user
/// and assistant messages text blocks; an assistant's tool calls `tool_use` blocks; tool messages
/// `tool_result` blocks of a user message (consecutive ones together); tools and `toolChoice`
/// `auto` only `with_tools` (the client declared `sampling.tools`) — a request that offers tools, or
/// whose history holds tool calls, to a client that cannot take them is `model_errc::rejected`.
/// A JSON answer is asked for in the system prompt (MCP has no JSON mode).
[[nodiscard]] result<value> sampling_params(const models::chat_request& request,
                                            const models::sampling_preferences& preferences, bool with_tools);

/// A `CreateMessageResult` as the gateway's answer: text blocks joined, `tool_use` blocks as tool
/// calls, `stopReason` as the finish reason (`endTurn` → `stop`, `maxTokens` → `length`,
/// `toolUse` → `tool_calls`). Usage is left at zero (MCP reports none; the gateway estimates it).
/// Errors: `model_errc::bad_response` naming what is wrong (not an assistant message, content that
/// is neither text nor a tool call).
[[nodiscard]] result<models::chat_response> sampling_answer(const value& result);

/// A server's `sampling/createMessage` params as a chat request (no model chosen yet): the inverse
/// of `sampling_params`. Errors: `core_errc::invalid_argument` naming what is wrong.
[[nodiscard]] result<models::chat_request> sampled_request(const value& params);

/// The gateway's answer as a `CreateMessageResult` (`model` is the alias that answered): one text
/// block, or an array with the text and `tool_use` blocks when the model called tools.
[[nodiscard]] value sampling_result(const models::chat_response& answer);

}  // namespace choir::runtime
