// The latency-class scheduling experiment (docs/scheduling.md): simulated steps of known cost —
// 4 HRT agents each taking 2 ms every 10 ms (their deadline), SRT turns of 3 × 5 ms steps arriving
// every 50 ms on average, and a DT backlog of 20 ms steps that never empties — on 2 workers, one
// reserved for HRT work. On a virtual clock the outcome is exact: zero HRT misses while DT
// saturates the general worker. On the wall clock of this shared 2-core machine, threads spin
// for each step's cost and the machine's noise shows.
// Also what the runtime's step dispatcher adds to each step of a conversation.
//   build/release/bench/sched_bench
#include <benchmark/benchmark.h>

#include "bench/bench_scale.hpp"
#include "choir/kernel/scheduler.hpp"
#include "choir/runtime/actor.hpp"  // detail::detached_coroutine
#include "choir/runtime/step_dispatch.hpp"

namespace {

using namespace choir;

void report(benchmark::State& state, const kernel::sched_report& r) {
  state.counters["hrt_steps"] = static_cast<double>(r.hrt.steps);
  state.counters["hrt_misses"] = static_cast<double>(r.hrt.misses);
  state.counters["hrt_miss_pct"] =
      r.hrt.steps == 0 ? 0 : 100.0 * static_cast<double>(r.hrt.misses) / static_cast<double>(r.hrt.steps);
  state.counters["hrt_onset_p99_ms"] = r.hrt.onset_p99_ms;
  state.counters["hrt_jitter_p95_pct"] = r.hrt.jitter_p95_pct;
  state.counters["srt_onset_p95_ms"] = r.srt.onset_p95_ms;
  state.counters["srt_turn_p95_ms"] = r.srt.turn_p95_ms;
  state.counters["dt_steps"] = static_cast<double>(r.dt.steps);
  state.counters["busy_pct"] = r.busy_pct;
}

void run(benchmark::State& state, bool wall) {
  kernel::sched_workload w;
  w.duration = bench::scaled(10'000'000'000);
  kernel::sched_report r;
  for (auto _ : state) r = kernel::simulate_schedule(w, {.workers = 2, .hrt_workers = 1}, wall);
  report(state, r);
  if (wall) {
    state.SetLabel(r.hrt.to_string("HRT") + " | " + r.srt.to_string("SRT"));
  }
}

void BM_schedule_virtual(benchmark::State& state) { run(state, false); }
void BM_schedule_wall(benchmark::State& state) { run(state, true); }

/// A step's way through the dispatcher when a worker is free: acquire (a coroutine awaiting it),
/// then release. What each conversation step pays for latency-class order.
void BM_step_dispatch_free_worker(benchmark::State& state) {
  runtime::step_dispatcher d({.workers = 2});
  for (auto _ : state) {
    std::uint64_t ticket = 0;
    [](runtime::step_dispatcher& dd, std::uint64_t& out) -> runtime::detail::detached_coroutine {
      auto slot = dd.acquire(graph::latency_class::srt, std::nullopt, 1);
      out = co_await slot;
    }(d, ticket);
    d.release(ticket);
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_schedule_virtual)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_schedule_wall)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_step_dispatch_free_worker);
