#pragma once
/// The body of a response that is a stream of server-sent events (`text/event-stream`): the
/// server writes each event as it is pushed, until the stream ends or the client goes. Used by
/// `/mcp`'s GET stream. Thread-safe; nothing here knows the socket.
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace choir::api {

class event_stream {
 public:
  /// Queues one event whose data is `data` (one line: JSON text). False once the stream is
  /// closed — ended, or its client gone — and the event is dropped.
  bool push(std::string data);
  /// Ends the stream: what is queued is still written, then the response ends.
  void end();
  /// Whether the client can still get events.
  [[nodiscard]] bool open() const;

  // For the server that writes the stream:
  /// What to call (from the pushing thread) when an event is queued or the stream ends.
  void on_ready(std::function<void()> ready);
  /// Takes what is queued; `second` is true once the stream has ended: after these, the response
  /// ends.
  [[nodiscard]] std::pair<std::vector<std::string>, bool> take();
  /// The client went away: later pushes fail.
  void gone();

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> queue_;
  bool ended_ = false;
  bool gone_ = false;
  std::function<void()> ready_;
};

}  // namespace choir::api
