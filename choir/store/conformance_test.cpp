// The event store's conformance suite: every test runs against SQLite and against a real
// PostgreSQL (CHOIR_TEST_PG, a libpq key=value string; each test gets a fresh schema). Without
// CHOIR_TEST_PG the PostgreSQL cases skip — unless CHOIR_REQUIRE_PG=1 (as in CI), when they fail.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "choir/store/effects.hpp"
#include "choir/store/event_store.hpp"
#include "choir/store/group_commit.hpp"
#include "choir/store/pg_test_support.hpp"
#include "choir/store/upgrade.hpp"

namespace choir::store {
namespace {

namespace fs = std::filesystem;

std::string test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->name()) + "_" + std::to_string(::getpid());
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    name_ = test_name();
    if (backend() == "sqlite") {
      dir_ = fs::path(::testing::TempDir()) / ("choir-conf-" + name_);
      fs::remove_all(dir_);
      where_ = (dir_ / "choir.db").string();
      return;
    }
    const std::string pg = test_support::test_pg();
    if (pg.empty()) {
      if (test_support::pg_required()) FAIL() << "CHOIR_REQUIRE_PG=1 but CHOIR_TEST_PG is unset";
      GTEST_SKIP() << "set CHOIR_TEST_PG to run the PostgreSQL cases";
    }
    schema_ = "t_" + name_;
    for (char& c : schema_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    base_ = pg;
    raw_exec("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE; CREATE SCHEMA " + schema_, /*in_schema=*/false);
    where_ = base_ + " options='-csearch_path=" + schema_ + "'";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
    if (!schema_.empty() && !HasFailure()) raw_exec("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE", false);
  }

  [[nodiscard]] const std::string& backend() const { return GetParam(); }

  std::unique_ptr<event_store> open(store_options options = {}) {
    if (options.owner.empty()) options.owner = "owner-a";
    auto s =
        backend() == "sqlite" ? open_sqlite_store(where_, options, clock_) : open_pg_store(where_, options, clock_);
    EXPECT_TRUE(s.ok()) << s.err().message;
    return s.ok() ? std::move(s).value() : nullptr;
  }
  result<std::unique_ptr<event_store>> try_open(store_options options = {}) {
    return backend() == "sqlite" ? open_sqlite_store(where_, options, clock_) : open_pg_store(where_, options, clock_);
  }

  /// Runs SQL on the store's database behind its back (to plant old schemas and corrupt rows).
  void raw_exec(const std::string& sql, bool in_schema = true) {
    if (backend() == "sqlite") {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open(where_.c_str(), &db), SQLITE_OK);
      char* message = nullptr;
      const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
      const std::string text = message != nullptr ? message : "";
      sqlite3_free(message);
      sqlite3_close(db);
      ASSERT_EQ(rc, SQLITE_OK) << text;
      return;
    }
    PGconn* conn = PQconnectdb(in_schema ? where_.c_str() : base_.c_str());
    ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    PGresult* r = PQexec(conn, ("SET client_min_messages = warning; " + sql).c_str());
    const auto status = PQresultStatus(r);
    const std::string text = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(conn);
    ASSERT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) << text;
  }
  /// The first column of the first row of a query, as an integer.
  std::int64_t raw_int(const std::string& sql) {
    if (backend() == "sqlite") {
      sqlite3* db = nullptr;
      sqlite3_open(where_.c_str(), &db);
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
      const std::int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
      sqlite3_finalize(st);
      sqlite3_close(db);
      return v;
    }
    PGconn* conn = PQconnectdb(where_.c_str());
    PGresult* r = PQexec(conn, sql.c_str());
    const std::int64_t v = PQntuples(r) > 0 ? std::atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    PQfinish(conn);
    return v;
  }

  static run_record make_run(const std::string& id) {
    run_record r;
    r.run_id = id;
    r.agent = "counter";
    r.graph_version = "v1";
    r.status = "running";
    r.next_action = "increment";
    return r;
  }

  static graph::step_record step(std::uint64_t seq, std::int64_t count) {
    graph::step_record r;
    r.sequence_id = seq;
    r.action = "increment";
    r.delta.set("count", count);
    r.result = count;
    r.next_action = "increment";
    return r;
  }

  static graph::state counted(std::int64_t n) { return *graph::state::from_json({{"count", n}}); }

  /// Creates run `id` and appends `n` steps that count 1..n.
  void fill(event_store& s, const std::string& id, int n, run_record run = {}) {
    ASSERT_TRUE(s.put_graph({"v1", "counter", "source"}).ok());
    if (run.run_id.empty()) run = make_run(id);
    auto created = s.create_run(run, counted(0), -1);
    ASSERT_TRUE(created.ok()) << created.err().message;
    for (int i = 0; i < n; ++i) {
      auto appended = s.append_step(id, step(static_cast<std::uint64_t>(i), i + 1), counted(i + 1), "v1");
      ASSERT_TRUE(appended.ok()) << appended.err().message;
    }
  }

  manual_clock clock_{1'700'000'000'000};
  std::string name_;
  fs::path dir_;
  std::string schema_;
  std::string base_;
  std::string where_;
};

INSTANTIATE_TEST_SUITE_P(Backends, Conformance, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& p) { return p.param; });

// ---- runs and steps ----------------------------------------------------------------------------

TEST_P(Conformance, RecordsRunsAndTheirSteps) {
  auto s = open();
  run_record run = make_run("run-1");
  run.partition_key = "tenant-7";
  run.pinned = true;
  fill(*s, "run-1", 3, run);
  auto got = s->get_run("run-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->agent, "counter");
  EXPECT_EQ(got->partition_key, "tenant-7");
  EXPECT_TRUE(got->pinned);
  EXPECT_EQ(*got->last_sequence, 2);
  EXPECT_EQ(got->position(), 2);
  EXPECT_EQ(got->next_action, "increment");
  EXPECT_EQ(got->created_ms, 1'700'000'000'000);
  EXPECT_TRUE(got->parent_run.empty());
  auto steps = s->steps("run-1", 1, 10);
  ASSERT_TRUE(steps.ok());
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].sequence_id, 1);
  EXPECT_EQ((*steps)[0].delta, value::parse(R"([{"op":"set","key":"count","value":2}])"));
  EXPECT_EQ((*steps)[1].result, 3);
  EXPECT_EQ((*steps)[1].status, "completed");
  EXPECT_EQ((*steps)[1].graph_version, "v1");
}

TEST_P(Conformance, ARunRecordsWhoStartedIt) {
  auto s = open();
  run_record run = make_run("run-1");
  run.tenant = "acme";
  run.user = "ada";
  fill(*s, "run-1", 1, run);
  auto got = s->get_run("run-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->tenant, "acme");
  EXPECT_EQ(got->user, "ada");
  EXPECT_EQ(got->to_json()["tenant"], "acme");
  EXPECT_EQ((*s->list_runs(5))[0].user, "ada");
}

TEST_P(Conformance, AStepCommitsExactlyOnce) {
  auto s = open();
  fill(*s, "run-1", 2);
  auto again = s->append_step("run-1", step(1, 99), counted(99), "v1");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.err().code, store_errc::duplicate_step);
  EXPECT_EQ((*s->steps("run-1", 1, 1))[0].result, 2);  // the first commit stands
}

TEST_P(Conformance, TwoWritersRacingForTheSameStepCommitItOnce) {
  { fill(*open(), "run-1", 0); }
  constexpr int steps = 40;
  std::atomic<int> committed{0};
  std::atomic<int> duplicates{0};
  std::atomic<int> others{0};
  auto writer = [&](const std::string& owner, std::int64_t mark) {
    auto s = backend() == "sqlite" ? open_sqlite_store(where_, {.owner = owner}, clock_)
                                   : open_pg_store(where_, {.owner = owner}, clock_);
    if (!s.ok()) {
      ++others;
      return;
    }
    for (int i = 0; i < steps; ++i) {
      // Alone and in batches, so that both of SQLite's tables are raced for.
      std::vector<step_write> batch;
      batch.push_back(make_step_write("run-1", step(static_cast<std::uint64_t>(i), mark + i), counted(mark + i), "v1"));
      if (i % 2 == 1) batch.push_back(make_step_write("run-1", step(1000, 0), counted(0), "v1"));
      auto r = (*s)->append_steps(batch).front();
      if (r.ok()) {
        ++committed;
      } else if (r.err().code == store_errc::duplicate_step) {
        ++duplicates;
      } else {
        ++others;
      }
    }
  };
  std::thread a(writer, "writer-a", 0);
  std::thread b(writer, "writer-b", 100'000);
  a.join();
  b.join();
  EXPECT_EQ(others.load(), 0);
  EXPECT_EQ(committed.load(), steps);
  EXPECT_EQ(duplicates.load(), steps);
  auto s = open();
  auto all = s->steps("run-1", 0, 2000);
  ASSERT_EQ(all->size(), static_cast<std::size_t>(steps + 1));  // and step 1000, once
  for (int i = 0; i < steps; ++i) EXPECT_EQ((*all)[static_cast<std::size_t>(i)].sequence_id, i);
}

TEST_P(Conformance, TheSameStepTwiceInOneBatchCommitsOnce) {
  auto s = open();
  fill(*s, "a", 0);
  std::vector<step_write> batch;
  batch.push_back(make_step_write("a", step(0, 1), counted(1), "v1"));
  batch.push_back(make_step_write("a", step(0, 7), counted(7), "v1"));
  auto results = s->append_steps(batch);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].err().code, store_errc::duplicate_step);
  EXPECT_EQ((*s->steps("a", 0, 10))[0].result, 1);
  EXPECT_EQ(s->steps("a", 0, 10)->size(), 1u);
}

TEST_P(Conformance, ARefusedStepInABatchDoesNotAffectTheOthers) {
  auto s = open();
  fill(*s, "a", 2);
  fill(*s, "b", 0);
  std::vector<step_write> batch;
  batch.push_back(make_step_write("a", step(2, 3), counted(3), "v1"));
  batch.push_back(make_step_write("a", step(1, 99), counted(99), "v1"));  // already committed
  batch.push_back(make_step_write("ghost", step(0, 1), counted(1), "v1"));
  batch.push_back(make_step_write("b", step(0, 1), counted(1), "v1"));
  auto results = s->append_steps(batch);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].err().code, store_errc::duplicate_step);
  EXPECT_EQ(results[2].err().code, store_errc::run_not_found);
  EXPECT_TRUE(results[3].ok());
  EXPECT_EQ(*s->get_run("a")->last_sequence, 2);
  EXPECT_EQ(s->state_at("a", 2)->get("count"), 3);
  EXPECT_EQ(s->state_at("b", 0)->get("count"), 1);
  // Whichever way a step was committed (alone, or in a batch), it commits once.
  EXPECT_EQ(s->append_step("b", step(0, 5), counted(5), "v1").err().code, store_errc::duplicate_step);
  EXPECT_EQ(s->append_step("a", step(2, 5), counted(5), "v1").err().code, store_errc::duplicate_step);
  ASSERT_TRUE(s->append_step("b", step(1, 2), counted(2), "v1").ok());
  EXPECT_EQ(*s->get_run("b")->last_sequence, 1);
  EXPECT_EQ(s->steps("b", 0, 10)->size(), 2u);
}

TEST_P(Conformance, AStepWithMalformedJsonIsRefusedAndTheOthersStayReadable) {
  auto s = open();
  fill(*s, "a", 0);
  fill(*s, "b", 0);
  std::vector<step_write> batch;
  batch.push_back(make_step_write("a", step(0, 1), counted(1), "v1"));
  batch.push_back(make_step_write("b", step(0, 1), counted(1), "v1"));
  batch.back().result = "{\"unclosed\": [1, 2}";
  batch.push_back(make_step_write("b", step(0, 1), counted(1), "v1"));
  batch.back().delta = "\xEF\xBB\xBF{\"count\": 1}";  // a reader skips a byte-order mark only at the start
  batch.push_back(make_step_write("b", step(0, 1), counted(1), "v1"));
  batch.back().inputs = "\"\xC0\xAF\"";  // not UTF-8
  batch.push_back(make_step_write("b", step(0, 1), counted(1), "v1"));
  auto results = s->append_steps(batch);
  ASSERT_EQ(results.size(), 5u);
  EXPECT_TRUE(results[0].ok());
  for (std::size_t i = 1; i < 4; ++i) {
    ASSERT_FALSE(results[i].ok()) << i;
    EXPECT_EQ(results[i].err().code, store_errc::invalid_argument) << i;
    EXPECT_NE(results[i].err().message.find("malformed JSON"), std::string::npos) << results[i].err().message;
  }
  EXPECT_TRUE(results[4].ok()) << results[4].err().message;
  // Alone, the same.
  auto alone = make_step_write("a", step(1, 2), counted(2), "v1");
  alone.error = "{\"code\": 1e400}";
  EXPECT_EQ(s->append_steps(std::span<const step_write>(&alone, 1)).front().err().code, store_errc::invalid_argument);
  // What was committed reads back, here and from a store opened afresh.
  s.reset();
  auto again = open();
  EXPECT_EQ(again->state_at("a", 0)->get("count"), 1);
  EXPECT_EQ(again->state_at("b", 0)->get("count"), 1);
  ASSERT_EQ(again->steps("b", 0, 10)->size(), 1u);
  EXPECT_EQ(again->steps("b", 0, 10)->front().result, 1);
}

TEST_P(Conformance, StateAtAnyStepComesFromTheNearestSnapshotAndDeltas) {
  auto s = open({.snapshot_interval = 4});
  fill(*s, "run-1", 10);
  for (std::int64_t seq = -1; seq < 10; ++seq) {
    auto st = s->state_at("run-1", seq);
    ASSERT_TRUE(st.ok()) << st.err().message;
    EXPECT_EQ(st->get("count"), seq + 1) << "at " << seq;
  }
  EXPECT_EQ(raw_int("SELECT count(*) FROM snapshots"), 3);  // the start, after steps 3 and 7
  EXPECT_EQ(s->state_at("run-1", 10).err().code, store_errc::step_not_found);
  EXPECT_EQ(s->state_at("nope", 0).err().code, store_errc::run_not_found);
}

TEST_P(Conformance, SnapshotsOfAGrowingStateStayFewSoStorageIsLinear) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v1", "chat", "source"}).ok());
  ASSERT_TRUE(s->create_run(make_run("chat"), graph::state(), -1).ok());
  graph::state st;
  const value message = {{"role", "user"}, {"text", std::string(200, 'm')}};
  std::vector<step_write> batch;
  for (int i = 0; i < 2000; ++i) {
    graph::step_record rec;
    rec.sequence_id = static_cast<std::uint64_t>(i);
    rec.action = "chat";
    rec.delta.append("history", message);
    st = *st.apply(rec.delta);
    batch.push_back(make_step_write("chat", rec, st, "v1"));
    if (batch.size() == 100) {  // batches, so that PostgreSQL takes seconds, not minutes
      for (const auto& r : s->append_steps(batch)) ASSERT_TRUE(r.ok()) << r.err().message;
      batch.clear();
    }
  }
  // Every 100 steps would be 20 snapshots averaging 1,000 messages: ~4.4 MB. Sized by the
  // deltas since the last one, they add at most about as much as the deltas themselves (~0.45 MB).
  EXPECT_LT(raw_int("SELECT count(*) FROM snapshots"), 15);
  EXPECT_LT(raw_int("SELECT sum(length(state)) FROM snapshots"), 1'000'000);
  EXPECT_EQ(s->state_at("chat", 1999)->get("history").size(), 2000u);
  EXPECT_EQ(s->state_at("chat", 777)->get("history").size(), 778u);
}

TEST_P(Conformance, StepsOfAnUnknownRunAreRefused) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v1", "counter", "source"}).ok());
  EXPECT_EQ(s->append_step("ghost", step(0, 1), graph::state(), "v1").err().code, store_errc::run_not_found);
  EXPECT_TRUE(s->steps("ghost", 0, 10)->empty());
  EXPECT_EQ(s->get_run("ghost").err().code, store_errc::run_not_found);
  EXPECT_EQ(s->set_status("ghost", "halted").err().code, store_errc::run_not_found);
}

TEST_P(Conformance, ARunNeedsAStoredGraphVersion) {
  auto s = open();
  EXPECT_EQ(s->create_run(make_run("r"), graph::state(), -1).err().code, store_errc::invalid_argument);
  fill(*s, "r", 1);
  EXPECT_EQ(s->set_graph_version("r", "v2").err().code, store_errc::invalid_argument);
  ASSERT_TRUE(s->put_graph({"v2", "counter", "source 2"}).ok());
  ASSERT_TRUE(s->set_graph_version("r", "v2").ok());
  EXPECT_EQ(s->get_run("r")->graph_version, "v2");
}

TEST_P(Conformance, ListsRunsNewestFirst) {
  auto s = open();
  fill(*s, "a", 1);
  clock_.advance(std::chrono::seconds(1));
  ASSERT_TRUE(s->create_run(make_run("b"), graph::state(), -1).ok());
  auto runs = s->list_runs(10);
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].run_id, "b");
  EXPECT_EQ(s->list_runs(1)->size(), 1u);
  EXPECT_EQ(s->create_run(make_run("b"), graph::state(), -1).err().code, store_errc::duplicate_run);
}

TEST_P(Conformance, RunsArePagedNewestFirstWithoutGapsOrRepeats) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v1", "counter", "source"}).ok());
  // Seven runs: three share a millisecond (their ids order them), the others a second apart.
  for (const char* id : {"r1", "r2"}) {
    ASSERT_TRUE(s->create_run(make_run(id), graph::state(), -1).ok());
    clock_.advance(std::chrono::seconds(1));
  }
  for (const char* id : {"r3", "r5", "r4"}) ASSERT_TRUE(s->create_run(make_run(id), graph::state(), -1).ok());
  clock_.advance(std::chrono::seconds(1));
  for (const char* id : {"r6", "r7"}) {
    ASSERT_TRUE(s->create_run(make_run(id), graph::state(), -1).ok());
    clock_.advance(std::chrono::seconds(1));
  }
  std::vector<std::string> paged;
  std::optional<run_cursor> cursor;
  for (int page = 0; page < 10; ++page) {
    auto runs = s->list_runs(3, cursor);
    ASSERT_TRUE(runs.ok()) << runs.err().message;
    for (const auto& r : *runs) paged.push_back(r.run_id);
    if (runs->size() < 3) break;
    cursor = run_cursor{runs->back().created_ms, runs->back().run_id};
  }
  EXPECT_EQ(paged, (std::vector<std::string>{"r7", "r6", "r5", "r4", "r3", "r2", "r1"}));
  // After the last run, nothing.
  auto last = s->list_runs(10);
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(s->list_runs(10, run_cursor{last->back().created_ms, last->back().run_id})->empty());
}

TEST_P(Conformance, ListsOnlyTheRunsAFilterMatchesAndPagesWithinThem) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v1", "counter", "source"}).ok());
  const auto add = [&](const std::string& id, const std::string& tenant, const std::string& agent,
                       const std::string& status, const std::string& parent) {
    run_record r = make_run(id);
    r.tenant = tenant;
    r.agent = agent;
    r.status = status;
    r.parent_run = parent;
    ASSERT_TRUE(s->create_run(r, graph::state(), -1).ok()) << id;
  };
  add("a1", "acme", "counter", "running", "");
  add("g1", "globex", "counter", "running", "");
  add("a2", "acme", "chat", "waiting", "");  // a2–a4 share a millisecond: their ids order them
  add("a4", "acme", "counter", "completed", "a1");
  add("a3", "acme", "counter", "completed", "a1");
  clock_.advance(std::chrono::seconds(1));
  add("g2", "globex", "chat", "waiting", "g1");
  add("a5", "acme", "counter", "running", "");
  const auto ids = [&](std::size_t limit, const run_filter& f, std::optional<run_cursor> before = std::nullopt) {
    std::vector<std::string> out;
    auto runs = s->list_runs(limit, before, f);
    EXPECT_TRUE(runs.ok()) << runs.err().message;
    if (runs.ok()) {
      for (const auto& r : *runs) out.push_back(r.run_id);
    }
    return out;
  };
  using v = std::vector<std::string>;
  EXPECT_EQ(ids(10, {.tenant = "acme"}), (v{"a5", "a4", "a3", "a2", "a1"}));
  EXPECT_EQ(ids(10, {.tenant = "globex"}), (v{"g2", "g1"}));
  EXPECT_EQ(ids(10, {.tenant = "initech"}), v{});
  EXPECT_EQ(ids(10, {.tenant = "acme", .agent = "counter", .status = "completed"}), (v{"a4", "a3"}));
  EXPECT_EQ(ids(10, {.parent_run = "a1"}), (v{"a4", "a3"}));
  EXPECT_EQ(ids(10, {.tenant = "acme", .top_level = true}), (v{"a5", "a2", "a1"}));
  EXPECT_EQ(ids(10, {.status = "waiting"}), (v{"g2", "a2"}));
  // Pages of two of acme's runs: no gap and no repeat, though three share a millisecond.
  v paged;
  std::optional<run_cursor> cursor;
  for (int page = 0; page < 5; ++page) {
    auto runs = s->list_runs(2, cursor, {.tenant = "acme"});
    ASSERT_TRUE(runs.ok());
    for (const auto& r : *runs) paged.push_back(r.run_id);
    if (runs->size() < 2) break;
    cursor = run_cursor{runs->back().created_ms, runs->back().run_id};
  }
  EXPECT_EQ(paged, (v{"a5", "a4", "a3", "a2", "a1"}));
  // A filter and a cursor together.
  const auto a4 = s->get_run("a4").value();
  EXPECT_EQ(ids(10, {.tenant = "acme", .agent = "counter"}, run_cursor{a4.created_ms, a4.run_id}), (v{"a3", "a1"}));
}

TEST_P(Conformance, KeepsGraphsByVersion) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v9", "g", "kind: Graph"}).ok());
  ASSERT_TRUE(s->put_graph({"v9", "g", "ignored: the first stays"}).ok());
  EXPECT_EQ(s->get_graph("v9")->source, "kind: Graph");
  EXPECT_FALSE(s->get_graph("v0").ok());
}

TEST_P(Conformance, DataSurvivesReopening) {
  {
    auto s = open();
    fill(*s, "run-1", 5);
    ASSERT_TRUE(s->set_status("run-1", "halted").ok());
  }
  auto s = open();
  EXPECT_EQ(s->get_run("run-1")->status, "halted");
  EXPECT_EQ(s->state_at("run-1", 4)->get("count"), 5);
}

TEST_P(Conformance, AForkStartsFromItsParentsStateAndRecordsItsParent) {
  auto s = open();
  fill(*s, "parent", 5);
  run_record fork = make_run("child");
  fork.parent_run = "parent";
  fork.parent_step = 2;
  ASSERT_TRUE(s->create_run(fork, *s->state_at("parent", 2), 2).ok());
  auto child = s->get_run("child");
  EXPECT_EQ(child->parent_run, "parent");
  EXPECT_EQ(*child->parent_step, 2);
  EXPECT_EQ(child->position(), 2);
  EXPECT_EQ(s->state_at("child", 2)->get("count"), 3);
  ASSERT_TRUE(s->append_step("child", step(3, 100), counted(100), "v1").ok());
  EXPECT_EQ(s->state_at("child", 3)->get("count"), 100);
  EXPECT_EQ(s->state_at("parent", 3)->get("count"), 4);  // the parent is unchanged
}

// ---- hostile rows ------------------------------------------------------------------------------

TEST_P(Conformance, ACorruptDeltaOrSnapshotIsReportedNotTrusted) {
  {
    auto s = open();
    fill(*s, "run-1", 3);
  }
  raw_exec("UPDATE steps SET delta = '{not json' WHERE sequence_id = 1");
  raw_exec("UPDATE steps SET delta = '[{\"op\":\"explode\",\"key\":\"count\"}]' WHERE sequence_id = 2");
  auto s = open();
  EXPECT_EQ(s->state_at("run-1", 0)->get("count"), 1);
  EXPECT_EQ(s->state_at("run-1", 1).err().code, store_errc::corrupt);
  EXPECT_EQ(s->state_at("run-1", 2).err().code, store_errc::corrupt);
  raw_exec("UPDATE snapshots SET state = '[1, 2]'");
  EXPECT_EQ(s->state_at("run-1", 0).err().code, store_errc::corrupt);
  raw_exec("DELETE FROM steps WHERE sequence_id = 0");
  raw_exec("UPDATE snapshots SET state = '{\"count\": 0}'");
  auto gap = s->state_at("run-1", 1);
  EXPECT_EQ(gap.err().code, store_errc::corrupt);
  EXPECT_NE(gap.err().message.find("missing step 0"), std::string::npos) << gap.err().message;
}

// ---- schema versions ---------------------------------------------------------------------------

TEST_P(Conformance, AnOlderSchemaIsMigratedForwardWithItsData) {
  ASSERT_NE(try_open({.create_schema_version = 1}).value(), nullptr);
  // A run as schema 1 stored it.
  raw_exec(
      "INSERT INTO graphs VALUES ('v1', 'counter', 'source', 1);"
      "INSERT INTO runs VALUES ('old', '', 'counter', 'v1', NULL, NULL, 'halted', 'increment', -1, 1, 1);"
      "INSERT INTO snapshots VALUES ('old', -1, '{\"count\":0}');"
      "INSERT INTO steps VALUES ('old', 0, 'increment', 'completed', 'null', '1', "
      "'[{\"op\":\"set\",\"key\":\"count\",\"value\":1}]', 'null', 1, 'increment', 'v1', 2);");
  auto s = open();
  ASSERT_NE(s, nullptr);
  auto old = s->get_run("old");
  ASSERT_TRUE(old.ok()) << old.err().message;
  EXPECT_EQ(old->status, "halted");
  EXPECT_FALSE(old->pinned);
  EXPECT_TRUE(old->owner.empty());
  EXPECT_EQ(s->state_at("old", 0)->get("count"), 1);
  // The new tables work on the migrated store.
  ASSERT_TRUE(s->acquire_lease("old", 1000).ok());
  ASSERT_TRUE(s->append_step("old", step(1, 2), counted(2), "v1").ok());
  EXPECT_TRUE(s->begin_effect({.key = "k", .run_id = "old", .sequence_id = 1, .kind = "tool:x"})->fresh);
  EXPECT_TRUE(old->tenant.empty());
  EXPECT_TRUE(s->append_audit(std::vector<audit_row>{{1, "{}", "00"}}).ok());
}

TEST_P(Conformance, ANewerSchemaIsRefusedAndLeftUnchanged) {
  ASSERT_NE(open(), nullptr);
  if (backend() == "sqlite") {
    raw_exec("PRAGMA user_version = 99");
  } else {
    raw_exec("UPDATE choir_meta SET value = '99' WHERE key = 'schema_version'");
  }
  auto refused = try_open();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, store_errc::newer_schema);
  EXPECT_NE(refused.err().message.find("newer"), std::string::npos);
  EXPECT_EQ(raw_int(backend() == "sqlite" ? "PRAGMA user_version"
                                          : "SELECT value::int FROM choir_meta WHERE key = 'schema_version'"),
            99);
}

TEST_P(Conformance, AnotherProgramsTablesAreRefusedAndLeftUnchanged) {
  if (backend() == "sqlite") {
    fs::create_directories(dir_);
    raw_exec("CREATE TABLE steps (x INTEGER); INSERT INTO steps VALUES (7)");
  } else {
    raw_exec("CREATE TABLE steps (x INTEGER); INSERT INTO steps VALUES (7)");
  }
  auto refused = try_open();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, store_errc::not_a_store);
  EXPECT_EQ(raw_int("SELECT x FROM steps"), 7);
}

// ---- single activation -------------------------------------------------------------------------

TEST_P(Conformance, OneOwnerAtATimeDrivesARun) {
  auto a = open({.owner = "node-a/1/x"});
  auto b = open({.owner = "node-b/2/y"});
  fill(*a, "run-1", 1);
  ASSERT_TRUE(a->acquire_lease("run-1", 30'000).ok());
  EXPECT_EQ(a->get_run("run-1")->owner, "node-a/1/x");

  auto taken = b->acquire_lease("run-1", 30'000);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.err().code, store_errc::run_leased);
  EXPECT_NE(taken.err().message.find("node-a/1/x"), std::string::npos) << taken.err().message;
  EXPECT_NE(taken.err().message.find("30 s"), std::string::npos) << taken.err().message;
  // Every other writer is refused too, and writes nothing.
  EXPECT_EQ(b->append_step("run-1", step(1, 2), counted(2), "v1").err().code, store_errc::run_leased);
  EXPECT_EQ(b->set_status("run-1", "halted").err().code, store_errc::run_leased);
  EXPECT_EQ(*a->get_run("run-1")->last_sequence, 0);
  EXPECT_EQ(a->get_run("run-1")->status, "running");
  // The owner goes on and renews.
  ASSERT_TRUE(a->append_step("run-1", step(1, 2), counted(2), "v1").ok());
  ASSERT_TRUE(a->renew_lease("run-1", 30'000).ok());
  // Released: the other may take it.
  ASSERT_TRUE(a->release_lease("run-1").ok());
  ASSERT_TRUE(b->acquire_lease("run-1", 30'000).ok());
  EXPECT_EQ(a->renew_lease("run-1", 30'000).err().code, store_errc::lease_lost);
  EXPECT_EQ(a->append_step("run-1", step(2, 3), counted(3), "v1").err().code, store_errc::run_leased);
  // A live lease is taken early only from the owner named as dead.
  EXPECT_EQ(a->acquire_lease("run-1", 30'000, "someone-else").err().code, store_errc::run_leased);
  ASSERT_TRUE(a->acquire_lease("run-1", 30'000, "node-b/2/y").ok());
  EXPECT_EQ(a->get_run("run-1")->owner, "node-a/1/x");
}

TEST_P(Conformance, AnExpiredLeaseCanBeTakenOverAndFencesItsFormerOwner) {
  auto a = open({.owner = "a"});
  auto b = open({.owner = "b"});
  fill(*a, "run-1", 1);
  ASSERT_TRUE(a->acquire_lease("run-1", 5'000).ok());
  clock_.advance(std::chrono::milliseconds(4'999));
  EXPECT_EQ(b->acquire_lease("run-1", 5'000).err().code, store_errc::run_leased);
  clock_.advance(std::chrono::milliseconds(1));  // a died: its lease ran out
  ASSERT_TRUE(b->acquire_lease("run-1", 5'000).ok());
  // a wakes up: its writes are refused, so two processes never both drive the run.
  EXPECT_EQ(a->append_step("run-1", step(1, 2), counted(2), "v1").err().code, store_errc::run_leased);
  EXPECT_EQ(a->renew_lease("run-1", 5'000).err().code, store_errc::lease_lost);
  ASSERT_TRUE(b->append_step("run-1", step(1, 2), counted(2), "v1").ok());
  EXPECT_EQ(a->acquire_lease("ghost", 5'000).err().code, store_errc::run_not_found);
  EXPECT_EQ(a->acquire_lease("run-1", 0).err().code, store_errc::invalid_argument);
}

TEST_P(Conformance, ConcurrentAcquirersGetTheLeaseExactlyOnce) {
  { fill(*open(), "run-1", 0); }
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      auto s = backend() == "sqlite" ? open_sqlite_store(where_, {.owner = "p" + std::to_string(i)}, clock_)
                                     : open_pg_store(where_, {.owner = "p" + std::to_string(i)}, clock_);
      if (s.ok() && (*s)->acquire_lease("run-1", 60'000).ok()) ++winners;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
}

// ---- the effect journal ------------------------------------------------------------------------

TEST_P(Conformance, TheEffectJournalKeepsIntentsAndOutcomesByKey) {
  auto s = open();
  fill(*s, "run-1", 1);
  effect_record intent{.key = "run-1/1/fs.write",
                       .run_id = "run-1",
                       .sequence_id = 1,
                       .kind = "tool:fs.write",
                       .request = {{"path", "a.txt"}}};
  auto first = s->begin_effect(intent);
  ASSERT_TRUE(first.ok()) << first.err().message;
  EXPECT_TRUE(first->fresh);
  EXPECT_EQ(first->record.status, "pending");
  auto again = s->begin_effect(intent);
  EXPECT_FALSE(again->fresh);
  ASSERT_TRUE(s->finish_effect(intent.key, "succeeded", {{"bytes", 12}}).ok());
  EXPECT_EQ(s->finish_effect(intent.key, "failed", nullptr).err().code, store_errc::invalid_argument);
  EXPECT_EQ(s->finish_effect("unknown", "failed", nullptr).err().code, store_errc::invalid_argument);
  EXPECT_EQ(s->finish_effect(intent.key, "maybe", nullptr).err().code, store_errc::invalid_argument);
  auto stored = s->get_effect(intent.key);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->status, "succeeded");
  EXPECT_EQ((*stored)->outcome, (value{{"bytes", 12}}));
  EXPECT_EQ((*stored)->request, (value{{"path", "a.txt"}}));
  EXPECT_FALSE(s->get_effect("nope")->has_value());
  EXPECT_EQ(s->begin_effect({.key = "k2", .run_id = "ghost"}).err().code, store_errc::run_not_found);
  EXPECT_EQ(s->begin_effect({.key = "", .run_id = "run-1"}).err().code, store_errc::invalid_argument);
  // Fenced like steps: a process that lost the run cannot journal (and so start) an effect.
  auto other = open({.owner = "someone-else"});
  ASSERT_TRUE(other->acquire_lease("run-1", 60'000).ok());
  EXPECT_EQ(s->begin_effect({.key = "k4", .run_id = "run-1"}).err().code, store_errc::run_leased);
  EXPECT_FALSE(s->get_effect("k4")->has_value());
  // Nor reuse or re-run one it knows: the journal is the live owner's.
  EXPECT_EQ(s->begin_effect(intent).err().code, store_errc::run_leased);
  EXPECT_EQ(perform_effect(*s, {.key = "k3", .run_id = "run-1", .idempotent = true},
                           []() -> result<value> { return value(1); })
                .err()
                .code,
            store_errc::run_leased);
  ASSERT_TRUE(other->release_lease("run-1").ok());
  ASSERT_TRUE(s->begin_effect({.key = "k3", .run_id = "run-1", .sequence_id = 2, .kind = "model:x"}).ok());
  auto listed = s->effects("run-1");
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, intent.key);
}

TEST_P(Conformance, AnEffectRunsAtMostOnceAndAnUnknownOutcomeIsNeverGuessed) {
  auto s = open();
  fill(*s, "run-1", 0);
  int runs = 0;
  auto effect = [&]() -> result<value> {
    ++runs;
    return value{{"sent", runs}};
  };
  effect_call call{.key = "run-1/0/mail", .run_id = "run-1", .sequence_id = 0, .kind = "tool:mail.send"};
  auto first = perform_effect(*s, call, effect);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->source, effect_source::ran);
  auto second = perform_effect(*s, call, effect);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->source, effect_source::recorded);
  EXPECT_EQ(second->outcome, (value{{"sent", 1}}));
  EXPECT_EQ(runs, 1);

  // The process died between the intent and the outcome:
  ASSERT_TRUE(s->begin_effect({.key = "run-1/0/pay", .run_id = "run-1", .kind = "tool:pay"}).ok());
  auto unknown = perform_effect(*s, {.key = "run-1/0/pay", .run_id = "run-1", .kind = "tool:pay"}, effect);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.err().code, store_errc::effect_outcome_unknown);
  EXPECT_EQ(runs, 1);
  ASSERT_TRUE(s->begin_effect({.key = "run-1/0/write", .run_id = "run-1", .kind = "tool:fs.write"}).ok());
  auto rerun = perform_effect(
      *s, {.key = "run-1/0/write", .run_id = "run-1", .kind = "tool:fs.write", .idempotent = true}, effect);
  ASSERT_TRUE(rerun.ok());
  EXPECT_EQ(rerun->source, effect_source::rerun);
  EXPECT_EQ(runs, 2);

  // A failure is journaled and returned again, without running again.
  auto failing = [&]() -> result<value> {
    ++runs;
    return make_error(core_errc::io_error, "disk full");
  };
  EXPECT_EQ(perform_effect(*s, {.key = "f", .run_id = "run-1"}, failing).err().code, core_errc::io_error);
  auto replayed = perform_effect(*s, {.key = "f", .run_id = "run-1"}, failing);
  EXPECT_EQ(replayed.err().code, store_errc::effect_failed);
  EXPECT_NE(replayed.err().message.find("disk full"), std::string::npos);
  EXPECT_EQ(runs, 3);

  // An idempotent effect whose failures pass is left pending on failure: the next attempt runs it.
  const effect_call passing{
      .key = "m", .run_id = "run-1", .kind = "model:x", .idempotent = true, .record_failure = false};
  EXPECT_EQ(perform_effect(*s, passing, failing).err().code, core_errc::io_error);
  EXPECT_EQ(s->get_effect("m")->value().status, "pending");
  auto later = perform_effect(*s, passing, effect);
  ASSERT_TRUE(later.ok()) << later.err().message;
  EXPECT_EQ(later->source, effect_source::rerun);
  EXPECT_EQ(s->get_effect("m")->value().status, "succeeded");
  EXPECT_EQ(runs, 5);
}

// ---- retention ---------------------------------------------------------------------------------

TEST_P(Conformance, RetentionDropsOldFinishedRunsAndKeepsTheRest) {
  auto s = open();
  auto finished = [&](const std::string& id, const std::string& partition, const std::string& status) {
    run_record r = make_run(id);
    r.partition_key = partition;
    fill(*s, id, 3, r);
    ASSERT_TRUE(s->set_status(id, status).ok());
    clock_.advance(std::chrono::hours(1));
  };
  finished("old-1", "p", "completed");
  finished("old-2", "p", "failed");
  finished("held", "p", "halted");  // halted runs can be resumed: never pruned
  finished("new-1", "p", "completed");
  finished("other", "q", "completed");
  ASSERT_TRUE(s->begin_effect({.key = "e", .run_id = "old-1"}).ok());
  // A fork of a run that is pruned keeps its own starting snapshot.
  run_record fork = make_run("fork");
  fork.parent_run = "old-1";
  fork.parent_step = 1;
  ASSERT_TRUE(s->create_run(fork, *s->state_at("old-1", 1), 1).ok());

  EXPECT_EQ(s->prune({}).err().code, store_errc::invalid_argument);
  // Both limits: only runs that are old *and* beyond the newest N go. "old-2" is the second newest
  // finished run of p and "old-1" the third, both older than 2 h; keeping 2 leaves "old-2".
  auto both = s->prune({.older_than_ms = 2 * 3600 * 1000 + 1, .keep_last = 2, .partition = std::string("p")});
  ASSERT_TRUE(both.ok()) << both.err().message;
  EXPECT_EQ(both->runs, 1u);
  EXPECT_EQ(s->get_run("old-1").err().code, store_errc::run_not_found);
  EXPECT_TRUE(s->get_run("old-2").ok());
  auto report = s->prune({.keep_last = 1, .partition = std::string("p")});
  ASSERT_TRUE(report.ok()) << report.err().message;
  EXPECT_EQ(report->runs, 1u);
  EXPECT_EQ(report->steps, 3u);
  EXPECT_GE(report->snapshots, 1u);
  EXPECT_EQ(s->get_run("old-1").err().code, store_errc::run_not_found);
  EXPECT_EQ(s->get_run("old-2").err().code, store_errc::run_not_found);
  EXPECT_TRUE(s->get_run("held").ok());
  EXPECT_TRUE(s->get_run("new-1").ok());
  EXPECT_TRUE(s->get_run("other").ok());
  EXPECT_EQ(s->state_at("fork", 1)->get("count"), 2);

  // By age: "other" finished 1 h before "new-1" and both are older than 30 minutes.
  auto by_age = s->prune({.older_than_ms = 30 * 60 * 1000});
  ASSERT_TRUE(by_age.ok());
  EXPECT_EQ(by_age->runs, 2u);
  EXPECT_TRUE(s->get_run("held").ok());
  EXPECT_TRUE(s->get_run("fork").ok());
}

// ---- group commit ------------------------------------------------------------------------------

TEST_P(Conformance, GroupCommitSharesTransactionsAndCommitsEveryStepOnce) {
  auto s = open();
  constexpr int runs = 16;
  constexpr int steps = 40;
  for (int r = 0; r < runs; ++r) fill(*s, "run-" + std::to_string(r), 0);
  {
    group_committer committer(*s, 64);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int r = 0; r < runs; ++r) {
      threads.emplace_back([&, r] {
        const std::string id = "run-" + std::to_string(r);
        for (int i = 0; i < steps; ++i) {
          if (!committer.commit(make_step_write(id, step(static_cast<std::uint64_t>(i), i + 1), counted(i + 1), "v1"))
                   .ok()) {
            ++failures;
          }
        }
        // A duplicate is refused through the committer too.
        if (committer.commit(make_step_write(id, step(0, 1), counted(1), "v1")).err().code !=
            store_errc::duplicate_step) {
          ++failures;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(committer.steps(), static_cast<std::size_t>(runs * (steps + 1)));
    EXPECT_LE(committer.transactions(), committer.steps());
  }
  for (int r = 0; r < runs; ++r) {
    const std::string id = "run-" + std::to_string(r);
    auto all = s->steps(id, 0, 1000);
    ASSERT_EQ(all->size(), static_cast<std::size_t>(steps));
    for (int i = 0; i < steps; ++i) EXPECT_EQ((*all)[static_cast<std::size_t>(i)].sequence_id, i);
    EXPECT_EQ(*s->get_run(id)->last_sequence, steps - 1);
    EXPECT_EQ(s->state_at(id, steps - 1)->get("count"), steps);
  }
}

// Thousands of batched steps of many runs, some steps committed alone, read back exactly while
// they are written (by this connection and another), across the moves of SQLite's step log into
// its packs; duplicates are refused wherever the first copy is; retention removes them all.
TEST_P(Conformance, BatchesOfManyRunsReadBackExactlyWhereverTheyAreKept) {
  auto s = open();
  auto reader = open();
  ASSERT_NE(reader, nullptr);
  constexpr int runs = 40;
  constexpr int rounds = 150;  // 6,000 steps: SQLite moves its step log at least once
  const auto id = [](int r) { return "run-" + std::to_string(r); };
  for (int r = 0; r < runs; ++r) fill(*s, id(r), 0);
  const auto check_run = [&](event_store& store, int r, int count) {
    const auto run = store.get_run(id(r));
    ASSERT_TRUE(run.ok()) << run.err().message;
    ASSERT_TRUE(run->last_sequence.has_value());
    EXPECT_EQ(*run->last_sequence, count - 1);
    const auto all = store.steps(id(r), 0, 100'000);
    ASSERT_TRUE(all.ok()) << all.err().message;
    ASSERT_EQ(all->size(), static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      const auto& e = (*all)[static_cast<std::size_t>(i)];
      ASSERT_EQ(e.sequence_id, i);
      EXPECT_EQ(e.result, i + 1);
      EXPECT_EQ(e.action, "increment");
    }
    const auto state = store.state_at(id(r), count - 1);
    ASSERT_TRUE(state.ok()) << state.err().message;
    EXPECT_EQ(state->get("count"), count);
  };
  for (int i = 0; i < rounds; ++i) {
    std::vector<step_write> batch;
    for (int r = 0; r < runs; ++r) {
      if (r == 0 && i % 10 == 0) continue;  // run-0 commits these steps alone, below
      batch.push_back(make_step_write(id(r), step(static_cast<std::uint64_t>(i), i + 1), counted(i + 1), "v1"));
    }
    if (i % 10 == 0) {
      auto alone = s->append_step(id(0), step(static_cast<std::uint64_t>(i), i + 1), counted(i + 1), "v1");
      ASSERT_TRUE(alone.ok()) << alone.err().message;
    }
    // A duplicate of a step committed in an earlier round rides along and is refused alone.
    if (i > 0)
      batch.push_back(make_step_write(id(i % runs), step(static_cast<std::uint64_t>(i - 1), i), counted(i), "v1"));
    const auto results = s->append_steps(batch);
    ASSERT_EQ(results.size(), batch.size());
    for (std::size_t k = 0; k + 1 < results.size(); ++k) ASSERT_TRUE(results[k].ok()) << results[k].err().message;
    if (i > 0) {
      EXPECT_EQ(results.back().err().code, store_errc::duplicate_step);
    }
    if (i % 25 == 24) {
      check_run(*reader, i % runs, i + 1);  // another connection sees every committed step
      check_run(*s, 0, i + 1);
    }
  }
  // Each step once, wherever it is kept: a step committed alone, an early one, the last one.
  for (const int seq : {0, 10, 1, rounds - 1}) {
    for (const int r : {0, 1, runs - 1}) {
      auto again = s->append_step(id(r), step(static_cast<std::uint64_t>(seq), seq + 1), counted(seq + 1), "v1");
      EXPECT_EQ(again.err().code, store_errc::duplicate_step) << "run " << r << " step " << seq;
      auto through_reader = reader->append_steps(
          std::vector{make_step_write(id(r), step(static_cast<std::uint64_t>(seq), seq + 1), counted(seq + 1), "v1"),
                      make_step_write(id(r), step(static_cast<std::uint64_t>(seq), seq + 1), counted(seq + 1), "v1")});
      EXPECT_EQ(through_reader[0].err().code, store_errc::duplicate_step);
      EXPECT_EQ(through_reader[1].err().code, store_errc::duplicate_step);
    }
  }
  for (int r = 0; r < runs; ++r) {
    check_run(*s, r, rounds);
    check_run(*reader, r, rounds);
  }
  // Pages of steps and the state in the middle of a run.
  const auto page = s->steps(id(7), 100, 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 10u);
  EXPECT_EQ(page->front().sequence_id, 100);
  EXPECT_EQ(page->back().sequence_id, 109);
  EXPECT_EQ(s->state_at(id(7), 77)->get("count"), 78);
  EXPECT_EQ(reader->state_at(id(0), 30)->get("count"), 31);
  // A step of a batch committed after all this is read back by both.
  const auto late =
      reader->append_steps(std::vector{make_step_write(id(3), step(rounds, rounds + 1), counted(rounds + 1), "v1"),
                                       make_step_write(id(4), step(rounds, rounds + 1), counted(rounds + 1), "v1")});
  ASSERT_TRUE(late[0].ok() && late[1].ok());
  EXPECT_EQ(*s->get_run(id(3))->last_sequence, rounds);
  EXPECT_EQ(s->state_at(id(4), rounds)->get("count"), rounds + 1);
  if (backend() == "sqlite") {
    EXPECT_GT(raw_int("SELECT count(*) FROM step_packs"), 0);  // the log moved
    EXPECT_GT(raw_int("SELECT count(*) FROM step_log WHERE batch > (SELECT moved_through FROM step_log_head)"), 0);
  }
  // Retention takes finished runs with every step, wherever kept.
  for (int r = 0; r < runs; ++r) ASSERT_TRUE(s->set_status(id(r), r < 10 ? "completed" : "running").ok());
  const auto report = s->prune({.keep_last = 0});
  ASSERT_TRUE(report.ok()) << report.err().message;
  EXPECT_EQ(report->runs, 10u);
  EXPECT_EQ(report->steps, static_cast<std::size_t>(10 * rounds + 2));  // with the two late steps
  EXPECT_EQ(s->get_run(id(0)).err().code, store_errc::run_not_found);
  EXPECT_EQ(reader->steps(id(5), 0, 10)->size(), 0u);
  check_run(*reader, 20, rounds);
  check_run(*s, 39, rounds);
}

// SQLite keeps batched steps in a step log (docs/event-log.md): a damaged log row is reported,
// never read as fewer steps.
TEST_P(Conformance, ADamagedStepLogIsReportedNotTrusted) {
  if (backend() != "sqlite") GTEST_SKIP() << "the step log is SQLite's";
  {
    auto s = open();
    fill(*s, "run-1", 0);
    fill(*s, "run-2", 0);
    const auto results = s->append_steps(std::vector{make_step_write("run-1", step(0, 1), counted(1), "v1"),
                                                     make_step_write("run-2", step(0, 1), counted(1), "v1")});
    ASSERT_TRUE(results[0].ok() && results[1].ok());
  }
  for (const char* damage : {"UPDATE step_log SET steps = '[[\"run-1\", 0'", "UPDATE step_log SET steps = '[[1, 2]]'",
                             "UPDATE step_log SET steps = '{}'"}) {
    raw_exec(damage);
    auto s = open();
    EXPECT_EQ(s->steps("run-1", 0, 10).err().code, store_errc::corrupt) << damage;
    EXPECT_EQ(s->get_run("run-2").err().code, store_errc::corrupt) << damage;
    const auto more = s->append_steps(std::vector{make_step_write("run-1", step(1, 2), counted(2), "v1"),
                                                  make_step_write("run-2", step(1, 2), counted(2), "v1")});
    EXPECT_EQ(more[0].err().code, store_errc::corrupt) << damage;
  }
  // A batch number at the end of the range is refused, not wrapped around.
  raw_exec("UPDATE step_log SET batch = 9223372036854775807, steps = '[]'");
  auto s = open();
  const auto more = s->append_steps(std::vector{make_step_write("run-1", step(1, 2), counted(2), "v1"),
                                                make_step_write("run-2", step(1, 2), counted(2), "v1")});
  EXPECT_EQ(more[0].err().code, store_errc::corrupt);
  EXPECT_NE(more[0].err().message.find("run out"), std::string::npos) << more[0].err().message;
}

// A batch is written over a free slot of the step log in place: in steady state it writes the
// pages whose bytes change — for a small batch, the one leaf page holding the slot's first bytes —
// and allocates none (docs/event-log.md, "The step log").
TEST_P(Conformance, ABatchIsWrittenOverAFreeSlotInPlace) {
  if (backend() != "sqlite") GTEST_SKIP() << "the step log is SQLite's";
  auto s = open();
  fill(*s, "a", 0);
  fill(*s, "b", 0);
  std::int64_t seq = 0;
  const auto batch = [&] {
    const auto results = s->append_steps(
        std::vector{make_step_write("a", step(static_cast<std::uint64_t>(seq), seq + 1), counted(seq + 1), "v1"),
                    make_step_write("b", step(static_cast<std::uint64_t>(seq), seq + 1), counted(seq + 1), "v1")});
    ++seq;
    return results[0].ok() && results[1].ok();
  };
  // Past the first move of the log (at 512 batches), every slot is free.
  for (int i = 0; i < 600; ++i) ASSERT_TRUE(batch());
  const auto wal_frames = [&](const char* mode) {
    sqlite3* db = nullptr;
    sqlite3_open(where_.c_str(), &db);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);  // reads the WAL's header
    int frames = -1;
    int done = -1;
    const int rc = sqlite3_wal_checkpoint_v2(
        db, nullptr, std::string(mode) == "TRUNCATE" ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE, &frames,
        &done);
    EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
    return frames;
  };
  const auto pages_before = raw_int("PRAGMA page_count");
  ASSERT_GE(wal_frames("TRUNCATE"), 0);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(batch());
  const int frames = wal_frames("PASSIVE");
  // One page per batch, and a snapshot page now and then; appending rows wrote 4 or 5.
  EXPECT_GT(frames, 0);
  EXPECT_LE(frames, 75) << "frames written by 50 batches";
  EXPECT_EQ(raw_int("PRAGMA page_count"), pages_before);
  EXPECT_EQ(s->state_at("b", seq - 1)->get("count"), seq);
}

// Schema 6 appended a `step_log` row per batch, with an empty row where the log last moved; schema
// 7 numbers the batches and writes them over free slots. The logged steps survive the migration,
// and the batches after it are read back with them, here and from a store opened afresh.
TEST_P(Conformance, StepsOfTheAppendedStepLogSurviveTheMigration) {
  if (backend() != "sqlite") GTEST_SKIP() << "the step log is SQLite's";
  ASSERT_NE(try_open({.create_schema_version = 6}).value(), nullptr);
  const auto packed = [](int run, int seq) {
    return "[\"run-" + std::to_string(run) + "\"," + std::to_string(seq) + ",\"increment\",\"completed\",null," +
           std::to_string(seq + 1) + ",[{\"op\":\"set\",\"key\":\"count\",\"value\":" + std::to_string(seq + 1) +
           "}],null,1,\"increment\",\"v1\",7]";
  };
  std::string sql = "INSERT INTO graphs VALUES ('v1', 'counter', 'source', 1);";
  for (int run = 1; run <= 2; ++run) {
    const std::string id = "run-" + std::to_string(run);
    sql +=
        "INSERT INTO runs(run_id, partition_key, agent, graph_version, status, start_after, created_ms, updated_ms) "
        "VALUES ('" +
        id +
        "', '', 'counter', 'v1', 'halted', -1, 1, 1);"
        "INSERT INTO snapshots VALUES ('" +
        id + "', -1, '{\"count\":0}');";
  }
  sql += "INSERT INTO step_log(id, steps) VALUES (41, '[]');";
  sql += "INSERT INTO step_log(id, steps) VALUES (42, '[" + packed(1, 0) + "," + packed(2, 0) + "]');";
  sql += "INSERT INTO step_log(id, steps) VALUES (43, '[" + packed(1, 1) + "," + packed(2, 1) + "]');";
  raw_exec(sql);
  {
    auto s = open();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(raw_int("PRAGMA user_version"), 7);
    EXPECT_EQ(raw_int("SELECT count(*) FROM step_log"), 2);  // the empty row is gone
    EXPECT_EQ(*s->get_run("run-1")->last_sequence, 1);
    EXPECT_EQ(s->state_at("run-2", 1)->get("count"), 2);
    EXPECT_EQ(s->append_step("run-1", step(1, 9), counted(9), "v1").err().code, store_errc::duplicate_step);
    for (int seq = 2; seq < 6; ++seq) {
      const auto results = s->append_steps(std::vector{
          make_step_write("run-1", step(static_cast<std::uint64_t>(seq), seq + 1), counted(seq + 1), "v1"),
          make_step_write("run-2", step(static_cast<std::uint64_t>(seq), seq + 1), counted(seq + 1), "v1")});
      ASSERT_TRUE(results[0].ok() && results[1].ok()) << results[0].err().message;
    }
  }
  auto s = open();
  for (const char* id : {"run-1", "run-2"}) {
    const auto steps = s->steps(id, 0, 100);
    ASSERT_TRUE(steps.ok()) << steps.err().message;
    ASSERT_EQ(steps->size(), 6u) << id;
    for (std::size_t i = 0; i < steps->size(); ++i) EXPECT_EQ((*steps)[i].sequence_id, static_cast<std::int64_t>(i));
    EXPECT_EQ(s->state_at(id, 5)->get("count"), 6);
  }
  // The new batches went into slots, numbered after the migrated ones.
  EXPECT_EQ(raw_int("SELECT count(*) FROM step_log WHERE slot = 1"), 4);
  EXPECT_EQ(raw_int("SELECT min(batch) FROM step_log WHERE slot = 1"), 44);
}

// Schema 4 kept batched steps in a `steps_tail` table; migrating moves them into `steps`.
TEST_P(Conformance, StepsOfTheOldTailSurviveTheMigration) {
  if (backend() != "sqlite") GTEST_SKIP() << "the steps tail was SQLite's";
  ASSERT_NE(try_open({.create_schema_version = 4}).value(), nullptr);
  raw_exec(
      "INSERT INTO graphs VALUES ('v1', 'counter', 'source', 1);"
      "INSERT INTO runs(run_id, partition_key, agent, graph_version, status, start_after, created_ms, updated_ms) "
      "VALUES ('run-1', '', 'counter', 'v1', 'halted', -1, 1, 1);"
      "INSERT INTO snapshots VALUES ('run-1', -1, '{\"count\":0}');"
      "INSERT INTO steps VALUES ('run-1', 0, 'increment', 'completed', 'null', '1', "
      "'[{\"op\":\"set\",\"key\":\"count\",\"value\":1}]', 'null', 1, 'increment', 'v1', 2);"
      "INSERT INTO steps_tail VALUES ('run-1', 1, 'increment', 'completed', 'null', '2', "
      "'[{\"op\":\"set\",\"key\":\"count\",\"value\":2}]', 'null', 1, 'increment', 'v1', 3);"
      "INSERT INTO steps_tail VALUES ('run-1', 2, 'increment', 'completed', 'null', '3', "
      "'[{\"op\":\"set\",\"key\":\"count\",\"value\":3}]', 'null', 1, 'increment', 'v1', 5)");
  auto s = open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(raw_int("PRAGMA user_version"), 7);  // migrated up to the newest
  EXPECT_EQ(s->steps("run-1", 0, 10)->size(), 3u);
  EXPECT_EQ(*s->get_run("run-1")->last_sequence, 2);
  EXPECT_EQ(s->state_at("run-1", 2)->get("count"), 3);
  EXPECT_EQ(s->append_step("run-1", step(2, 3), counted(3), "v1").err().code, store_errc::duplicate_step);
}

TEST_P(Conformance, ThePersisterCommitsAnApplicationsSteps) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v1", "counter", "source"}).ok());
  ASSERT_TRUE(s->create_run(make_run("run-1"), counted(0), -1).ok());
  auto inc = graph::action_builder("increment").reads({"count"}).writes({"count"}).run([](const graph::state_view& v) {
    graph::action_output out;
    out.changes.set("count", v.at("count").get<int>() + 1);
    return result<graph::action_output>(std::move(out));
  });
  auto app = *graph::application_builder()
                  .with_action(inc)
                  .with_transition("increment", "increment", graph::condition::expr("count < 5"))
                  .with_entrypoint("increment")
                  .with_state(value{{"count", 0}})
                  .with_persister(std::make_shared<run_persister>(*s, "run-1", "v1"))
                  .build();
  ASSERT_TRUE(app->run().ok());
  EXPECT_EQ(*s->get_run("run-1")->last_sequence, 4);
  EXPECT_EQ(s->get_run("run-1")->next_action, "");
  EXPECT_EQ(s->state_at("run-1", 4)->get("count"), 5);
}

}  // namespace
}  // namespace choir::store

namespace choir::store {
namespace {

// ---- the audit log and documents ---------------------------------------------------------------

TEST_P(Conformance, TheAuditLogAppendsInOrderWithoutGaps) {
  auto s = open();
  EXPECT_FALSE(s->last_audit()->has_value());
  std::vector<audit_row> first{{1, R"({"kind":"a"})", "aa"}, {2, R"({"kind":"b","q":"\"x\\\\"})", "bb"}};
  ASSERT_TRUE(s->append_audit(first).ok());
  // Not the next sequence number: nothing of the batch is written.
  auto gap = s->append_audit(std::vector<audit_row>{{3, "{}", "cc"}, {5, "{}", "ee"}});
  EXPECT_EQ(gap.err().code, store_errc::conflict);
  auto again = s->append_audit(std::vector<audit_row>{{2, "{}", "xx"}});
  EXPECT_EQ(again.err().code, store_errc::conflict);
  ASSERT_TRUE(s->append_audit(std::vector<audit_row>{{3, "{}", "cc"}}).ok());
  auto last = s->last_audit();
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ((*last)->seq, 3);
  EXPECT_EQ((*last)->mac, "cc");
  std::vector<audit_row> seen;
  ASSERT_TRUE(s->scan_audit(2, [&](const audit_view& r) {
                 seen.push_back({r.seq, std::string(r.entry), std::string(r.mac)});
                 return true;
               }).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].entry, first[1].entry);  // stored byte for byte
  EXPECT_EQ(seen[1].seq, 3);
  int visited = 0;
  ASSERT_TRUE(s->scan_audit(1, [&](const audit_view&) { return ++visited < 2; }).ok());
  EXPECT_EQ(visited, 2);
  // Backwards: newest first, from before a sequence number or from the end.
  std::vector<std::int64_t> back;
  ASSERT_TRUE(s->scan_audit_back(0, [&](const audit_view& r) {
                 back.push_back(r.seq);
                 return true;
               }).ok());
  EXPECT_EQ(back, (std::vector<std::int64_t>{3, 2, 1}));
  back.clear();
  ASSERT_TRUE(s->scan_audit_back(3, [&](const audit_view& r) {
                 back.push_back(r.seq);
                 if (r.seq == 2) {
                   EXPECT_EQ(std::string(r.entry), first[1].entry);
                 }
                 return r.seq > 2;
               }).ok());
  EXPECT_EQ(back, (std::vector<std::int64_t>{2}));
}

TEST_P(Conformance, TheAuditLogRefusesChangesThroughSql) {
  auto s = open();
  ASSERT_TRUE(s->append_audit(std::vector<audit_row>{{1, "{}", "aa"}}).ok());
  s.reset();
  for (const char* sql : {"UPDATE audit SET mac = 'bb'", "DELETE FROM audit"}) {
    if (backend() == "sqlite") {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open(where_.c_str(), &db), SQLITE_OK);
      EXPECT_NE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
      sqlite3_close(db);
    } else {
      PGconn* conn = PQconnectdb(where_.c_str());
      PGresult* r = PQexec(conn, sql);
      EXPECT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR) << sql;
      PQclear(r);
      PQfinish(conn);
    }
  }
  EXPECT_EQ(raw_int("SELECT count(*) FROM audit"), 1);
}

TEST_P(Conformance, ConcurrentAuditAppendersNeverShareASequenceNumber) {
  { ASSERT_NE(open(), nullptr); }
  constexpr int rounds = 30;
  std::atomic<int> written{0};
  auto writer = [&](const std::string& owner) {
    auto s = open({.owner = owner});
    for (int i = 0; i < rounds; ++i) {
      for (;;) {
        auto last = s->last_audit();
        ASSERT_TRUE(last.ok());
        const std::int64_t next = last->has_value() ? (*last)->seq + 1 : 1;
        auto r = s->append_audit(std::vector<audit_row>{{next, "{}", owner}});
        if (r.ok()) break;
        ASSERT_EQ(r.err().code, store_errc::conflict) << r.err().message;
      }
      ++written;
    }
  };
  std::thread a(writer, "a");
  std::thread b(writer, "b");
  a.join();
  b.join();
  EXPECT_EQ(written.load(), 2 * rounds);
  EXPECT_EQ(raw_int("SELECT count(*) FROM audit"), 2 * rounds);
  EXPECT_EQ(raw_int("SELECT max(seq) FROM audit"), 2 * rounds);
}

TEST_P(Conformance, DocumentsChangeOnlyFromTheVersionTheWriterSaw) {
  auto s = open();
  EXPECT_FALSE(s->get_document("policy")->has_value());
  EXPECT_EQ(s->put_document("policy", "v1 body", 1).err().code, store_errc::conflict);
  EXPECT_EQ(*s->put_document("policy", "v1 body", 0), 1);
  EXPECT_EQ(s->put_document("policy", "again", 0).err().code, store_errc::conflict);
  EXPECT_EQ(*s->put_document("policy", "v2 body", 1), 2);
  EXPECT_EQ(s->put_document("policy", "stale", 1).err().code, store_errc::conflict);
  auto got = s->get_document("policy");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->body, "v2 body");
  EXPECT_EQ((*got)->version, 2);
  EXPECT_EQ((*got)->updated_ms, 1'700'000'000'000);
}

TEST_P(Conformance, AConsentRequestIsRaisedOnceAndAnsweredOnce) {
  auto s = open();
  consent_record r;
  r.id = "c-1";
  r.key = "run-1/3/agent.call/researcher";
  r.tenant = "acme";
  r.user = "ada";
  r.agent = "orchestrator";
  r.run_id = "run-1";
  r.step = 3;
  r.capability = "agent.call";
  r.argument = "researcher";
  r.arguments = {{"agent", "researcher"}};
  r.created_ms = 100;
  r.expires_ms = 200;
  auto raised = s->raise_consent(r);
  ASSERT_TRUE(raised.ok()) << raised.err().message;
  EXPECT_EQ(raised->status, "pending");
  // The same call again (its step ran again): the first request stands, with its id.
  r.id = "c-2";
  EXPECT_EQ(s->raise_consent(r)->id, "c-1");
  EXPECT_EQ((*s->get_consent("c-1"))->key, r.key);
  EXPECT_EQ((*s->get_consent(r.key))->id, "c-1");  // found by key too
  EXPECT_FALSE(s->get_consent("nope")->has_value());
  // Another tenant's list never shows it.
  EXPECT_EQ(s->list_consents("acme", "pending", 10)->size(), 1u);
  EXPECT_TRUE(s->list_consents("globex", "", 10)->empty());
  auto answered = s->answer_consent("c-1", "approved", "acme/bob", "looks fine");
  ASSERT_TRUE(answered.ok()) << answered.err().message;
  EXPECT_EQ(answered->status, "approved");
  EXPECT_EQ(answered->answered_by, "acme/bob");
  EXPECT_EQ(answered->answered_ms, 1'700'000'000'000);
  EXPECT_EQ(s->answer_consent("c-1", "denied", "acme/eve", "").err().code, store_errc::conflict);
  EXPECT_EQ(s->answer_consent("c-9", "denied", "acme/eve", "").err().code, store_errc::invalid_argument);
  EXPECT_EQ(s->answer_consent("c-1", "maybe", "acme/eve", "").err().code, store_errc::invalid_argument);
  EXPECT_TRUE(s->list_consents("acme", "pending", 10)->empty());
  EXPECT_EQ((*s->list_consents("acme", "", 10))[0].to_json()["reason"], "looks fine");
}

}  // namespace
}  // namespace choir::store
