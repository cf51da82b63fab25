// Event store benchmarks (rates on wall-clock time: they wait on the disk), with the physical limit measured in the
// same run: plain SQLite inserts of a row the size of a step, one per transaction and 1,000 per transaction.
//   build/release/bench/store_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>

#include "choir/graph/application.hpp"
#include "choir/store/event_store.hpp"
#include "choir/store/group_commit.hpp"
#include "choir/store/pg_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace choir;

/// A fresh database path in the temporary folder, removed (with its WAL files) when done.
class temp_db {
 public:
  explicit temp_db(const std::string& name)
      : path_(
            (fs::temp_directory_path() / ("choir-bench-" + std::to_string(::getpid()) + "-" + name + ".db")).string()) {
    remove();
  }
  ~temp_db() { remove(); }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::uintmax_t bytes() const {
    std::uintmax_t total = 0;
    for (const char* suffix : {"", "-wal"}) {
      std::error_code ec;
      const auto n = fs::file_size(path_ + suffix, ec);
      if (!ec) total += n;
    }
    return total;
  }

 private:
  void remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path_ + suffix);
  }
  std::string path_;
};

/// A row about the size of a committed counter step (ids, action, delta, timestamps).
const std::string& step_sized_payload() {
  static const std::string payload(160, 'x');
  return payload;
}

sqlite3* open_raw(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
               "CREATE TABLE events(run_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
               " PRIMARY KEY(run_id, seq)) WITHOUT ROWID;",
               nullptr, nullptr, nullptr);
  return db;
}

void raw_inserts(benchmark::State& bench, int per_transaction) {
  temp_db file("raw" + std::to_string(per_transaction));
  sqlite3* db = open_raw(file.path());
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO events(run_id, seq, data) VALUES ('01a21fdd-608c-76a4-9fc4-9bce9d61935f', ?, ?)",
                     -1, &insert, nullptr);
  std::int64_t seq = 0;
  for (auto _ : bench) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    for (int i = 0; i < per_transaction; ++i) {
      sqlite3_bind_int64(insert, 1, seq++);
      sqlite3_bind_text(insert, 2, step_sized_payload().data(), static_cast<int>(step_sized_payload().size()),
                        SQLITE_STATIC);
      if (sqlite3_step(insert) != SQLITE_DONE) bench.SkipWithError("insert failed");
      sqlite3_reset(insert);
    }
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  sqlite3_finalize(insert);
  sqlite3_close(db);
  bench.SetItemsProcessed(seq);
}

void BM_sqlite_raw_insert_txn(benchmark::State& bench) { raw_inserts(bench, 1); }
BENCHMARK(BM_sqlite_raw_insert_txn)->UseRealTime();

void BM_sqlite_raw_insert_batched(benchmark::State& bench) { raw_inserts(bench, 1000); }
BENCHMARK(BM_sqlite_raw_insert_batched)->Unit(benchmark::kMillisecond)->UseRealTime();

/// The counter graph with an optional extra action that appends a chat message each loop.
std::unique_ptr<graph::application> counter_app(std::int64_t limit, bool chat, store::event_store& s,
                                                const std::string& run_id) {
  auto increment = graph::action_builder("increment")
                       .reads({"count"})
                       .writes({"count", "history"})
                       .run([chat](const graph::state_view& v) {
                         graph::action_output out;
                         const auto count = v.at("count").get<std::int64_t>();
                         out.changes.set("count", count + 1);
                         if (chat) {
                           out.changes.append("history", value{{"role", "user"}, {"text", std::string(80, 'm')}});
                         }
                         return result<graph::action_output>(std::move(out));
                       });
  auto done = graph::action_builder("done").run(
      [](const graph::state_view&) { return result<graph::action_output>(graph::action_output{}); });
  graph::application_builder b;
  b.with_actions({increment, done})
      .with_transition("increment", "increment", graph::condition::expr("count < limit"))
      .with_transition("increment", "done")
      .with_entrypoint("increment")
      .with_state(value{{"count", 0}, {"limit", limit}, {"history", value::array()}})
      .with_identifiers(run_id);
  auto g = *b.build_graph();
  store::run_record record;
  record.run_id = run_id;
  record.agent = "counter";
  record.graph_version = g->fingerprint();
  record.status = "running";
  record.next_action = "increment";
  (void)s.put_graph({record.graph_version, "counter", "(benchmark)"});
  (void)s.create_run(record, g->initial_state(), -1);
  (void)s.acquire_lease(run_id, 600'000);  // driven by its single owner, as `choir` and the runtime do
  b.with_persister(std::make_shared<store::run_persister>(s, run_id, record.graph_version));
  return *b.build(g);
}

/// One run, each step committed (its own transaction) before the next starts.
void BM_sqlite_durable_steps(benchmark::State& bench) {
  temp_db file("durable");
  auto s = *store::open_sqlite_store(file.path());
  std::uint64_t steps = 0;
  int run = 0;
  for (auto _ : bench) {
    bench.PauseTiming();
    auto app = counter_app(2'000, false, *s, "run-" + std::to_string(run++));
    bench.ResumeTiming();
    auto outcome = app->run();
    if (!outcome.ok()) bench.SkipWithError(outcome.err().message.c_str());
    steps += outcome->steps;
  }
  bench.SetItemsProcessed(static_cast<std::int64_t>(steps));
}
BENCHMARK(BM_sqlite_durable_steps)->Unit(benchmark::kMillisecond)->UseRealTime();

/// Storage for a run whose state appends one ~100-byte chat message per step: the bytes per step
/// must stay flat as the run grows (deltas, not full snapshots per step).
void BM_sqlite_chat_storage(benchmark::State& bench) {
  const std::int64_t n = bench.range(0);
  std::uintmax_t bytes = 0;
  for (auto _ : bench) {
    bench.PauseTiming();
    temp_db file("chat" + std::to_string(n));
    auto s = *store::open_sqlite_store(file.path());
    auto app = counter_app(n, true, *s, "chat");
    bench.ResumeTiming();
    auto outcome = app->run();
    if (!outcome.ok()) bench.SkipWithError(outcome.err().message.c_str());
    bench.PauseTiming();
    s.reset();  // checkpoints the WAL into the file
    bytes = file.bytes();
    bench.ResumeTiming();
  }
  bench.SetItemsProcessed(bench.iterations() * n);
  bench.counters["bytes"] = static_cast<double>(bytes);
  bench.counters["bytes_per_step"] = static_cast<double>(bytes) / static_cast<double>(n);
}
BENCHMARK(BM_sqlite_chat_storage)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();

/// 64 runs progressing at once, each step committed before that run's next step starts; the
/// steps of all runs share transactions through a group committer. A producer thread builds and
/// serializes steps (as the runs' actors will) while the committer thread writes.
void group_commit_64_runs(benchmark::State& bench, store::event_store& s, const std::string& prefix) {
  constexpr int runs = 64;
  constexpr std::int64_t steps_per_run = 200;
  (void)s.put_graph({"bench-v1", "counter", "(benchmark)"});
  std::uint64_t total = 0;
  std::size_t transactions = 0;
  std::chrono::nanoseconds busy{0};
  int round = 0;
  for (auto _ : bench) {
    bench.PauseTiming();
    std::vector<std::string> ids;
    for (int r = 0; r < runs; ++r) {
      store::run_record record;
      record.run_id = prefix + std::to_string(round) + "-" + std::to_string(r);
      record.agent = "counter";
      record.graph_version = "bench-v1";
      record.status = "running";
      record.next_action = "increment";
      // Each run is driven by its single owner, as the runtime drives them.
      if (!s.create_run(record, *graph::state::from_json({{"count", 0}}), -1).ok() ||
          !s.acquire_lease(record.run_id, 600'000).ok()) {
        bench.SkipWithError("cannot create the runs");
      }
      ids.push_back(record.run_id);
    }
    ++round;
    std::mutex mutex;
    std::condition_variable ready_cv;
    std::deque<int> ready;
    for (int r = 0; r < runs; ++r) ready.push_back(r);
    std::vector<std::int64_t> next(runs, 0);
    std::vector<graph::state> states(runs, *graph::state::from_json({{"count", 0}}));
    std::int64_t failures = 0;
    bench.ResumeTiming();
    {
      store::group_committer committer(s);
      std::int64_t submitted = 0;
      while (submitted < runs * steps_per_run) {
        int r = 0;
        {
          std::unique_lock lock(mutex);
          ready_cv.wait(lock, [&] { return !ready.empty(); });
          r = ready.front();
          ready.pop_front();
        }
        graph::step_record step;
        step.sequence_id = static_cast<std::uint64_t>(next[r]);
        step.action = "increment";
        step.delta.set("count", next[r] + 1);
        step.result = next[r] + 1;
        step.next_action = "increment";
        graph::state after = *states[r].apply(step.delta);  // as the engine derives it
        states[r] = after;
        ++next[r];
        ++submitted;
        const bool more = next[r] < steps_per_run;
        committer.submit(store::make_step_write(ids[r], step, std::move(after), "bench-v1"),
                         [&, r, more](result<void> done) {
                           std::lock_guard lock(mutex);
                           if (!done.ok()) ++failures;
                           if (more) {
                             ready.push_back(r);
                             ready_cv.notify_one();
                           }
                         });
      }
      bench.PauseTiming();  // the committer's destructor waits for the last commits
      bench.ResumeTiming();
      transactions += committer.transactions();
      busy += committer.busy();
    }
    if (failures != 0) bench.SkipWithError("a step was refused");
    total += static_cast<std::uint64_t>(runs * steps_per_run);
  }
  bench.SetItemsProcessed(static_cast<std::int64_t>(total));
  bench.counters["steps_per_txn"] =
      transactions == 0 ? 0.0 : static_cast<double>(total) / static_cast<double>(transactions);
  // The committer's time inside `append_prepared` per step: what one step costs the one thread
  // every step goes through (the rate cannot exceed its inverse).
  bench.counters["commit_us_per_step"] =
      total == 0 ? 0.0 : std::chrono::duration<double, std::micro>(busy).count() / static_cast<double>(total);
}

void BM_sqlite_group_commit_64_runs(benchmark::State& bench) {
  temp_db file("group");
  auto s = *store::open_sqlite_store(file.path());
  group_commit_64_runs(bench, *s, "run-");
}
BENCHMARK(BM_sqlite_group_commit_64_runs)->Unit(benchmark::kMillisecond)->UseRealTime();

/// The same on the PostgreSQL that CHOIR_TEST_PG names (libpq key=value), in a fresh schema.
void BM_pg_group_commit_64_runs(benchmark::State& bench) {
  namespace pg = store::test_support;
  const std::string db = pg::test_pg();
  const std::string schema = "bench_" + std::to_string(::getpid());
  const std::string conninfo = db.empty() ? std::string() : pg::fresh_pg_schema(db, schema);
  if (conninfo.empty()) {
    bench.SkipWithError("set CHOIR_TEST_PG to a PostgreSQL database (scripts/pg-throwaway.sh start)");
    for (auto _ : bench) {
    }
    return;
  }
  {
    auto s = store::open_pg_store(conninfo);
    if (!s.ok()) {
      bench.SkipWithError(s.err().message.c_str());
      for (auto _ : bench) {
      }
    } else {
      group_commit_64_runs(bench, **s, "run-");
    }
  }
  pg::drop_pg_schema(db, schema);
}
BENCHMARK(BM_pg_group_commit_64_runs)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
