#include "choir/store/event_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

namespace choir::store {
namespace {

namespace fs = std::filesystem;

class SqliteStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("choir-store-" + std::to_string(::getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    path_ = (dir_ / "sub" / "choir.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<event_store> open(store_options options = {}) {
    auto s = open_sqlite_store(path_, options, clock_);
    EXPECT_TRUE(s.ok()) << s.err().message;
    return s.ok() ? std::move(s).value() : nullptr;
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

  /// Creates run `id` and appends `n` steps that count 1..n.
  void fill(event_store& s, const std::string& id, int n) {
    ASSERT_TRUE(s.put_graph({"v1", "counter", "source"}).ok());
    ASSERT_TRUE(s.create_run(make_run(id), *graph::state::from_json({{"count", 0}}), -1).ok());
    graph::state st = *graph::state::from_json({{"count", 0}});
    for (int i = 0; i < n; ++i) {
      const auto rec = step(static_cast<std::uint64_t>(i), i + 1);
      st = *st.apply(rec.delta);
      auto appended = s.append_step(id, rec, st, "v1");
      ASSERT_TRUE(appended.ok()) << appended.err().message;
    }
  }

  manual_clock clock_{1'700'000'000'000};
  fs::path dir_;
  std::string path_;
};

TEST_F(SqliteStore, CreatesItsFileAndFolderOnFirstOpen) {
  auto s = open();
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(fs::exists(path_));
}

TEST_F(SqliteStore, ManyProcessesMayCreateTheSameStoreAtOnce) {
  fs::create_directories(fs::path(path_).parent_path());
  std::vector<std::thread> openers;
  std::atomic<int> opened{0};
  for (int i = 0; i < 6; ++i) {
    openers.emplace_back([&] {
      auto s = open_sqlite_store(path_);  // one connection each, as separate processes have
      if (s.ok())
        ++opened;
      else
        ADD_FAILURE() << s.err().message;
    });
  }
  for (auto& t : openers) t.join();
  EXPECT_EQ(opened.load(), 6);
}

TEST_F(SqliteStore, RecordsRunsAndTheirSteps) {
  auto s = open();
  fill(*s, "run-1", 3);
  auto run = s->get_run("run-1");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->agent, "counter");
  EXPECT_EQ(*run->last_sequence, 2);
  EXPECT_EQ(run->next_action, "increment");
  EXPECT_EQ(run->created_ms, 1'700'000'000'000);
  auto steps = s->steps("run-1", 1, 10);
  ASSERT_TRUE(steps.ok());
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].sequence_id, 1);
  EXPECT_EQ((*steps)[0].delta, value::parse(R"([{"op":"set","key":"count","value":2}])"));
  EXPECT_EQ((*steps)[1].result, 3);
}

TEST_F(SqliteStore, AStepCommitsExactlyOnce) {
  auto s = open();
  fill(*s, "run-1", 2);
  auto again = s->append_step("run-1", step(1, 99), graph::state(), "v1");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.err().code, store_errc::duplicate_step);
  EXPECT_EQ((*s->steps("run-1", 1, 1))[0].result, 2);  // the first commit stands
}

TEST_F(SqliteStore, StateAtAnyStepComesFromTheNearestSnapshotAndDeltas) {
  auto s = open({.snapshot_interval = 4});
  fill(*s, "run-1", 10);
  for (std::int64_t seq = -1; seq < 10; ++seq) {
    auto st = s->state_at("run-1", seq);
    ASSERT_TRUE(st.ok()) << st.err().message;
    EXPECT_EQ(st->get("count"), seq + 1) << "at " << seq;
  }
  EXPECT_EQ(s->state_at("run-1", 10).err().code, store_errc::step_not_found);
  EXPECT_EQ(s->state_at("nope", 0).err().code, store_errc::run_not_found);
}

TEST_F(SqliteStore, SnapshotsOfAGrowingStateStayFewSoStorageIsLinear) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v1", "chat", "source"}).ok());
  ASSERT_TRUE(s->create_run(make_run("chat"), graph::state(), -1).ok());
  graph::state st;
  const value message = {{"role", "user"}, {"text", std::string(200, 'm')}};
  for (int i = 0; i < 2000; ++i) {
    graph::step_record rec;
    rec.sequence_id = static_cast<std::uint64_t>(i);
    rec.action = "chat";
    rec.delta.append("history", message);
    st = *st.apply(rec.delta);
    ASSERT_TRUE(s->append_step("chat", rec, st, "v1").ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* count = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*), sum(length(state)) FROM snapshots", -1, &count, nullptr);
  ASSERT_EQ(sqlite3_step(count), SQLITE_ROW);
  const auto snapshots = sqlite3_column_int64(count, 0);
  const auto snapshot_bytes = sqlite3_column_int64(count, 1);
  sqlite3_finalize(count);
  sqlite3_close(db);
  // Every 100 steps would be 20 snapshots averaging 1,000 messages: ~4.4 MB. Sized by the
  // deltas since the last one, they add at most about as much as the deltas themselves (~0.45 MB).
  EXPECT_LT(snapshots, 15);
  EXPECT_LT(snapshot_bytes, 1'000'000);
  EXPECT_EQ(s->state_at("chat", 1999)->get("history").size(), 2000u);
  EXPECT_EQ(s->state_at("chat", 777)->get("history").size(), 778u);
}

TEST_F(SqliteStore, StepsOfAnUnknownRunAreRefused) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v1", "counter", "source"}).ok());
  EXPECT_EQ(s->append_step("ghost", step(0, 1), graph::state(), "v1").err().code, store_errc::run_not_found);
  EXPECT_TRUE(s->steps("ghost", 0, 10)->empty());
  EXPECT_EQ(s->get_run("ghost").err().code, store_errc::run_not_found);
}

TEST_F(SqliteStore, ListsRunsNewestFirst) {
  auto s = open();
  fill(*s, "a", 1);
  clock_.advance(std::chrono::seconds(1));
  ASSERT_TRUE(s->create_run(make_run("b"), graph::state(), -1).ok());
  auto runs = s->list_runs(10);
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].run_id, "b");
  EXPECT_EQ(s->create_run(make_run("b"), graph::state(), -1).err().code, store_errc::duplicate_run);
}

TEST_F(SqliteStore, KeepsGraphsByVersion) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v9", "g", "kind: Graph"}).ok());
  ASSERT_TRUE(s->put_graph({"v9", "g", "ignored: the first stays"}).ok());
  EXPECT_EQ(s->get_graph("v9")->source, "kind: Graph");
  EXPECT_FALSE(s->get_graph("v0").ok());
}

TEST_F(SqliteStore, DataSurvivesReopening) {
  {
    auto s = open();
    fill(*s, "run-1", 5);
    ASSERT_TRUE(s->set_status("run-1", "halted").ok());
  }
  auto s = open();
  EXPECT_EQ(s->get_run("run-1")->status, "halted");
  EXPECT_EQ(s->state_at("run-1", 4)->get("count"), 5);
}

TEST_F(SqliteStore, RefusesAFileThatIsNotAStoreAndLeavesItUnchanged) {
  fs::create_directories(fs::path(path_).parent_path());
  { std::ofstream(path_) << "hello, I am a text file\n"; }
  auto s = open_sqlite_store(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.err().code, store_errc::not_a_store);
  std::ifstream in(path_);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "hello, I am a text file");
}

TEST_F(SqliteStore, RefusesAnotherProgramsDatabase) {
  fs::create_directories(fs::path(path_).parent_path());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = open_sqlite_store(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.err().code, store_errc::not_a_store);
}

TEST_F(SqliteStore, RefusesAStoreFromANewerVersion) {
  { auto s = open(); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = open_sqlite_store(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.err().code, store_errc::newer_schema);
  EXPECT_NE(s.err().message.find("schema 99"), std::string::npos) << s.err().message;
}

TEST_F(SqliteStore, ACorruptDeltaIsReportedNotTrusted) {
  {
    auto s = open();
    fill(*s, "run-1", 2);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE steps SET delta = '{not json' WHERE sequence_id = 1", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = open();
  auto st = s->state_at("run-1", 1);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().code, store_errc::corrupt);
}

TEST_F(SqliteStore, ThePersisterCommitsAnApplicationsSteps) {
  auto s = open();
  ASSERT_TRUE(s->put_graph({"v1", "counter", "source"}).ok());
  ASSERT_TRUE(s->create_run(make_run("run-1"), *graph::state::from_json({{"count", 0}}), -1).ok());
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
