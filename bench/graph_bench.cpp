// Graph engine benchmarks. Rates are in items_per_second (steps/s).
//   build/release/bench/graph_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "choir/graph/application.hpp"

namespace {

using namespace choir;
using namespace choir::graph;

/// Burr's benchmark graph: increment -> check -> (count < limit ? increment : done).
std::unique_ptr<application> counter_app(std::int64_t limit) {
  auto increment = action_builder("increment").reads({"count"}).writes({"count"}).run([](const state_view& s) {
    action_output out;
    out.changes.set("count", s.at("count").get<std::int64_t>() + 1);
    return result<action_output>(std::move(out));
  });
  auto check = action_builder("check").run([](const state_view&) { return result<action_output>(action_output{}); });
  auto done = action_builder("done").run([](const state_view&) { return result<action_output>(action_output{}); });
  return *application_builder()
              .with_actions({increment, check, done})
              .with_transition("increment", "check")
              .with_transition("check", "increment", condition::expr("count < limit"))
              .with_transition("check", "done")
              .with_entrypoint("increment")
              .with_state(value{{"count", 0}, {"limit", limit}})
              .build();
}

void BM_counter_loop(benchmark::State& bench) {
  const std::int64_t limit = bench.range(0);
  std::uint64_t steps = 0;
  for (auto _ : bench) {
    bench.PauseTiming();
    auto app = counter_app(limit);
    bench.ResumeTiming();
    auto outcome = app->run();
    if (!outcome.ok() || outcome->reason != halt_reason::completed) bench.SkipWithError("run failed");
    steps += outcome->steps;
  }
  bench.SetItemsProcessed(static_cast<std::int64_t>(steps));
}
BENCHMARK(BM_counter_loop)->Arg(50'000)->Unit(benchmark::kMillisecond);

/// One action appending a ~100-byte message to `history` every step; the time per step must
/// stay flat as the list grows (compare the 1k and 10k rows).
void BM_append_list(benchmark::State& bench) {
  const std::int64_t n = bench.range(0);
  std::uint64_t steps = 0;
  for (auto _ : bench) {
    bench.PauseTiming();
    auto chat = action_builder("chat").reads({"turn"}).writes({"history", "turn"}).run([](const state_view& s) {
      const auto turn = s.at("turn").get<std::int64_t>();
      action_output out;
      out.changes.append("history", value{{"role", "user"}, {"turn", turn}, {"text", std::string(64, 'x')}});
      out.changes.set("turn", turn + 1);
      return result<action_output>(std::move(out));
    });
    auto app = *application_builder()
                    .with_action(chat)
                    .with_transition("chat", "chat", condition::expr("turn < " + std::to_string(n)))
                    .with_entrypoint("chat")
                    .with_state(value{{"turn", 0}, {"history", value::array()}})
                    .build();
    bench.ResumeTiming();
    auto outcome = app->run({.max_steps = static_cast<std::uint64_t>(n)});
    if (!outcome.ok()) bench.SkipWithError("run failed");
    steps += outcome->steps;
  }
  bench.SetItemsProcessed(static_cast<std::int64_t>(steps));
  bench.counters["list_size"] = static_cast<double>(n);
}
BENCHMARK(BM_append_list)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

/// A compiled expression evaluated against a small state: the per-transition cost.
void BM_expression_condition(benchmark::State& bench) {
  const condition c = condition::expr("count < limit and mode == 'CALM'");
  const state s = *state::from_json({{"count", 5}, {"limit", 10}, {"mode", "CALM"}});
  for (auto _ : bench) {
    auto r = c.evaluate(s);
    benchmark::DoNotOptimize(r);
  }
  bench.SetItemsProcessed(bench.iterations());
}
BENCHMARK(BM_expression_condition);

}  // namespace
