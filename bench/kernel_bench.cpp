// Kernel benchmarks: the cost of one policy decision (the gate asks one per tool, model and memory
// call), on a policy of 20 tenants × 10 roles × 20 grants × 100 users, 9 in 10 decisions allow;
// appending to the audit chain in the SQLite store (one entry per transaction, entries from
// concurrent gates sharing transactions, and batches); verifying the chain.
//   build/release/bench/kernel_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <filesystem>
#include <thread>

#include "bench/bench_scale.hpp"
#include "choir/kernel/audit.hpp"
#include "choir/kernel/policy.hpp"
#include "choir/store/synchronized.hpp"

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

/// A fresh store, key and head file in a temporary folder, removed at the end.
struct audit_fixture {
  std::filesystem::path dir;
  std::shared_ptr<store::event_store> store;
  kernel::audit_options options;

  audit_fixture() {
    dir = std::filesystem::temp_directory_path() / ("choir-audit-bench-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    store = store::synchronized(std::move(store::open_sqlite_store((dir / "choir.db").string()).value()));
    options.key_file = (dir / "audit.key").string();
    options.head_file = (dir / "audit.head").string();
  }
  ~audit_fixture() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

kernel::audit_event gated_call(std::int64_t i) {
  kernel::audit_event e{.kind = "call", .tenant = "acme", .user = "ada", .agent = "researcher", .run_id = "0193a1b2"};
  e.step = i;
  e.capability = "web.fetch";
  e.argument = "https://example.org/papers/" + std::to_string(i);
  e.decision = "allow";
  e.details = {{"url", e.argument}, {"headers", "[redacted]"}};
  return e;
}

/// Appends entries: `range(0)` per call (1 = one entry per transaction), from `range(1)` threads
/// (their entries share transactions through the log's group commit).
void BM_audit_append(benchmark::State& state) {
  const auto per_call = static_cast<std::size_t>(state.range(0));
  const auto threads = static_cast<int>(state.range(1));
  audit_fixture f;
  auto log = kernel::audit_log::open(f.store, f.options);
  if (!log.ok()) {
    state.SkipWithError(log.err().message.c_str());
    return;
  }
  const std::int64_t total = bench::scaled(per_call == 1 && threads == 1 ? 20'000 : 200'000);
  std::vector<kernel::audit_event> events;
  for (std::size_t i = 0; i < per_call; ++i) events.push_back(gated_call(static_cast<std::int64_t>(i)));
  std::int64_t appended = 0;
  for (auto _ : state) {
    std::vector<std::thread> pool;
    const std::int64_t calls = std::max<std::int64_t>(1, total / static_cast<std::int64_t>(per_call) / threads);
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (std::int64_t c = 0; c < calls; ++c) {
          if (!(*log)->append(events).ok()) std::abort();
        }
      });
    }
    for (auto& th : pool) th.join();
    appended += calls * threads * static_cast<std::int64_t>(per_call);
  }
  state.counters["entries_per_s"] = benchmark::Counter(static_cast<double>(appended), benchmark::Counter::kIsRate);
  state.counters["per_txn"] =
      static_cast<double>((*log)->entries()) / static_cast<double>(std::max<std::int64_t>(1, (*log)->transactions()));
  state.SetItemsProcessed(appended);
}

/// Verifies a chain of 1M entries (scaled) read back from the SQLite store.
void BM_audit_verify(benchmark::State& state) {
  audit_fixture f;
  const std::int64_t total = bench::scaled(1'000'000);
  {
    auto log = kernel::audit_log::open(f.store, f.options);
    std::vector<kernel::audit_event> batch;
    for (int i = 0; i < 1000; ++i) batch.push_back(gated_call(i));
    for (std::int64_t n = 0; n < total; n += static_cast<std::int64_t>(batch.size())) {
      const auto take = static_cast<std::size_t>(std::min<std::int64_t>(1000, total - n));
      if (!(*log)->append(std::span(batch.data(), take)).ok()) std::abort();
    }
  }
  std::int64_t verified = 0;
  for (auto _ : state) {
    auto report = kernel::verify_audit(*f.store, f.options);
    if (!report.ok() || !report->ok()) {
      state.SkipWithError("the chain did not verify");
      return;
    }
    verified += report->verified;
  }
  state.counters["entries_per_s"] = benchmark::Counter(static_cast<double>(verified), benchmark::Counter::kIsRate);
  state.SetItemsProcessed(verified);
}

}  // namespace

BENCHMARK(BM_policy_decision);
BENCHMARK(BM_audit_append)
    ->ArgNames({"per_call", "threads"})
    ->Args({1, 1})
    ->Args({1, 8})
    ->Args({64, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_audit_verify)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
