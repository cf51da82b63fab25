#pragma once
/// `/mcp` of `choir serve`: MCP over Streamable HTTP (protocol 2025-11-25, and 2025-06-18 and
/// 2025-03-26). Each session is an MCP session of the runtime (`runtime::mcp_session`): a run of
/// an agent, admitted for the token's user, whose tool calls pass the kernel's gate. Plain
/// requests and responses, like the rest of the service (docs/mcp.md, "Streamable HTTP").
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "choir/api/service.hpp"

namespace choir::mcp {
class server;
}
namespace choir::runtime {
class mcp_session;
}

namespace choir::api {

class mcp_endpoint {
 public:
  mcp_endpoint(const service_options& options,
               std::function<std::shared_ptr<const runtime::agent_definition>(std::string_view)> find_agent);
  ~mcp_endpoint();
  mcp_endpoint(const mcp_endpoint&) = delete;
  mcp_endpoint& operator=(const mcp_endpoint&) = delete;

  /// One request to `/mcp` from `who` (already authenticated, its `Host` and `Origin` checked).
  [[nodiscard]] http_response handle(const http_request& request, const identity& who, std::string_view query);
  /// Open sessions now.
  [[nodiscard]] std::size_t sessions() const;
  /// Ends every session (their runs are recorded completed).
  void close_all();

 private:
  struct session;
  http_response open(const http_request& request, const identity& who, std::string_view query);
  /// Ends sessions idle for longer than the limit.
  void sweep();

  const service_options& options_;
  std::function<std::shared_ptr<const runtime::agent_definition>(std::string_view)> find_agent_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<session>, std::less<>> sessions_;
};

}  // namespace choir::api
