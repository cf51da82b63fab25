#pragma once
/// The machinery behind `actor_ref` that its templates need to see: the mailbox, the message and
/// call-state types and the cell that holds one actor. Everything that is not a template lives in
/// actor_system.cpp; nothing here includes Asio. Not part of the public interface.
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>

#include "choir/core/result.hpp"
#include "choir/core/task.hpp"
#include "choir/runtime/errors.hpp"

namespace choir::runtime {

class actor_context;

namespace detail {

class cell;
class system_core;

// ── The mailbox: Vyukov's intrusive multi-producer single-consumer queue ─────────────────────────

struct mpsc_node {
  std::atomic<mpsc_node*> next{nullptr};
};

/// Lock-free for producers (one exchange per push); the consumer pops without atomics' read-
/// modify-write. Nodes belong to the queue between push and pop.
class mpsc_queue {
 public:
  mpsc_queue() noexcept : head_(&stub_), tail_(&stub_) {}
  mpsc_queue(const mpsc_queue&) = delete;
  mpsc_queue& operator=(const mpsc_queue&) = delete;

  /// Any thread.
  void push(mpsc_node* n) noexcept {
    n->next.store(nullptr, std::memory_order_relaxed);
    mpsc_node* prev = tail_.exchange(n, std::memory_order_acq_rel);
    prev->next.store(n, std::memory_order_release);
  }

  /// Consumer only. Null when empty, and also while a producer is between its two stores (then
  /// `empty()` is false and the consumer should look again shortly).
  mpsc_node* pop() noexcept {
    mpsc_node* head = head_;
    mpsc_node* next = head->next.load(std::memory_order_acquire);
    if (head == &stub_) {
      if (next == nullptr) return nullptr;
      head_ = next;
      head = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      head_ = next;
      return head;
    }
    if (tail_.load(std::memory_order_acquire) != head) return nullptr;  // a push is midway
    push(&stub_);
    next = head->next.load(std::memory_order_acquire);
    if (next != nullptr) {
      head_ = next;
      return head;
    }
    return nullptr;
  }

  /// Any thread: the last node pushed (changes with every push).
  [[nodiscard]] const mpsc_node* last_pushed() const noexcept { return tail_.load(std::memory_order_seq_cst); }

  /// Consumer only: true if nothing was pushed that `pop` has not returned.
  [[nodiscard]] bool empty() const noexcept {
    return head_ == &stub_ && tail_.load(std::memory_order_seq_cst) == &stub_;
  }

 private:
  mpsc_node* head_;  // consumer only
  std::atomic<mpsc_node*> tail_;
  mpsc_node stub_;
};

// ── Messages ─────────────────────────────────────────────────────────────────────────────────────

/// One message in a mailbox. `user` messages are what callers send (they count against the
/// mailbox bound and are dropped when the actor dies); `resume` messages continue a coroutine of
/// the actor and are never dropped.
class message : public mpsc_node {
 public:
  /// `user`/`call`: what callers send (bounded, dropped at death); `system`: the runtime's own timer
  /// messages (not bounded, dropped at death); `resume`: a coroutine continuing (never dropped).
  enum class kind : std::uint8_t { user, call, resume, system };

  explicit message(kind k) noexcept : kind_(k) {}
  message(const message&) = delete;
  message& operator=(const message&) = delete;
  virtual ~message() = default;

  /// Runs on the actor. Returns false if a coroutine took the message over (it deletes it when
  /// done); true if the caller deletes it now. May throw: the actor then crashes.
  virtual bool run(cell& c) = 0;
  /// The message will not run (its actor died, or the system stops): fails its call, if any.
  virtual void drop(const error& why) noexcept = 0;

  [[nodiscard]] kind what() const noexcept { return kind_; }
  [[nodiscard]] bool counts() const noexcept { return kind_ == kind::user || kind_ == kind::call; }

  std::uint16_t attempts = 0;         ///< how many times it crashed its actor already
  bool orphaned = false;              ///< its coroutine outlived the incarnation it ran on
  bool slot_released = false;         ///< its `max_pending_calls` slot was given back already
  message* next_in_flight = nullptr;  ///< links a call a coroutine is serving (consumer only)
  message* prev_in_flight = nullptr;

 private:
  kind kind_;
};

/// An owning pointer to an intrusively counted object (`add_ref`/`release`).
template <class T>
class ref_ptr {
 public:
  ref_ptr() = default;
  explicit ref_ptr(T* p) noexcept : p_(p) {}  // adopts one reference
  static ref_ptr share(T* p) noexcept {
    if (p) p->add_ref();
    return ref_ptr(p);
  }
  ref_ptr(const ref_ptr& o) noexcept : p_(o.p_) {
    if (p_) p_->add_ref();
  }
  ref_ptr(ref_ptr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ref_ptr& operator=(ref_ptr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~ref_ptr() {
    if (p_) p_->release();
  }
  [[nodiscard]] T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  friend bool operator==(const ref_ptr& a, const ref_ptr& b) noexcept { return a.p_ == b.p_; }

 private:
  T* p_ = nullptr;
};

// ── Call state: what a caller waits on ───────────────────────────────────────────────────────────

/// Shared between the caller (`reply`) and the callee (the message). Completed exactly once: by
/// the answer, by the actor's death, or by the deadline — whichever claims it first.
class call_state_base {
 public:
  call_state_base() = default;
  call_state_base(const call_state_base&) = delete;
  call_state_base& operator=(const call_state_base&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }

  /// Takes the right to complete the call. Exactly one claim succeeds.
  [[nodiscard]] bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }
  /// After a successful claim: records the failure and wakes the waiter.
  void fail(error e) noexcept {
    err_ = std::move(e);
    failed_ = true;
    publish();
  }
  /// Claims the call and fails it; false if it was completed already.
  bool try_fail(error e) noexcept {
    if (!claim()) return false;
    fail(std::move(e));
    return true;
  }
  /// After a successful claim and once the value is stored: wakes the waiter. Defined in the .cpp.
  void publish() noexcept;

  [[nodiscard]] bool done() const noexcept { return phase_.load(std::memory_order_acquire) == phase_done; }
  /// Coroutine side: registers `h` to be resumed (inside `ctx` if not null). False if the call
  /// completed meanwhile (then the coroutine goes on without suspending).
  bool suspend(std::coroutine_handle<> h, resume_context* ctx) noexcept;
  /// Thread side: blocks until done, or until `timeout` passes (then tries to fail the call with
  /// `timed_out`; false if it did). A negative timeout waits without limit. Defined in the .cpp.
  void wait(std::chrono::nanoseconds timeout) noexcept;
  /// Arms a deadline on the system's timer: when it passes first, the call fails with `timed_out`.
  void arm_deadline(system_core& sys, std::chrono::nanoseconds timeout);

  [[nodiscard]] bool failed() const noexcept { return failed_; }
  [[nodiscard]] error take_error() noexcept { return std::move(err_); }

 protected:
  virtual ~call_state_base() = default;
  virtual void destroy() noexcept { delete this; }

 private:
  static constexpr std::uint32_t phase_empty = 0;
  static constexpr std::uint32_t phase_coroutine = 1;
  static constexpr std::uint32_t phase_done = 2;
  static constexpr std::uint32_t phase_thread = 3;

  std::atomic<std::uint32_t> refs_{1};
  std::atomic<bool> claimed_{false};
  std::atomic<std::uint32_t> phase_{phase_empty};
  bool failed_ = false;
  std::coroutine_handle<> waiter_;
  resume_context* waiter_context_ = nullptr;
  error err_;
  system_core* deadline_system_ = nullptr;
  std::uint64_t deadline_timer_ = 0;

  friend class cell;
};

template <class R>
class call_state final : public call_state_base {
 public:
  template <class... A>
  void set_value(A&&... v) {
    value_.emplace(std::forward<A>(v)...);
  }
  result<R> take() {
    if (failed()) return take_error();
    return std::move(*value_);
  }

 private:
  std::optional<R> value_;
};

template <>
class call_state<void> final : public call_state_base {
 public:
  static void set_value() noexcept {}
  result<void> take() {
    if (failed()) return take_error();
    return {};
  }
};

/// An owning pointer to a call state.
template <class R>
using call_ptr = ref_ptr<call_state<R>>;

// ── One incarnation of an actor's object ─────────────────────────────────────────────────────────

class incarnation {
 public:
  incarnation() = default;
  incarnation(const incarnation&) = delete;
  incarnation& operator=(const incarnation&) = delete;
  virtual ~incarnation() = default;
  [[nodiscard]] virtual void* object() noexcept = 0;
  /// Called on the actor when this incarnation ends (death or restart): the object's `on_stop()`,
  /// if it has one, so that coroutines it parked can finish.
  virtual void stopping() noexcept {}

  /// True once the incarnation ended: its coroutines still running should stop at their next boundary.
  [[nodiscard]] bool ended() const noexcept { return ended_.load(std::memory_order_acquire); }
  void end() noexcept { ended_.store(true, std::memory_order_release); }

 private:
  std::atomic<bool> ended_{false};
};

/// Makes a new incarnation; called at spawn and again at every restart (the constructor re-runs).
using factory = std::function<std::shared_ptr<incarnation>(cell&)>;

// ── Options as the cell keeps them ───────────────────────────────────────────────────────────────

struct cell_policy {
  std::int32_t max_restarts = 3;  ///< -1: without limit
  std::uint32_t restart_period_ms = 10'000;
  std::uint32_t backoff_initial_ms = 1;
  std::uint32_t backoff_max_ms = 1'000;
  std::uint16_t max_task_retries = 0;
  std::uint32_t mailbox_capacity = 4'096;  ///< 0: without bound
  std::uint32_t max_pending_calls = 0;     ///< 0: without bound
};

enum class cell_status : std::uint8_t { alive, restarting, dead };

/// A coroutine waiting for room in a full mailbox. Lives in the waiting coroutine's frame.
struct parked_sender {
  std::coroutine_handle<> handle;
  resume_context* context = nullptr;
  bool granted = false;  ///< woken with a slot admitted on its behalf (false: the actor died)
  bool is_call = false;  ///< the slot counts against `max_pending_calls` too
  parked_sender* next = nullptr;
};

enum class park_result : std::uint8_t {
  parked,    ///< suspended until a slot is granted (or the actor dies)
  admitted,  ///< there was room after all: a slot is admitted, send at once
  refused,   ///< the actor is dead
};

struct cell_extras;

// ── The cell: one actor ──────────────────────────────────────────────────────────────────────────

/// Holds one actor: its mailbox, its current incarnation, its supervision state. Reference
/// counted: handles, the system (while the actor lives) and queued work hold references.
class cell final : public resume_context {
 public:
  cell(system_core& sys, std::uint64_t id, const std::type_info& type, cell_policy policy, factory make);
  ~cell();
  cell(const cell&) = delete;
  cell& operator=(const cell&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  [[nodiscard]] const std::type_info& type() const noexcept { return *type_; }
  [[nodiscard]] system_core& system() const noexcept { return *sys_; }
  [[nodiscard]] cell_status status() const noexcept { return status_.load(std::memory_order_acquire); }
  [[nodiscard]] const cell_policy& policy() const noexcept { return policy_; }

  /// Admits a user message or call: checks liveness and the bounds. On success the caller must
  /// `enqueue` it; on failure nothing was counted.
  [[nodiscard]] result<void> admit(bool is_call) noexcept;
  /// Like `admit`, but blocks the calling (non-actor) thread while the mailbox is full.
  [[nodiscard]] result<void> admit_waiting(bool is_call) noexcept;
  /// Parks a coroutine sender until the mailbox has room for it; the actor then admits the
  /// message on its behalf and resumes it (inside `ctx`).
  park_result park_sender(std::coroutine_handle<> h, resume_context* ctx, parked_sender& slot, bool is_call = false);
  /// Puts an admitted message in the mailbox and makes sure the actor will run.
  void enqueue(message* m) noexcept;
  /// Puts a `system` message in the mailbox without bounds (dropped if the actor is dead).
  void enqueue_system(message* m) noexcept;

  /// resume_context: continues a coroutine of this actor inside it.
  void resume(std::coroutine_handle<> h) override;

  /// Asks the actor to die at its next message boundary (no restart). Any thread. A deactivated
  /// actor fails its callers with `unavailable` (it may be activated again) instead of `died`.
  void kill(std::string reason, bool deactivate = false);
  [[nodiscard]] bool deactivated() const noexcept {
    return (flags_.load(std::memory_order_acquire) & flag_deactivate) != 0;
  }

  /// The object of the current incarnation. On the actor only.
  [[nodiscard]] void* object() const noexcept { return object_; }
  /// The incarnation a coroutine serving a call must keep alive. On the actor only.
  [[nodiscard]] const std::shared_ptr<incarnation>& current() const noexcept { return incarnation_; }
  /// A coroutine serves `m` from now on (so the actor's death fails it promptly). On the actor.
  void begin_async(message* m) noexcept;
  /// The coroutine serving `m` finished; `crash` is its escaped exception, if any. On the actor.
  void end_async(message* m, std::exception_ptr crash);

  /// Runs up to `budget` messages. Called by the scheduler only, with one reference it hands over.
  void run(unsigned budget);

  /// Messages waiting in the mailbox (counted only for a bounded mailbox; 0 otherwise). Any thread.
  [[nodiscard]] std::int32_t queued() const noexcept { return queued_.load(std::memory_order_relaxed); }
  /// How many times the actor was restarted, in all. Any thread.
  [[nodiscard]] std::uint32_t restarts() const noexcept { return restarts_.load(std::memory_order_relaxed); }
  [[nodiscard]] bool stop_requested() const noexcept {
    return (flags_.load(std::memory_order_acquire) & flag_kill) != 0 || status() == cell_status::dead;
  }

  /// Set up by the system at spawn. Constructs the first incarnation; false if that threw.
  [[nodiscard]] result<void> start(cell* owner, std::string name_key);

 private:
  static constexpr std::uint32_t flag_scheduled = 1;
  static constexpr std::uint32_t flag_kill = 2;
  static constexpr std::uint32_t flag_restart_due = 4;
  static constexpr std::uint32_t flag_deactivate = 8;

  void schedule() noexcept;
  void crashed(message* m, std::exception_ptr what);
  [[nodiscard]] bool make_incarnation(std::string* why);
  void end_incarnation();
  void restart_now();
  void die(const std::string& reason);
  void drop_all(const error& why);
  void wake_senders(bool all) noexcept;
  void dispose(message* m) noexcept;
  void finish_run() noexcept;
  [[nodiscard]] std::string kill_reason() const;
  cell_extras& extras();

  std::atomic<std::uint32_t> refs_{1};
  std::atomic<std::uint32_t> flags_{0};
  std::atomic<cell_status> status_{cell_status::alive};
  std::atomic<std::int32_t> queued_{0};
  std::atomic<std::int32_t> pending_calls_{0};
  std::atomic<std::uint32_t> restarts_{0};
  std::atomic<std::uint32_t> room_epoch_{0};  ///< bumped when a full mailbox gains room
  std::atomic<std::uint32_t> waiting_senders_{0};
  mpsc_queue mailbox_;
  system_core* sys_;
  const std::type_info* type_;
  std::uint64_t id_;
  void* object_ = nullptr;
  std::shared_ptr<incarnation> incarnation_;
  cell_policy policy_;
  factory make_;
  std::unique_ptr<cell_extras> extras_;             // names, children, restart history, calls in flight
  std::atomic<std::string*> kill_reason_{nullptr};  // set once by `kill`, from any thread
  std::atomic<bool> park_lock_{false};
  parked_sender* parked_head_ = nullptr;  // under park_lock_
  parked_sender* parked_tail_ = nullptr;

 public:
  cell* prev_live = nullptr;  ///< the system's list of live actors (under its lock)
  cell* next_live = nullptr;
  bool listed = false;
};

/// An owning pointer to a cell.
using cell_ptr = ref_ptr<cell>;

/// Runs `fn` on a worker thread after `delay` (the system's timers). Any thread.
void run_after(cell& c, std::chrono::nanoseconds delay, std::function<void()> fn);

/// The actor whose message the calling thread is running, or null.
[[nodiscard]] cell* current_cell() noexcept;

// ── Handler plumbing ─────────────────────────────────────────────────────────────────────────────

template <class X>
struct unwrap_task {
  using type = X;
  static constexpr bool is_task = false;
};
template <class X>
struct unwrap_task<task<X>> {
  using type = X;
  static constexpr bool is_task = true;
};
template <class X>
struct unwrap_result {
  using type = X;
  static constexpr bool is_result = false;
};
template <class X>
struct unwrap_result<result<X>> {
  using type = X;
  static constexpr bool is_result = true;
};

/// What an ask on a handler `F` called with `T&` answers: the handler's value, with `task<…>` and
/// `result<…>` unwrapped (a handler's error reaches the caller as the call's error).
template <class T, class F>
struct handler_traits {
  using raw = std::invoke_result_t<F&, T&>;
  using awaited = typename unwrap_task<raw>::type;
  using answer = typename unwrap_result<awaited>::type;
  static constexpr bool is_task = unwrap_task<raw>::is_task;
  static constexpr bool is_result = unwrap_result<awaited>::is_result;
};

/// A coroutine that runs on its own once started and destroys itself at the end.
struct detached_coroutine {
  struct promise_type {
    detached_coroutine get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
  };
};

/// Stores what the handler produced in a claimed `state` and wakes the caller.
template <class R, bool IsResult, class V>
void complete_claimed(call_state<R>& state, V&& v) {
  if constexpr (IsResult) {
    if (!v.ok()) {
      state.fail(std::move(v).err());
      return;
    }
    if constexpr (std::is_void_v<R>) {
      state.publish();
    } else {
      state.set_value(std::move(v).value());
      state.publish();
    }
  } else {
    state.set_value(std::forward<V>(v));
    state.publish();
  }
}

/// Completes `state` with what the handler produced.
template <class R, bool IsResult, class V>
void complete_with(call_state<R>& state, V&& v) {
  if (!state.claim()) return;
  try {
    complete_claimed<R, IsResult>(state, std::forward<V>(v));
  } catch (...) {  // storing the answer threw: the caller still gets an answer, then the actor crashes
    state.fail(make_error(runtime_errc::died, "storing the answer threw"));
    throw;
  }
}

[[nodiscard]] error died_error(const cell& c, std::string_view why);

/// A one-way message: runs `F` on the actor's object.
template <class T, class F>
class tell_message final : public message {
 public:
  explicit tell_message(F&& f, kind k = kind::user) : message(k), f_(std::move(f)) {}
  bool run(cell& c) override {
    using traits = handler_traits<T, F>;
    if constexpr (traits::is_task) {
      c.begin_async(this);
      drive(c, c.current());
      return false;
    } else {
      (void)std::invoke(f_, *static_cast<T*>(c.object()));
      return true;
    }
  }
  void drop(const error& /*why*/) noexcept override {}

 private:
  detached_coroutine drive(cell& c, std::shared_ptr<incarnation> keep) {
    std::exception_ptr crash;
    try {
      (void)co_await std::invoke(f_, *static_cast<T*>(keep->object()));
    } catch (...) {
      crash = std::current_exception();
    }
    c.end_async(this, crash);
  }
  F f_;
};

/// A call: runs `F` on the actor's object and completes the caller's reply with its answer.
template <class T, class F>
class call_message final : public message {
  using traits = handler_traits<T, F>;
  using R = typename traits::answer;

 public:
  call_message(F&& f, call_ptr<R> state) : message(kind::call), f_(std::move(f)), state_(std::move(state)) {}
  bool run(cell& c) override {
    if (state_->done()) return true;  // the caller gave up (deadline) before it ran
    if constexpr (traits::is_task) {
      c.begin_async(this);
      drive(c, c.current());
      return false;
    } else if constexpr (std::is_void_v<typename traits::raw>) {
      std::invoke(f_, *static_cast<T*>(c.object()));
      if (state_->claim()) state_->publish();
      return true;
    } else {
      complete_with<R, traits::is_result>(*state_, std::invoke(f_, *static_cast<T*>(c.object())));
      return true;
    }
  }
  void drop(const error& why) noexcept override { state_->try_fail(why); }

 private:
  detached_coroutine drive(cell& c, std::shared_ptr<incarnation> keep) {
    std::exception_ptr crash;
    try {
      if constexpr (std::is_void_v<typename traits::awaited>) {
        co_await std::invoke(f_, *static_cast<T*>(keep->object()));
        if (state_->claim()) state_->publish();
      } else {
        complete_with<R, traits::is_result>(*state_, co_await std::invoke(f_, *static_cast<T*>(keep->object())));
      }
    } catch (...) {
      crash = std::current_exception();
    }
    c.end_async(this, crash);
  }
  F f_;
  call_ptr<R> state_;
};

}  // namespace detail
}  // namespace choir::runtime
