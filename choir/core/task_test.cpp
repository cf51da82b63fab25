#include "choir/core/task.hpp"

#include <gtest/gtest.h>

#include "choir/core/test_support.hpp"

#include <condition_variable>
#include <mutex>
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

/// A context that queues the coroutines handed back to it, for the test to run.
class recording_context final : public resume_context {
 public:
  void resume(std::coroutine_handle<> h) override {
    std::lock_guard lock(mutex_);
    queued_ = h;
    cv_.notify_all();
  }
  std::coroutine_handle<> wait_for_one() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return static_cast<bool>(queued_); });
    return std::exchange(queued_, {});
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::coroutine_handle<> queued_;
};

TEST(Task, AnAwaiterInsideAContextIsHandedBackToItInsteadOfRunningOnTheFinishingThread) {
  recording_context ctx;
  std::thread worker;
  std::thread::id continued_on;
  resume_context* continued_in = nullptr;
  auto outer = [&]() -> task<std::string> {
    auto text = co_await hops(&worker);  // finishes on `worker`
    continued_on = std::this_thread::get_id();
    continued_in = current_resume_context();
    co_return text;
  };
  std::string got;
  std::thread caller([&] {
    resume_context_scope inside(&ctx);
    got = sync_wait(outer());
  });
  auto handed_back = ctx.wait_for_one();
  {
    resume_context_scope inside(&ctx);
    handed_back.resume();  // the context (this thread) runs the rest of `outer`
  }
  caller.join();
  worker.join();
  EXPECT_EQ(got, "resumed");
  EXPECT_EQ(continued_on, std::this_thread::get_id());
  EXPECT_EQ(continued_in, &ctx);
}

TEST(Task, AnAwaiterOutsideAnyContextContinuesOnTheFinishingThread) {
  std::thread worker;
  std::thread::id continued_on;
  auto outer = [&]() -> task<void> {
    co_await hops(&worker);
    continued_on = std::this_thread::get_id();
  };
  sync_wait(outer());
  const auto worker_id = worker.get_id();
  worker.join();
  EXPECT_EQ(continued_on, worker_id);
}

}  // namespace
}  // namespace choir
