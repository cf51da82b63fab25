#include "choir/core/clock.hpp"

#include <algorithm>

namespace choir {
namespace {

class real_clock final : public clock {
 public:
  [[nodiscard]] std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
  [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::now();
  }
};

}  // namespace

std::int64_t clock::unix_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now().time_since_epoch()).count();
}

clock& system_clock() {
  static real_clock instance;
  return instance;
}

manual_clock::manual_clock(std::int64_t start_unix_ms) : start_unix_ms_(start_unix_ms) {}

std::chrono::system_clock::time_point manual_clock::now() const {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(start_unix_ms_)) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::nanoseconds(elapsed_ns_.load(std::memory_order_acquire)));
}

std::chrono::steady_clock::time_point manual_clock::steady_now() const {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(elapsed_ns_.load(std::memory_order_acquire)));
}

void manual_clock::advance(std::chrono::nanoseconds d) {
  elapsed_ns_.fetch_add(std::max<std::int64_t>(0, d.count()), std::memory_order_acq_rel);
}

}  // namespace choir
