// The crash test: a run of a few thousand steps is killed with SIGKILL about 30 times — at random
// moments and at injected points inside a step's commit — and resumed after each kill. The final
// state must equal that of an uninterrupted run, sequence ids must have no gap and no duplicate, and
// SQLite's integrity check must pass. Fixed seed; the test reaps every child it starts.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "choir/store/pg_test_support.hpp"

namespace {

namespace fs = std::filesystem;

std::string capture(const std::string& args) {
  const std::string command = std::string(CHOIR_BINARY) + " " + args + " 2>/dev/null";
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  pclose(pipe);
  return out;
}

/// Starts `choir args…` with its output discarded and, if `fault` is set, CHOIR_FAULT_KILL.
pid_t spawn(const std::vector<std::string>& args, const std::string& fault) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  if (!fault.empty()) setenv("CHOIR_FAULT_KILL", fault.c_str(), 1);
  std::FILE* null = std::fopen("/dev/null", "w");
  if (null != nullptr) {
    dup2(fileno(null), 1);
    dup2(fileno(null), 2);
  }
  std::vector<char*> argv;
  std::string binary = CHOIR_BINARY;
  argv.push_back(binary.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(binary.c_str(), argv.data());
  _exit(127);
}

/// Runs the counter example to `limit` on `store` (a SQLite path or a PostgreSQL connection string),
/// killing it `wanted_kills` times — after random delays and at injected points inside a step's
/// commit — and resuming it after each kill. Then checks the final state and that sequence ids
/// have no gap and no duplicate. Returns the run id.
std::string kill_and_resume(const std::string& store, int limit, int wanted_kills) {
  const std::string counter = std::string(CHOIR_SOURCE_DIR) + "/examples/counter.yaml";
  const std::string quoted = "\"" + store + "\"";
  const std::array<const char*, 4> points = {"step.begin", "step.inserted", "step.snapshot", "step.committed"};
  const std::size_t steps = 2 * static_cast<std::size_t>(limit) + 2;  // start, limit × (increment, check), done

  // Deny by default: the counter runs under the examples' policy.
  capture("policy apply " + std::string(CHOIR_SOURCE_DIR) + "/examples/policy.yaml --store " + quoted);
  std::mt19937 rng(20261128);
  std::string run_id;
  int kills = 0;
  int injected = 0;
  bool finished = false;
  for (int attempt = 0; attempt < 400 && !finished; ++attempt) {
    std::vector<std::string> args;
    if (run_id.empty()) {
      args = {"run", counter, "--input", "n=" + std::to_string(limit), "--store", store, "--max-steps", "0"};
    } else {
      args = {"runs", "resume", run_id, "--store", store, "--max-steps", "0"};
    }
    const bool killing = kills < wanted_kills;
    std::string fault;
    if (killing && attempt % 3 != 0) {
      // An injected kill inside a commit (two attempts in three, so that a fast build still gets
      // its kills in before the run ends); snapshots are rarer, so they come sooner.
      const char* point = points[static_cast<std::size_t>(injected++) % points.size()];
      const int nth =
          std::string(point) == "step.snapshot" ? 1 + static_cast<int>(rng() % 3) : 1 + static_cast<int>(rng() % 300);
      fault = std::string(point) + ":" + std::to_string(nth);
    }
    const pid_t pid = spawn(args, fault);
    EXPECT_GT(pid, 0);
    if (pid <= 0) return run_id;
    if (killing && fault.empty()) {
      // Early enough that a fast build has not finished the run yet; some land before its first
      // step, whose inputs must then survive.
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 40));
      kill(pid, SIGKILL);
    }
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), 0) << "attempt " << attempt;
      if (WEXITSTATUS(status) != 0) return run_id;
      finished = true;
    } else {
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "attempt " << attempt;
      ++kills;
    }
    if (run_id.empty()) {
      const std::string listed = capture("runs list --json --store " + quoted);
      if (!listed.empty()) run_id = nlohmann::json::parse(listed.substr(0, listed.find('\n')))["run_id"];
    }
  }
  EXPECT_TRUE(finished);
  EXPECT_GE(kills, wanted_kills);
  std::printf("%d kills (%d at injected points inside a commit)\n", kills, injected);

  const auto state = nlohmann::json::parse(capture("runs state " + run_id + " --json --store " + quoted));
  const std::string n = std::to_string(limit);
  EXPECT_EQ(state, nlohmann::json::parse(R"({"count":)" + n + R"(,"limit":)" + n + R"(,"message":"counted to )" + n +
                                         R"("})"));
  const auto shown = nlohmann::json::parse(capture("runs show " + run_id + " --json --limit 100000 --store " + quoted));
  EXPECT_EQ(shown["steps"].size(), steps);
  for (std::size_t i = 0; i < shown["steps"].size(); ++i) {
    if (shown["steps"][i]["sequence_id"] != i) {
      ADD_FAILURE() << "a gap or a duplicate at " << i;
      break;
    }
  }
  EXPECT_EQ(shown["status"], "completed");
  return run_id;
}

TEST(Crash, AKilledRunResumesToTheStateOfAnUninterruptedRun) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("choir-crash-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string store = (dir / "choir.db").string();
  kill_and_resume(store, 5000, 30);  // 10,002 steps

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(store.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* check = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &check, nullptr);
  ASSERT_EQ(sqlite3_step(check), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(check, 0)), "ok");
  sqlite3_finalize(check);
  sqlite3_close(db);
  fs::remove_all(dir);
}

TEST(Crash, AKilledRunResumesOnPostgreSQLToo) {
  namespace pg = choir::store::test_support;
  const std::string db = pg::test_pg();
  if (db.empty()) {
    if (pg::pg_required()) FAIL() << "CHOIR_REQUIRE_PG=1 but CHOIR_TEST_PG is unset";
    GTEST_SKIP() << "set CHOIR_TEST_PG to run the PostgreSQL case";
  }
  const std::string schema = "crash_" + std::to_string(getpid());
  const std::string conninfo = pg::fresh_pg_schema(db, schema);
  ASSERT_FALSE(conninfo.empty());
  kill_and_resume(conninfo, 5000, 20);  // 10,002 steps
  if (!::testing::Test::HasFailure()) pg::drop_pg_schema(db, schema);
}

/// A parent that fans out to 40 child runs (4 steps each, 4 at a time) is killed again and again
/// in the middle of the fan-out — at injected commits of child steps and at random moments — and
/// resumed after each kill. Every child must run exactly once to completion: 4 steps with no gap
/// or duplicate, and the parent's total must be that of an uninterrupted run.
void kill_fanout_and_resume(const std::string& store, const fs::path& dir) {
  std::string parts;
  long expected_total = 0;
  for (int i = 1; i <= 40; ++i) {
    parts += (i > 1 ? ", " : "") + std::to_string(i);
    expected_total += static_cast<long>(i) * i;
  }
  const fs::path graph = dir / "fanout.yaml";
  {
    std::FILE* f = std::fopen(graph.c_str(), "w");
    ASSERT_NE(f, nullptr);
    const std::string text = R"(apiVersion: agentos/v0.2
kind: AgentContract
name: fanout
class: {latency: DT}
capabilities: []
---
apiVersion: agentos/v0.2
kind: Graph
name: fanout
entrypoint: work
state: {parts: [)" + parts + R"(]}
actions:
  work:
    type: map
    over: parts
    as: part
    collect: result
    into: total
    reduce: sum
    max_concurrency: 4
    graph:
      entrypoint: square
      state: {result: 0, rounds: 0}
      actions:
        square: {type: set, update: {result: part * part}}
        polish: {type: set, update: {rounds: rounds + 1}}
      transitions:
        - {from: square, to: polish}
        - {from: polish, to: polish, when: rounds < 3}
  report: {type: pass}
transitions:
  - {from: work, to: report}
)";
    std::fputs(text.c_str(), f);
    std::fclose(f);
  }
  const std::string quoted = "\"" + store + "\"";
  capture("policy apply " + std::string(CHOIR_SOURCE_DIR) + "/examples/policy.yaml --store " + quoted);
  std::mt19937 rng(20261128);
  std::string run_id;
  int kills = 0;
  bool finished = false;
  for (int attempt = 0; attempt < 60 && !finished; ++attempt) {
    std::vector<std::string> args;
    if (run_id.empty()) {
      args = {"run", graph.string(), "--store", store};
    } else {
      args = {"runs", "resume", run_id, "--store", store};
    }
    const bool killing = kills < 8;
    std::string fault;
    if (killing && attempt % 3 != 0) fault = "step.committed:" + std::to_string(2 + rng() % 12);
    const pid_t pid = spawn(args, fault);
    ASSERT_GT(pid, 0);
    if (killing && fault.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 40));
      kill(pid, SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) {
      ASSERT_EQ(WEXITSTATUS(status), 0) << "attempt " << attempt;
      finished = true;
    } else {
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "attempt " << attempt;
      ++kills;
    }
    if (run_id.empty()) {
      std::istringstream listed(capture("runs list --json --limit 1000 --store " + quoted));
      for (std::string line; std::getline(listed, line);) {
        const auto run = nlohmann::json::parse(line);
        if (run["parent_run"].is_null()) run_id = run["run_id"];
      }
    }
  }
  ASSERT_TRUE(finished);
  std::printf("fan-out: %d kills\n", kills);
  EXPECT_GE(kills, 4);

  const auto state = nlohmann::json::parse(capture("runs state " + run_id + " --json --store " + quoted));
  EXPECT_EQ(state["total"], expected_total);
  std::istringstream listed(capture("runs list --json --limit 1000 --store " + quoted));
  int children = 0;
  for (std::string line; std::getline(listed, line);) {
    const auto run = nlohmann::json::parse(line);
    if (run["parent_run"] != run_id) continue;
    ++children;
    EXPECT_EQ(run["status"], "completed") << run["run_id"];
    const auto shown =
        nlohmann::json::parse(capture("runs show " + run["run_id"].get<std::string>() + " --json --store " + quoted));
    ASSERT_EQ(shown["steps"].size(), 4U) << run["run_id"];  // square, polish ×3: once each
    for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(shown["steps"][i]["sequence_id"], i + 1) << run["run_id"];
  }
  EXPECT_EQ(children, 40);
}

TEST(Crash, AParentKilledMidFanOutResumesAndEveryChildRunsExactlyOnce) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("choir-crash-fanout-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  kill_fanout_and_resume((dir / "choir.db").string(), dir);
  fs::remove_all(dir);
}

}  // namespace

/// Runs the notes example (model → fs.write → model → shell.exec → model, all in one step) killed
/// at the `nth` time a journal write reaches `point`, then resumes it. Returns the resumed run's
/// outcome line and the workspace's log file.
struct tool_crash {
  std::string run_id;
  nlohmann::json resumed;  ///< `runs resume --json`'s last line
  std::string log;         ///< notes/log.txt of the agent's workspace ("" if absent)
};

tool_crash kill_notes_at(const std::string& point, int nth) {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("choir-tools-crash-" + std::to_string(getpid()) + "-" + point + std::to_string(nth));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string store = (dir / "choir.db").string();
  capture("policy apply " + std::string(CHOIR_SOURCE_DIR) + "/examples/policy.yaml --store " + store);
  // The workspace is the store's folder: the test's own.
  const pid_t pid = spawn({"run", std::string(CHOIR_SOURCE_DIR) + "/examples/notes.yaml", "--input",
                           "request=note: buy milk", "--store", store},
                          point + ":" + std::to_string(nth));
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the run was to be killed at " << point;
  tool_crash out;
  const std::string listed = capture("runs list --json --store " + store);
  if (listed.empty()) return out;
  out.run_id = nlohmann::json::parse(listed.substr(0, listed.find('\n')))["run_id"];
  const std::string resumed = capture("runs resume " + out.run_id + " --json --store " + store + " --agents " +
                                      std::string(CHOIR_SOURCE_DIR) + "/examples");
  const auto last_line = resumed.rfind('\n', resumed.size() - 2);
  out.resumed = nlohmann::json::parse(resumed.substr(last_line == std::string::npos ? 0 : last_line + 1));
  std::ifstream log(dir / "workspaces" / "local" / "notes" / "notes" / "log.txt");
  out.log.assign(std::istreambuf_iterator<char>(log), {});
  fs::remove_all(dir);
  return out;
}

// The step's effects, in order: model (1), fs.write (2), model (3), shell.exec (4), model (5).

TEST(Crash, AToolCallWhoseOutcomeWasRecordedIsNotRunAgainOnResume) {
  // Killed just after the shell command's outcome was journaled, before the step committed: the
  // step runs again on resume, reusing every recorded answer and result.
  const auto r = kill_notes_at("effect.outcome", 4);
  ASSERT_FALSE(r.run_id.empty());
  EXPECT_EQ(r.resumed["outcome"], "completed") << r.resumed.dump();
  EXPECT_EQ(r.log, "saved\n") << "the shell command ran once";
  EXPECT_NE(r.resumed["state"]["reply"].get<std::string>().find(R"("stdout":"1\n")"), std::string::npos)
      << r.resumed["state"]["reply"] << ": the model saw the recorded result";
}

TEST(Crash, AToolCallCaughtInFlightIsNotGuessedAt) {
  // Killed after the shell command's intent was journaled and before its outcome: whether it ran
  // is unknown and it is not idempotent, so the step fails rather than run it a second time.
  const auto r = kill_notes_at("effect.intent", 4);
  ASSERT_FALSE(r.run_id.empty());
  EXPECT_EQ(r.resumed["outcome"], "failed") << r.resumed.dump();
  EXPECT_NE(r.resumed.value("error", "").find("not idempotent"), std::string::npos) << r.resumed.dump();
}

TEST(Crash, AnIdempotentWriteCaughtInFlightRunsAgain) {
  // Killed after fs.write's intent: a write is write-temp-then-rename keyed by the call, so it is
  // made again, and the run completes.
  const auto r = kill_notes_at("effect.intent", 2);
  ASSERT_FALSE(r.run_id.empty());
  EXPECT_EQ(r.resumed["outcome"], "completed") << r.resumed.dump();
  EXPECT_EQ(r.log, "saved\n");
}
