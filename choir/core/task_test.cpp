#include "choir/core/task.hpp"

#include <gtest/gtest.h>

#include "choir/core/test_support.hpp"

#include <stdexcept>
#include <string>
#include <thread>

namespace choir {
namespace {

task<int> forty_two() { co_return 42; }

task<int> add_one(task<int> inner) { co_return (co_await std::move(inner)) + 1; }

task<void> throws() {
  throw std::runtime_error("boom");
  co_return;
}

using test_support::resume_on_other_thread;

task<std::string> hops(std::thread* worker) {
  co_await resume_on_other_thread{worker};
  co_return "resumed";
}

TEST(Task, IsLazyUntilAwaited) {
  bool started = false;
  auto make = [&]() -> task<void> {
    started = true;
    co_return;
  };
  auto t = make();
  EXPECT_FALSE(started);
  sync_wait(std::move(t));
  EXPECT_TRUE(started);
}

TEST(Task, ReturnsItsValueToTheAwaiter) { EXPECT_EQ(sync_wait(add_one(forty_two())), 43); }

TEST(Task, RethrowsAnEscapedExceptionToTheAwaiter) { EXPECT_THROW(sync_wait(throws()), std::runtime_error); }

TEST(Task, SyncWaitBlocksUntilAnotherThreadFinishesTheTask) {
  std::thread worker;
  EXPECT_EQ(sync_wait(hops(&worker)), "resumed");
  worker.join();
}

TEST(Task, LongChainsOfAwaitedTasksComplete) {
  auto chain = [](auto& self, int n) -> task<int> {
    if (n == 0) co_return 0;
    co_return (co_await self(self, n - 1)) + 1;
  };
  EXPECT_EQ(sync_wait(chain(chain, 1'000)), 1'000);
}

}  // namespace
}  // namespace choir
