#include "choir/core/clock.hpp"

#include <gtest/gtest.h>

namespace choir {
namespace {

TEST(ManualClock, StartsAtTheGivenInstant) {
  manual_clock c(1'234'000);
  EXPECT_EQ(c.unix_ms(), 1'234'000);
}

TEST(ManualClock, AdvancesBothReadingsTogether) {
  manual_clock c(0);
  const auto steady0 = c.steady_now();
  c.advance(std::chrono::milliseconds(250));
  EXPECT_EQ(c.unix_ms(), 250);
  EXPECT_EQ(c.steady_now() - steady0, std::chrono::milliseconds(250));
}

TEST(ManualClock, NeverGoesBack) {
  manual_clock c(100);
  c.advance(std::chrono::milliseconds(-50));
  EXPECT_EQ(c.unix_ms(), 100);
}

TEST(SystemClock, ReadsTheMachineTime) {
  const auto before = std::chrono::system_clock::now();
  const auto read = system_clock().now();
  EXPECT_GE(read, before);
  EXPECT_GT(system_clock().unix_ms(), 1'600'000'000'000);
}

}  // namespace
}  // namespace choir
