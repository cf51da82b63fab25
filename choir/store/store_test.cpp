#include "choir/store/event_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
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

TEST_F(SqliteStore, RefusesAFileThatIsNotAStoreAndLeavesItUnchanged) {
  fs::create_directories(fs::path(path_).parent_path());
  { std::ofstream(path_) << "hello, I am a text file\n"; }
  auto s = open_sqlite_store(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.err().code, store_errc::not_a_store);
  EXPECT_NE(s.err().message.find("not a SQLite database"), std::string::npos) << s.err().message;
  EXPECT_FALSE(fs::exists(path_ + "-wal"));
  EXPECT_FALSE(fs::exists(path_ + "-journal"));
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

TEST(Owners, AnOwnerIsKnownDeadOnlyIfItIsAGoneProcessOfThisHost) {
  const std::string me = default_owner();
  EXPECT_FALSE(owner_known_dead(me));
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  const std::string host = me.substr(0, me.find('/'));
  EXPECT_TRUE(owner_known_dead(host + "/" + std::to_string(child) + "/abc"));
  EXPECT_FALSE(owner_known_dead("another-host/" + std::to_string(child) + "/abc"));
  EXPECT_FALSE(owner_known_dead(host + "/1/abc"));  // init runs
  EXPECT_FALSE(owner_known_dead(host + "/not-a-pid/abc"));
  EXPECT_FALSE(owner_known_dead("owner-a"));
  EXPECT_FALSE(owner_known_dead(""));
}

}  // namespace
}  // namespace choir::store

namespace choir::store {
namespace {

class LeaseKeeper : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("choir-lease-keeper-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  manual_clock clock_{1'700'000'000'000};
  fs::path dir_;
};

/// The persisters renew a run's lease once a third of it has passed (in real time), not before.
TEST_F(LeaseKeeper, RenewsOnceAThirdOfTheLeaseHasPassed) {
  auto s = open_sqlite_store((dir_ / "choir.db").string(), {}, clock_);
  ASSERT_TRUE(s.ok()) << s.err().message;
  ASSERT_TRUE((*s)->put_graph({"v", "x", "(test)"}).ok());
  run_record r;
  r.run_id = "run-1";
  r.agent = "x";
  r.graph_version = "v";
  r.status = "running";
  ASSERT_TRUE((*s)->create_run(r, *graph::state::from_json({{"n", 0}}), -1).ok());
  ASSERT_TRUE((*s)->acquire_lease("run-1", 3'000).ok());
  const auto expires = [&] { return (*s)->get_run("run-1")->lease_expires_ms; };
  const auto first = expires();
  lease_keeper keeper("run-1", 3'000);
  clock_.advance(std::chrono::milliseconds(500));  // the store's clock, which dates the lease
  ASSERT_TRUE(keeper.renew_if_due(**s).ok());
  EXPECT_EQ(expires(), first) << "renewed before a third of the lease passed";
  std::this_thread::sleep_for(std::chrono::milliseconds(1'050));
  ASSERT_TRUE(keeper.renew_if_due(**s).ok());
  EXPECT_EQ(expires(), first + 500) << "not renewed after a third of the lease";
  lease_keeper none("run-1", 0);
  clock_.advance(std::chrono::milliseconds(500));
  ASSERT_TRUE(none.renew_if_due(**s).ok());
  EXPECT_EQ(expires(), first + 500) << "a keeper without a lease renews nothing";
}

}  // namespace
}  // namespace choir::store
