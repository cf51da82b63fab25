#pragma once
/// Latency-class scheduling (docs/scheduling.md): the order in which ready steps run. Every step
/// carries its agent's class (or its action's):
///   - HRT: earliest deadline first, on workers reserved for HRT work (admission keeps the HRT set
///     within them, `kernel::admission`); a step finishing after its deadline is a miss;
///   - SRT: ahead of DT, in arrival order; onset and turn times are tracked against the SLO;
///   - DT: in the background, in arrival order, preempted at step boundaries by anything else —
///     but a DT step that has waited `dt_aging` is served as if it were SRT, so DT never starves.
/// The scheduler decides; it owns no threads: an executor asks it for the next step whenever a
/// worker is free (the runtime's, or the simulation below). Thread-safe.
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "choir/graph/action.hpp"

namespace choir::kernel {

using sched_ns = std::int64_t;  ///< nanoseconds on the executor's clock (virtual or steady)

/// One ready step.
struct sched_item {
  std::uint64_t id = 0;
  graph::latency_class cls = graph::latency_class::srt;
  sched_ns release = 0;              ///< when it became ready
  std::optional<sched_ns> deadline;  ///< HRT: when it must be finished
};

struct sched_options {
  int workers = 2;
  int hrt_workers = 1;                ///< of `workers`, reserved for HRT steps (0: HRT shares every worker, first)
  sched_ns dt_aging = 1'000'000'000;  ///< a DT step waiting this long is served as SRT
};

class scheduler {
 public:
  explicit scheduler(sched_options options);

  void submit(const sched_item& item);
  /// The step worker `worker` (0-based; the first `hrt_workers` are reserved) should run now.
  [[nodiscard]] std::optional<sched_item> next(int worker, sched_ns now);
  [[nodiscard]] std::size_t ready() const;
  [[nodiscard]] const sched_options& options() const { return options_; }

 private:
  struct by_deadline {
    bool operator()(const sched_item& a, const sched_item& b) const {
      return *a.deadline != *b.deadline ? *a.deadline > *b.deadline : a.id > b.id;
    }
  };
  sched_options options_;
  mutable std::mutex mutex_;
  std::priority_queue<sched_item, std::vector<sched_item>, by_deadline> hrt_;
  std::deque<sched_item> srt_;
  std::deque<sched_item> dt_;
};

/// Percentiles and misses of one latency class.
struct class_report {
  std::size_t steps = 0;
  std::size_t misses = 0;                                       ///< HRT steps finished after their deadline
  double onset_p50_ms = 0, onset_p95_ms = 0, onset_p99_ms = 0;  ///< ready → started
  double turn_p50_ms = 0, turn_p95_ms = 0, turn_p99_ms = 0;     ///< SRT: a turn's arrival → its last step's end
  double jitter_p95_pct = 0;                                    ///< HRT: start delay as a share of the period, p95
  [[nodiscard]] std::string to_string(const char* name) const;
};

/// A workload of simulated steps of known cost, for the scheduling experiment.
struct sched_workload {
  int hrt_agents = 4;                ///< periodic HRT agents
  sched_ns hrt_period = 10'000'000;  ///< = their deadline
  sched_ns hrt_cost = 2'000'000;
  int srt_turns = 200;                     ///< turns arriving at random
  sched_ns srt_interarrival = 50'000'000;  ///< mean
  int srt_steps_per_turn = 3;
  sched_ns srt_step_cost = 5'000'000;
  sched_ns dt_step_cost = 20'000'000;  ///< DT work is a backlog that never empties: it saturates
  sched_ns duration = 10'000'000'000;  ///< how long the experiment lasts
  std::uint64_t seed = 20261128;
};

struct sched_report {
  class_report hrt, srt, dt;
  double busy_pct = 0;                  ///< of all workers' time
  std::vector<double> worker_busy_pct;  ///< each worker's (the reserved ones first)
};

/// Runs `workload` under the scheduler on a virtual clock: no real time passes, so the outcome is
/// exact and repeatable (the HRT guarantee is checked this way). With `wall_clock`, the same
/// workload runs on real threads (one per worker) that spin for each step's cost: the machine's
/// noise shows in the outcome.
[[nodiscard]] sched_report simulate_schedule(const sched_workload& workload, const sched_options& options,
                                             bool wall_clock = false);

}  // namespace choir::kernel
