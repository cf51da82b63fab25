#pragma once
/// Identifiers: UUIDv7 (RFC 9562), time-ordered so that ids sort by creation time and index well.
#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include "choir/core/clock.hpp"
#include "choir/core/result.hpp"

namespace choir {

/// A 128-bit UUID. The all-zero value is the nil id.
struct uuid {
  std::array<std::uint8_t, 16> bytes{};

  /// The canonical lowercase form, `xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx`.
  [[nodiscard]] std::string to_string() const;
  /// Parses the canonical 36-character form (either case). Fails with `core_errc::parse_error`
  /// naming the first offending character.
  [[nodiscard]] static result<uuid> parse(std::string_view text);
  [[nodiscard]] bool is_nil() const noexcept;
  /// The version nibble (7 for ids made here).
  [[nodiscard]] int version() const noexcept { return bytes[6] >> 4; }
  /// For a UUIDv7: the Unix time in milliseconds when it was made.
  [[nodiscard]] std::int64_t unix_ms() const noexcept;

  friend auto operator<=>(const uuid&, const uuid&) = default;
};

/// Makes UUIDv7 ids from a clock and a random source. Ids from one generator are strictly
/// increasing, also when many are made within one millisecond or the clock steps back (a 12-bit
/// counter in `rand_a` is seeded randomly each millisecond; when it overflows the timestamp is
/// advanced by one). Thread-safe.
class id_generator {
 public:
  /// Uses `time` for timestamps (it must outlive the generator) and a random seed.
  explicit id_generator(const clock& time = system_clock());
  /// Uses `time` and a fixed seed, for reproducible tests.
  id_generator(const clock& time, std::uint64_t seed);

  [[nodiscard]] uuid next();

 private:
  const clock* clock_;
  std::mutex mutex_;
  std::mt19937_64 random_;
  std::int64_t last_ms_ = 0;
  std::uint16_t counter_ = 0;
};

/// A new UUIDv7 from a process-wide generator on the system clock.
[[nodiscard]] uuid new_id();

}  // namespace choir

template <>
struct std::hash<choir::uuid> {
  std::size_t operator()(const choir::uuid& id) const noexcept;
};
