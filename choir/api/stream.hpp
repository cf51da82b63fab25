#pragma once
/// The event stream behind `GET /api/v1/stream` (docs/api.md, "The stream"), without the socket:
/// `event_hub` fans each conversation event out to the connections subscribed to its run, and a
/// `stream_connection` is one client's side: its authentication, its subscriptions, the replay of
/// the steps it missed, and its bounded queue of frames. The server (server.cpp) owns the socket
/// and writes what `take` hands it.
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "choir/runtime/conversation.hpp"

namespace choir::api {

class stream_connection;
using frame = std::shared_ptr<const std::string>;

/// Fans conversation events out to subscribed connections, in the order each run's actor emits
/// them. Thread-safe: the conversations' actors publish from their threads.
class event_hub {
 public:
  /// The last committed step a run is known to have (for events' cursors) is looked up here the
  /// first time the hub sees the run.
  explicit event_hub(std::shared_ptr<store::event_store> store);

  /// An event of a run: encoded once, delivered to each subscriber of the run.
  void publish(const runtime::conversation_event& event);
  /// An error of a run that never became a turn (the message was refused before it ran).
  void publish_error(const std::string& run_id, const std::string& message);

  std::uint64_t subscribe(const std::string& run_id, std::weak_ptr<stream_connection> connection);
  void unsubscribe(const std::string& run_id, std::uint64_t id);
  [[nodiscard]] std::size_t subscribers() const;
  /// Events published, and frames delivered to connections, since the start.
  [[nodiscard]] std::uint64_t published() const noexcept { return published_.load(); }
  [[nodiscard]] std::uint64_t delivered() const noexcept { return delivered_.load(); }

 private:
  void deliver(const std::string& run_id, std::string_view kind, std::int64_t step, value data);

  std::shared_ptr<store::event_store> store_;
  mutable std::mutex mutex_;
  struct run_entry {
    std::vector<std::pair<std::uint64_t, std::weak_ptr<stream_connection>>> subscribers;
    std::int64_t last_step = -1;
  };
  std::unordered_map<std::string, run_entry> runs_;
  std::uint64_t next_id_ = 1;
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> delivered_{0};
};

/// Whom a token acts for; empty if it is nobody.
struct identity {
  std::string tenant;
  std::string user;
};

/// What a connection needs from the server around it.
struct stream_context {
  std::shared_ptr<event_hub> hub;
  std::shared_ptr<store::event_store> store;
  /// The token's owner, or nothing.
  std::function<std::optional<identity>(std::string_view token)> authenticate;
  std::size_t capacity = 1'024;    ///< frames queued at most before the client must resync
  std::size_t max_replay = 512;    ///< steps replayed at most; further behind, the client pages the REST API
  std::size_t max_frame = 65'536;  ///< a longer client frame closes the connection
};

/// One client of the stream. The server feeds it the client's frames (`on_frame`) and, when
/// `wake` tells it there is something, writes what `take` returns. Thread-safe.
class stream_connection : public std::enable_shared_from_this<stream_connection> {
 public:
  explicit stream_connection(stream_context context);
  virtual ~stream_connection();
  stream_connection(const stream_connection&) = delete;
  stream_connection& operator=(const stream_connection&) = delete;

  /// A text frame from the client. False: close the connection (after writing what is queued).
  bool on_frame(std::string_view text);
  /// Whether the first frame authenticated the client.
  [[nodiscard]] bool authenticated() const;
  /// Moves the queued frames into `out`; false if there were none.
  bool take(std::deque<frame>& out);
  /// The socket closed: every subscription ends.
  void closed();

  /// From the hub: an event of a subscribed run (`step` is its sequence id, -1 for other kinds).
  void deliver(const std::string& run_id, std::uint64_t subscription, std::int64_t step, const frame& f);

 protected:
  /// Something was queued: the server should call `take` (from its own thread, soon).
  virtual void wake() = 0;

 private:
  struct subscription {
    std::uint64_t id = 0;
    std::int64_t last_step = -1;  ///< steps at or before it were sent already
    bool replaying = true;        ///< live events wait in `held` until the replay is queued
    std::vector<std::pair<std::int64_t, frame>> held;
  };
  void subscribe(const std::string& run_id, std::int64_t cursor);
  void unsubscribe(const std::string& run_id);
  void reply(value v);
  /// Queues `f`; past capacity, every subscription is told to resync and ended. Needs `mutex_`.
  void enqueue_locked(frame f, bool& woke);
  void overflow_locked();

  stream_context ctx_;
  mutable std::mutex mutex_;
  std::optional<identity> who_;
  std::deque<frame> queue_;
  std::map<std::string, subscription, std::less<>> subscriptions_;
  bool closed_ = false;
};

/// Encodes a frame.
[[nodiscard]] frame make_frame(const value& v);

}  // namespace choir::api
