#include "choir/kernel/scheduler.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <unordered_map>

namespace choir::kernel {

scheduler::scheduler(sched_options options) : options_(options) {}

void scheduler::submit(const sched_item& item) {
  std::lock_guard lock(mutex_);
  switch (item.cls) {
    case graph::latency_class::hrt: {
      sched_item copy = item;
      if (!copy.deadline) copy.deadline = copy.release;  // no deadline: as urgent as it gets
      hrt_.push(copy);
      break;
    }
    case graph::latency_class::srt: srt_.push_back(item); break;
    case graph::latency_class::dt: dt_.push_back(item); break;
  }
}

std::optional<sched_item> scheduler::next(int worker, sched_ns now) {
  std::lock_guard lock(mutex_);
  auto take = [](auto& queue) {
    sched_item out = queue.front();
    queue.pop_front();
    return out;
  };
  // HRT first everywhere; only HRT on the reserved workers.
  if (!hrt_.empty()) {
    sched_item out = hrt_.top();
    hrt_.pop();
    return out;
  }
  if (worker < options_.hrt_workers) return std::nullopt;
  const bool dt_aged = !dt_.empty() && now - dt_.front().release >= options_.dt_aging;
  if (dt_aged && (srt_.empty() || dt_.front().release <= srt_.front().release)) return take(dt_);
  if (!srt_.empty()) return take(srt_);
  if (!dt_.empty()) return take(dt_);
  return std::nullopt;
}

std::size_t scheduler::ready() const {
  std::lock_guard lock(mutex_);
  return hrt_.size() + srt_.size() + dt_.size();
}

std::string class_report::to_string(const char* name) const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s: %zu steps, %zu misses; onset p50/p95/p99 %.2f/%.2f/%.2f ms; turn p50/p95/p99 %.2f/%.2f/%.2f ms; "
                "jitter p95 %.1f%%",
                name, steps, misses, onset_p50_ms, onset_p95_ms, onset_p99_ms, turn_p50_ms, turn_p95_ms, turn_p99_ms,
                jitter_p95_pct);
  return buf;
}

namespace {

/// A release the workload makes at a given time.
struct release_event {
  sched_ns at = 0;
  graph::latency_class cls = graph::latency_class::hrt;
  int turn = -1;  ///< SRT: which turn (its first step)
};

/// What the experiment remembers of each step it submitted.
struct step_info {
  graph::latency_class cls;
  sched_ns release;
  std::optional<sched_ns> deadline;
  int turn = -1;
  int step = 0;
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

/// The experiment's state, shared by its workers (under `mutex` in wall-clock mode).
struct experiment {
  const sched_workload& w;
  scheduler sched;
  std::vector<release_event> events;
  std::size_t next_event = 0;
  std::unordered_map<std::uint64_t, step_info> steps;
  std::vector<sched_ns> turn_arrival;
  std::uint64_t next_id = 1;
  std::vector<double> onset[3], turn_ms, jitter;
  std::size_t count[3] = {0, 0, 0};
  std::size_t misses = 0;
  sched_ns busy = 0;
  std::vector<sched_ns> worker_busy;

  experiment(const sched_workload& workload, const sched_options& options)
      : w(workload), sched(options), worker_busy(static_cast<std::size_t>(options.workers), 0) {
    for (int a = 0; a < w.hrt_agents; ++a) {
      for (sched_ns t = 0; t < w.duration; t += w.hrt_period) events.push_back({t, graph::latency_class::hrt});
    }
    std::mt19937_64 rng(w.seed);
    std::exponential_distribution<double> gap(1.0 / static_cast<double>(w.srt_interarrival));
    sched_ns t = 0;
    for (int i = 0; i < w.srt_turns; ++i) {
      t += static_cast<sched_ns>(gap(rng));
      if (t >= w.duration) break;
      turn_arrival.push_back(t);
      events.push_back({t, graph::latency_class::srt, static_cast<int>(turn_arrival.size()) - 1});
    }
    std::stable_sort(events.begin(), events.end(),
                     [](const release_event& a, const release_event& b) { return a.at < b.at; });
    // DT work is a backlog: two steps per worker ready from the start, one more as each starts.
    for (int i = 0; i < 2 * options.workers; ++i) submit(graph::latency_class::dt, 0);
  }

  void submit(graph::latency_class cls, sched_ns release, int turn = -1, int step = 0) {
    step_info info{cls, release, std::nullopt, turn, step};
    if (cls == graph::latency_class::hrt) info.deadline = release + w.hrt_period;
    const std::uint64_t id = next_id++;
    steps.emplace(id, info);
    sched.submit({id, cls, release, info.deadline});
  }

  /// Submits what is released at or before `now`.
  void release_due(sched_ns now) {
    while (next_event < events.size() && events[next_event].at <= now) {
      const auto& e = events[next_event++];
      submit(e.cls, e.at, e.turn, 0);
    }
  }

  [[nodiscard]] sched_ns cost(graph::latency_class cls) const {
    switch (cls) {
      case graph::latency_class::hrt: return w.hrt_cost;
      case graph::latency_class::srt: return w.srt_step_cost;
      case graph::latency_class::dt: return w.dt_step_cost;
    }
    return 0;
  }

  /// A step starts at `now`; returns when it ends.
  sched_ns start(const sched_item& item, sched_ns now) {
    const auto& info = steps.at(item.id);
    const auto c = static_cast<int>(info.cls);
    onset[c].push_back(static_cast<double>(now - info.release) / 1e6);
    if (info.cls == graph::latency_class::hrt) {
      jitter.push_back(100.0 * static_cast<double>(now - info.release) / static_cast<double>(w.hrt_period));
    }
    if (info.cls == graph::latency_class::dt) submit(graph::latency_class::dt, now);  // the backlog never empties
    return now + cost(info.cls);
  }

  /// A step ends at `now`.
  void finish(std::uint64_t id, sched_ns now, sched_ns took, int worker) {
    const step_info info = steps.at(id);
    steps.erase(id);
    busy += took;
    worker_busy[static_cast<std::size_t>(worker)] += took;
    ++count[static_cast<int>(info.cls)];
    if (info.deadline && now > *info.deadline) ++misses;
    if (info.cls == graph::latency_class::srt) {
      if (info.step + 1 < w.srt_steps_per_turn) {
        submit(graph::latency_class::srt, now, info.turn, info.step + 1);
      } else {
        turn_ms.push_back(static_cast<double>(now - turn_arrival[static_cast<std::size_t>(info.turn)]) / 1e6);
      }
    }
  }

  sched_report report(int workers) {
    sched_report r;
    class_report* by_class[3] = {&r.hrt, &r.srt, &r.dt};
    for (int c = 0; c < 3; ++c) {
      class_report& out = *by_class[c];
      out.steps = count[c];
      out.onset_p50_ms = percentile(onset[c], 0.50);
      out.onset_p95_ms = percentile(onset[c], 0.95);
      out.onset_p99_ms = percentile(onset[c], 0.99);
    }
    r.hrt.misses = misses;
    r.hrt.jitter_p95_pct = percentile(jitter, 0.95);
    r.srt.turn_p50_ms = percentile(turn_ms, 0.50);
    r.srt.turn_p95_ms = percentile(turn_ms, 0.95);
    r.srt.turn_p99_ms = percentile(turn_ms, 0.99);
    r.busy_pct = 100.0 * static_cast<double>(busy) / (static_cast<double>(w.duration) * workers);
    for (const auto b : worker_busy)
      r.worker_busy_pct.push_back(100.0 * static_cast<double>(b) / static_cast<double>(w.duration));
    return r;
  }
};

sched_report run_virtual(const sched_workload& w, const sched_options& options) {
  experiment x(w, options);
  struct running {
    std::uint64_t id = 0;
    sched_ns started = 0;
    sched_ns ends = 0;
    bool busy = false;
  };
  std::vector<running> workers(static_cast<std::size_t>(options.workers));
  sched_ns now = 0;
  while (now < w.duration) {
    // Steps that end now, then releases due now, then every free worker takes its next step.
    for (std::size_t i = 0; i < workers.size(); ++i) {
      auto& r = workers[i];
      if (r.busy && r.ends <= now) {
        x.finish(r.id, r.ends, r.ends - r.started, static_cast<int>(i));
        r.busy = false;
      }
    }
    x.release_due(now);
    for (std::size_t i = 0; i < workers.size(); ++i) {
      if (workers[i].busy) continue;
      if (auto item = x.sched.next(static_cast<int>(i), now)) {
        workers[i] = {item->id, now, x.start(*item, now), true};
      }
    }
    sched_ns next = w.duration;
    for (const auto& r : workers) {
      if (r.busy) next = std::min(next, r.ends);
    }
    if (x.next_event < x.events.size()) next = std::min(next, x.events[x.next_event].at);
    if (next <= now) next = now + 1;
    now = next;
  }
  return x.report(options.workers);
}

sched_report run_wall(const sched_workload& w, const sched_options& options) {
  experiment x(w, options);
  std::mutex mutex;
  const auto origin = std::chrono::steady_clock::now();
  auto clock_now = [&] {
    return static_cast<sched_ns>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - origin).count());
  };
  auto work = [&](int worker) {
    for (;;) {
      std::optional<sched_item> item;
      sched_ns started = 0;
      sched_ns ends = 0;
      sched_ns wake = 0;
      {
        std::lock_guard lock(mutex);
        const sched_ns now = clock_now();
        if (now >= w.duration) return;
        x.release_due(now);
        item = x.sched.next(worker, now);
        if (item) {
          started = now;
          ends = x.start(*item, now);
        } else {
          wake = x.next_event < x.events.size() ? x.events[x.next_event].at : now + 200'000;
        }
      }
      if (!item) {
        // Nothing ready: sleep until the next release, but wake early and yield through the last
        // half millisecond (a sleep overshoots by tens of microseconds here).
        const sched_ns wait = wake - clock_now();
        if (wait > 600'000) {
          std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<sched_ns>(wait - 500'000, 200'000)));
        } else {
          std::this_thread::yield();
        }
        continue;
      }
      const sched_ns cost = ends - started;
      while (clock_now() - started < cost) {
        // The step's work: spin, as a CPU-bound step would.
      }
      std::lock_guard lock(mutex);
      const sched_ns done = clock_now();
      x.finish(item->id, done, done - started, worker);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < options.workers; ++i) threads.emplace_back(work, i);
  for (auto& t : threads) t.join();
  return x.report(options.workers);
}

}  // namespace

sched_report simulate_schedule(const sched_workload& workload, const sched_options& options, bool wall_clock) {
  return wall_clock ? run_wall(workload, options) : run_virtual(workload, options);
}

}  // namespace choir::kernel
