#pragma once
/// Latency-class dispatch of agent steps (docs/scheduling.md, "In the runtime"). A conversation
/// asks the dispatcher before each step and gives its worker back after it; while every worker is
/// busy, waiting steps start in the kernel scheduler's order — HRT earliest deadline first (on the
/// reserved workers too), then SRT in arrival order, then DT, which ages into SRT so that it never
/// starves. A step is never preempted once started: the step boundary is the unit of preemption.
///
/// The dispatcher owns no thread. A waiting coroutine is resumed inside the context it waited in
/// (its actor), or on the releasing thread if it had none. It keeps, per class, the figures
/// `/metrics` publishes: steps, HRT deadline misses, waiting and running steps, onset (ready →
/// started), step time and turn time histograms, and HRT jitter (start delay as a share of the
/// deadline).
#include <array>
#include <coroutine>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "choir/core/task.hpp"
#include "choir/kernel/scheduler.hpp"

namespace choir::runtime {

struct dispatch_options {
  int workers = 2;                  ///< steps that run at once
  int hrt_workers = 0;              ///< of them, reserved for HRT steps (admission keeps the HRT set within them)
  std::int64_t dt_aging_ms = 1000;  ///< a DT step waiting this long is served as SRT
};

class step_dispatcher {
 public:
  explicit step_dispatcher(dispatch_options options);
  step_dispatcher(const step_dispatcher&) = delete;
  step_dispatcher& operator=(const step_dispatcher&) = delete;

  /// What `co_await acquire(…)` gives: the step's ticket, to `release` when the step is done.
  class acquire_awaitable {
   public:
    acquire_awaitable(step_dispatcher& d, std::uint64_t ticket) : d_(&d), ticket_(ticket) {}
    [[nodiscard]] bool await_ready();
    bool await_suspend(std::coroutine_handle<> h);
    std::uint64_t await_resume() const noexcept { return ticket_; }

   private:
    step_dispatcher* d_;
    std::uint64_t ticket_;
  };

  /// Waits until a step of class `cls` may start; an HRT step must finish within `deadline_ms`
  /// of now (none: it is due at once). `owner` names the caller for `cancel_owner`.
  [[nodiscard]] acquire_awaitable acquire(graph::latency_class cls, std::optional<std::int64_t> deadline_ms,
                                          std::uint64_t owner);
  /// The step is done: its worker takes the next waiting step. An HRT step done after its deadline
  /// counts as a miss.
  void release(std::uint64_t ticket);
  /// `owner` is going away (an actor stopping): the workers its steps hold are given back, and its
  /// waiting steps are dropped — their coroutines resume without a worker, to wind down (they
  /// must not run their step) and `release` their tickets.
  void cancel_owner(std::uint64_t owner);
  /// A new owner id.
  [[nodiscard]] std::uint64_t new_owner();
  /// Records a conversation turn of class `cls` (its start → its last step done), against the
  /// contract's `slo.turn_ms` if it has one.
  void record_turn(graph::latency_class cls, double seconds, std::optional<std::int64_t> slo_ms = {});
  /// Records a turn's onset (its start → its first visible output: a streamed token or a step
  /// past the one that took the message), against the contract's `slo.onset_ms` if it has one.
  void record_onset(graph::latency_class cls, double seconds, std::optional<std::int64_t> slo_ms = {});

  /// Per class (index: hrt, srt, dt).
  struct class_counts {
    std::uint64_t steps = 0;
    std::uint64_t misses = 0;
    std::uint64_t waiting = 0;
    std::uint64_t running = 0;
    std::uint64_t onset_breaches = 0;  ///< turns whose onset exceeded the contract's `onset_ms`
    std::uint64_t turn_breaches = 0;   ///< turns longer than the contract's `turn_ms`
  };
  [[nodiscard]] std::array<class_counts, 3> counts() const;
  /// The Prometheus text of every figure (`choir_step_*`, `choir_turn_*`).
  [[nodiscard]] std::string prometheus() const;
  [[nodiscard]] const dispatch_options& options() const noexcept { return options_; }

 private:
  struct entry {
    graph::latency_class cls = graph::latency_class::srt;
    std::uint64_t owner = 0;
    std::int64_t ready_ns = 0;
    std::optional<std::int64_t> deadline_ns;
    std::int64_t started_ns = 0;
    int worker = -1;  ///< the worker it holds once granted
    bool cancelled = false;
    std::coroutine_handle<> handle;  ///< set once it waits
    resume_context* context = nullptr;
  };
  struct histogram {
    std::array<std::uint64_t, 14> buckets{};  ///< counts per bound of `bounds` (not cumulative)
    std::uint64_t count = 0;
    double sum = 0;
    void add(double seconds);
  };
  using grants = std::vector<std::pair<std::coroutine_handle<>, resume_context*>>;

  /// Starts waiting steps on free workers in the scheduler's order (under `mutex_`); the waiting
  /// coroutines to resume, once unlocked, are added to `out`.
  void pump(grants& out);
  static void resume(const grants& out);
  static std::int64_t now_ns();

  dispatch_options options_;
  kernel::scheduler sched_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, entry> entries_;
  std::vector<std::uint64_t> busy_;  ///< per worker: the ticket it runs (0: free)
  std::uint64_t next_ticket_ = 1;
  std::uint64_t next_owner_ = 1;
  std::array<class_counts, 3> counts_{};
  std::array<histogram, 3> onset_{}, step_time_{}, turn_time_{}, turn_onset_{};
  /// HRT jitter: each HRT step's start delay as a share of its deadline (0.25: a quarter of it).
  std::array<std::uint64_t, 7> jitter_{};  ///< per bound of `jitter_bounds` (the last: above 1)
  std::uint64_t jitter_count_ = 0;
  double jitter_sum_ = 0;
};

}  // namespace choir::runtime
