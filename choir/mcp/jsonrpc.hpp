#pragma once
/// JSON-RPC 2.0 as MCP uses it (one message per line on stdio, one per HTTP body): requests,
/// notifications and responses, no batches. Every message from a peer goes through `parse_rpc`,
/// which never throws and says which error code to answer a bad message with.
#include <optional>
#include <string>
#include <string_view>

#include "choir/core/value.hpp"

namespace choir::mcp {

/// The standard error codes.
namespace rpc_code {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
}  // namespace rpc_code

struct rpc_message {
  enum class kind { request, notification, response };
  kind type = kind::request;
  value id;  ///< a string or an integer; null for a notification
  std::string method;
  value params = value::object();  ///< always an object (absent params become {})
  value result;                    ///< a response's result, or null
  value error;                     ///< a response's error object, or null
};

/// Why a message was refused, and how to answer it (`id` is null when it could not be read).
struct rpc_failure {
  int code = rpc_code::invalid_request;
  std::string message;
  value id;
};

/// Parses one message. A JSON array (a batch) is refused: MCP removed batches in 2025-06-18.
/// Bounded: text over `max_bytes` is refused before it is parsed.
[[nodiscard]] std::optional<rpc_message> parse_rpc(std::string_view text, rpc_failure& failure,
                                                   std::size_t max_bytes = 16u << 20);

/// The serialized messages (no newline).
[[nodiscard]] std::string rpc_result(const value& id, value result);
[[nodiscard]] std::string rpc_error(const value& id, int code, std::string_view message, value data = nullptr);
[[nodiscard]] std::string rpc_notification(std::string_view method, value params);

}  // namespace choir::mcp
