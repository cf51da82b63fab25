// ChoirOS half of the side-by-side actor benchmark (the CAF half, same shapes, is actor_bench_caf.cpp in the same
// executable). Production defaults: bounded mailboxes (4,096), supervision on (3 restarts in 10 s), 2 threads.
//   build/release/bench/actor_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Pairs: BM_choir_<shape> / BM_caf_<shape> for ping_pong (round trips/s), one_way (messages/s, 10M) and fan_out_100k
// (spawn 100k actors, message each, collect 100k replies; bytes per idle actor), plus the round trip of an ask from a
// plain thread (median µs).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <vector>

#include <filesystem>
#include <string>
#include <thread>

#include "bench/bench_scale.hpp"
#include "choir/graph/loader.hpp"
#include "choir/runtime/actor.hpp"
#include "choir/runtime/conversation.hpp"
#include "choir/store/synchronized.hpp"

namespace {

using namespace choir;
using namespace choir::runtime;

system_options bench_system() { return {.threads = 2}; }

// -- ping-pong: one ask in flight between two actors -------------------------------------------------------------

struct ponger {
  static int echo(int x) { return x; }
};

struct pinger {
  actor_ref<ponger> pong;
  task<std::int64_t> run(std::int64_t round_trips) {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < round_trips; ++i) {
      auto answer = co_await pong.ask([](ponger&) { return ponger::echo(1); });
      if (!answer.ok()) co_return -1;
      sum += *answer;
    }
    co_return sum;
  }
};

void BM_choir_ping_pong(benchmark::State& state) {
  actor_system sys(bench_system());
  const std::int64_t round_trips = bench::scaled(1'000'000);
  for (auto _ : state) {
    auto pong = sys.spawn<ponger>({}).value();
    auto ping = sys.spawn<pinger>({}, pinger{pong}).value();
    auto done = ping.ask([round_trips](pinger& p) { return p.run(round_trips); }).get();
    if (!done.ok() || *done != round_trips) state.SkipWithError("ping-pong lost a reply");
    ping.kill();
    pong.kill();
  }
  state.counters["round_trips_per_s"] =
      benchmark::Counter(static_cast<double>(round_trips), benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(state.iterations() * round_trips);
}

// -- one-way: a sender floods a receiver; a full mailbox suspends the sender -------------------------------------

struct receiver {
  std::int64_t expected;
  std::shared_ptr<std::promise<void>> done;
  std::int64_t received = 0;
  void take(int /*x*/) {
    if (++received == expected) done->set_value();
  }
};

struct sender {
  actor_ref<receiver> target;
  task<void> flood(std::int64_t count) {
    for (std::int64_t i = 0; i < count; ++i) {
      auto sent = co_await target.send([](receiver& r) { r.take(1); }, {.full = when_full::wait});
      if (!sent.ok()) co_return;
    }
  }
};

void BM_choir_one_way(benchmark::State& state) {
  actor_system sys(bench_system());
  const std::int64_t messages = bench::scaled(10'000'000);
  for (auto _ : state) {
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    auto target = sys.spawn<receiver>({}, receiver{messages, done}).value();
    auto source = sys.spawn<sender>({}, sender{target}).value();
    (void)source.tell([messages](sender& s) { return s.flood(messages); });
    finished.wait();
    source.kill();
    target.kill();
  }
  state.counters["messages_per_s"] =
      benchmark::Counter(static_cast<double>(messages), benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(state.iterations() * messages);
}

// -- fan-out: spawn many actors, message each, each answers one collector ----------------------------------------

struct collector {
  std::int64_t expected;
  std::shared_ptr<std::promise<void>> done;
  std::int64_t replies = 0;
  void reply() {
    if (++replies == expected) done->set_value();
  }
};

struct worker {
  actor_ref<collector> sink;
  void poke() { (void)sink.tell(&collector::reply); }
};

void BM_choir_fan_out_100k(benchmark::State& state) {
  actor_system sys(bench_system());
  const std::int64_t actors = bench::scaled(100'000);
  std::vector<actor_ref<worker>> workers;
  double bytes_per_actor_sum = 0;
  for (auto _ : state) {
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    workers.reserve(static_cast<std::size_t>(actors));
    state.PauseTiming();  // measuring apparatus, as in the CAF half: return freed heap so new actors show in RSS
    malloc_trim(0);
    const std::int64_t rss_before = choir::bench::resident_bytes();
    state.ResumeTiming();
    auto sink = sys.spawn<collector>({.mailbox_capacity = 0}, collector{actors, done}).value();
    for (std::int64_t i = 0; i < actors; ++i) {
      workers.push_back(sys.spawn<worker>({}, worker{sink}).value());
      (void)workers.back().tell(&worker::poke);
    }
    finished.wait();
    const std::int64_t rss_after = choir::bench::resident_bytes();
    bytes_per_actor_sum += static_cast<double>(rss_after - rss_before) / static_cast<double>(actors);
    for (auto& w : workers) w.kill();  // teardown is the runtime's work, timed as in the CAF half
    sink.kill();
    workers.clear();
    while (sys.live_actors() != 0) std::this_thread::yield();
  }
  state.counters["actors_per_s"] =
      benchmark::Counter(static_cast<double>(actors), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes_per_idle_actor"] = benchmark::Counter(bytes_per_actor_sum, benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(state.iterations() * actors);
}

// -- an ask from a plain thread: the latency a blocking caller sees ----------------------------------------------

void BM_choir_ask_from_thread(benchmark::State& state) {
  actor_system sys(bench_system());
  auto pong = sys.spawn<ponger>({}).value();
  std::vector<double> samples;
  samples.reserve(1 << 20);
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto answer = pong.ask([](ponger&) { return ponger::echo(1); }).get();
    samples.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    if (!answer.ok()) state.SkipWithError("ask failed");
  }
  if (!samples.empty()) {
    std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(samples.size() / 2), samples.end());
    state.counters["median_us"] = samples[samples.size() / 2];
  }
  state.SetItemsProcessed(state.iterations());
}

// -- passivation: agents registered on a node, with no actor in memory until their next message --------------

constexpr const char* chat_agent = R"(
apiVersion: agentos/v0.2
kind: Graph
name: chat
entrypoint: listen
state: {history: []}
actions:
  listen: {type: human, inputs: [message], writes: [message]}
  reply: {type: set, reads: [message], append: {history: "'echo: ' + message"}}
transitions:
  - {from: listen, to: reply}
  - {from: reply, to: listen}
)";

void BM_choir_passivated_agents_1m(benchmark::State& state) {
  namespace fs = std::filesystem;
  const std::int64_t agents = bench::scaled(1'000'000);
  const std::int64_t sample = std::min<std::int64_t>(agents, 100);
  const auto path = (fs::temp_directory_path() / ("choir-bench-passivation-" + std::to_string(::getpid()) + ".db"));
  auto agent = load_agent(chat_agent, "chat.yaml", graph::action_registry::with_builtins()).value();
  double bytes_per_agent = 0;
  double total_mib = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
    auto store = store::synchronized(store::open_sqlite_store(path.string()).value());
    state.ResumeTiming();
    actor_system sys(bench_system());
    conversation_directory dir(sys, {.store = store, .idle_after = std::chrono::milliseconds(20)});
    malloc_trim(0);
    const std::int64_t rss_before = choir::bench::resident_bytes();
    for (std::int64_t i = 0; i < agents; ++i) {
      if (!dir.add("conversation-" + std::to_string(i), agent).ok()) state.SkipWithError("register failed");
    }
    const std::int64_t rss_after = choir::bench::resident_bytes();
    bytes_per_agent += static_cast<double>(rss_after - rss_before) / static_cast<double>(agents);
    total_mib += static_cast<double>(rss_after - rss_before) / (1024.0 * 1024.0);
    // A sample goes through the whole cycle: activated by a message, then passivated when idle.
    for (std::int64_t i = 0; i < sample; ++i) {
      auto turn = sync_wait(dir.say("conversation-" + std::to_string(i), value("hello")));
      if (!turn.ok() || turn->ended != "waiting") state.SkipWithError("a sampled conversation failed");
    }
    while (sys.live_actors() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
  state.counters["bytes_per_passivated_agent"] =
      benchmark::Counter(bytes_per_agent, benchmark::Counter::kAvgIterations);
  state.counters["registered_mib"] = benchmark::Counter(total_mib, benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(state.iterations() * agents);
}

}  // namespace

BENCHMARK(BM_choir_ping_pong)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_choir_one_way)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_choir_fan_out_100k)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_choir_ask_from_thread)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_choir_passivated_agents_1m)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(1);
