// The actor system: cells (mailbox, incarnation, supervision), the scheduler (an Asio io_context
// thread pool, or the deterministic one for tests), timers and the name registry. The only
// translation unit of choir/runtime's actor core that includes Asio.
#include "choir/runtime/actor.hpp"

#include <fmt/format.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cxxabi.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <climits>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace choir::runtime {
namespace asio = boost::asio;

namespace detail {
namespace {

thread_local cell* tls_cell = nullptr;

/// Marks the calling thread as running inside `c` (for ownership and for coroutine affinity).
class inside_cell {
 public:
  explicit inside_cell(cell* c) noexcept : saved_(std::exchange(tls_cell, c)), scope_(c) {}
  ~inside_cell() { tls_cell = saved_; }
  inside_cell(const inside_cell&) = delete;
  inside_cell& operator=(const inside_cell&) = delete;

 private:
  cell* saved_;
  resume_context_scope scope_;
};

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, const timespec* relative) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, relative, nullptr, 0);
}
void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

/// Resumes a coroutine of a caller that is not inside any actor: on this thread, as a plain
/// thread (not inside the actor whose message is running here).
void resume_outside(std::coroutine_handle<> h) {
  inside_cell none(nullptr);
  h.resume();
}

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

std::string type_name(const std::type_info& t) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(t.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(t.name());
}

/// Continues a coroutine of the actor inside it. Never dropped: even a dead actor lets its
/// coroutines run to their end (they hold the incarnation they run on).
class resume_message final : public message {
 public:
  explicit resume_message(std::coroutine_handle<> h) noexcept : message(kind::resume), handle_(h) {}
  bool run(cell& /*c*/) override {
    handle_.resume();
    return true;
  }
  void drop(const error& /*why*/) noexcept override {}

 private:
  std::coroutine_handle<> handle_;
};

std::int64_t steady_ns(const clock& c) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(c.steady_now().time_since_epoch()).count();
}

}  // namespace

cell* current_cell() noexcept { return tls_cell; }

// ── The system's core: scheduler, timers, registry, live actors ─────────────────────────────────

class system_core {
 public:
  system_core(actor_system& api, system_options opts)
      : api_(api), opts_(opts), io_(static_cast<int>(opts.threads)), timer_(io_) {
    if (opts_.throughput == 0) opts_.throughput = 1;
    if (opts_.deterministic) {
      manual_ = std::make_unique<manual_clock>();
      return;
    }
    unsigned n = opts_.threads != 0 ? opts_.threads : std::max(1U, std::thread::hardware_concurrency());
    guard_.emplace(io_.get_executor());
    for (unsigned i = 0; i < n; ++i) workers_.emplace_back([this] { io_.run(); });
  }
  system_core(const system_core&) = delete;
  system_core& operator=(const system_core&) = delete;

  ~system_core() { stop(); }

  void stop() {
    if (stopping_.exchange(true)) return;
    // Every live actor dies; its pending calls fail with `died`.
    std::vector<cell_ptr> live;
    {
      std::lock_guard lock(live_mutex_);
      for (cell* c = live_head_; c != nullptr; c = c->next_live) live.push_back(cell_ptr::share(c));
    }
    for (auto& c : live) c->kill("the actor system is stopping");
    live.clear();
    if (opts_.deterministic) {
      run_until_idle();
    } else {
      std::unique_lock lock(live_mutex_);
      live_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return live_count_ == 0; });
    }
    decltype(timers_) dropped;  // destroyed outside the lock (they may release cells)
    {
      std::lock_guard lock(timer_mutex_);
      dropped.swap(timers_);
      timer_deadline_.clear();
      if (!opts_.deterministic) timer_.cancel();
    }
    dropped.clear();
    if (!opts_.deterministic) {
      // Let the pool run out of work rather than stop it: dead actors still drain their
      // mailboxes, failing the calls queued there, and release what they hold.
      guard_.reset();
      for (auto& t : workers_) t.join();
    }
    std::lock_guard lock(registry_mutex_);
    names_.clear();
  }

  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
  [[nodiscard]] actor_system& api() const noexcept { return api_; }
  [[nodiscard]] unsigned throughput() const noexcept { return opts_.throughput; }
  [[nodiscard]] bool deterministic() const noexcept { return opts_.deterministic; }
  [[nodiscard]] clock& time() const noexcept { return manual_ ? static_cast<clock&>(*manual_) : system_clock(); }

  /// Runs `c` soon. Adopts one reference to it.
  void schedule(cell* c) {
    if (opts_.deterministic) {
      std::lock_guard lock(ready_mutex_);
      ready_.push_back(c);
      return;
    }
    asio::post(io_, [c, budget = opts_.throughput] { c->run(budget); });
  }

  // ── timers ──
  std::uint64_t new_timer_id() noexcept { return next_timer_.fetch_add(1, std::memory_order_relaxed); }

  void arm_timer(std::uint64_t id, std::chrono::nanoseconds after, std::function<void()> fn) {
    const std::int64_t deadline = steady_ns(time()) + std::max<std::int64_t>(0, after.count());
    std::lock_guard lock(timer_mutex_);
    if (stopping()) return;
    const bool earliest = timers_.empty() || deadline < timers_.begin()->first.first;
    timers_.emplace(std::make_pair(deadline, id), std::move(fn));
    timer_deadline_.emplace(id, deadline);
    if (earliest && !opts_.deterministic) rearm_locked();
  }

  void cancel_timer(std::uint64_t id) {
    std::function<void()> dropped;  // destroyed outside the lock (it may release a cell)
    std::lock_guard lock(timer_mutex_);
    auto it = timer_deadline_.find(id);
    if (it == timer_deadline_.end()) return;
    auto entry = timers_.find(std::make_pair(it->second, id));
    if (entry != timers_.end()) {
      dropped = std::move(entry->second);
      timers_.erase(entry);
    }
    timer_deadline_.erase(it);
  }

  /// Fires every timer that is due, in deadline order.
  void fire_due() {
    std::vector<std::function<void()>> due;
    {
      std::lock_guard lock(timer_mutex_);
      const std::int64_t now = steady_ns(time());
      while (!timers_.empty() && timers_.begin()->first.first <= now) {
        auto it = timers_.begin();
        due.push_back(std::move(it->second));
        timer_deadline_.erase(it->first.second);
        timers_.erase(it);
      }
      if (!opts_.deterministic && !timers_.empty()) rearm_locked();
    }
    for (auto& fn : due) fn();
  }

  // ── deterministic scheduling ──
  bool run_once() {
    cell* c = nullptr;
    {
      std::lock_guard lock(ready_mutex_);
      if (ready_.empty()) return false;
      c = ready_.front();
      ready_.pop_front();
    }
    c->run(1);
    return true;
  }
  bool run_cell_once(cell* target) {
    {
      std::lock_guard lock(ready_mutex_);
      auto it = std::find(ready_.begin(), ready_.end(), target);
      if (it == ready_.end()) return false;
      ready_.erase(it);
    }
    target->run(1);
    return true;
  }
  std::size_t run_until_idle() {
    std::size_t n = 0;
    while (run_once()) ++n;
    return n;
  }
  void advance(std::chrono::nanoseconds d) {
    if (manual_) manual_->advance(d);
    fire_due();
  }

  // ── live actors ──
  void add_live(cell* c) {
    c->add_ref();
    std::lock_guard lock(live_mutex_);
    c->listed = true;
    c->next_live = live_head_;
    if (live_head_ != nullptr) live_head_->prev_live = c;
    live_head_ = c;
    ++live_count_;
  }
  void remove_live(cell* c) {
    {
      std::lock_guard lock(live_mutex_);
      if (!c->listed) return;
      c->listed = false;
      if (c->prev_live != nullptr) c->prev_live->next_live = c->next_live;
      if (c->next_live != nullptr) c->next_live->prev_live = c->prev_live;
      if (live_head_ == c) live_head_ = c->next_live;
      c->prev_live = c->next_live = nullptr;
      --live_count_;
      live_cv_.notify_all();
    }
    c->release();
  }
  [[nodiscard]] std::size_t live_count() const {
    std::lock_guard lock(live_mutex_);
    return live_count_;
  }

  // ── names ──
  static std::string name_key(std::string_view name_space, std::string_view name) {
    std::string key(name_space);
    key.push_back('\0');
    key.append(name);
    return key;
  }
  std::mutex registry_mutex_;
  std::unordered_map<std::string, cell_ptr> names_;

  void unregister(const std::string& key, cell* c) {
    cell_ptr dropped;
    std::lock_guard lock(registry_mutex_);
    auto it = names_.find(key);
    if (it != names_.end() && it->second.get() == c) {
      dropped = std::move(it->second);
      names_.erase(it);
    }
  }

  std::atomic<std::uint64_t> next_cell_id{1};

 private:
  void rearm_locked() {
    const auto deadline = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(timers_.begin()->first.first));
    timer_.expires_at(deadline);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec != asio::error::operation_aborted) fire_due();
    });
  }

  actor_system& api_;
  system_options opts_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<manual_clock> manual_;

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::vector<std::thread> workers_;

  std::mutex timer_mutex_;
  asio::steady_timer timer_;
  std::map<std::pair<std::int64_t, std::uint64_t>, std::function<void()>> timers_;
  std::unordered_map<std::uint64_t, std::int64_t> timer_deadline_;
  std::atomic<std::uint64_t> next_timer_{1};

  std::mutex ready_mutex_;
  std::deque<cell*> ready_;

  mutable std::mutex live_mutex_;
  std::condition_variable live_cv_;
  cell* live_head_ = nullptr;
  std::size_t live_count_ = 0;
};

// ── Call state ───────────────────────────────────────────────────────────────────────────────────

void call_state_base::publish() noexcept {
  if (deadline_system_ != nullptr) deadline_system_->cancel_timer(deadline_timer_);
  // Read the waiter before the exchange: once `done` is visible the caller may destroy it all.
  const auto old = phase_.exchange(phase_done, std::memory_order_acq_rel);
  if (old == phase_coroutine) {
    if (waiter_context_ != nullptr) {
      waiter_context_->resume(waiter_);
    } else {
      resume_outside(waiter_);
    }
  } else if (old == phase_thread) {
    futex_wake_all(&phase_);
  }
}

bool call_state_base::suspend(std::coroutine_handle<> h, resume_context* ctx) noexcept {
  waiter_ = h;
  waiter_context_ = ctx;
  std::uint32_t expected = phase_empty;
  return phase_.compare_exchange_strong(expected, phase_coroutine, std::memory_order_acq_rel);
}

void call_state_base::wait(std::chrono::nanoseconds timeout) noexcept {
  std::uint32_t expected = phase_empty;
  if (!phase_.compare_exchange_strong(expected, phase_thread, std::memory_order_acq_rel) && expected == phase_done) {
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool gave_up = false;
  while (phase_.load(std::memory_order_acquire) != phase_done) {
    if (timeout.count() < 0 || gave_up) {
      futex_wait(&phase_, phase_thread, nullptr);
      continue;
    }
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left.count() <= 0) {
      if (claim()) {
        fail(make_error(runtime_errc::timed_out,
                        fmt::format("no answer within {} ms",
                                    std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count())));
        return;
      }
      gave_up = true;  // the answer is being written: wait for it
      continue;
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    const timespec rel{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    futex_wait(&phase_, phase_thread, &rel);
  }
}

namespace {
/// Holds a call state alive inside a timer callback.
struct call_ref {
  call_state_base* state;
  explicit call_ref(call_state_base* s) noexcept : state(s) { s->add_ref(); }
  call_ref(const call_ref& o) noexcept : state(o.state) { state->add_ref(); }
  call_ref& operator=(const call_ref&) = delete;
  ~call_ref() { state->release(); }
};
}  // namespace

void call_state_base::arm_deadline(system_core& sys, std::chrono::nanoseconds timeout) {
  deadline_timer_ = sys.new_timer_id();
  deadline_system_ = &sys;
  sys.arm_timer(deadline_timer_, timeout, [ref = call_ref(this), timeout] {
    if (!ref.state->claim()) return;
    ref.state->deadline_system_ = nullptr;  // this timer is the one firing
    ref.state->fail(make_error(
        runtime_errc::timed_out,
        fmt::format("no answer within {} ms", std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count())));
  });
}

void run_after(cell& c, std::chrono::nanoseconds delay, std::function<void()> fn) {
  auto& sys = c.system();
  sys.arm_timer(sys.new_timer_id(), delay, std::move(fn));
}

error died_error(const cell& c, std::string_view why) {
  return make_error(c.deactivated() ? runtime_errc::unavailable : runtime_errc::died,
                    fmt::format("actor #{} ({}): {}", c.id(), type_name(c.type()), why));
}

// ── The cell ─────────────────────────────────────────────────────────────────────────────────────

struct cell_extras {
  std::string name_key;                    // set if the actor is named
  std::vector<cell_ptr> children;          // owned actors (die with this one's incarnation)
  std::deque<std::int64_t> restart_times;  // steady ns of recent restarts
  message* retry = nullptr;                // the crashed message to run first after a restart
  message* in_flight = nullptr;            // calls a coroutine is serving
  std::string death_reason;
  std::size_t children_pruned_at = 0;
};

cell::cell(system_core& sys, std::uint64_t id, const std::type_info& type, cell_policy policy, factory make)
    : sys_(&sys), type_(&type), id_(id), policy_(policy), make_(std::move(make)) {
  flags_.store(flag_scheduled, std::memory_order_relaxed);  // held by the spawner until started
}

cell::~cell() {
  delete kill_reason_.load(std::memory_order_acquire);
  if (extras_ && extras_->retry != nullptr) delete extras_->retry;
  while (auto* n = mailbox_.pop()) delete static_cast<message*>(n);
}

cell_extras& cell::extras() {
  if (!extras_) extras_ = std::make_unique<cell_extras>();
  return *extras_;
}

result<void> cell::admit(bool is_call) noexcept {
  const auto st = status();
  if (st == cell_status::dead) {
    return died_error(*this, extras_ ? std::string_view(extras_->death_reason) : std::string_view("dead"));
  }
  if (sys_->stopping()) return make_error(runtime_errc::unavailable, "the actor system is stopping");
  if (policy_.mailbox_capacity != 0) {
    if (queued_.fetch_add(1, std::memory_order_seq_cst) >= static_cast<std::int32_t>(policy_.mailbox_capacity)) {
      queued_.fetch_sub(1, std::memory_order_seq_cst);
      return make_error(runtime_errc::overloaded,
                        fmt::format("actor #{}: mailbox full ({} messages)", id_, policy_.mailbox_capacity));
    }
  }
  if (is_call && policy_.max_pending_calls != 0) {
    if (pending_calls_.fetch_add(1, std::memory_order_acq_rel) >=
        static_cast<std::int32_t>(policy_.max_pending_calls)) {
      pending_calls_.fetch_sub(1, std::memory_order_acq_rel);
      if (policy_.mailbox_capacity != 0) queued_.fetch_sub(1, std::memory_order_seq_cst);
      return make_error(runtime_errc::overloaded,
                        fmt::format("actor #{}: {} calls pending already", id_, policy_.max_pending_calls));
    }
  }
  return {};
}

result<void> cell::admit_waiting(bool is_call) noexcept {
  for (;;) {
    auto admitted = admit(is_call);
    if (admitted.ok() || admitted.err().code != runtime_errc::overloaded) return admitted;
    waiting_senders_.fetch_add(1, std::memory_order_seq_cst);
    const auto epoch = room_epoch_.load(std::memory_order_seq_cst);
    admitted = admit(is_call);
    if (admitted.ok() || admitted.err().code != runtime_errc::overloaded) {
      waiting_senders_.fetch_sub(1, std::memory_order_seq_cst);
      return admitted;
    }
    futex_wait(&room_epoch_, epoch, nullptr);
    waiting_senders_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

namespace {
class spin_guard {
 public:
  explicit spin_guard(std::atomic<bool>& flag) noexcept : flag_(flag) {
    while (flag_.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
  }
  ~spin_guard() { flag_.store(false, std::memory_order_release); }
  spin_guard(const spin_guard&) = delete;
  spin_guard& operator=(const spin_guard&) = delete;

 private:
  std::atomic<bool>& flag_;
};
}  // namespace

park_result cell::park_sender(std::coroutine_handle<> h, resume_context* ctx, parked_sender& slot, bool is_call) {
  spin_guard lock(park_lock_);
  waiting_senders_.fetch_add(1, std::memory_order_seq_cst);
  auto admitted = admit(is_call);
  if (admitted.ok()) {
    waiting_senders_.fetch_sub(1, std::memory_order_seq_cst);
    return park_result::admitted;
  }
  if (admitted.err().code != runtime_errc::overloaded) {
    waiting_senders_.fetch_sub(1, std::memory_order_seq_cst);
    return park_result::refused;
  }
  slot.handle = h;
  slot.context = ctx;
  slot.granted = false;
  slot.is_call = is_call;
  slot.next = nullptr;
  if (parked_tail_ != nullptr) {
    parked_tail_->next = &slot;
  } else {
    parked_head_ = &slot;
  }
  parked_tail_ = &slot;
  return park_result::parked;
}

void cell::wake_senders(bool all) noexcept {
  std::vector<parked_sender*> woken;
  {
    spin_guard lock(park_lock_);
    while (parked_head_ != nullptr) {
      if (!all) {
        if (!admit(parked_head_->is_call).ok()) break;  // a slot for the first parked sender, or none yet
        parked_head_->granted = true;
      }
      woken.push_back(parked_head_);
      parked_head_ = parked_head_->next;
      if (parked_head_ == nullptr) parked_tail_ = nullptr;
      waiting_senders_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  room_epoch_.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&room_epoch_);
  for (auto* p : woken) {
    auto handle = p->handle;
    auto* ctx = p->context;
    if (ctx != nullptr) {
      ctx->resume(handle);
    } else {
      resume_outside(handle);
    }
  }
}

void cell::enqueue(message* m) noexcept {
  mailbox_.push(m);
  schedule();
}

void cell::enqueue_system(message* m) noexcept {
  if (status() == cell_status::dead) {
    delete m;
    return;
  }
  enqueue(m);  // a death in between is fine: the dead actor's loop drops it
}

void cell::schedule() noexcept {
  if ((flags_.fetch_or(flag_scheduled, std::memory_order_seq_cst) & flag_scheduled) == 0) {
    add_ref();
    sys_->schedule(this);
  }
}

void cell::resume(std::coroutine_handle<> h) { enqueue(new resume_message(h)); }

void cell::kill(std::string reason, bool deactivate) {
  auto* why = new std::string(std::move(reason));
  std::string* none = nullptr;
  if (!kill_reason_.compare_exchange_strong(none, why, std::memory_order_acq_rel)) {
    delete why;  // killed already: the first reason stands
  } else if (deactivate) {
    flags_.fetch_or(flag_deactivate, std::memory_order_seq_cst);
  }
  flags_.fetch_or(flag_kill, std::memory_order_seq_cst);
  schedule();
}

std::string cell::kill_reason() const {
  const std::string* why = kill_reason_.load(std::memory_order_acquire);
  return why != nullptr ? *why : std::string("killed");
}

void cell::dispose(message* m) noexcept {
  const bool freed_call = m->what() == message::kind::call && policy_.max_pending_calls != 0 && !m->slot_released;
  delete m;
  if (freed_call) {
    pending_calls_.fetch_sub(1, std::memory_order_seq_cst);
    if (waiting_senders_.load(std::memory_order_seq_cst) != 0) wake_senders(false);  // a caller may go now
  }
}

result<void> cell::start(cell* owner, std::string name_key) {
  if (!name_key.empty()) extras().name_key = std::move(name_key);
  std::string why;
  bool ok = false;
  {
    inside_cell inside(this);
    ok = make_incarnation(&why);
  }
  if (!ok) {
    die("its constructor threw: " + why);
    add_ref();  // the spawner's hold, handed to finish_run
    finish_run();
    return died_error(*this, extras().death_reason);
  }
  sys_->add_live(this);
  if (owner != nullptr) {
    auto& kids = owner->extras();
    kids.children.push_back(cell_ptr::share(this));
    if (kids.children.size() >= 2 * kids.children_pruned_at + 8) {
      std::erase_if(kids.children, [](const cell_ptr& c) { return c->status() == cell_status::dead; });
      kids.children_pruned_at = kids.children.size();
    }
  }
  add_ref();  // the hold the spawner had is handed to finish_run
  finish_run();
  return {};
}

bool cell::make_incarnation(std::string* why) {
  try {
    incarnation_ = make_(*this);
    object_ = incarnation_->object();
    return true;
  } catch (...) {
    *why = describe(std::current_exception());
    incarnation_.reset();
    object_ = nullptr;
    return false;
  }
}

void cell::end_incarnation() {
  if (incarnation_) {
    incarnation_->end();  // its coroutines see stop_requested() from now on
    incarnation_->stopping();
  }
  if (extras_) {
    // Calls still served by coroutines of this incarnation fail now; their coroutines finish later.
    bool freed_slot = false;
    for (message* m = extras_->in_flight; m != nullptr;) {
      message* next = m->next_in_flight;
      m->orphaned = true;
      m->next_in_flight = m->prev_in_flight = nullptr;
      m->drop(died_error(*this, extras_->death_reason.empty()
                                    ? std::string("it was restarted while serving this call")
                                    : "it stopped while serving this call: " + extras_->death_reason));
      if (m->what() == message::kind::call && policy_.max_pending_calls != 0) {
        pending_calls_.fetch_sub(1, std::memory_order_seq_cst);  // the next incarnation may take it
        m->slot_released = true;
        freed_slot = true;
      }
      m = next;
    }
    if (freed_slot && waiting_senders_.load(std::memory_order_seq_cst) != 0) wake_senders(false);
    extras_->in_flight = nullptr;
    for (auto& child : extras_->children) child->kill(fmt::format("its owner, actor #{}, stopped", id_));
    extras_->children.clear();
  }
  incarnation_.reset();
  object_ = nullptr;
}

void cell::begin_async(message* m) noexcept {
  add_ref();  // the coroutine may outlive every handle and the actor's death; released by end_async
  auto& x = extras();
  m->prev_in_flight = nullptr;
  m->next_in_flight = x.in_flight;
  if (x.in_flight != nullptr) x.in_flight->prev_in_flight = m;
  x.in_flight = m;
}

void cell::end_async(message* m, std::exception_ptr crash) {
  if (m->orphaned) {
    dispose(m);
  } else {
    auto& x = extras();
    if (m->prev_in_flight != nullptr) m->prev_in_flight->next_in_flight = m->next_in_flight;
    if (m->next_in_flight != nullptr) m->next_in_flight->prev_in_flight = m->prev_in_flight;
    if (x.in_flight == m) x.in_flight = m->next_in_flight;
    m->next_in_flight = m->prev_in_flight = nullptr;
    if (crash && status() == cell_status::alive) {
      crashed(m, crash);
    } else {
      dispose(m);
    }
  }
  release();  // the coroutine's reference (begin_async); never the last while the caller runs us
}

void cell::crashed(message* m, std::exception_ptr what) {
  const std::string why = describe(what);
  auto& x = extras();
  const std::int64_t now = steady_ns(sys_->time());
  const std::int64_t window = static_cast<std::int64_t>(policy_.restart_period_ms) * 1'000'000;
  while (!x.restart_times.empty() && x.restart_times.front() < now - window) x.restart_times.pop_front();
  const bool can_restart =
      policy_.max_restarts < 0 || x.restart_times.size() < static_cast<std::size_t>(policy_.max_restarts);
  if (m != nullptr) {
    if (can_restart && m->attempts < policy_.max_task_retries) {
      ++m->attempts;
      x.retry = m;
    } else {
      m->drop(died_error(*this, "it crashed serving this call: " + why));
      dispose(m);
    }
  }
  if (!can_restart) {
    die(policy_.max_restarts == 0 ? "it crashed: " + why
                                  : fmt::format("it crashed more than {} times within {} ms; last: {}",
                                                policy_.max_restarts, policy_.restart_period_ms, why));
    return;
  }
  x.restart_times.push_back(now);
  restarts_.fetch_add(1, std::memory_order_relaxed);
  end_incarnation();
  const auto k = std::min<std::size_t>(x.restart_times.size() - 1, 30);
  const std::uint64_t backoff =
      std::min<std::uint64_t>(static_cast<std::uint64_t>(policy_.backoff_initial_ms) << k, policy_.backoff_max_ms);
  status_.store(cell_status::restarting, std::memory_order_release);
  if (backoff == 0) {
    restart_now();
    return;
  }
  sys_->arm_timer(sys_->new_timer_id(), std::chrono::milliseconds(backoff), [self = cell_ptr::share(this)] {
    self->flags_.fetch_or(flag_restart_due, std::memory_order_seq_cst);
    self->schedule();
  });
}

void cell::restart_now() {
  std::string why;
  if (make_incarnation(&why)) {
    status_.store(cell_status::alive, std::memory_order_release);
    return;
  }
  // The constructor itself threw: that is another crash, counted against the same budget.
  status_.store(cell_status::alive, std::memory_order_release);
  crashed(nullptr, std::make_exception_ptr(std::runtime_error("its constructor threw on restart: " + why)));
}

void cell::die(const std::string& reason) {
  auto& x = extras();
  if (x.death_reason.empty()) x.death_reason = reason;  // read by senders once they see `dead`
  end_incarnation();
  if (x.retry != nullptr) {
    x.retry->drop(died_error(*this, x.death_reason));
    dispose(std::exchange(x.retry, nullptr));
  }
  status_.store(cell_status::dead, std::memory_order_release);
  wake_senders(true);
  if (!x.name_key.empty()) sys_->unregister(x.name_key, this);
  sys_->remove_live(this);
}

void cell::run(unsigned budget) {
  {
    inside_cell inside(this);
    if ((flags_.load(std::memory_order_acquire) & flag_kill) != 0 && status() != cell_status::dead) {
      die(kill_reason());
    }
    if ((flags_.load(std::memory_order_acquire) & flag_restart_due) != 0) {
      flags_.fetch_and(~flag_restart_due, std::memory_order_seq_cst);
      if (status() == cell_status::restarting) restart_now();
    }
    for (unsigned n = 0; n < budget;) {
      if (status() == cell_status::restarting) break;
      message* m = nullptr;
      if (extras_ && extras_->retry != nullptr) {
        m = std::exchange(extras_->retry, nullptr);
      } else {
        auto* node = mailbox_.pop();
        if (node == nullptr) break;
        m = static_cast<message*>(node);
        if (m->counts() && policy_.mailbox_capacity != 0) {
          queued_.fetch_sub(1, std::memory_order_seq_cst);
          if (waiting_senders_.load(std::memory_order_seq_cst) != 0) wake_senders(false);
        }
      }
      ++n;
      if (status() == cell_status::dead && m->what() != message::kind::resume) {
        m->drop(died_error(*this, extras().death_reason));
        dispose(m);
        continue;
      }
      try {
        if (m->run(*this)) dispose(m);
      } catch (...) {
        crashed(m, std::current_exception());
      }
      if ((flags_.load(std::memory_order_acquire) & flag_kill) != 0 && status() != cell_status::dead) {
        die(kill_reason());
      }
    }
  }
  finish_run();
}

void cell::finish_run() noexcept {
  // Still the consumer here: decide whether to run again before letting go of the flag. The last
  // push is read first: a push after this read changes it, one before it shows in `empty()`.
  const mpsc_node* seen = mailbox_.last_pushed();
  const bool restarting = status() == cell_status::restarting;
  const bool has_retry = extras_ && extras_->retry != nullptr;
  const std::uint32_t f = flags_.load(std::memory_order_seq_cst);
  const bool pending_flags = ((f & flag_kill) != 0 && status() != cell_status::dead) || (f & flag_restart_due) != 0;
  if (pending_flags || (!restarting && (has_retry || !mailbox_.empty()))) {
    sys_->schedule(this);  // keeps the flag and hands the reference on
    return;
  }
  const std::uint32_t before = flags_.fetch_and(~flag_scheduled, std::memory_order_seq_cst);
  const bool raced = (!restarting && mailbox_.last_pushed() != seen) ||
                     (before & (flag_kill | flag_restart_due)) != (f & (flag_kill | flag_restart_due));
  if (raced && (flags_.fetch_or(flag_scheduled, std::memory_order_seq_cst) & flag_scheduled) == 0) {
    sys_->schedule(this);
    return;
  }
  release();
}

}  // namespace detail

// ── actor_system ─────────────────────────────────────────────────────────────────────────────────

actor_system::actor_system(system_options opts) : core_(std::make_unique<detail::system_core>(*this, opts)) {}

actor_system::~actor_system() { core_->stop(); }

std::size_t actor_system::live_actors() const { return core_->live_count(); }

clock& actor_system::time() const { return core_->time(); }

bool actor_system::run_once() { return core_->run_once(); }
bool actor_system::run_cell_once(detail::cell* c) { return core_->run_cell_once(c); }
std::size_t actor_system::run_until_idle() { return core_->run_until_idle(); }
void actor_system::advance(std::chrono::nanoseconds d) { core_->advance(d); }

namespace {

result<detail::cell_policy> policy_of(const spawn_options& opts) {
  const auto& r = opts.restart;
  if (r.max_restarts < -1) return make_error(runtime_errc::invalid_argument, "restart.max_restarts must be ≥ -1");
  if (r.period.count() <= 0 || r.period.count() > UINT32_MAX) {
    return make_error(runtime_errc::invalid_argument, "restart.period must be positive (and under 49 days)");
  }
  if (r.backoff_initial.count() < 0 || r.backoff_max.count() < r.backoff_initial.count() ||
      r.backoff_max.count() > UINT32_MAX) {
    return make_error(runtime_errc::invalid_argument,
                      "restart.backoff_initial must be ≥ 0 and ≤ restart.backoff_max (under 49 days)");
  }
  if (opts.mailbox_capacity > static_cast<std::uint32_t>(INT32_MAX / 2) ||
      opts.max_pending_calls > static_cast<std::uint32_t>(INT32_MAX / 2)) {
    return make_error(runtime_errc::invalid_argument, "mailbox_capacity and max_pending_calls must be under 2^30");
  }
  detail::cell_policy p;
  p.max_restarts = r.max_restarts;
  p.restart_period_ms = static_cast<std::uint32_t>(r.period.count());
  p.backoff_initial_ms = static_cast<std::uint32_t>(r.backoff_initial.count());
  p.backoff_max_ms = static_cast<std::uint32_t>(r.backoff_max.count());
  p.max_task_retries = opts.max_task_retries;
  p.mailbox_capacity = opts.mailbox_capacity;
  p.max_pending_calls = opts.max_pending_calls;
  return p;
}

result<void> check_name(std::string_view name_space, std::string_view name) {
  if (name_space.empty()) return make_error(runtime_errc::invalid_argument, "an actor's namespace must not be empty");
  if (name.size() > 512 || name_space.size() > 512) {
    return make_error(runtime_errc::invalid_argument, "actor names and namespaces are limited to 512 bytes");
  }
  if (name.find('\0') != std::string_view::npos || name_space.find('\0') != std::string_view::npos) {
    return make_error(runtime_errc::invalid_argument, "actor names and namespaces must not contain NUL");
  }
  return {};
}

}  // namespace

result<detail::cell_ptr> actor_system::spawn_cell(const spawn_options& opts, const std::type_info& type,
                                                  detail::factory make, bool reuse_existing) {
  CHOIR_TRY(auto policy, policy_of(opts));
  CHOIR_CHECK(check_name(opts.name_space, opts.name));
  if (reuse_existing && opts.name.empty()) {
    return make_error(runtime_errc::invalid_argument, "get_or_create needs a name");
  }
  if (core_->stopping()) return make_error(runtime_errc::unavailable, "the actor system is stopping");
  detail::cell* owner = opts.detached ? nullptr : detail::current_cell();
  if (owner != nullptr && &owner->system() != core_.get()) owner = nullptr;  // an actor of another system
  const auto id = core_->next_cell_id.fetch_add(1, std::memory_order_relaxed);
  detail::cell_ptr c(new detail::cell(*core_, id, type, policy, std::move(make)));
  std::string key;
  if (!opts.name.empty()) {
    key = detail::system_core::name_key(opts.name_space, opts.name);
    std::lock_guard lock(core_->registry_mutex_);
    auto it = core_->names_.find(key);
    if (it != core_->names_.end() && it->second->status() != detail::cell_status::dead) {
      if (!reuse_existing) {
        return make_error(runtime_errc::name_taken, fmt::format("an actor named '{}' already lives in namespace '{}'",
                                                                opts.name, opts.name_space));
      }
      if (it->second->type() != type) {
        return make_error(runtime_errc::wrong_type,
                          fmt::format("the actor named '{}' in namespace '{}' is a {}, not a {}", opts.name,
                                      opts.name_space, detail::type_name(it->second->type()), detail::type_name(type)));
      }
      return it->second;
    }
    core_->names_[key] = c;
  }
  CHOIR_CHECK(c->start(owner, std::move(key)));
  return c;
}

result<detail::cell_ptr> actor_system::find_cell(std::string_view name_space, std::string_view name,
                                                 const std::type_info& type) {
  CHOIR_CHECK(check_name(name_space, name));
  std::lock_guard lock(core_->registry_mutex_);
  auto it = core_->names_.find(detail::system_core::name_key(name_space, name));
  if (it == core_->names_.end() || it->second->status() == detail::cell_status::dead) {
    return make_error(runtime_errc::not_found,
                      fmt::format("no live actor named '{}' in namespace '{}'", name, name_space));
  }
  if (it->second->type() != type) {
    return make_error(runtime_errc::wrong_type,
                      fmt::format("the actor named '{}' in namespace '{}' is a {}, not a {}", name, name_space,
                                  detail::type_name(it->second->type()), detail::type_name(type)));
  }
  return it->second;
}

}  // namespace choir::runtime
