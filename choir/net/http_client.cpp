#include "choir/net/http_client.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace choir::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

/// What one exchange produced; filled in by the coroutine.
struct exchange_state {
  std::optional<result<http_response>> outcome;
  bool answered = false;  ///< the response's head arrived (nothing is sent again after that)
  bool keep = false;      ///< the whole answer was read and the server keeps the connection open
};

template <class Stream>
asio::awaitable<result<http_response>> talk(Stream& stream, const http_request& request, const url_parts& url,
                                            const body_sink& on_body, exchange_state& state) {
  http::request<http::string_body> req;
  auto verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) {
    co_return make_error(core_errc::invalid_argument, "unknown HTTP method '" + request.method + "'");
  }
  req.method(verb);
  req.target(url.target);
  req.version(11);
  const bool default_port = (url.scheme == "http" && url.port == "80") || (url.scheme == "https" && url.port == "443");
  req.set(http::field::host, default_port ? url.host : url.host + ":" + url.port);
  req.set(http::field::user_agent, "choir/0.1");
  for (const auto& [name, val] : request.headers) req.set(name, val);
  if (!request.body.empty() || verb == http::verb::post || verb == http::verb::put || verb == http::verb::patch) {
    req.body() = request.body;
    req.prepare_payload();
  }
  co_await http::async_write(stream, req, asio::use_awaitable);

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // the limit is ours, below: it also covers streamed bodies
  parser.header_limit(64 * 1024);
  co_await http::async_read_header(stream, buffer, parser, asio::use_awaitable);
  state.answered = true;

  http_response response;
  response.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  std::array<char, 16 * 1024> chunk{};
  std::size_t total = 0;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    auto [ec, n] = co_await http::async_read_some(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec && ec != http::error::need_buffer) throw beast::system_error(ec);
    const std::size_t got = chunk.size() - parser.get().body().size;
    total += got;
    if (total > request.max_body_bytes) {
      co_return make_error(core_errc::invalid_argument,
                           "response too large (over " + std::to_string(request.max_body_bytes) + " bytes)");
    }
    if (got == 0) continue;
    if (on_body) {
      if (!on_body(response, std::string_view(chunk.data(), got))) co_return response;
    } else {
      response.body.append(chunk.data(), got);
    }
  }
  state.keep = parser.keep_alive();
  co_return response;
}

/// The TLS settings every https call shares: the system's roots are loaded once, not per call.
asio::ssl::context& client_tls() {
  static asio::ssl::context tls = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_default_verify_paths();
    c.set_verify_mode(asio::ssl::verify_peer);
    return c;
  }();
  return tls;
}

/// A connection and the loop that drives it; kept between calls that ask for it (`keep_alive`).
struct connection {
  asio::io_context ioc{1};
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  std::chrono::steady_clock::time_point idle_since;
  [[nodiscard]] bool open() const { return plain || secure; }
};

/// Idle kept connections, by `scheme://host:port`: at most 4 each, none idle for more than 15 s
/// (servers close idle connections on their side; one closed under us is replaced, below).
class connection_pool {
 public:
  std::unique_ptr<connection> take(const std::string& key) {
    std::lock_guard lock(mutex_);
    const auto place = idle_.find(key);
    if (place == idle_.end()) return nullptr;
    auto& idle = place->second;
    while (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      if (std::chrono::steady_clock::now() - c->idle_since < max_idle) return c;
    }
    return nullptr;
  }
  void give(const std::string& key, std::unique_ptr<connection> c) {
    c->idle_since = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    auto& idle = idle_[key];
    if (idle.size() < max_per_place) idle.push_back(std::move(c));
  }

 private:
  static constexpr std::size_t max_per_place = 4;
  static constexpr std::chrono::seconds max_idle{15};
  std::mutex mutex_;
  std::map<std::string, std::vector<std::unique_ptr<connection>>> idle_;
};

connection_pool& kept_connections() {
  static connection_pool pool;
  return pool;
}

asio::awaitable<void> run_exchange(exchange_state& out, const http_request& request, const url_parts& url,
                                   const body_sink& on_body, connection& c) {
  auto executor = co_await asio::this_coro::executor;
  try {
    if (!c.open()) {
      // A numeric address needs no resolver (whose background thread would cost more than the exchange).
      std::vector<tcp::endpoint> endpoints;
      boost::system::error_code numeric;
      const auto address = asio::ip::make_address(url.host, numeric);
      if (!numeric) {
        endpoints.emplace_back(address, static_cast<unsigned short>(std::stoi(url.port)));
      } else {
        tcp::resolver resolver(executor);
        auto resolved = co_await resolver.async_resolve(url.host, url.port, asio::use_awaitable);
        for (const auto& entry : resolved) endpoints.push_back(entry.endpoint());
      }
      if (request.vet_address) {
        std::string refusal;
        std::erase_if(endpoints, [&](const tcp::endpoint& e) {
          auto why = request.vet_address(e.address().to_string());
          if (!why.empty() && refusal.empty()) refusal = e.address().to_string() + " " + why;
          return !why.empty();
        });
        if (endpoints.empty()) {
          out.outcome = make_error(core_errc::invalid_argument, request.url + ": refused: " + refusal);
          co_return;
        }
      }
      if (url.scheme != "https") {
        auto& stream = c.plain.emplace(executor);
        co_await stream.async_connect(endpoints, asio::use_awaitable);
        stream.socket().set_option(tcp::no_delay(true));
      } else {
        auto& stream = c.secure.emplace(executor, client_tls());
        if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
          out.outcome = make_error(core_errc::io_error, "TLS: cannot set the server name " + url.host);
          co_return;
        }
        stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
        co_await beast::get_lowest_layer(stream).async_connect(endpoints, asio::use_awaitable);
        beast::get_lowest_layer(stream).socket().set_option(tcp::no_delay(true));
        co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
      }
    }
    // (Not a conditional expression: g++ 12 mishandles co_await in one.)
    if (c.plain) {
      out.outcome = co_await talk(*c.plain, request, url, on_body, out);
    } else {
      out.outcome = co_await talk(*c.secure, request, url, on_body, out);
    }
  } catch (const boost::system::system_error& e) {
    out.keep = false;
    if (!out.outcome) {
      out.outcome = make_error(core_errc::io_error, request.method + " " + request.url + ": " + e.code().message());
    }
  } catch (const std::exception& e) {
    out.keep = false;
    if (!out.outcome)
      out.outcome = make_error(core_errc::io_error, request.method + " " + request.url + ": " + e.what());
  }
}

/// One exchange on `c` (connected first if it is not), until `deadline`. `state.keep` tells
/// whether `c` may serve another request.
result<http_response> exchange_on(connection& c, exchange_state& state, const http_request& request,
                                  const url_parts& url, const body_sink& on_body,
                                  std::chrono::steady_clock::time_point deadline) {
  c.ioc.restart();
  asio::co_spawn(c.ioc, run_exchange(state, request, url, on_body, c), asio::detached);
  for (;;) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) break;
    if (request.cancel == nullptr) {
      c.ioc.run_for(left);
      break;
    }
    c.ioc.run_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
    if (state.outcome || c.ioc.stopped()) break;
    if (request.cancel->load()) {
      c.ioc.stop();
      state.keep = false;
      return make_error(core_errc::io_error, request.method + " " + request.url + ": cancelled");
    }
  }
  if (!state.outcome) {
    c.ioc.stop();
    state.keep = false;
    return make_error(core_errc::timed_out, request.method + " " + request.url + ": no complete answer within " +
                                                std::to_string(request.timeout.count()) + " ms");
  }
  if (!state.outcome->ok()) state.keep = false;
  return std::move(*state.outcome);
}

/// Closes a connection that is not kept (plain: both directions shut down; TLS: many servers
/// close without a close_notify, so the socket is simply closed).
void close(connection& c) {
  beast::error_code ignored;
  if (c.plain) c.plain->socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (c.secure) beast::get_lowest_layer(*c.secure).close();
}

}  // namespace

std::string_view http_response::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return {};
}

result<url_parts> parse_url(std::string_view url) {
  url_parts parts;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return make_error(core_errc::invalid_argument, "URL '" + std::string(url) + "' has no scheme");
  }
  parts.scheme = std::string(url.substr(0, scheme_end));
  std::transform(parts.scheme.begin(), parts.scheme.end(), parts.scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (parts.scheme != "http" && parts.scheme != "https") {
    return make_error(core_errc::invalid_argument, "URL '" + std::string(url) + "': only http and https are supported");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  const auto path_start = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_start);
  std::string_view target = path_start == std::string_view::npos ? std::string_view("/") : rest.substr(path_start);
  if (const auto hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);
  if (target.empty() || target.front() == '?')
    parts.target = "/" + std::string(target);
  else
    parts.target = std::string(target);
  if (authority.find('@') != std::string_view::npos) {
    return make_error(core_errc::invalid_argument, "URL '" + std::string(url) + "': credentials in URLs are refused");
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {  // [v6]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return make_error(core_errc::invalid_argument, "URL '" + std::string(url) + "': unterminated IPv6 address");
    }
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        return make_error(core_errc::invalid_argument, "URL '" + std::string(url) + "': bad port");
      port = authority.substr(close + 2);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return make_error(core_errc::invalid_argument, "URL '" + std::string(url) + "' has no host");
  for (char c : host) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '\\') {
      return make_error(core_errc::invalid_argument, "URL '" + std::string(url) + "': bad host");
    }
  }
  if (port.empty()) {
    parts.port = parts.scheme == "https" ? "443" : "80";
  } else {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(std::string(port)) > 65535 || std::stoi(std::string(port)) == 0) {
      return make_error(core_errc::invalid_argument, "URL '" + std::string(url) + "': bad port");
    }
    parts.port = std::string(port);
  }
  parts.host = std::string(host);
  for (char c : parts.target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return make_error(core_errc::invalid_argument,
                        "URL '" + std::string(url) + "': unescaped control or space in the path");
    }
  }
  return parts;
}

result<http_response> http_call(const http_request& request, const body_sink& on_body) {
  CHOIR_TRY(url_parts url, parse_url(request.url));
  const auto deadline = std::chrono::steady_clock::now() + request.timeout;
  // A connection vetted for one request's addresses is not lent to another's.
  const bool pooled = request.keep_alive && !request.vet_address;
  const std::string place = url.scheme + "://" + url.host + ":" + url.port;
  // Each state is declared before its connection: a coroutine left unfinished by a timeout is
  // destroyed with the connection's io_context while what it refers to still exists.
  if (pooled) {
    exchange_state state;
    if (auto kept = kept_connections().take(place)) {
      auto answer = exchange_on(*kept, state, request, url, on_body, deadline);
      if (state.keep) {
        kept_connections().give(place, std::move(kept));
        return answer;
      }
      close(*kept);
      // The server may have closed the kept connection meanwhile: a request that got no answer at
      // all is sent once more, on a new connection. One that got an answer stands.
      if (answer.ok() || state.answered || answer.err().code != core_errc::io_error) return answer;
    }
  }
  exchange_state state;
  auto fresh = std::make_unique<connection>();
  auto answer = exchange_on(*fresh, state, request, url, on_body, deadline);
  if (pooled && state.keep) {
    kept_connections().give(place, std::move(fresh));
  } else {
    close(*fresh);
  }
  return answer;
}

}  // namespace choir::net
