#pragma once
/// Tests only: an HTTP/1.1 server on 127.0.0.1 (a free port) that answers each request with what a
/// test's handler returns — a status, headers and a body sent whole, in chunks (chunked transfer
/// encoding, as streaming APIs do), after a delay, or not at all. It records what it received.
/// One connection at a time, `Connection: close` after each answer — or, made `keep_alive`, the
/// connection stays open for the client's next request. Plain POSIX sockets, so tests of the HTTP
/// client do not test it against itself.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace choir::net::testing {

struct received_request {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased
  std::string body;

  [[nodiscard]] std::string header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return {};
  }
};

struct canned_reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "application/json"}};
  std::vector<std::string> chunks;     ///< one piece: a plain body; several: chunked encoding
  std::chrono::milliseconds delay{0};  ///< before the status line
  bool hang = false;                   ///< never answer (until the client gives up)
  /// Called after each chunk but the last, before the next is sent (a stream that waits).
  std::function<void()> between_chunks;
  /// With `keep_alive`: close the connection after this answer, without saying so (as a server
  /// does when its idle timeout passes).
  bool close_after = false;
};

class test_http_server {
 public:
  using handler = std::function<canned_reply(const received_request&)>;

  explicit test_http_server(handler h, bool keep_alive = false) : handler_(std::move(h)), keep_alive_(keep_alive) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0) {
      throw std::runtime_error("bind/listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~test_http_server() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    for (auto& t : connection_threads_) t.join();
    ::close(fd_);
  }
  test_http_server(const test_http_server&) = delete;
  test_http_server& operator=(const test_http_server&) = delete;

  [[nodiscard]] std::string url(const std::string& path = "") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  [[nodiscard]] std::vector<received_request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  /// How many connections were accepted.
  [[nodiscard]] int connections() const { return connections_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      ++connections_;
      if (keep_alive_) {  // each connection on a thread of its own, open until the client closes it
        connection_threads_.emplace_back([this, c] {
          std::string in;
          while (!stop_ && handle(c, in)) {
          }
          ::close(c);
        });
        continue;
      }
      std::string in;
      handle(c, in);
      ::close(c);
    }
  }

  bool read_some(int c, std::string& into) const {
    pollfd p{c, POLLIN, 0};
    for (int waited = 0;; waited += 50) {  // up to 5 s, or until the server stops
      if (stop_ || waited >= 5000) return false;
      const int ready = ::poll(&p, 1, 50);
      if (ready < 0) return false;
      if (ready > 0) break;
    }
    char buf[8192];
    const auto n = ::recv(c, buf, sizeof buf, 0);
    if (n <= 0) return false;
    into.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  static void send_all(int c, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      const auto n = ::send(c, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }

  /// Answers one request; whether the connection may carry another.
  bool handle(int c, std::string& in) {
    std::size_t header_end;
    while ((header_end = in.find("\r\n\r\n")) == std::string::npos) {
      if (!read_some(c, in)) return false;
    }
    received_request req;
    std::string head = in.substr(0, header_end);
    std::size_t line_end = head.find("\r\n");
    std::string first = head.substr(0, line_end);
    const auto sp1 = first.find(' ');
    const auto sp2 = first.find(' ', sp1 + 1);
    req.method = first.substr(0, sp1);
    req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    std::size_t content_length = 0;
    while (line_end != std::string::npos && line_end < head.size()) {
      const std::size_t next = head.find("\r\n", line_end + 2);
      std::string h = head.substr(line_end + 2, (next == std::string::npos ? head.size() : next) - line_end - 2);
      const auto colon = h.find(':');
      if (colon != std::string::npos) {
        std::string name = h.substr(0, colon);
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string val = h.substr(colon + 1);
        while (!val.empty() && val.front() == ' ') val.erase(0, 1);
        if (name == "content-length") content_length = std::stoul(val);
        req.headers.emplace_back(name, val);
      }
      line_end = next;
    }
    req.body = in.substr(header_end + 4);
    in.clear();  // clients here send one request at a time
    while (req.body.size() < content_length) {
      if (!read_some(c, req.body)) return false;
    }
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(req);
    }
    canned_reply reply = handler_(req);
    if (reply.hang) {
      std::string ignored;
      while (!stop_ && read_some(c, ignored)) {
      }
      return false;
    }
    if (reply.delay.count() > 0) std::this_thread::sleep_for(reply.delay);
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n";
    if (!keep_alive_) out += "Connection: close\r\n";
    for (const auto& [n, v] : reply.headers) out += n + ": " + v + "\r\n";
    if (reply.chunks.size() <= 1) {
      const std::string body = reply.chunks.empty() ? std::string() : reply.chunks.front();
      out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      send_all(c, out);
      return !reply.close_after;
    }
    out += "Transfer-Encoding: chunked\r\n\r\n";
    send_all(c, out);
    for (std::size_t i = 0; i < reply.chunks.size(); ++i) {
      const auto& piece = reply.chunks[i];
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
      send_all(c, std::string(size) + piece + "\r\n");
      if (reply.between_chunks && i + 1 < reply.chunks.size()) reply.between_chunks();
    }
    send_all(c, "0\r\n\r\n");
    return !reply.close_after;
  }

  handler handler_;
  bool keep_alive_ = false;
  std::atomic<int> connections_{0};
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<received_request> requests_;
  std::thread thread_;
  std::vector<std::thread> connection_threads_;  ///< keep_alive: one per connection (only `serve` adds)
};

}  // namespace choir::net::testing
