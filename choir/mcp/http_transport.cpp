// The Streamable HTTP transport (MCP 2025-03-26 and later): one POST per message.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "choir/mcp/client.hpp"
#include "choir/net/http_client.hpp"
#include "choir/net/sse.hpp"

namespace choir::mcp {
namespace {

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  }
  return true;
}

std::string first_line(std::string_view body) {
  auto line = body.substr(0, std::min(body.find('\n'), std::size_t{300}));
  return std::string(line);
}

class http_channel final : public transport {
 public:
  explicit http_channel(http_options options) : options_(std::move(options)) {}
  ~http_channel() override { close(); }

  result<void> start(message_handler on_message, close_handler /*on_close*/) override {
    auto parts = net::parse_url(options_.url);
    if (!parts.ok()) return make_error(mcp_errc::transport_failed, parts.err().message);
    on_message_ = std::move(on_message);
    return {};
  }

  void agreed(const std::string& version) override {
    std::lock_guard lock(mutex_);
    version_ = version;
    // The server's own stream: requests and notifications that answer no POST of ours (a
    // sampling request a tool call makes, a list that changed) come on a GET.
    if (!listener_.joinable() && !closed_) listener_ = std::thread([this] { listen(); });
  }

  result<void> send(const std::string& message) override {
    net::http_request request;
    request.method = "POST";
    request.url = options_.url;
    request.timeout = options_.request_timeout;
    request.max_body_bytes = options_.max_message_bytes;
    request.body = message;
    request.keep_alive = true;  // a session's messages go to one endpoint, one after another
    request.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json, text/event-stream"}};
    bool had_session = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return make_error(mcp_errc::closed, describe() + ": closed");
      if (!session_.empty()) {
        request.headers.emplace_back("Mcp-Session-Id", session_);
        had_session = true;
      }
      if (!version_.empty()) request.headers.emplace_back("MCP-Protocol-Version", version_);
    }
    request.headers.insert(request.headers.end(), options_.headers.begin(), options_.headers.end());

    // The answer is JSON (kept whole) or an event stream (each event handed on as it comes).
    net::sse_parser events(options_.max_message_bytes);
    std::string body;
    bool streaming = false;
    bool decided = false;
    std::string failure;
    auto sink = [&](const net::http_response& head, std::string_view chunk) {
      if (!decided) {
        decided = true;
        streaming = head.status / 100 == 2 && starts_with_ci(head.header("content-type"), "text/event-stream");
        remember_session(head);
      }
      if (!streaming) {
        body.append(chunk);
        if (body.size() > options_.max_message_bytes) {
          failure = "an answer over " + std::to_string(options_.max_message_bytes) + " bytes";
          return false;
        }
        return true;
      }
      auto fed = events.feed(chunk, [&](const net::sse_event& e) {
        if (!e.data.empty() && (e.event.empty() || e.event == "message")) on_message_(e.data);
      });
      if (!fed.ok()) {
        failure = fed.err().message;
        return false;
      }
      return true;
    };
    auto response = net::http_call(request, sink);
    if (!response.ok()) return make_error(mcp_errc::transport_failed, describe() + ": " + response.err().message);
    if (!failure.empty()) return make_error(mcp_errc::bad_response, describe() + ": " + failure);
    const int status = response->status;
    if (!decided) remember_session(*response);
    if (status == 404 && had_session) {
      return make_error(mcp_errc::session_expired, describe() + ": the server no longer knows this session (404)");
    }
    if (status / 100 != 2) {
      return make_error(mcp_errc::transport_failed,
                        describe() + ": HTTP " + std::to_string(status) + " " + first_line(body));
    }
    if (!streaming && status == 200 && !body.empty()) on_message_(body);
    return {};
  }

  void close() override {
    std::string session;
    std::string version;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
      session = session_;
      version = version_;
    }
    stop_listening_ = true;
    stopped_.notify_all();
    if (listener_.joinable()) listener_.join();
    if (session.empty()) return;
    // Ends the session; a server that does not allow it answers 405, which is fine.
    net::http_request request;
    request.method = "DELETE";
    request.url = options_.url;
    request.timeout = std::chrono::milliseconds(5'000);
    request.headers = {{"Mcp-Session-Id", session}};
    if (!version.empty()) request.headers.emplace_back("MCP-Protocol-Version", version);
    request.headers.insert(request.headers.end(), options_.headers.begin(), options_.headers.end());
    (void)net::http_call(request);
  }

  std::string describe() const override { return options_.url; }

 private:
  void remember_session(const net::http_response& head) {
    const auto id = head.header("mcp-session-id");
    if (id.empty()) return;
    // Visible ASCII only (the spec's rule); anything else is not echoed into a header.
    for (const char c : id)
      if (c < 0x21 || c > 0x7e) return;
    std::lock_guard lock(mutex_);
    if (session_.empty()) session_ = std::string(id);
  }

  /// Keeps a GET event stream open until `close`, reconnecting (from the last event id) when it
  /// ends; stops for good if the server does not offer one (405) or refuses it.
  void listen() {
    std::string last_event_id;
    while (!stop_listening_) {
      net::http_request request;
      request.method = "GET";
      request.url = options_.url;
      request.timeout = std::chrono::hours(24);
      request.cancel = &stop_listening_;
      request.headers = {{"Accept", "text/event-stream"}};
      {
        std::lock_guard lock(mutex_);
        if (!session_.empty()) request.headers.emplace_back("Mcp-Session-Id", session_);
        if (!version_.empty()) request.headers.emplace_back("MCP-Protocol-Version", version_);
      }
      if (!last_event_id.empty()) request.headers.emplace_back("Last-Event-ID", last_event_id);
      request.headers.insert(request.headers.end(), options_.headers.begin(), options_.headers.end());
      net::sse_parser events(options_.max_message_bytes);
      bool refused = false;
      auto response = net::http_call(request, [&](const net::http_response& head, std::string_view chunk) {
        if (head.status / 100 != 2 || !starts_with_ci(head.header("content-type"), "text/event-stream")) {
          refused = true;
          return false;
        }
        return events
            .feed(chunk,
                  [&](const net::sse_event& e) {
                    if (!e.id.empty()) last_event_id = e.id;
                    if (!e.data.empty() && (e.event.empty() || e.event == "message") && !stop_listening_) {
                      on_message_(e.data);
                    }
                  })
            .ok();
      });
      if (stop_listening_) return;
      if (refused || (response.ok() && response->status / 100 != 2)) return;  // 405: no stream offered
      // The stream ended or failed: try again in a second.
      std::unique_lock lock(mutex_);
      stopped_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_listening_.load(); });
    }
  }

  http_options options_;
  std::atomic<bool> stop_listening_{false};
  std::condition_variable stopped_;
  std::thread listener_;
  message_handler on_message_;
  std::mutex mutex_;
  std::string session_;
  std::string version_;
  bool closed_ = false;
};

}  // namespace

std::unique_ptr<transport> http_transport(http_options options) {
  return std::make_unique<http_channel>(std::move(options));
}

}  // namespace choir::mcp
