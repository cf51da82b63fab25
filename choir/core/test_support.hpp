#pragma once
/// Helpers for tests of asynchronous code. Test-only: no production code includes this header.
#include <coroutine>
#include <future>
#include <thread>

namespace choir::test_support {

/// An awaitable that suspends and is resumed on a new thread, as an I/O completion would be. The
/// thread is stored in `*worker`; the test joins it after the awaiting task has finished.
struct resume_on_other_thread {
  std::thread* worker;

  [[nodiscard]] bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const {
    // The resumed coroutine may finish (destroying this awaiter) before we return, so read our
    // members first, and let the thread resume only once it is stored where the test joins it.
    std::thread* slot = worker;
    std::promise<void> stored;
    std::future<void> go = stored.get_future();
    *slot = std::thread([h, go = std::move(go)]() mutable {
      go.wait();
      h.resume();
    });
    stored.set_value();
  }
  void await_resume() const noexcept {}
};

}  // namespace choir::test_support
