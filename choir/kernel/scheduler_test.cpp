#include "choir/kernel/scheduler.hpp"

#include <gtest/gtest.h>

namespace choir::kernel {
namespace {

using graph::latency_class;

TEST(Scheduler, HrtRunsEarliestDeadlineFirstAndAloneOnItsReservedWorkers) {
  scheduler s({.workers = 2, .hrt_workers = 1});
  s.submit({1, latency_class::srt, 0, {}});
  s.submit({2, latency_class::hrt, 0, 50});
  s.submit({3, latency_class::hrt, 0, 20});
  s.submit({4, latency_class::dt, 0, {}});
  EXPECT_EQ(s.next(0, 0)->id, 3u);         // the earlier deadline
  EXPECT_EQ(s.next(1, 0)->id, 2u);         // HRT comes first on every worker
  EXPECT_FALSE(s.next(0, 0).has_value());  // the reserved worker runs nothing else
  EXPECT_EQ(s.next(1, 0)->id, 1u);         // SRT before DT
  EXPECT_EQ(s.next(1, 0)->id, 4u);
  EXPECT_FALSE(s.next(1, 0).has_value());
  EXPECT_EQ(s.ready(), 0u);
}

TEST(Scheduler, ADtStepThatWaitedLongEnoughIsServedAsSrt) {
  scheduler s({.workers = 1, .hrt_workers = 0, .dt_aging = 100});
  s.submit({1, latency_class::dt, 0, {}});
  s.submit({2, latency_class::srt, 10, {}});
  s.submit({3, latency_class::srt, 20, {}});
  EXPECT_EQ(s.next(0, 50)->id, 2u);   // not aged yet: SRT first
  EXPECT_EQ(s.next(0, 100)->id, 1u);  // aged, and older than the waiting SRT step
  EXPECT_EQ(s.next(0, 100)->id, 3u);
}

TEST(Scheduler, AnAdmittedHrtSetMeetsEveryDeadlineWhileDtSaturatesTheWorkers) {
  // On a virtual clock: exact and repeatable. 4 HRT agents × 2 ms every 10 ms (0.8 of the one
  // reserved core), SRT turns of 3 × 5 ms steps arriving every 50 ms on average, and a DT
  // backlog of 20 ms steps that never empties.
  const sched_workload w;
  const auto r = simulate_schedule(w, {.workers = 2, .hrt_workers = 1});
  EXPECT_EQ(r.hrt.misses, 0u) << r.hrt.to_string("HRT");
  EXPECT_EQ(r.hrt.steps, 4u * 1000u);
  EXPECT_LE(r.srt.onset_p95_ms, 250.0) << r.srt.to_string("SRT");
  EXPECT_GT(r.srt.steps, 400u);
  EXPECT_GT(r.dt.steps, 100u) << r.dt.to_string("DT");
  // DT takes all that is left on the general worker; the reserved one idles once HRT work is done.
  ASSERT_EQ(r.worker_busy_pct.size(), 2u);
  EXPECT_GT(r.worker_busy_pct[1], 99.0);
  EXPECT_LT(r.worker_busy_pct[0], 80.0);
  // Repeatable to the step.
  const auto again = simulate_schedule(w, {.workers = 2, .hrt_workers = 1});
  EXPECT_EQ(again.dt.steps, r.dt.steps);
  EXPECT_EQ(again.srt.onset_p95_ms, r.srt.onset_p95_ms);
}

TEST(Scheduler, AnOverloadedHrtSetMissesWhichIsWhyAdmissionRefusesIt) {
  sched_workload w;
  w.hrt_agents = 7;  // 1.4 cores of HRT work on one reserved core, more than admission allows
  w.duration = 1'000'000'000;
  const auto r = simulate_schedule(w, {.workers = 2, .hrt_workers = 1});
  EXPECT_GT(r.hrt.misses, 0u) << r.hrt.to_string("HRT");
}

TEST(Scheduler, DtNeverStarvesUnderAFloodOfSrt) {
  sched_workload w;
  w.hrt_agents = 0;
  w.srt_turns = 10'000;
  w.srt_interarrival = 4'000'000;  // more SRT work than the workers can do
  w.duration = 5'000'000'000;
  const auto r = simulate_schedule(w, {.workers = 2, .hrt_workers = 0, .dt_aging = 200'000'000});
  // DT still moves: an aged DT step waits its turn among the SRT steps, no longer.
  EXPECT_GT(r.dt.steps, 10u) << r.dt.to_string("DT");
  EXPECT_LE(r.dt.onset_p99_ms, r.srt.onset_p99_ms + 200.0) << r.dt.to_string("DT") << "\n" << r.srt.to_string("SRT");
}

}  // namespace
}  // namespace choir::kernel
