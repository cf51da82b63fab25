#pragma once
/// The actor system: objects confined to one actor each, reached only through messages.
///
/// An actor is any class `T`. `actor_system::spawn<T>` makes one and returns a typed handle,
/// `actor_ref<T>`; every message is a callable run on the actor's object, one at a time, never
/// concurrently with another message of the same actor:
///
///     auto counter = sys.spawn<Counter>({}).value();
///     counter.tell([](Counter& c) { c.add(1); });                       // one-way
///     result<int> n = counter.ask([](Counter& c) { return c.total(); }).get();   // from a thread
///     result<int> m = co_await counter.ask(&Counter::total);            // from a coroutine
///
/// Semantics (docs/runtime.md has the whole contract):
/// - Order: messages from one sender to one actor run in the order they were sent.
/// - Delivery: at most once by default. A handler that throws crashes its actor; the supervisor
///   restarts it (the constructor runs again) within its `restart_policy`, after a backoff, and the
///   message that crashed it is retried up to `max_task_retries` times. Messages still queued
///   survive a restart.
/// - Stopping: when an incarnation ends (death or restart) the object's `on_stop()`, if it has one,
///   runs on the actor, so that coroutines it parked can be resumed and return.
/// - Failure: when an actor dies (killed, restarts exhausted, or its owner died) every call queued
///   or in flight fails at once with `runtime_errc::died`; later calls fail with `died` without
///   waiting. Calls may carry a deadline (`timed_out`). Nothing waits forever on a dead actor.
/// - Handlers may be coroutines (`task<R>`): while one is suspended the actor serves other
///   messages, and it resumes inside the actor, never concurrently with them.
/// - Backpressure: mailboxes are bounded (4,096 messages by default) and `max_pending_calls` bounds
///   outstanding calls; a caller over a bound gets `overloaded`, or waits if it chose to.
/// - Names: an actor may have a name in a namespace (`get`, `get_or_create`). An actor spawned by
///   another actor is owned by it and dies with it unless spawned `detached`.
///
/// Asio is an implementation detail: this header exposes only `choir::task`.
///
/// g++ 12 caveat: a lambda that captures something with a destructor (a string, a JSON value)
/// must not be a temporary inside a `co_await` expression — g++ 12 destroys it twice. Name the
/// reply first: `auto pending = ref.ask([msg](T& t) { … }); auto answer = co_await pending;`.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "choir/core/clock.hpp"
#include "choir/core/result.hpp"
#include "choir/core/task.hpp"
#include "choir/runtime/detail/cell.hpp"
#include "choir/runtime/errors.hpp"

namespace choir::runtime {

class actor_system;
template <class T>
class actor_ref;

/// How a supervisor restarts a crashed actor: Erlang's intensity (at most `max_restarts` within
/// `period`, else the actor dies) with exponential backoff between restarts (Akka's
/// `restartWithBackoff`).
struct restart_policy {
  std::int32_t max_restarts = 3;                 ///< 0: never restart; -1: without limit
  std::chrono::milliseconds period{10'000};      ///< the window `max_restarts` counts in
  std::chrono::milliseconds backoff_initial{1};  ///< the delay before the first restart
  std::chrono::milliseconds backoff_max{1'000};  ///< the delay doubles up to this
};

/// Where and how an actor lives.
struct spawn_options {
  std::string name;                    ///< empty: anonymous
  std::string name_space = "default";  ///< names are unique within one namespace
  bool detached = false;               ///< spawned by an actor, but outlives it
  restart_policy restart{};
  std::uint16_t max_task_retries = 0;      ///< retries of the message that crashed the actor
  std::uint32_t mailbox_capacity = 4'096;  ///< 0: without bound
  std::uint32_t max_pending_calls = 0;     ///< outstanding asks; 0: without bound
};

/// What a sender does when the mailbox (or the pending-call bound) is full.
enum class when_full : std::uint8_t {
  fail,  ///< the call fails at once with `overloaded`
  wait,  ///< the sender waits for room (a thread blocks; a coroutine suspends)
};

struct call_options {
  when_full full = when_full::fail;
  /// A deadline for the answer of an `ask`; zero: none (a thread may still pass one to `get`).
  std::chrono::nanoseconds timeout{0};
};

/// What an actor's constructor may take as its first argument: its own identity and services.
class actor_context {
 public:
  actor_context(detail::cell& c, actor_system& sys, const detail::incarnation& self) noexcept
      : cell_(&c), system_(&sys), incarnation_(&self) {}

  /// A handle to this actor. `T` must be the actor's own type.
  template <class T>
  [[nodiscard]] actor_ref<T> self() const;
  [[nodiscard]] actor_system& system() const noexcept { return *system_; }
  /// True once the actor was killed, or this incarnation ended (a restart): long-running handlers
  /// should return at their next boundary.
  [[nodiscard]] bool stop_requested() const noexcept { return incarnation_->ended() || cell_->stop_requested(); }
  /// How many times this actor has been restarted (0 in its first incarnation).
  [[nodiscard]] std::uint32_t restarts() const noexcept { return cell_->restarts(); }

 private:
  detail::cell* cell_;
  actor_system* system_;
  const detail::incarnation* incarnation_;
};

namespace detail {
/// One incarnation of an actor of type `T`, with the context its constructor may keep.
template <class T>
class incarnation_of final : public incarnation {
 public:
  template <class... A>
  incarnation_of(cell& c, actor_system& sys, const A&... args) : context_(c, sys, *this), object_(make(args...)) {}
  [[nodiscard]] void* object() noexcept override { return &object_; }
  void stopping() noexcept override {
    if constexpr (requires(T & t) { t.on_stop(); }) object_.on_stop();
  }

 private:
  template <class... A>
  T make(const A&... args) {
    if constexpr (std::is_constructible_v<T, actor_context&, const A&...>) {
      return T(context_, args...);
    } else {
      return T(args...);
    }
  }
  actor_context context_;
  T object_;
};
}  // namespace detail

/// The answer to an `ask`: awaitable by a coroutine, or waited on by a plain thread. Move-only;
/// its result can be taken once.
template <class R>
class [[nodiscard]] reply {
 public:
  reply() = default;
  explicit reply(detail::call_ptr<R> state) noexcept : state_(std::move(state)) {}

  /// True once the answer (or the failure) is there.
  [[nodiscard]] bool ready() const noexcept { return state_->done(); }

  /// Blocks the calling thread until the answer comes, or until `timeout` passes (`timed_out`).
  /// Must not be called on an actor's own thread (use `co_await`).
  result<R> get(std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1)) {
    state_->wait(timeout);
    return state_->take();
  }
  /// The answer if it is there already.
  std::optional<result<R>> try_get() {
    if (!ready()) return std::nullopt;
    return state_->take();
  }

  [[nodiscard]] bool await_ready() const noexcept { return state_->done(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept { return state_->suspend(h, current_resume_context()); }
  result<R> await_resume() { return state_->take(); }

 private:
  detail::call_ptr<R> state_;
};

namespace detail {
/// Admits one more message — or call — to the actor, waiting (suspended) for room if `wait`: the
/// actor then admits it on the caller's behalf and resumes it. Without `wait`, a full mailbox is
/// `overloaded` at once. The outcome says whether the caller may enqueue.
class room_awaitable {
 public:
  room_awaitable(cell_ptr target, bool is_call, bool wait = true)
      : target_(std::move(target)), is_call_(is_call), wait_(wait) {}
  [[nodiscard]] const cell_ptr& target() const noexcept { return target_; }
  bool await_ready() {
    auto admitted = target_->admit(is_call_);
    if (admitted.ok() || !wait_ || admitted.err().code != runtime_errc::overloaded) {
      outcome_ = std::move(admitted);
      return true;
    }
    return false;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    switch (target_->park_sender(h, current_resume_context(), parked_, is_call_)) {
      case park_result::parked: return true;
      case park_result::admitted: outcome_.emplace(); return false;
      case park_result::refused: outcome_ = died_error(*target_.get(), "it died"); return false;
    }
    return false;
  }
  result<void> await_resume() {
    if (!outcome_) {
      if (parked_.granted) {
        outcome_.emplace();
      } else {
        outcome_ = died_error(*target_.get(), "it died while the caller waited for room");
      }
    }
    return std::move(*outcome_);
  }

 private:
  cell_ptr target_;
  bool is_call_;
  bool wait_;
  parked_sender parked_;
  std::optional<result<void>> outcome_;
};
}  // namespace detail

/// What `send` returns: awaiting it sends the message, suspending while the mailbox is full if
/// the options say `wait` (the actor hands the freed slot straight to the parked sender).
template <class T, class F>
class [[nodiscard]] send_awaitable {
 public:
  send_awaitable(detail::cell_ptr target, F f, call_options opts)
      : room_(std::move(target), false, opts.full == when_full::wait), f_(std::move(f)) {}

  bool await_ready() { return room_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) { return room_.await_suspend(h); }
  result<void> await_resume() {
    auto admitted = room_.await_resume();
    if (admitted.ok()) room_.target()->enqueue(new detail::tell_message<T, F>(std::move(f_)));
    return admitted;
  }

 private:
  detail::room_awaitable room_;
  F f_;
};

/// A typed handle to an actor of type `T`. Cheap to copy; any thread may use it. A handle keeps
/// the actor's mailbox reachable, not the actor alive: calls to a dead actor fail with `died`.
template <class T>
class actor_ref {
 public:
  actor_ref() = default;
  explicit actor_ref(detail::cell_ptr c) noexcept : cell_(std::move(c)) {}

  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(cell_); }
  /// A number unique among this system's actors.
  [[nodiscard]] std::uint64_t id() const noexcept { return cell_->id(); }
  /// False once the actor died (it may still be restarting: that is alive).
  [[nodiscard]] bool alive() const noexcept { return cell_->status() != detail::cell_status::dead; }
  [[nodiscard]] std::uint32_t restarts() const noexcept { return cell_->restarts(); }

  /// Sends a one-way message: `f(T&)` runs on the actor. Fails with `died` if the actor is dead,
  /// `overloaded` if its mailbox is full (or, with `when_full::wait`, blocks a plain thread until
  /// there is room; an actor must use `send` instead, and gets `invalid_argument` here).
  template <class F>
  result<void> tell(F f, call_options opts = {}) const {
    CHOIR_CHECK(admit(false, opts));
    cell_->enqueue(new detail::tell_message<T, F>(std::move(f)));
    return {};
  }
  /// Calls a member function one-way: `ref.tell(&T::add, 1)`.
  template <class M, class... A>
  requires std::is_member_function_pointer_v<M> result<void> tell(M method, A... args)
  const {
    return tell([method, args...](T& self) mutable { return (self.*method)(std::move(args)...); });
  }

  /// Sends a one-way message from a coroutine: `co_await ref.send(f)` gives `result<void>`, and
  /// suspends while the mailbox is full if `opts.full` is `wait`.
  template <class F>
  send_awaitable<T, F> send(F f, call_options opts = {}) const {
    return send_awaitable<T, F>(cell_, std::move(f), opts);
  }

  /// Calls `f(T&)` on the actor and returns its answer as a `reply`. A handler that returns
  /// `task<X>` is awaited on the actor; one that returns `result<X>` has its error passed on.
  template <class F>
  auto ask(F f, call_options opts = {}) const -> reply<typename detail::handler_traits<T, F>::answer> {
    using R = typename detail::handler_traits<T, F>::answer;
    detail::call_ptr<R> state(new detail::call_state<R>());
    if (auto admitted = admit(true, opts); !admitted.ok()) {
      (void)state->claim();
      state->fail(std::move(admitted).err());
      return reply<R>(std::move(state));
    }
    if (opts.timeout.count() > 0) state->arm_deadline(cell_->system(), opts.timeout);
    cell_->enqueue(new detail::call_message<T, F>(std::move(f), state));
    return reply<R>(std::move(state));
  }
  /// Calls `f(T&)` from a coroutine and awaits its answer: `co_await ref.call(f, opts)`. Unlike
  /// `ask`, with `when_full::wait` a full mailbox (or `max_pending_calls`) suspends the caller until
  /// the actor has room, instead of failing.
  template <class F>
  auto call(F f, call_options opts = {}) const -> task<result<typename detail::handler_traits<T, F>::answer>> {
    return call_on(cell_, std::move(f), opts);  // the frame owns its own handle: `*this` may be a temporary
  }

  /// Calls a member function: `ref.ask(&T::total)`.
  template <class M, class... A>
  requires std::is_member_function_pointer_v<M>
  auto ask(M method, A... args) const {
    return ask([method, args...](T& self) mutable { return (self.*method)(std::move(args)...); });
  }

  /// Kills the actor at its next message boundary: no restart; queued and in-flight calls fail
  /// with `died`. Any thread; returns at once.
  void kill(std::string reason = "killed") const { cell_->kill(std::move(reason)); }
  /// Deactivates the actor (passivation): like `kill`, but its callers are told `unavailable` —
  /// it may be activated again — instead of `died`.
  void deactivate(std::string reason = "deactivated") const { cell_->kill(std::move(reason), true); }

  /// Sends `f` one-way after `delay` (a timer message: an idle check, a retry). Any thread. It is
  /// not bounded by the mailbox; it is dropped if the actor is dead by then.
  template <class F>
  void tell_after(std::chrono::nanoseconds delay, F f) const {
    detail::run_after(*cell_.get(), delay, [target = cell_, f = std::move(f)]() mutable {
      // A timer message is not bounded by the mailbox: a busy actor still gets it.
      target->enqueue_system(new detail::tell_message<T, F>(std::move(f), detail::message::kind::system));
    });
  }

  [[nodiscard]] const detail::cell_ptr& cell() const noexcept { return cell_; }
  friend bool operator==(const actor_ref& a, const actor_ref& b) noexcept { return a.cell_ == b.cell_; }

 private:
  template <class F>
  static auto call_on(detail::cell_ptr target, F f, call_options opts)
      -> task<result<typename detail::handler_traits<T, F>::answer>> {
    using R = typename detail::handler_traits<T, F>::answer;
    if (opts.full == when_full::wait) {
      detail::room_awaitable room(target, true);
      auto admitted = co_await room;
      if (!admitted.ok()) co_return std::move(admitted).err();
      detail::call_ptr<R> state(new detail::call_state<R>());
      if (opts.timeout.count() > 0) state->arm_deadline(target->system(), opts.timeout);
      target->enqueue(new detail::call_message<T, F>(std::move(f), state));
      reply<R> pending(std::move(state));
      co_return co_await pending;
    }
    auto pending = actor_ref<T>(std::move(target)).ask(std::move(f), opts);
    co_return co_await pending;
  }

  result<void> admit(bool is_call, const call_options& opts) const {
    if (opts.full == when_full::wait) {
      if (detail::current_cell() != nullptr) {
        return make_error(runtime_errc::invalid_argument,
                          "an actor cannot block waiting for room in another mailbox; use co_await send() or call()");
      }
      return cell_->admit_waiting(is_call);
    }
    return cell_->admit(is_call);
  }
  detail::cell_ptr cell_;
};

/// `co_await yield_to_mailbox()` inside an actor's coroutine lets the actor serve the messages
/// already in its mailbox before the coroutine continues (a step boundary of a long handler).
/// Outside an actor it does nothing.
struct yield_to_mailbox {
  [[nodiscard]] bool await_ready() const noexcept { return current_resume_context() == nullptr; }
  void await_suspend(std::coroutine_handle<> h) const { current_resume_context()->resume(h); }
  void await_resume() const noexcept {}
};

/// How the actor system runs.
struct system_options {
  /// Worker threads; 0: one per core.
  unsigned threads = 0;
  /// Messages an actor runs before yielding its thread to another actor.
  unsigned throughput = 64;
  /// No threads: the test drives every message (`run_once`, `run_until_idle`) and time
  /// (`advance`) by hand, so actor tests script the order of events instead of sleeping.
  bool deterministic = false;
};

/// One per process (or per test). Owns the worker threads, the timers and the name registry.
class actor_system {
 public:
  explicit actor_system(system_options opts = {});
  /// Kills every actor (their pending calls fail with `died`), waits for their deaths and joins
  /// the worker threads. Coroutines still suspended on outside events are abandoned.
  ~actor_system();
  actor_system(const actor_system&) = delete;
  actor_system& operator=(const actor_system&) = delete;

  /// Makes an actor: `T(ctx, args…)` if `T` takes an `actor_context&` first, else `T(args…)`; the
  /// arguments are copied so that a restart can construct it again. Called from inside an actor,
  /// the new one is owned by it (dies with it) unless `opts.detached`.
  /// Errors: `name_taken`, `invalid_argument` (bad options), `died` (the constructor threw),
  /// `unavailable` (the system is stopping).
  template <class T, class... A>
  result<actor_ref<T>> spawn(spawn_options opts, A... args) {
    CHOIR_TRY(auto c, spawn_cell(opts, typeid(T), make_factory<T>(std::move(args)...), false));
    return actor_ref<T>(std::move(c));
  }

  /// The live actor named `name` in `name_space`. Errors: `not_found`, `wrong_type`.
  template <class T>
  result<actor_ref<T>> get(std::string_view name_space, std::string_view name) {
    CHOIR_TRY(auto c, find_cell(name_space, name, typeid(T)));
    return actor_ref<T>(std::move(c));
  }

  /// The live actor named `opts.name`, or a new one spawned with `opts` and `args` (atomically:
  /// two racing callers get the same actor).
  template <class T, class... A>
  result<actor_ref<T>> get_or_create(spawn_options opts, A... args) {
    CHOIR_TRY(auto c, spawn_cell(opts, typeid(T), make_factory<T>(std::move(args)...), true));
    return actor_ref<T>(std::move(c));
  }

  /// Actors alive (or restarting) now.
  [[nodiscard]] std::size_t live_actors() const;
  /// The system's clock (a manual one in deterministic mode).
  [[nodiscard]] clock& time() const;

  // ── Deterministic mode only ──
  /// Runs one message of the actor that became ready first. False if none is ready.
  bool run_once();
  /// Runs one message of this actor, if it has one ready. Lets a test pick the order.
  template <class T>
  bool run_once(const actor_ref<T>& actor) {
    return run_cell_once(actor.cell().get());
  }
  /// Runs messages until no actor has any. Returns how many ran.
  std::size_t run_until_idle();
  /// Moves the manual clock forward and fires the timers (restarts, deadlines) that came due.
  void advance(std::chrono::nanoseconds d);

 private:
  template <class T, class... A>
  detail::factory make_factory(A... args) {
    return [this, args...](detail::cell& c) -> std::shared_ptr<detail::incarnation> {
      return std::make_shared<detail::incarnation_of<T>>(c, *this, args...);
    };
  }
  result<detail::cell_ptr> spawn_cell(const spawn_options& opts, const std::type_info& type, detail::factory make,
                                      bool reuse_existing);
  result<detail::cell_ptr> find_cell(std::string_view name_space, std::string_view name, const std::type_info& type);
  bool run_cell_once(detail::cell* c);

  std::unique_ptr<detail::system_core> core_;
};

template <class T>
actor_ref<T> actor_context::self() const {
  return actor_ref<T>(detail::cell_ptr::share(cell_));
}

}  // namespace choir::runtime
