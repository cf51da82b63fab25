#pragma once
/// A small blocking HTTP/1.1 client for the services that talk to the network (the model gateway's
/// providers, `web.fetch`, MCP over Streamable HTTP, the OTLP exporter). `http` and `https` (TLS
/// with peer and host name verification against the system's roots). Asio and Beast stay inside
/// http_client.cpp.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "choir/core/result.hpp"

namespace choir::net {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct http_request {
  std::string method = "GET";
  std::string url;  ///< `http://host[:port]/path?query` or `https://…`
  header_list headers;
  std::string body;
  /// The whole exchange (resolve, connect, handshake, send, receive) must finish within this.
  std::chrono::milliseconds timeout{60'000};
  /// A longer response body fails with `core_errc::invalid_argument` ("response too large").
  std::size_t max_body_bytes = 16u << 20;
  /// When set, the call gives up within 50 ms of it becoming true (`core_errc::io_error`,
  /// "cancelled"): how a long-lived stream is stopped from another thread.
  const std::atomic<bool>* cancel = nullptr;
  /// When set, called with each address the host resolves to (`127.0.0.1`, `::1`); it returns why
  /// the address is refused, or nothing to allow it. Only allowed addresses are connected to, so a
  /// name cannot resolve to one address when checked and another when used. All refused: the call
  /// fails with `core_errc::invalid_argument` and the first reason.
  std::function<std::string(std::string_view address)> vet_address;
  /// Keep the connection open after the answer, for the next request to the same scheme, host
  /// and port that asks for it (the model providers do: a model is asked again and again). A kept
  /// connection the server has closed meanwhile is replaced, and a request that got no answer on
  /// it is sent once more. Not with `vet_address`.
  bool keep_alive = false;
};

struct http_response {
  int status = 0;
  header_list headers;
  std::string body;  ///< empty when the body went to a `body_sink`

  /// The first header named `name` (case-insensitive), or empty.
  [[nodiscard]] std::string_view header(std::string_view name) const;
};

/// Receives the body as it arrives (for streamed responses such as server-sent events), with the
/// response's status and headers already filled in. Returns false to stop reading (the call then
/// returns what it has).
using body_sink = std::function<bool(const http_response& head, std::string_view chunk)>;

/// The parts of a URL the client understands.
struct url_parts {
  std::string scheme;  ///< `http` or `https`
  std::string host;
  std::string port;    ///< defaulted from the scheme
  std::string target;  ///< path and query, at least `/`
};
/// Splits `url`; `core_errc::invalid_argument` for anything but `http(s)://host[:port][/…]`.
[[nodiscard]] result<url_parts> parse_url(std::string_view url);

/// Sends `request` and waits for the response, on the calling thread. With `on_body`, the body is
/// handed over in pieces as it arrives (decoded from chunked transfer encoding) and not kept.
/// Errors: `core_errc::invalid_argument` (bad URL, response over the size limit),
/// `core_errc::timed_out` (the timeout passed), `core_errc::io_error` (resolve, connect, TLS or
/// protocol failure; the message says which). A non-2xx status is not an error: it is returned.
/// Thread-safe: a connection serves one call at a time.
[[nodiscard]] result<http_response> http_call(const http_request& request, const body_sink& on_body = {});

}  // namespace choir::net
