#pragma once
/// The HTTP/1.1 and WebSocket server of `choir serve` (Boost.Beast, kept inside server.cpp): it
/// reads requests within limits, hands them to the `service`, and runs `/api/v1/stream`
/// connections (docs/api.md).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "choir/api/service.hpp"
#include "choir/core/result.hpp"

namespace choir::api {

struct server_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0: any free port
  int threads = 1;
  std::size_t max_connections = 4'096;  ///< more are closed as soon as they are accepted
  std::size_t header_limit = 16 * 1024;
  std::size_t body_limit = 1 << 20;
  std::chrono::seconds request_timeout{30};  ///< a request must arrive whole within it
  std::chrono::seconds auth_timeout{10};     ///< a stream's first frame must authenticate within it
};

class server {
 public:
  server(std::shared_ptr<service> svc, server_options options);
  /// Stops (if running) and closes every connection.
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and listens. Returns the port. Errors: `invalid_argument` (not an IP address),
  /// `io_error` (the address is taken).
  [[nodiscard]] result<std::uint16_t> listen();
  /// Starts accepting and answering, on `threads` threads of its own.
  void run();
  /// Stops accepting and answering, and joins the threads. Connections are closed when the server
  /// is destroyed; destroy it after whatever publishes to its connections (the conversations).
  void stop();
  /// Open connections now.
  [[nodiscard]] std::size_t connections() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace choir::api
