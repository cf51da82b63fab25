#include "choir/runtime/pool.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace choir::runtime {
namespace {

struct worker {
  int handled = 0;
  int work() { return ++handled; }
  [[nodiscard]] int count() const { return handled; }
  void crash() { throw std::runtime_error("worker fails"); }
};

TEST(Pool, SpreadsMessagesOverItsMembers) {
  actor_system sys({.deterministic = true});
  auto pool = spawn_pool<worker>(sys, 4, {}).value();
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(pool.tell(&worker::work).ok());
  sys.run_until_idle();
  int total = 0;
  for (const auto& m : pool.members()) {
    auto n = m.ask(&worker::count);
    sys.run_until_idle();
    EXPECT_GT(**n.try_get(), 50);  // each gets a fair share (100 on average)
    total += **n.try_get();
  }
  EXPECT_EQ(total, 400);
}

TEST(Pool, SkipsDeadMembers) {
  actor_system sys({.deterministic = true});
  auto pool = spawn_pool<worker>(sys, 3, {}).value();
  pool.members()[0].kill();
  pool.members()[1].kill();
  sys.run_until_idle();
  for (int i = 0; i < 20; ++i) {
    auto r = pool.ask(&worker::work);
    sys.run_until_idle();
    ASSERT_TRUE(r.try_get()->ok());
  }
  auto n = pool.members()[2].ask(&worker::count);
  sys.run_until_idle();
  EXPECT_EQ(**n.try_get(), 20);
}

TEST(Pool, FailsOnlyWhenEveryMemberIsDead) {
  actor_system sys({.deterministic = true});
  auto pool = spawn_pool<worker>(sys, 2, {}).value();
  pool.kill();
  sys.run_until_idle();
  auto r = pool.ask(&worker::work);
  ASSERT_TRUE(r.ready());
  EXPECT_EQ(r.try_get()->err().code, runtime_errc::died);
}

TEST(Pool, ARestartedMemberStaysInThePool) {
  actor_system sys({.deterministic = true});
  auto pool = spawn_pool<worker>(sys, 1, {.restart = {.backoff_initial = std::chrono::milliseconds(0)}}).value();
  (void)pool.tell(&worker::crash);
  sys.run_until_idle();
  auto r = pool.ask(&worker::work);
  sys.run_until_idle();
  EXPECT_EQ(**r.try_get(), 1);
  EXPECT_EQ(pool.members()[0].restarts(), 1U);
}

TEST(Pool, BadSizesAndNamesAreRefused) {
  actor_system sys({.deterministic = true});
  EXPECT_EQ(spawn_pool<worker>(sys, 0, {}).err().code, runtime_errc::invalid_argument);
  EXPECT_EQ(spawn_pool<worker>(sys, 2, {.name = "w"}).err().code, runtime_errc::invalid_argument);
}

}  // namespace
}  // namespace choir::runtime
