// CAF 0.17 half of the side-by-side actor benchmark: the same three shapes as the ChoirOS half, registered in the
// same executable so that both run on the same machine in the same process.
//   CHOIR_CAF_POLICY=stealing|sharing <bench binary> --benchmark_filter=BM_caf_ --benchmark_repetitions=5
// Each benchmark owns one actor system with 2 scheduler threads, started before the timed loop; every iteration runs
// the whole shape once and waits for its last actor to signal completion through a std::promise.
#include <benchmark/benchmark.h>

#include <caf/all.hpp>

#include <malloc.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/bench_scale.hpp"

namespace {

/// Fulfilled once by the actor that sees the end of an iteration; the benchmark thread waits on its future.
using completion = std::shared_ptr<std::promise<void>>;

/// The scheduler policy named by CHOIR_CAF_POLICY: "stealing" (CAF's default, also when unset) or "sharing".
/// Returns nothing for any other value.
std::optional<std::string_view> scheduler_policy() {
  const char* text = std::getenv("CHOIR_CAF_POLICY");
  const std::string_view name = text ? text : "stealing";
  if (name == "stealing" || name == "sharing") return name;
  return std::nullopt;
}

/// Makes the configuration every benchmark uses: 2 scheduler threads with the given policy.
std::unique_ptr<caf::actor_system_config> make_config(std::string_view policy) {
  auto cfg = std::make_unique<caf::actor_system_config>();
  cfg->set("scheduler.max-threads", 2);
  cfg->set("scheduler.policy", policy == "sharing" ? caf::atom("sharing") : caf::atom("stealing"));
  return cfg;
}

/// An actor system together with the configuration it refers to, which must outlive it.
struct bench_system {
  std::unique_ptr<caf::actor_system_config> config;
  std::unique_ptr<caf::actor_system> system;
};

/// Starts an actor system for one benchmark and labels the benchmark with its policy, or marks the benchmark as
/// skipped and returns nothing when CHOIR_CAF_POLICY is not understood. Destroying the result waits for every actor.

std::optional<bench_system> start_system(benchmark::State& state) {
  const auto policy = scheduler_policy();
  if (!policy) {
    state.SkipWithError("CHOIR_CAF_POLICY must be \"stealing\" or \"sharing\"");
    return std::nullopt;
  }
  state.SetLabel("policy=" + std::string(*policy));
  bench_system result;
  result.config = make_config(*policy);
  result.system = std::make_unique<caf::actor_system>(*result.config);
  return result;
}

// -- ping-pong: one request in flight between two actors ---------------------------------------------------------

/// Answers every request with its own payload.
caf::behavior ponger(caf::event_based_actor*) {
  return {[](int x) { return x; }};
}

struct pinger_state {
  caf::actor pong;
  std::int64_t remaining = 0;
  completion done;
};

using pinger_actor = caf::stateful_actor<pinger_state>;

/// Sends the next request; its reply either sends another or, after the last round trip, stops both actors and
/// fulfils the completion.
void ping(pinger_actor* self) {
  self->request(self->state.pong, caf::infinite, 1).then([self](int) {
    if (--self->state.remaining > 0) {
      ping(self);
      return;
    }
    self->send_exit(self->state.pong, caf::exit_reason::user_shutdown);
    self->state.done->set_value();
    self->quit();
  });
}

/// Runs `round_trips` request/reply round trips against `pong`, strictly one at a time.
caf::behavior pinger(pinger_actor* self, caf::actor pong, std::int64_t round_trips, completion done) {
  self->state.pong = std::move(pong);
  self->state.remaining = round_trips;
  self->state.done = std::move(done);
  ping(self);
  // The pending response keeps the actor alive; it needs no behavior of its own.
  return {};
}

void BM_caf_ping_pong(benchmark::State& state) {
  auto sys = start_system(state);
  if (!sys) return;
  const std::int64_t round_trips = choir::bench::scaled(1'000'000);
  for (auto _ : state) {
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    auto pong = sys->system->spawn(ponger);
    sys->system->spawn(pinger, pong, round_trips, std::move(done));
    finished.wait();
  }
  state.counters["round_trips_per_s"] =
      benchmark::Counter(static_cast<double>(round_trips), benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(state.iterations() * round_trips);
}

// -- one-way: a sender floods a receiver with plain messages -----------------------------------------------------

struct receiver_state {
  std::int64_t received = 0;
};

using receiver_actor = caf::stateful_actor<receiver_state>;

/// Counts incoming messages and, at `expected`, fulfils the completion and stops.
caf::behavior receiver(receiver_actor* self, std::int64_t expected, completion done) {
  return {[self, expected, done](int) {
    if (++self->state.received < expected) return;
    done->set_value();
    self->quit();
  }};
}

/// Sends `count` one-way messages to `target` in one activation, then stops (it has no behavior).
caf::behavior sender(caf::event_based_actor* self, caf::actor target, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) self->send(target, 1);
  return {};
}

void BM_caf_one_way(benchmark::State& state) {
  auto sys = start_system(state);
  if (!sys) return;
  const std::int64_t messages = choir::bench::scaled(10'000'000);
  for (auto _ : state) {
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    auto target = sys->system->spawn(receiver, messages, std::move(done));
    sys->system->spawn(sender, std::move(target), messages);
    finished.wait();
  }
  state.counters["messages_per_s"] =
      benchmark::Counter(static_cast<double>(messages), benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(state.iterations() * messages);
}

// -- fan-out: many short-lived actors each answer one collector --------------------------------------------------

struct collector_state {
  std::int64_t replies = 0;
};

using collector_actor = caf::stateful_actor<collector_state>;

/// Counts replies and, at `expected`, fulfils the completion and stops.
caf::behavior collector(collector_actor* self, std::int64_t expected, completion done) {
  return {[self, expected, done](int) {
    if (++self->state.replies < expected) return;
    done->set_value();
    self->quit();
  }};
}

/// Forwards every message it gets to `sink` as a plain one-way message, then waits idle for more.
caf::behavior fan_out_worker(caf::event_based_actor* self, caf::actor sink) {
  return {[self, sink](int x) { self->send(sink, x); }};
}

void BM_caf_fan_out_100k(benchmark::State& state) {
  auto sys = start_system(state);
  if (!sys) return;
  const std::int64_t actors = choir::bench::scaled(100'000);
  std::vector<caf::actor> workers;
  double bytes_per_actor_sum = 0;
  for (auto _ : state) {
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    workers.reserve(static_cast<std::size_t>(actors));
    // Hand the memory freed by earlier iterations and benchmarks back to the kernel, so that the new actors have to
    // fault in fresh pages and show up in the resident set instead of silently reusing free heap. This is measuring
    // apparatus, not CAF's work (after the one-way benchmark it takes most of a second), so it is not timed.
    state.PauseTiming();
    malloc_trim(0);
    const std::int64_t rss_before = choir::bench::resident_bytes();
    state.ResumeTiming();
    auto sink = sys->system->spawn(collector, actors, std::move(done));
    for (std::int64_t i = 0; i < actors; ++i) {
      workers.push_back(sys->system->spawn(fan_out_worker, sink));
      caf::anon_send(workers.back(), 1);
    }
    finished.wait();
    const std::int64_t rss_after = choir::bench::resident_bytes();
    bytes_per_actor_sum += static_cast<double>(rss_after - rss_before) / static_cast<double>(actors);
    // Dropping the last handles destroys the idle workers on this thread before the next iteration starts; this
    // teardown is CAF's work and stays in the timed region.
    sink = nullptr;
    workers.clear();
  }
  state.counters["actors_per_s"] =
      benchmark::Counter(static_cast<double>(actors), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes_per_idle_actor"] = benchmark::Counter(bytes_per_actor_sum, benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(state.iterations() * actors);
}

}  // namespace

BENCHMARK(BM_caf_ping_pong)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_caf_one_way)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_caf_fan_out_100k)->UseRealTime()->Unit(benchmark::kMillisecond);
