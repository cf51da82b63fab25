#include "choir/api/server.hpp"

#include <array>
#include <atomic>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace choir::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using strand = asio::strand<asio::io_context::executor_type>;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

std::string header(const http::request<http::string_body>& req, http::field f) {
  auto it = req.find(f);
  return it == req.end() ? std::string() : std::string(it->value());
}

http::response<http::string_body> to_beast(const http_response& r, unsigned version, bool keep_alive, bool head) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::content_type, r.content_type);
  for (const auto& [name, val] : r.headers) res.set(name, val);
  res.keep_alive(keep_alive);
  res.body() = r.body;
  res.prepare_payload();
  if (head) res.body().clear();  // the length stays that of the GET
  return res;
}

/// One `/api/v1/stream` client: the socket, and the writer that drains its queue.
class ws_connection final : public stream_connection {
 public:
  ws_connection(stream_context ctx, websocket::stream<beast::tcp_stream> ws, const strand& ex)
      : stream_connection(std::move(ctx)), ws_(std::move(ws)), signal_(ex), ex_(ex) {
    signal_.expires_at(asio::steady_timer::time_point::max());
  }

  websocket::stream<beast::tcp_stream>& ws() { return ws_; }
  asio::steady_timer& signal() { return signal_; }
  bool done = false;               ///< the reader ended: the writer stops
  bool close_after_flush = false;  ///< write what is queued, then close

 protected:
  void wake() override {
    asio::post(ex_, [self = std::weak_ptr<stream_connection>(weak_from_this())] {
      if (auto c = self.lock()) static_cast<ws_connection&>(*c).signal_.cancel();
    });
  }

 private:
  websocket::stream<beast::tcp_stream> ws_;
  asio::steady_timer signal_;
  strand ex_;
};

asio::awaitable<void> write_frames(std::shared_ptr<ws_connection> c) {
  std::deque<frame> batch;
  for (;;) {
    if (c->done) co_return;
    if (!c->take(batch)) {
      if (c->close_after_flush) {
        (void)co_await c->ws().async_close(websocket::close_code::policy_error, tuple_awaitable);
        co_return;
      }
      c->signal().expires_at(asio::steady_timer::time_point::max());
      (void)co_await c->signal().async_wait(tuple_awaitable);  // `wake` cancels it
      continue;
    }
    while (!batch.empty()) {
      const frame f = std::move(batch.front());
      batch.pop_front();
      c->ws().text(true);
      auto [ec, n] = co_await c->ws().async_write(asio::buffer(*f), tuple_awaitable);
      if (ec) {
        c->done = true;
        co_return;
      }
    }
  }
}

asio::awaitable<void> expect_auth(std::shared_ptr<ws_connection> c, std::chrono::seconds within) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(within);
  (void)co_await timer.async_wait(tuple_awaitable);
  if (!c->authenticated() && !c->done) {
    beast::error_code ignored;
    beast::get_lowest_layer(c->ws()).socket().close(ignored);
  }
}

}  // namespace

struct server::impl {
  impl(std::shared_ptr<service> s, server_options o) : svc(std::move(s)), opts(std::move(o)) {}

  std::shared_ptr<service> svc;
  server_options opts;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::atomic<std::size_t> open{0};
  bool stopped = false;

  struct connection_count {
    std::atomic<std::size_t>* n;
    explicit connection_count(std::atomic<std::size_t>& c) : n(&c) { ++*n; }
    ~connection_count() { --*n; }
    connection_count(const connection_count&) = delete;
    connection_count& operator=(const connection_count&) = delete;
  };

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(tuple_awaitable);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;  // a connection failed while being accepted (or descriptors ran out); go on
      }
      if (open.load() >= opts.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);
        continue;
      }
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto ex = asio::make_strand(ioc);
      asio::co_spawn(ex, session(beast::tcp_stream(std::move(socket)), ex), asio::detached);
    }
  }

  /// Writes a response of server-sent events: the header, then each event as it is pushed, a
  /// comment every 15 s while none is (so a dead client is noticed), until the stream ends or the
  /// client goes.
  static asio::awaitable<void> write_events(beast::tcp_stream& stream, strand ex, const http_response& answer,
                                            unsigned version) {
    const auto events = answer.events;
    http::response<http::empty_body> head{static_cast<http::status>(answer.status), version};
    head.set(http::field::content_type, "text/event-stream");
    head.set(http::field::cache_control, "no-cache");
    for (const auto& [name, val] : answer.headers) head.set(name, val);
    head.keep_alive(false);
    http::response_serializer<http::empty_body> serializer{head};
    stream.expires_never();
    auto [hec, hn] = co_await http::async_write_header(stream, serializer, tuple_awaitable);
    static constexpr std::string_view opened = ": open\n\n";  // the client knows the stream is up
    if (!hec) std::tie(hec, hn) = co_await asio::async_write(stream, asio::buffer(opened), tuple_awaitable);
    if (hec) {
      events->gone();
      co_return;
    }
    auto wake = std::make_shared<asio::steady_timer>(ex);
    events->on_ready([weak = std::weak_ptr<asio::steady_timer>(wake), ex] {
      asio::post(ex, [weak] {
        if (auto t = weak.lock()) t->cancel();
      });
    });
    for (;;) {
      auto [items, ended] = events->take();
      std::string out;
      for (const auto& data : items) out += "event: message\ndata: " + data + "\n\n";
      if (!out.empty()) {
        auto [wec, n] = co_await asio::async_write(stream, asio::buffer(out), tuple_awaitable);
        if (wec) break;
      }
      if (ended) break;
      wake->expires_after(std::chrono::seconds(15));
      auto [tec] = co_await wake->async_wait(tuple_awaitable);
      if (!tec) {  // nothing for a while: a comment, which fails once the client has gone
        static constexpr std::string_view keep_alive = ": keep-alive\n\n";
        auto [kec, n] = co_await asio::async_write(stream, asio::buffer(keep_alive), tuple_awaitable);
        if (kec) break;
      }
    }
    events->gone();
  }

  asio::awaitable<void> session(beast::tcp_stream stream, strand ex) {
    connection_count counted(open);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(opts.header_limit));
      parser.body_limit(opts.body_limit);
      stream.expires_after(opts.request_timeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, tuple_awaitable);
      if (ec) {
        int status = 0;
        if (ec == http::error::header_limit) status = 431;
        if (ec == http::error::body_limit) status = 413;
        if (status == 0 && ec != http::error::end_of_stream && ec != beast::error::timeout && ec != asio::error::eof &&
            ec != asio::error::connection_reset && ec != asio::error::operation_aborted) {
          status = 400;  // not HTTP
        }
        if (status != 0) {
          auto res =
              to_beast(error_response(status, status == 400 ? "bad_request" : "too_large",
                                      status == 400 ? "the request could not be read" : "the request is too large"),
                       11, false, false);
          stream.expires_after(std::chrono::seconds(5));
          (void)co_await http::async_write(stream, res, tuple_awaitable);
          // A lingering close: say we are done, then read (and drop) what the client is still
          // sending for a moment, so that it reads the answer instead of a reset connection.
          beast::error_code ignored;
          stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
          stream.expires_after(std::chrono::seconds(2));
          std::array<char, 16 * 1024> sink{};
          for (std::size_t drained = 0; drained < (std::size_t{8} << 20);) {
            auto [rec, got] = co_await stream.async_read_some(asio::buffer(sink), tuple_awaitable);
            if (rec) break;
            drained += got;
          }
          co_return;
        }
        break;
      }
      auto& req = parser.get();
      http_request r{
          .method = std::string(req.method_string()),
          .target = std::string(req.target()),
          .host = header(req, http::field::host),
          .origin = header(req, http::field::origin),
          .authorization = header(req, http::field::authorization),
          .content_type = header(req, http::field::content_type),
          .accept = header(req, http::field::accept),
          .mcp_session = req.count("Mcp-Session-Id") ? std::string(req["Mcp-Session-Id"]) : "",
          .mcp_protocol_version = req.count("MCP-Protocol-Version") ? std::string(req["MCP-Protocol-Version"]) : "",
          .body = std::move(req.body())};
      if (websocket::is_upgrade(req)) {
        std::string_view path = r.target;
        path = path.substr(0, path.find('?'));
        std::optional<http_response> refused = svc->check_origin(r);
        if (!refused && path != "/api/v1/stream") refused = error_response(404, "not_found", "no such WebSocket");
        if (refused) {
          auto res = to_beast(*refused, req.version(), false, false);
          (void)co_await http::async_write(stream, res, tuple_awaitable);
          break;
        }
        stream.expires_never();
        websocket::stream<beast::tcp_stream> ws(std::move(stream));
        ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        auto settings = svc->stream_settings();
        ws.read_message_max(settings.max_frame);
        auto c = std::make_shared<ws_connection>(std::move(settings), std::move(ws), ex);
        auto [aec] = co_await c->ws().async_accept(req, tuple_awaitable);
        if (aec) co_return;
        asio::co_spawn(ex, write_frames(c), asio::detached);
        asio::co_spawn(ex, expect_auth(c, opts.auth_timeout), asio::detached);
        beast::flat_buffer in;
        for (;;) {
          auto [rec, got] = co_await c->ws().async_read(in, tuple_awaitable);
          if (rec) break;
          if (!c->ws().got_text()) {
            c->close_after_flush = true;  // frames are JSON text
          } else if (!c->close_after_flush && !c->on_frame(beast::buffers_to_string(in.data()))) {
            c->close_after_flush = true;  // the writer sends what is queued (the error), then closes
          }
          in.consume(in.size());
          if (c->close_after_flush) c->signal().cancel();
        }
        c->closed();
        c->done = true;
        c->signal().cancel();
        co_return;
      }
      const bool keep_alive = req.keep_alive();
      http_response answer = svc->handle(r);
      if (answer.events) {
        co_await write_events(stream, ex, answer, req.version());
        break;  // an event stream ends its connection
      }
      auto res = to_beast(answer, req.version(), keep_alive, r.method == "HEAD");
      auto [wec, written] = co_await http::async_write(stream, res, tuple_awaitable);
      if (wec || !keep_alive) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
};

server::server(std::shared_ptr<service> svc, server_options options)
    : impl_(std::make_unique<impl>(std::move(svc), std::move(options))) {}

server::~server() {
  stop();
  impl_.reset();  // the io_context goes, and with it every connection's coroutine and socket
}

result<std::uint16_t> server::listen() {
  auto& s = *impl_;
  beast::error_code ec;
  const auto address = asio::ip::make_address(s.opts.host, ec);
  if (ec) return make_error(core_errc::invalid_argument, "'" + s.opts.host + "' is not an IP address");
  const tcp::endpoint endpoint(address, s.opts.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return make_error(core_errc::io_error,
                      "cannot listen on " + s.opts.host + ":" + std::to_string(s.opts.port) + ": " + ec.message());
  }
  return s.acceptor.local_endpoint().port();
}

void server::run() {
  auto& s = *impl_;
  asio::co_spawn(s.ioc, s.accept_loop(), asio::detached);
  const int n = s.opts.threads < 1 ? 1 : s.opts.threads;
  for (int i = 0; i < n; ++i) s.threads.emplace_back([&s] { s.ioc.run(); });
}

void server::stop() {
  if (!impl_ || impl_->stopped) return;
  auto& s = *impl_;
  s.stopped = true;
  asio::post(s.ioc, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
  });
  // Let in-flight exchanges finish their write, briefly, then stop the loop.
  for (int i = 0; i < 20 && s.open.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  s.ioc.stop();
  for (auto& t : s.threads) {
    if (t.joinable()) t.join();
  }
}

std::size_t server::connections() const { return impl_ ? impl_->open.load() : 0; }

}  // namespace choir::api
