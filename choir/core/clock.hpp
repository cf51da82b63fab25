#pragma once
/// The injectable clock: every read of time in ChoirOS goes through a `clock`, so that tests can
/// fix it and advance it by hand.
#include <atomic>
#include <chrono>
#include <cstdint>

namespace choir {

class clock {
 public:
  virtual ~clock() = default;
  /// Wall-clock time, for timestamps people read and for UUIDv7 ids. May jump.
  [[nodiscard]] virtual std::chrono::system_clock::time_point now() const = 0;
  /// Monotonic time, for durations, deadlines and timeouts. Never goes back.
  [[nodiscard]] virtual std::chrono::steady_clock::time_point steady_now() const = 0;

  /// Milliseconds since the Unix epoch of `now()`.
  [[nodiscard]] std::int64_t unix_ms() const;
};

/// The real clock of the machine. Thread-safe; lives for the whole process.
[[nodiscard]] clock& system_clock();

/// A clock that moves only when told to. Thread-safe. Both readings start at the given instant
/// and advance together.
class manual_clock final : public clock {
 public:
  explicit manual_clock(std::int64_t start_unix_ms = 1'700'000'000'000);
  [[nodiscard]] std::chrono::system_clock::time_point now() const override;
  [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const override;
  /// Moves both readings forward by `d` (a negative `d` is clamped to zero).
  void advance(std::chrono::nanoseconds d);

 private:
  std::int64_t start_unix_ms_;
  std::atomic<std::int64_t> elapsed_ns_{0};
};

}  // namespace choir
