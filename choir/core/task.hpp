#pragma once
/// A small coroutine task type: the way asynchronous work is expressed above the runtime, so that
/// the graph and the services' interfaces stay free of Asio (ARCHITECTURE, "Async without Asio
/// everywhere").
///
/// `task<T>` is lazy: the coroutine starts when it is first awaited (or passed to `sync_wait`).
/// When it finishes it resumes its awaiter on the thread that finished it (symmetric transfer), so
/// a task never owns or picks a thread — unless the awaiter was running inside a `resume_context`
/// (an actor of choir/runtime): then the awaiter continues inside that context, so an actor's
/// coroutine never runs on a foreign thread beside the actor's other messages. An exception that
/// escapes the coroutine is stored and rethrown to the awaiter.
#include <condition_variable>
#include <coroutine>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace choir {

template <class T = void>
class task;

/// An execution context that coroutines return to, such as an actor: whoever completes what a
/// coroutine inside the context awaited hands the coroutine back with `resume` instead of running
/// it on its own thread. Implemented by choir/runtime; the context must outlive every coroutine
/// suspended inside it.
class resume_context {
 public:
  /// Arranges for `h` to run inside this context, later and on whichever thread the context
  /// runs on. Called from any thread.
  virtual void resume(std::coroutine_handle<> h) = 0;

 protected:
  ~resume_context() = default;
};

namespace detail {
/// The context the calling thread is running inside, or null.
inline thread_local resume_context* current_resume_context = nullptr;
}  // namespace detail

/// The context the calling thread is running inside, or null (a plain thread).
[[nodiscard]] inline resume_context* current_resume_context() noexcept { return detail::current_resume_context; }

/// Marks the calling thread as running inside `ctx` (or none) for the scope's lifetime.
class resume_context_scope {
 public:
  explicit resume_context_scope(resume_context* ctx) noexcept
      : saved_(std::exchange(detail::current_resume_context, ctx)) {}
  ~resume_context_scope() { detail::current_resume_context = saved_; }
  resume_context_scope(const resume_context_scope&) = delete;
  resume_context_scope& operator=(const resume_context_scope&) = delete;

 private:
  resume_context* saved_;
};

namespace detail {

struct task_final_awaiter {
  [[nodiscard]] bool await_ready() const noexcept { return false; }
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) const noexcept {
    auto& promise = h.promise();
    auto next = promise.continuation_;
    if (!next) return std::noop_coroutine();
    if (promise.resume_in_ != nullptr && promise.resume_in_ != current_resume_context) {
      promise.resume_in_->resume(next);  // the awaiter's context runs it
      return std::noop_coroutine();
    }
    return next;
  }
  void await_resume() const noexcept {}
};

struct task_promise_base {
  std::coroutine_handle<> continuation_;
  resume_context* resume_in_ = nullptr;  ///< the context the awaiter was suspended in
  std::exception_ptr exception_;

  std::suspend_always initial_suspend() const noexcept { return {}; }
  task_final_awaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }
};

template <class T>
struct task_promise : task_promise_base {
  std::optional<T> value_;

  task<T> get_return_object() noexcept;
  template <class U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) { value_.emplace(std::forward<U>(v)); }
  T take() {
    if (exception_) std::rethrow_exception(exception_);
    return std::move(*value_);
  }
};

template <>
struct task_promise<void> : task_promise_base {
  task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const {
    if (exception_) std::rethrow_exception(exception_);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::task_promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : handle_(h) {}
  task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { reset(); }

  /// True if this task holds a coroutine (a default-constructed or moved-from task does not).
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(handle_); }

  auto operator co_await() && noexcept {
    struct awaiter {
      handle_type handle;
      [[nodiscard]] bool await_ready() const noexcept { return !handle || handle.done(); }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
        handle.promise().continuation_ = awaiting;
        handle.promise().resume_in_ = detail::current_resume_context;
        return handle;
      }
      T await_resume() { return handle.promise().take(); }
    };
    return awaiter{handle_};
  }

 private:
  void reset() noexcept {
    if (handle_) handle_.destroy();
    handle_ = {};
  }
  handle_type handle_;
};

namespace detail {

template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}

/// A latch the waiting thread blocks on until the task it drives has finished.
struct sync_wait_state {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  void signal() {
    std::lock_guard lock(mutex);
    done = true;
    done_cv.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex);
    done_cv.wait(lock, [&] { return done; });
  }
};

/// The coroutine `sync_wait` drives. It signals the waiting thread only once it is suspended at
/// its end, so the waiter may destroy it as soon as it wakes.
struct sync_wait_driver {
  struct promise_type {
    sync_wait_state* state = nullptr;
    sync_wait_driver get_return_object() noexcept { return {std::coroutine_handle<promise_type>::from_promise(*this)}; }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    auto final_suspend() const noexcept {
      struct signal_when_suspended {
        [[nodiscard]] bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<promise_type> h) const noexcept {
          h.promise().state->signal();  // touches nothing of the frame afterwards
        }
        void await_resume() const noexcept {}
      };
      return signal_when_suspended{};
    }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

}  // namespace detail

/// Runs `t` to completion, blocking the calling thread until it finishes, and returns its value
/// (or rethrows its exception). The task runs on the calling thread until it first suspends; it
/// is resumed by whoever completes what it awaits, so that must not need the calling thread.
template <class T>
T sync_wait(task<T> t) {
  detail::sync_wait_state state;
  std::exception_ptr failure;
  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> out{};
  // The lambda is named so that its captures outlive the coroutine that refers to them.
  auto body = [&]() -> detail::sync_wait_driver {
    try {
      if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
      } else {
        out.emplace(co_await std::move(t));
      }
    } catch (...) {
      failure = std::current_exception();
    }
  };
  auto driver = body();
  driver.handle.promise().state = &state;
  driver.handle.resume();
  state.wait();
  driver.handle.destroy();
  if (failure) std::rethrow_exception(failure);
  if constexpr (!std::is_void_v<T>) return std::move(*out);
}

}  // namespace choir
