// Kernel benchmarks: the cost of one policy decision (the gate asks one per tool, model and memory
// call), on a policy of 20 tenants × 10 roles × 20 grants × 100 users; 9 in 10 decisions allow.
//   build/release/bench/kernel_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "choir/kernel/policy.hpp"

namespace {

using namespace choir;

std::string big_policy() {
  std::string text = "apiVersion: agentos/v0.2\nkind: Policy\ntenants:\n";
  for (int t = 0; t < 20; ++t) {
    text += "  tenant" + std::to_string(t) + ":\n    roles:\n";
    for (int r = 0; r < 10; ++r) {
      text += "      role" + std::to_string(r) + ":\n        grants:\n";
      for (int g = 0; g < 20; ++g) {
        if (g % 5 == 0) {
          text += "          - {name: fs.read" + std::to_string(r * 20 + g) +
                  ", allow: [\"workspace/**\", \"docs/*.md\"]}\n";
        } else {
          text += "          - tool.t" + std::to_string(r * 20 + g) + "\n";
        }
      }
    }
    text += "    users:\n";
    for (int u = 0; u < 100; ++u) {
      text += "      user" + std::to_string(u) + ": {roles: [role" + std::to_string(u % 10) + ", role" +
              std::to_string((u + 3) % 10) + "]}\n";
    }
  }
  return text;
}

struct query {
  std::string tenant, user, capability, argument;
};

void BM_policy_decision(benchmark::State& state) {
  const auto loaded = kernel::policy::load(big_policy(), "bench-policy.yaml");
  if (!loaded.ok()) {
    state.SkipWithError(loaded.err().message.c_str());
    return;
  }
  std::vector<query> queries;
  for (int i = 0; i < 1000; ++i) {
    const int u = i % 100;
    const int role = u % 10;
    query q{"tenant" + std::to_string(i % 20), "user" + std::to_string(u), "", ""};
    if (i % 10 == 9) {
      q.capability = "payment.charge";  // denied
    } else if (i % 3 == 0) {
      q.capability = "fs.read" + std::to_string(role * 20);
      q.argument = "workspace/src/module" + std::to_string(i) + "/file.cpp";
    } else {
      q.capability = "tool.t" + std::to_string(role * 20 + 1 + i % 4);
    }
    queries.push_back(std::move(q));
  }
  std::vector<double> samples;
  samples.reserve(1 << 20);
  std::size_t i = 0;
  std::int64_t allowed = 0;
  for (auto _ : state) {
    const auto& q = queries[i++ % queries.size()];
    const auto start = std::chrono::steady_clock::now();
    const auto d = loaded->decide(q.tenant, q.user, q.capability, q.argument);
    const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    if (samples.size() < samples.capacity()) samples.push_back(ns);
    allowed += d.allowed ? 1 : 0;
    benchmark::DoNotOptimize(d);
  }
  if (!samples.empty()) {
    std::sort(samples.begin(), samples.end());
    state.counters["p50_ns"] = samples[samples.size() / 2];
    state.counters["p99_ns"] = samples[samples.size() * 99 / 100];
  }
  state.counters["allowed_pct"] = 100.0 * static_cast<double>(allowed) / static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_policy_decision);
