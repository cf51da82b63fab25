#include "choir/runtime/step_dispatch.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "choir/runtime/actor.hpp"  // detail::detached_coroutine

namespace choir::runtime {
namespace {

using graph::latency_class;

/// A context that keeps the coroutines handed back to it until the test runs them.
class manual_context final : public resume_context {
 public:
  void resume(std::coroutine_handle<> h) override { ready_.push_back(h); }
  /// Runs what was handed back; returns how many.
  std::size_t run() {
    std::size_t n = 0;
    while (!ready_.empty()) {
      auto h = ready_.front();
      ready_.pop_front();
      h.resume();
      ++n;
    }
    return n;
  }

 private:
  std::deque<std::coroutine_handle<>> ready_;
};

struct journal {
  std::vector<std::string> started;  ///< names, in the order their steps got a worker
  std::map<std::string, std::uint64_t> tickets;
};

/// A step: waits for a worker, then notes that it started (it holds the worker until released).
detail::detached_coroutine step(step_dispatcher& d, latency_class cls, std::optional<std::int64_t> deadline_ms,
                                std::uint64_t owner, std::string name, journal& j) {
  auto slot = d.acquire(cls, deadline_ms, owner);
  const std::uint64_t ticket = co_await slot;
  j.started.push_back(name);
  j.tickets[name] = ticket;
}

class StepDispatch : public ::testing::Test {
 protected:
  void start(step_dispatcher& d, latency_class cls, const std::string& name, std::optional<std::int64_t> deadline = {},
             std::uint64_t owner = 1) {
    resume_context_scope inside(&ctx_);
    step(d, cls, deadline, owner, name, j_);
  }
  void release(step_dispatcher& d, const std::string& name) {
    ASSERT_TRUE(j_.tickets.contains(name)) << name << " never started";
    d.release(j_.tickets.at(name));
    ctx_.run();
  }

  manual_context ctx_;
  journal j_;
};

TEST_F(StepDispatch, AFreeWorkerStartsAStepAtOnce) {
  step_dispatcher d({.workers = 2});
  start(d, latency_class::dt, "a");
  start(d, latency_class::srt, "b");
  EXPECT_EQ(j_.started, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(d.counts()[2].running, 1U);
  EXPECT_EQ(d.counts()[1].running, 1U);
  release(d, "a");
  release(d, "b");
  EXPECT_EQ(d.counts()[1].steps, 1U);
  EXPECT_EQ(d.counts()[2].steps, 1U);
  EXPECT_EQ(d.counts()[1].running, 0U);
}

TEST_F(StepDispatch, WhileEveryWorkerIsBusyHrtGoesFirstThenSrtThenDt) {
  step_dispatcher d({.workers = 1});
  start(d, latency_class::dt, "running");
  start(d, latency_class::dt, "dt");
  start(d, latency_class::srt, "srt-1");
  start(d, latency_class::hrt, "hrt-late", 50);
  start(d, latency_class::srt, "srt-2");
  start(d, latency_class::hrt, "hrt-soon", 10);
  EXPECT_EQ(j_.started, (std::vector<std::string>{"running"}));
  EXPECT_EQ(d.counts()[0].waiting, 2U);
  EXPECT_EQ(d.counts()[1].waiting, 2U);
  EXPECT_EQ(d.counts()[2].waiting, 1U);
  for (const char* name : {"running", "hrt-soon", "hrt-late", "srt-1", "srt-2", "dt"}) release(d, name);
  EXPECT_EQ(j_.started, (std::vector<std::string>{"running", "hrt-soon", "hrt-late", "srt-1", "srt-2", "dt"}));
  const auto counts = d.counts();
  EXPECT_EQ(counts[0].steps + counts[1].steps + counts[2].steps, 6U);
  EXPECT_EQ(counts[0].waiting + counts[1].waiting + counts[2].waiting, 0U);
}

TEST_F(StepDispatch, AWaitingDtStepAgesIntoSrtSoItNeverStarves) {
  step_dispatcher d({.workers = 1, .dt_aging_ms = 0});  // every DT step has waited long enough
  start(d, latency_class::srt, "running");
  start(d, latency_class::dt, "dt");
  start(d, latency_class::srt, "srt");
  release(d, "running");
  release(d, "dt");
  release(d, "srt");
  EXPECT_EQ(j_.started, (std::vector<std::string>{"running", "dt", "srt"}));
}

TEST_F(StepDispatch, AReservedWorkerRunsOnlyHrtSteps) {
  step_dispatcher d({.workers = 2, .hrt_workers = 1});
  start(d, latency_class::srt, "srt-1");
  start(d, latency_class::srt, "srt-2");  // the other worker is reserved: it waits
  EXPECT_EQ(j_.started, (std::vector<std::string>{"srt-1"}));
  start(d, latency_class::hrt, "hrt", 10);  // takes the reserved worker
  EXPECT_EQ(j_.started, (std::vector<std::string>{"srt-1", "hrt"}));
  release(d, "hrt");
  EXPECT_EQ(j_.started.size(), 2U) << "the reserved worker stays free rather than take SRT work";
  release(d, "srt-1");
  EXPECT_EQ(j_.started, (std::vector<std::string>{"srt-1", "hrt", "srt-2"}));
  release(d, "srt-2");
}

TEST_F(StepDispatch, AnHrtStepDoneAfterItsDeadlineIsAMiss) {
  step_dispatcher d({.workers = 1});
  start(d, latency_class::hrt, "late", 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  release(d, "late");
  start(d, latency_class::hrt, "in-time", 60'000);
  release(d, "in-time");
  EXPECT_EQ(d.counts()[0].steps, 2U);
  EXPECT_EQ(d.counts()[0].misses, 1U);
  const std::string metrics = d.prometheus();
  EXPECT_NE(metrics.find("choir_steps_total{class=\"hrt\"} 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("choir_step_deadline_misses_total{class=\"hrt\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("# TYPE choir_step_onset_seconds histogram\n"), std::string::npos);
  EXPECT_NE(metrics.find("choir_step_onset_seconds_count{class=\"hrt\"} 2\n"), std::string::npos);
  EXPECT_NE(metrics.find("choir_step_seconds_bucket{class=\"hrt\",le=\"+Inf\"} 2\n"), std::string::npos);
  // The late step ran at least 5 ms: it is not in the 2.5 ms bucket (the other one is), and is in the 10 s one.
  EXPECT_NE(metrics.find("choir_step_seconds_bucket{class=\"hrt\",le=\"0.0025\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("choir_step_seconds_bucket{class=\"hrt\",le=\"10\"} 2\n"), std::string::npos);
  // Both HRT steps' start delays (as a share of their deadlines) are in the jitter histogram. How
  // large a share depends on the machine (the first one's deadline is 1 ms), so only the count is
  // checked here.
  EXPECT_NE(metrics.find("choir_step_jitter_ratio_bucket{class=\"hrt\",le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(metrics.find("choir_step_jitter_ratio_count{class=\"hrt\"} 2\n"), std::string::npos);
}

TEST_F(StepDispatch, AnOwnerGoingAwayGivesBackItsWorkerAndItsWaitingStepsNeverStart) {
  step_dispatcher d({.workers = 1});
  const std::uint64_t gone = d.new_owner();
  const std::uint64_t staying = d.new_owner();
  start(d, latency_class::srt, "gone-running", {}, gone);
  start(d, latency_class::hrt, "gone-waiting", 10, gone);
  start(d, latency_class::srt, "staying", {}, staying);
  EXPECT_EQ(j_.started, (std::vector<std::string>{"gone-running"}));
  d.cancel_owner(gone);
  // Its waiting coroutine is handed back to wind down, and the worker goes to the other owner.
  ctx_.run();
  EXPECT_EQ(j_.started, (std::vector<std::string>{"gone-running", "gone-waiting", "staying"}));
  EXPECT_EQ(d.counts()[1].running, 1U);
  EXPECT_EQ(d.counts()[0].waiting, 0U);
  EXPECT_EQ(d.counts()[0].running, 0U);
  release(d, "gone-waiting");  // nothing: it never held a worker
  release(d, "gone-running");  // nothing: given back already
  EXPECT_EQ(d.counts()[1].running, 1U);
  release(d, "staying");
  EXPECT_EQ(d.counts()[1].running, 0U);
  EXPECT_EQ(d.counts()[1].steps, 1U);
  EXPECT_EQ(d.counts()[0].steps, 0U);
  // Turns are recorded by class, against the contract's service level.
  d.record_turn(latency_class::srt, 0.2);
  d.record_turn(latency_class::srt, 0.3, 250);
  d.record_turn(latency_class::srt, 0.1, 250);
  d.record_onset(latency_class::dt, 2.0, 1000);
  EXPECT_EQ(d.counts()[1].turn_breaches, 1U);
  EXPECT_EQ(d.counts()[2].onset_breaches, 1U);
  const std::string metrics = d.prometheus();
  EXPECT_NE(metrics.find("choir_turn_seconds_bucket{class=\"srt\",le=\"0.25\"} 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("choir_turn_slo_breaches_total{class=\"srt\",slo=\"turn\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("choir_turn_slo_breaches_total{class=\"dt\",slo=\"onset\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("choir_turn_onset_seconds_count{class=\"dt\"} 1\n"), std::string::npos);
}

TEST_F(StepDispatch, StepsFromManyThreadsAllRunAndNeverMoreAtOnceThanTheWorkers) {
  step_dispatcher d({.workers = 2});
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const auto cls = static_cast<latency_class>((t + i) % 3);
        std::promise<std::uint64_t> granted;
        auto ticket = granted.get_future();
        [](step_dispatcher& dd, latency_class c, std::promise<std::uint64_t>& p) -> detail::detached_coroutine {
          auto slot = dd.acquire(c, 1000, 7);
          p.set_value(co_await slot);
        }(d, cls, granted);
        const std::uint64_t id = ticket.get();  // resumed on whichever thread released a worker
        const int now = ++running;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::yield();
        --running;
        d.release(id);
        ++done;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(done.load(), 800);
  EXPECT_LE(most.load(), 2);
  const auto counts = d.counts();
  EXPECT_EQ(counts[0].steps + counts[1].steps + counts[2].steps, 800U);
  EXPECT_EQ(counts[0].running + counts[1].running + counts[2].running, 0U);
  EXPECT_EQ(counts[0].waiting + counts[1].waiting + counts[2].waiting, 0U);
}

}  // namespace
}  // namespace choir::runtime
