// End-to-end tests of the `choir` binary: what a person or a script sees.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <sqlite3.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "choir/store/event_store.hpp"
#include "choir/store/pg_test_support.hpp"

namespace {

struct command_result {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

command_result run_choir(const std::string& args) {
  const std::string command = std::string(CHOIR_BINARY) + " " + args + " 2>&1";
  command_result r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string example(const std::string& name) { return std::string(CHOIR_SOURCE_DIR) + "/examples/" + name; }

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

/// Deny by default: the examples run under examples/policy.yaml, applied to the default store
/// before any test runs (fixtures with their own store apply it there).
class ExamplePolicy : public ::testing::Environment {
 public:
  void SetUp() override {
    auto applied = run_choir("policy apply " + example("policy.yaml"));
    ASSERT_EQ(applied.exit_code, 0) << applied.out;
  }
};
const auto* const example_policy = ::testing::AddGlobalTestEnvironment(new ExamplePolicy);

TEST(ChoirRun, RunsTheCounterExampleAndShowsEachStep) {
  auto r = run_choir("run " + example("counter.yaml") + " --input n=2");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("   0  start         limit = 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("   1  increment     count = 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("completed after 6 steps"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"message\":\"counted to 2\""), std::string::npos) << r.out;
}

TEST(ChoirRun, JsonModePrintsOneObjectPerStepThenTheOutcome) {
  auto r = run_choir("run " + example("counter.yaml") + " --input n=1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::vector<nlohmann::json> lines;
  std::size_t start = 0;
  while (start < r.out.size()) {
    const auto end = r.out.find('\n', start);
    lines.push_back(nlohmann::json::parse(r.out.substr(start, end - start)));
    start = end + 1;
  }
  ASSERT_EQ(lines.size(), 5u);  // start, increment, check, done, outcome
  EXPECT_EQ(lines[0]["action"], "start");
  EXPECT_EQ(lines[0]["sequence_id"], 0);
  EXPECT_EQ(lines[1]["delta"][0]["key"], "count");
  EXPECT_EQ(lines[4]["outcome"], "completed");
  EXPECT_EQ(lines[4]["state"]["count"], 1);
}

TEST(ChoirRun, TheCopilotMovesBetweenModesOnEvents) {
  auto r = run_choir("run " + example("copilot-events.yaml") +
                     " --json --input 'events=[\"ambiguous\",\"verification_failed\",\"ambiguous\",\"crash\"]'");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::vector<std::string> modes;
  std::size_t start = 0;
  nlohmann::json last;
  while (start < r.out.size()) {
    const auto end = r.out.find('\n', start);
    last = nlohmann::json::parse(r.out.substr(start, end - start));
    if (last.contains("action") && last["action"] != "observe" && last["action"] != "start" &&
        last["action"] != "done") {
      modes.push_back(last["action"]);
    }
    start = end + 1;
  }
  // Ambiguity while CALM makes it CURIOUS; while SKEPTICAL it does not; a crash makes it CONTRITE.
  EXPECT_EQ(modes, (std::vector<std::string>{"curious", "skeptical", "calm", "contrite"}));
  EXPECT_EQ(last["state"]["mode"], "CONTRITE");
  EXPECT_EQ(last["state"]["history"].size(), 4u);
}

TEST(ChoirRun, TheCopilotConversationAnswersInTheModeAMessageCallsFor) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"deploy the fix to prod", "PARANOID"}, {"it crashed", "CONTRITE"}, {"how are tabs handled?", "CURIOUS"},
      {"the tests fail", "SKEPTICAL"},        {"ship it", "BOLD"},        {"refactor the store", "CALM"}};
  for (const auto& [message, mode] : cases) {
    auto r = run_choir("run " + example("copilot.yaml") + " --no-store --json --input 'message=" + message + "'");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto last = nlohmann::json::parse(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1));
    EXPECT_EQ(last["state"]["mode"], mode) << message;
    EXPECT_NE(last["state"]["reply"].get<std::string>().find("(" + mode + " · "), std::string::npos) << message;
  }
}

TEST(ChoirServe, ABadConfigFileIsRefusedNamingTheSettingAndLine) {
  const auto bad = write_temp("server-bad.yaml", "kind: ServerConfig\nlisten: 127.0.0.1:0\nthreads: 99\n");
  auto r = run_choir("serve --config " + bad);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("server-bad.yaml:3:10: threads: must be from 1 to 64"), std::string::npos) << r.out;
  const auto unknown = write_temp("server-unknown.yaml", "kind: ServerConfig\nport: 8080\n");
  r = run_choir("serve --config " + unknown);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("port: unknown setting"), std::string::npos) << r.out;
  const auto wrong_kind = write_temp("server-kind.yaml", "kind: Policy\n");
  r = run_choir("serve --config " + wrong_kind);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("kind: must be ServerConfig"), std::string::npos) << r.out;
  r = run_choir("serve --config " + ::testing::TempDir() + "no-such-config.yaml");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("cannot open"), std::string::npos) << r.out;
}

TEST(ChoirRun, HaltAfterStopsTheRun) {
  auto r = run_choir("run " + example("counter.yaml") + " --input n=5 --halt-after check --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"outcome\":\"halted_after\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"next\":\"increment\""), std::string::npos) << r.out;
}

TEST(ChoirRun, MaxStepsExitsWithCodeThree) {
  auto r = run_choir("run " + example("counter.yaml") + " --input n=100 --max-steps 4");
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_NE(r.out.find("stopped at --max-steps after 4 steps"), std::string::npos) << r.out;
}

TEST(ChoirRun, AFailedStepExitsWithCodeOne) {
  const std::string path = write_temp("failing.yaml", R"(apiVersion: agentos/v0.2
kind: AgentContract
name: failing
class: {latency: DT}
capabilities: []
---
apiVersion: agentos/v0.2
kind: Graph
name: failing
entrypoint: divide
state: {x: 1, zero: 0}
actions:
  divide:
    type: set
    update: {y: x / zero}
)");
  auto r = run_choir("run " + path);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("FAILED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("failed at divide"), std::string::npos) << r.out;
}

TEST(ChoirRun, AnUnknownInputIsRejectedNamingTheKnownOnes) {
  auto r = run_choir("run " + example("counter.yaml") + " --input m=2");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("no action of 'counter' takes the input 'm' (inputs: n)"), std::string::npos) << r.out;
}

TEST(ChoirRun, AMissingFileOrBadGraphExitsWithCodeTwo) {
  auto missing = run_choir("run /nonexistent/graph.yaml");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.out.find("/nonexistent/graph.yaml: cannot open the file"), std::string::npos) << missing.out;
  auto bad = run_choir("run " + write_temp("bad.yaml", "kind: Graph\nname: [\n"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.out.find("bad.yaml:"), std::string::npos) << bad.out;
}

TEST(ChoirRun, MalformedInputPairsAreRejected) {
  auto r = run_choir("run " + example("counter.yaml") + " --input novalue");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("input 'novalue' is not of the form key=value"), std::string::npos) << r.out;
}

TEST(ChoirGraph, PrintsMermaidDotAndJson) {
  auto mermaid = run_choir("graph " + example("counter.yaml"));
  EXPECT_EQ(mermaid.exit_code, 0);
  EXPECT_NE(mermaid.out.find("flowchart TD"), std::string::npos);
  EXPECT_NE(mermaid.out.find("count < limit"), std::string::npos);
  auto dot = run_choir("graph " + example("counter.yaml") + " --format dot");
  EXPECT_NE(dot.out.find("digraph G"), std::string::npos);
  auto json = run_choir("graph " + example("counter.yaml") + " --format json");
  EXPECT_EQ(nlohmann::json::parse(json.out)["entrypoint"], "start");
  auto bad = run_choir("graph " + example("counter.yaml") + " --format png");
  EXPECT_EQ(bad.exit_code, 2);
}

TEST(Choir, HelpListsEveryCommand) {
  auto r = run_choir("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("run"), std::string::npos);
  EXPECT_NE(r.out.find("graph"), std::string::npos);
  EXPECT_EQ(run_choir("").exit_code, 2);
  EXPECT_EQ(run_choir("frobnicate").exit_code, 2);
}

// ---- runs kept in the event store ---------------------------------------------------------------

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    out.push_back(nlohmann::json::parse(text.substr(start, end - start)));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

class ChoirRuns : public ::testing::Test {
 protected:
  void SetUp() override {
    // A folder per test: the store, and its audit key and head file beside it.
    dir_ = ::testing::TempDir() + "choir-cli-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = dir_ + "/choir.db";
    auto applied = run_choir("policy apply " + example("policy.yaml") + store());
    ASSERT_EQ(applied.exit_code, 0) << applied.out;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string store() const { return " --store " + store_; }
  std::string last_run_id() {
    auto listed = run_choir("runs list --json" + store());
    return json_lines(listed.out).front()["run_id"];
  }
  std::string dir_;
  std::string store_;
};

TEST_F(ChoirRuns, ARunIsRecordedWithItsStepsAndStatus) {
  ASSERT_EQ(run_choir("run " + example("counter.yaml") + " --input n=2" + store()).exit_code, 0);
  auto listed = run_choir("runs list --json" + store());
  ASSERT_EQ(listed.exit_code, 0) << listed.out;
  const auto runs = json_lines(listed.out);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["agent"], "counter");
  EXPECT_EQ(runs[0]["status"], "completed");
  EXPECT_EQ(runs[0]["last_sequence"], 5);
  auto shown = run_choir("runs show " + std::string(runs[0]["run_id"]) + " --json" + store());
  const auto run = nlohmann::json::parse(shown.out);
  EXPECT_EQ(run["steps"].size(), 6u);
  EXPECT_EQ(run["steps"][1]["delta"][0]["key"], "count");
  EXPECT_EQ(run["effects"], nlohmann::json::array());
  EXPECT_EQ(run["pinned"], false);
  EXPECT_TRUE(run["owner"].is_null());  // released when the run stopped
}

TEST_F(ChoirRuns, AHaltedRunResumesToTheSameEndAsAnUninterruptedOne) {
  auto whole = run_choir("run " + example("copilot-events.yaml") + " --no-store --json");
  const auto expected = json_lines(whole.out).back()["state"];
  ASSERT_EQ(run_choir("run " + example("copilot-events.yaml") + " --max-steps 7" + store()).exit_code, 3);
  const std::string id = last_run_id();
  auto resumed = run_choir("runs resume " + id + " --json" + store());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  const auto lines = json_lines(resumed.out);
  EXPECT_EQ(lines.front()["sequence_id"], 7);  // continues right after the last committed step
  EXPECT_EQ(lines.back()["state"], expected);
  auto again = run_choir("runs resume " + id + store());
  EXPECT_NE(again.out.find("is complete: nothing to resume"), std::string::npos) << again.out;
}

TEST_F(ChoirRuns, AForkStartsFromTheStateAfterAStepAndRecordsItsParent) {
  ASSERT_EQ(run_choir("run " + example("counter.yaml") + " --input n=3" + store()).exit_code, 0);
  const std::string parent = last_run_id();
  auto forked = run_choir("runs fork " + parent + " --at 2 --json" + store());
  ASSERT_EQ(forked.exit_code, 0) << forked.out;
  const auto fork = nlohmann::json::parse(forked.out);
  EXPECT_EQ(fork["parent_run"], parent);
  EXPECT_EQ(fork["parent_step"], 2);
  EXPECT_EQ(fork["next_action"], "increment");
  auto state = run_choir("runs state " + std::string(fork["run_id"]) + " --json" + store());
  EXPECT_EQ(nlohmann::json::parse(state.out)["count"], 1);
  auto resumed = run_choir("runs resume " + std::string(fork["run_id"]) + " --json" + store());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  const auto lines = json_lines(resumed.out);
  EXPECT_EQ(lines.front()["sequence_id"], 3);
  EXPECT_EQ(lines.back()["state"]["count"], 3);
  // The parent is untouched.
  EXPECT_EQ(nlohmann::json::parse(run_choir("runs show " + parent + " --json" + store()).out)["steps"].size(), 8u);
}

TEST_F(ChoirRuns, UnknownRunsAndStepsAreReported) {
  ASSERT_EQ(run_choir("run " + example("counter.yaml") + store()).exit_code, 0);
  auto missing = run_choir("runs show 00000000-0000-7000-8000-000000000000" + store());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.out.find("no run 00000000-0000-7000-8000-000000000000"), std::string::npos) << missing.out;
  auto bad_step = run_choir("runs fork " + last_run_id() + " --at 99" + store());
  EXPECT_EQ(bad_step.exit_code, 2);
  EXPECT_NE(bad_step.out.find("has no step 99"), std::string::npos) << bad_step.out;
}

TEST_F(ChoirRuns, AFileThatIsNotAStoreIsRefused) {
  std::ofstream(store_) << "not a database";
  auto r = run_choir("runs list" + store());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("not a ChoirOS store"), std::string::npos) << r.out;
}

TEST_F(ChoirRuns, AWaitingRunTakesItsInputLaterEvenFromAnotherProcess) {
  auto first = run_choir("run " + example("approval.yaml") + store());
  ASSERT_EQ(first.exit_code, 0) << first.out;
  EXPECT_NE(first.out.find("waiting for input at approve (Ship this plan?"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("answer with: choir runs input"), std::string::npos) << first.out;
  const std::string id = last_run_id();
  auto listed = json_lines(run_choir("runs list --json" + store()).out);
  EXPECT_EQ(listed[0]["status"], "waiting");
  EXPECT_EQ(listed[0]["next_action"], "approve");
  EXPECT_TRUE(listed[0]["owner"].is_null());  // the lease was released

  auto missing = run_choir("runs input " + id + " note=later" + store());
  EXPECT_EQ(missing.exit_code, 2) << missing.out;
  auto no = run_choir("runs input " + id + " answer=no --json" + store());
  ASSERT_EQ(no.exit_code, 0) << no.out;
  const auto outcome = json_lines(no.out).back();
  EXPECT_EQ(outcome["outcome"], "waiting_input");
  EXPECT_EQ(outcome["waiting_for"]["action"], "approve");
  EXPECT_EQ(outcome["waiting_for"]["inputs"], nlohmann::json::array({"answer"}));
  auto yes = run_choir("runs input " + id + " answer=yes --json" + store());
  ASSERT_EQ(yes.exit_code, 0) << yes.out;
  EXPECT_EQ(json_lines(yes.out).back()["state"]["shipped"], "plan v2");
  auto done = run_choir("runs input " + id + " answer=yes" + store());
  EXPECT_EQ(done.exit_code, 2);
  EXPECT_NE(done.out.find("is complete"), std::string::npos) << done.out;
}

TEST_F(ChoirRuns, InputIsOnlyForAWaitingRun) {
  ASSERT_EQ(run_choir("run " + example("counter.yaml") + " --halt-after increment" + store()).exit_code, 0);
  auto r = run_choir("runs input " + last_run_id() + " n=4" + store());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("is not waiting for input"), std::string::npos) << r.out;
}

TEST_F(ChoirRuns, ReplayReportsTheFirstDivergenceFromTheRecord) {
  ASSERT_EQ(run_choir("run " + example("counter.yaml") + " --input n=3" + store()).exit_code, 0);
  const std::string id = last_run_id();
  auto same = run_choir("runs replay " + id + store());
  EXPECT_EQ(same.exit_code, 0) << same.out;
  EXPECT_NE(same.out.find("replayed 8 steps"), std::string::npos) << same.out;
  EXPECT_NE(same.out.find("identical to the record"), std::string::npos) << same.out;
  // Tamper with what step 3 recorded: the replay must notice exactly there.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(store_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE steps SET delta = '[{\"op\":\"set\",\"key\":\"count\",\"value\":42}]' "
                         "WHERE sequence_id = 3",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto diverged = run_choir("runs replay " + id + " --json" + store());
  EXPECT_EQ(diverged.exit_code, 1) << diverged.out;
  const auto report = nlohmann::json::parse(diverged.out);
  EXPECT_EQ(report["identical"], false);
  EXPECT_EQ(report["sequence_id"], 3);
  EXPECT_EQ(report["field"], "delta");
  EXPECT_EQ(report["recorded"][0]["value"], 42);
  EXPECT_EQ(report["replayed_value"][0]["value"], 2);
}

TEST_F(ChoirRuns, PruneDeletesFinishedRunsByCount) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(run_choir("run " + example("counter.yaml") + store()).exit_code, 0);
  ASSERT_EQ(run_choir("run " + example("counter.yaml") + " --halt-after increment" + store()).exit_code, 0);
  auto pruned = run_choir("runs prune --keep-last 1 --json" + store());
  ASSERT_EQ(pruned.exit_code, 0) << pruned.out;
  EXPECT_EQ(nlohmann::json::parse(pruned.out)["runs"], 2);
  EXPECT_EQ(json_lines(run_choir("runs list --json" + store()).out).size(), 2u);  // 1 kept, 1 halted
  auto bad = run_choir("runs prune --older-than soon" + store());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.out.find("is not an age"), std::string::npos) << bad.out;
  EXPECT_EQ(run_choir("runs prune" + store()).exit_code, 2);  // neither an age nor a count
}

/// The counter example with `text` replaced by `with`.
std::string counter_variant(const std::string& name, const std::string& text, const std::string& with) {
  std::ifstream in(example("counter.yaml"));
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = yaml.find(text);
  EXPECT_NE(at, std::string::npos) << text;
  if (at != std::string::npos) yaml.replace(at, text.size(), with);
  return write_temp(name, yaml);
}

TEST_F(ChoirRuns, AnUpgradeMustKeepTheActionWhereTheRunContinues) {
  ASSERT_EQ(run_choir("run " + example("counter.yaml") + " --input n=3 --halt-after increment" + store()).exit_code, 0);
  const std::string id = last_run_id();  // next: check (reads count, limit)
  const std::string unsafe =
      counter_variant("counter-unsafe.yaml", "reads: [count, limit]", "reads: [count, limit, message]");
  auto refused = run_choir("runs resume " + id + " --graph " + unsafe + store());
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_NE(refused.out.find("the run continues at 'check', which the new graph changes: it now reads count, "
                             "limit, message (was: count, limit)"),
            std::string::npos)
      << refused.out;
  const auto before = nlohmann::json::parse(run_choir("runs show " + id + " --json" + store()).out);
  const std::string safe = counter_variant("counter-safe.yaml", "'counted to '", "'counted up to '");
  auto moved = run_choir("runs resume " + id + " --graph " + safe + store());
  ASSERT_EQ(moved.exit_code, 0) << moved.out;
  EXPECT_NE(moved.out.find("moves from graph " + std::string(before["graph_version"])), std::string::npos) << moved.out;
  EXPECT_NE(moved.out.find("counted up to 3"), std::string::npos) << moved.out;
  const auto after = nlohmann::json::parse(run_choir("runs show " + id + " --json" + store()).out);
  EXPECT_NE(after["graph_version"], before["graph_version"]);
  EXPECT_EQ(after["steps"][0]["graph_version"], before["graph_version"]);  // each step keeps its version
  EXPECT_EQ(after["steps"].back()["graph_version"], after["graph_version"]);
}

TEST_F(ChoirRuns, APinnedRunResumesOnlyUnderItsOwnVersion) {
  ASSERT_EQ(run_choir("run " + example("counter.yaml") + " --pin --halt-after increment" + store()).exit_code, 0);
  const std::string id = last_run_id();
  const std::string safe = counter_variant("counter-pinned.yaml", "'counted to '", "'counted up to '");
  auto refused = run_choir("runs resume " + id + " --graph " + safe + store());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.out.find("is pinned to graph version"), std::string::npos) << refused.out;
  EXPECT_EQ(run_choir("runs resume " + id + " --graph " + example("counter.yaml") + store()).exit_code, 0);
}

TEST_F(ChoirRuns, ARunDrivenByALiveOwnerIsRefusedAndADeadOnesIsTakenOver) {
  ASSERT_EQ(run_choir("run " + example("counter.yaml") + " --halt-after increment" + store()).exit_code, 0);
  const std::string id = last_run_id();
  {
    auto other = choir::store::open_sqlite_store(store_, {.owner = "another-host/4242/abcd"});
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE((*other)->acquire_lease(id, 60'000).ok());
  }
  auto refused = run_choir("runs resume " + id + store());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.out.find("is being driven by another-host/4242/abcd"), std::string::npos) << refused.out;
  EXPECT_EQ(run_choir("runs input " + id + " n=2" + store()).exit_code, 2);

  // A process of this machine that is gone: its lease is taken over at once.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  const std::string me = choir::store::default_owner();
  const std::string dead = me.substr(0, me.find('/')) + "/" + std::to_string(child) + "/dead";
  {
    auto gone = choir::store::open_sqlite_store(store_, {.owner = dead});
    ASSERT_TRUE(gone.ok());
    ASSERT_TRUE((*gone)->release_lease(id).ok());
    auto other = choir::store::open_sqlite_store(store_, {.owner = "another-host/4242/abcd"});
    ASSERT_TRUE((*other)->release_lease(id).ok());
    ASSERT_TRUE((*gone)->acquire_lease(id, 60'000).ok());
  }
  auto resumed = run_choir("runs resume " + id + store());
  EXPECT_EQ(resumed.exit_code, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("took over run " + id + " from " + dead), std::string::npos) << resumed.out;
  EXPECT_NE(resumed.out.find("completed"), std::string::npos) << resumed.out;
}

TEST_F(ChoirRuns, TheOrchestratorFansOutToResearcherAgentsAsChildRuns) {
  auto r = run_choir("run " + example("orchestrator.yaml") + " --input goal=owls --json" + store());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto outcome = json_lines(r.out).back();
  EXPECT_EQ(outcome["outcome"], "completed");
  ASSERT_EQ(outcome["state"]["findings"].size(), 4u);
  EXPECT_EQ(outcome["state"]["findings"][0], "owls habitats: 2 notes, starting with background on owls habitats");
  const std::string parent = outcome["app_id"];
  int children = 0;
  for (const auto& run : json_lines(run_choir("runs list --json" + store()).out)) {
    if (run["parent_run"] != parent) continue;
    ++children;
    EXPECT_EQ(run["agent"], "researcher");
    EXPECT_EQ(run["parent_step"], 1);  // the research step
    EXPECT_EQ(run["status"], "completed");
  }
  EXPECT_EQ(children, 4);
  // Replaying the parent reuses the recorded children: identical, and no new child runs.
  auto replayed = run_choir("runs replay " + parent + store() + " --agents " + example(""));
  EXPECT_EQ(replayed.exit_code, 0) << replayed.out;
  EXPECT_NE(replayed.out.find("identical"), std::string::npos) << replayed.out;
  EXPECT_EQ(json_lines(run_choir("runs list --json" + store()).out).size(), 5u);
}

TEST_F(ChoirRuns, AnAgentNobodyRegisteredIsReportedAtLoad) {
  const auto file = write_temp("lonely.yaml", R"(apiVersion: agentos/v0.2
kind: Graph
name: lonely
entrypoint: ask
actions:
  ask: {type: agent, agent: nobody, into: answer}
)");
  auto r = run_choir("run " + file + store());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("no agent named 'nobody'"), std::string::npos) << r.out;
}

TEST(ChoirContract, ValidatesAnAgentsContractAndSaysWhatIsNotEnforcedYet) {
  auto ok = run_choir("contract validate " + example("researcher.yaml"));
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_NE(ok.out.find("contract researcher: valid (DT, 1 capability)"), std::string::npos) << ok.out;
  EXPECT_EQ(ok.out.find("budget"), std::string::npos) << "budgets are enforced now: " << ok.out;
  const auto bad = write_temp("bad-contract.yaml",
                              "apiVersion: agentos/v0.2\nkind: AgentContract\nname: x\n"
                              "class:\n  latency: FAST\n");
  auto refused = run_choir("contract validate " + bad);
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_NE(refused.out.find("bad-contract.yaml:5:12: class.latency: expected HRT, SRT or DT"), std::string::npos)
      << refused.out;
  auto none = run_choir("contract validate " +
                        write_temp("graph-only.yaml", "apiVersion: agentos/v0.2\nkind: Graph\nname: g\n"));
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.out.find("no kind: AgentContract document"), std::string::npos) << none.out;
}

TEST(ChoirPostgres, RunsAndResumesOnAPostgreSQLStore) {
  namespace pg = choir::store::test_support;
  const std::string db = pg::test_pg();
  if (db.empty()) {
    if (pg::pg_required()) FAIL() << "CHOIR_REQUIRE_PG=1 but CHOIR_TEST_PG is unset";
    GTEST_SKIP() << "set CHOIR_TEST_PG to run the PostgreSQL case";
  }
  const std::string schema = "cli_" + std::to_string(::getpid());
  const std::string conninfo = pg::fresh_pg_schema(db, schema);
  ASSERT_FALSE(conninfo.empty());
  const std::string where = " --store \"" + conninfo + "\"";
  auto applied = run_choir("policy apply " + example("policy.yaml") + where);
  ASSERT_EQ(applied.exit_code, 0) << applied.out;
  auto halted = run_choir("run " + example("counter.yaml") + " --input n=2 --halt-after increment" + where);
  ASSERT_EQ(halted.exit_code, 0) << halted.out;
  const auto runs = json_lines(run_choir("runs list --json" + where).out);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["status"], "halted");
  auto resumed = run_choir("runs resume " + std::string(runs[0]["run_id"]) + " --json" + where);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  EXPECT_EQ(json_lines(resumed.out).back()["state"]["message"], "counted to 2");
  EXPECT_EQ(run_choir("runs replay " + std::string(runs[0]["run_id"]) + where).exit_code, 0);
  pg::drop_pg_schema(db, schema);
}

}  // namespace

// ---- the kernel: admission, policy, audit ------------------------------------------------------

namespace {

TEST_F(ChoirRuns, NothingRunsWithoutAContractOrOutsideThePolicy) {
  const auto bare = write_temp("bare.yaml",
                               "apiVersion: agentos/v0.2\nkind: Graph\nname: bare\nentrypoint: a\n"
                               "actions: {a: {type: pass}}\n");
  auto r = run_choir("run " + bare + store());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("agent bare has no contract"), std::string::npos) << r.out;
  // A user the policy does not know; a tenant that is not theirs.
  r = run_choir("run " + example("counter.yaml") + " --user mallory" + store());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("'mallory' is not a user of tenant 'local'"), std::string::npos) << r.out;
  r = run_choir("run " + example("counter.yaml") + " --tenant other" + store());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(json_lines(run_choir("runs list --json" + store()).out).empty());  // none was created
}

TEST_F(ChoirRuns, AnotherTenantCannotContinueARun) {
  ASSERT_EQ(run_choir("run " + example("approval.yaml") + store()).exit_code, 0);
  const std::string id = last_run_id();
  auto r = run_choir("runs input " + id + " answer=yes --tenant other" + store());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("belongs to another tenant"), std::string::npos) << r.out;
  EXPECT_EQ(run_choir("runs input " + id + " answer=yes" + store()).exit_code, 0);
}

TEST_F(ChoirRuns, APolicyIsValidatedAuditedAndShown) {
  const auto bad = write_temp("bad-policy.yaml", "apiVersion: agentos/v0.2\nkind: Policy\ntenants: {t: {roles: 3}}\n");
  auto r = run_choir("policy apply " + bad + store());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("bad-policy.yaml:3:"), std::string::npos) << r.out;
  auto same = run_choir("policy apply " + example("policy.yaml") + store());
  EXPECT_NE(same.out.find("already in force"), std::string::npos) << same.out;
  auto shown = run_choir("policy show --json" + store());
  ASSERT_EQ(shown.exit_code, 0) << shown.out;
  EXPECT_EQ(nlohmann::json::parse(shown.out)["version"], 1);
  auto listed = json_lines(run_choir("audit list --json" + store()).out);
  ASSERT_FALSE(listed.empty());
  EXPECT_EQ(listed.front()["kind"], "policy.change");
  EXPECT_EQ(listed.front()["details"]["to_version"], 1);
}

TEST_F(ChoirRuns, TheAuditLogRecordsAdmissionsAndCallsAndVerifies) {
  auto r = run_choir("run " + example("orchestrator.yaml") + store());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::string parent;
  for (const auto& run : json_lines(run_choir("runs list --json" + store()).out)) {
    if (run["agent"] == "orchestrator") parent = run["run_id"];
  }
  auto entries = json_lines(run_choir("audit list --json --limit 100" + store()).out);
  int calls = 0;
  for (const auto& e : entries) {
    if (e["kind"] == "call" && e["capability"] == "agent.call" && e["argument"] == "researcher") ++calls;
  }
  EXPECT_EQ(calls, 4);
  auto of_run = json_lines(run_choir("audit list --json --run " + parent + store()).out);
  EXPECT_EQ(of_run.size(), 5u);  // its admission and its four calls
  auto verified = run_choir("audit verify" + store());
  EXPECT_EQ(verified.exit_code, 0) << verified.out;
  EXPECT_NE(verified.out.find("audit log intact"), std::string::npos) << verified.out;

  // Someone edits an entry behind the store's back: verify says where, and exits 1.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(store_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TRIGGER audit_no_update; "
                         "UPDATE audit SET entry = replace(entry, 'allow', 'deny') WHERE seq = 3",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto tampered = run_choir("audit verify --json" + store());
  EXPECT_EQ(tampered.exit_code, 1) << tampered.out;
  EXPECT_EQ(nlohmann::json::parse(tampered.out)["problem_at"], 3);
}

TEST_F(ChoirRuns, ACallNeedingConsentWaitsAcrossProcessesUntilAnswered) {
  auto r = run_choir("run " + example("supervised.yaml") + store());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("waiting for consent to agent.call(researcher)"), std::string::npos) << r.out;
  std::string run_id;
  for (const auto& run : json_lines(run_choir("runs list --json" + store()).out)) {
    if (run["agent"] == "supervised") {
      run_id = run["run_id"];
      EXPECT_EQ(run["status"], "waiting_consent");
    }
  }
  auto pending = json_lines(run_choir("consent list --json" + store()).out);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0]["run_id"], run_id);
  EXPECT_EQ(pending[0]["arguments"]["agent"], "researcher");
  // Another tenant sees none of them and cannot answer them.
  EXPECT_EQ(run_choir("consent list --json --tenant other" + store()).out, "");
  auto foreign = run_choir("consent approve " + std::string(pending[0]["id"]) + " --tenant other" + store());
  EXPECT_EQ(foreign.exit_code, 2) << foreign.out;
  EXPECT_NE(foreign.out.find("no consent request"), std::string::npos) << foreign.out;
  // Each answer continues the run; it completes once both are approved.
  const std::string agents = " --agents " + example("");
  auto first = run_choir("consent approve " + std::string(pending[0]["id"]) + agents + store());
  EXPECT_EQ(first.exit_code, 0) << first.out;
  EXPECT_NE(first.out.find("waiting at research"), std::string::npos) << first.out;
  auto second = run_choir("consent approve " + std::string(pending[1]["id"]) + " --reason ok" + agents + store());
  EXPECT_EQ(second.exit_code, 0) << second.out;
  EXPECT_NE(second.out.find("completed"), std::string::npos) << second.out;
  EXPECT_TRUE(json_lines(run_choir("consent list --json" + store()).out).empty());
  auto answered = json_lines(run_choir("consent list --all --json" + store()).out);
  ASSERT_EQ(answered.size(), 2u);
  EXPECT_EQ(answered[0]["status"], "approved");
  EXPECT_EQ(answered[0]["answered_by"], "local/local");
  auto again = run_choir("consent deny " + std::string(pending[0]["id"]) + store());
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.out.find("already approved"), std::string::npos) << again.out;
  EXPECT_EQ(run_choir("audit verify" + store()).exit_code, 0);
}

TEST_F(ChoirRuns, ThePolicyIsManagedOneAuditedChangeAtATime) {
  auto ok = [&](const std::string& args) {
    auto r = run_choir(args + store());
    EXPECT_EQ(r.exit_code, 0) << args << ": " << r.out;
    return r.out;
  };
  ok("tenant add acme");
  ok("role add acme analyst");
  ok("grant add acme analyst fs.read --allow workspace/**");
  ok("user add acme ada --role analyst");
  // The researcher asks for web.fetch: not granted to ada yet.
  auto refused = run_choir("run " + example("researcher.yaml") + " --tenant acme --user ada" + store());
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_NE(refused.out.find("not granted: web.fetch"), std::string::npos) << refused.out;
  ok("grant add acme analyst web.fetch");
  EXPECT_EQ(run_choir("run " + example("researcher.yaml") + " --tenant acme --user ada" + store()).exit_code, 0);
  // What is in the way is refused, and nothing changes.
  auto held = run_choir("role remove acme analyst" + store());
  EXPECT_EQ(held.exit_code, 2);
  EXPECT_NE(held.out.find("role analyst is held by ada"), std::string::npos) << held.out;
  // A token: shown once, stored as a hash.
  auto created = nlohmann::json::parse(ok("token create acme ada --id ci --json"));
  const std::string token = created["token"];
  EXPECT_EQ(token.rfind("choir_", 0), 0u);
  const std::string shown = ok("policy show");
  EXPECT_EQ(shown.find(token), std::string::npos);
  EXPECT_NE(shown.find("sha256"), std::string::npos);
  EXPECT_NE(ok("token list").find("ci  acme/ada"), std::string::npos);
  ok("token revoke acme ci");
  EXPECT_EQ(ok("token list").find("ci"), std::string::npos);
  // Every change is in the audit log, which verifies.
  int changes = 0;
  for (const auto& e : json_lines(run_choir("audit list --json --limit 100" + store()).out)) {
    if (e["kind"] == "policy.change" && e["details"].contains("change")) ++changes;
  }
  EXPECT_EQ(changes, 7);
  EXPECT_EQ(run_choir("audit verify" + store()).exit_code, 0);
}

}  // namespace

namespace {

/// A folder with its own store, under the examples' policy.
struct tools_fixture {
  std::filesystem::path dir;
  std::string store;
  explicit tools_fixture(const std::string& name) {
    dir = std::filesystem::path(::testing::TempDir()) / ("choir-cli-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    store = (dir / "choir.db").string();
    auto applied = run_choir("policy apply " + example("policy.yaml") + " --store " + store);
    EXPECT_EQ(applied.exit_code, 0) << applied.out;
  }
  ~tools_fixture() { std::filesystem::remove_all(dir); }
};

}  // namespace

TEST(ChoirTools, TheNotesAgentSavesAndReadsANoteThroughTheModelAndTheSandbox) {
  tools_fixture f("notes");
  auto saved = run_choir("run " + example("notes.yaml") + " --input 'request=note: buy milk' --store " + f.store);
  ASSERT_EQ(saved.exit_code, 0) << saved.out;
  EXPECT_NE(saved.out.find("Saved your note. Log:"), std::string::npos) << saved.out;
  std::ifstream note(f.dir / "workspaces" / "local" / "notes" / "notes" / "latest.txt");
  std::string text((std::istreambuf_iterator<char>(note)), {});
  EXPECT_EQ(text, "note: buy milk");
  auto read = run_choir("run " + example("notes.yaml") + " --input 'request=read my notes' --store " + f.store);
  ASSERT_EQ(read.exit_code, 0) << read.out;
  EXPECT_NE(read.out.find("Your latest note:"), std::string::npos) << read.out;
  EXPECT_NE(read.out.find("buy milk"), std::string::npos) << read.out;
  auto audit = run_choir("audit list --store " + f.store);
  EXPECT_NE(audit.out.find("model.call"), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("fs.write"), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("shell.exec"), std::string::npos) << audit.out;
  EXPECT_EQ(run_choir("audit verify --store " + f.store).exit_code, 0);
}

TEST(ChoirTools, AnAgentUsesMcpToolsAndTheServerSamplesItsModelThroughTheGate) {
  const auto server = std::filesystem::path(CHOIR_SOURCE_DIR) /
                      "tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js";
  if (!std::filesystem::exists(server) || ::access("/usr/bin/node", X_OK) != 0) {
    GTEST_SKIP() << "Node.js or the reference MCP server is missing (npm ci --prefix tests/interop)";
  }
  if (::access("/usr/bin/bwrap", X_OK) != 0) GTEST_SKIP() << "bubblewrap is not installed";
  tools_fixture f("mcp");
  auto r = run_choir("run " + example("mcp/weather.yaml") + " --json --store " + f.store);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("The weather in Chicago"), std::string::npos) << r.out;             // the model's MCP tool call
  EXPECT_NE(r.out.find("The sum of 2 and 40 is 42"), std::string::npos) << r.out;          // a tool step's
  EXPECT_NE(r.out.find("Sampled offline: take an umbrella"), std::string::npos) << r.out;  // the server sampled
  auto audit = run_choir("audit list --store " + f.store);
  EXPECT_NE(audit.out.find("mcp.everything.get-structured-content  allow"), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("mcp.everything.get-sum  allow"), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("mcp.everything.trigger-sampling-request  allow"), std::string::npos) << audit.out;
  EXPECT_EQ(run_choir("audit verify --store " + f.store).exit_code, 0);

  // A contract that does not ask for an MCP tool cannot call it: the gate refuses.
  const auto sneaky = write_temp("sneaky-mcp.yaml", R"(apiVersion: agentos/v0.2
kind: AgentContract
name: sneaky
class: {latency: DT}
capabilities: [mcp.everything.get-sum]
---
apiVersion: agentos/v0.2
kind: Graph
name: sneaky
entrypoint: env
actions:
  env: {type: tool, tool: mcp.everything.get-env, into: env}
)");
  auto refused = run_choir("--mcp " + example("mcp/mcp.yaml") + " run " + sneaky + " --store " + f.store);
  EXPECT_NE(refused.exit_code, 0) << refused.out;
  EXPECT_NE(refused.out.find("mcp.everything.get-env"), std::string::npos) << refused.out;
}

TEST(ChoirTools, TheCheckerRunsProgramsInTheSandboxAndRoutesOnItsVerdict) {
  if (::access("/usr/bin/bwrap", X_OK) != 0) GTEST_SKIP() << "bubblewrap is not installed";
  tools_fixture f("checker");
  auto r = run_choir("run " + example("checker.yaml") + " --json --store " + f.store);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  // measure, check (fails: no report yet), report, check (passes), done
  EXPECT_NE(r.out.find("\"input_bytes\":22"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"passed\":false"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"passed\":true"), std::string::npos) << r.out;
  std::ifstream report(f.dir / "workspaces" / "local" / "checker" / "report.json");
  std::string saved((std::istreambuf_iterator<char>(report)), {});
  EXPECT_EQ(saved, "{\"input_bytes\":22}");  // the step's reads, as its stdin
  auto audit = run_choir("audit list --store " + f.store);
  EXPECT_NE(audit.out.find("exec(sh -c"), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("verify(test -s report.json)"), std::string::npos) << audit.out;
}

TEST(ChoirTools, ABadMcpFileIsReportedWithTheFieldAtFault) {
  tools_fixture f("mcp-bad");
  const auto servers = write_temp("bad-mcp.yaml", "kind: McpServers\nservers:\n  Everything: {command: [node]}\n");
  auto r = run_choir("--mcp " + servers + " run " + example("counter.yaml") + " --store " + f.store);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("servers.Everything"), std::string::npos) << r.out;
  const auto both =
      write_temp("both-mcp.yaml", "kind: McpServers\nservers:\n  x: {command: [node], url: http://a/mcp}\n");
  r = run_choir("--mcp " + both + " run " + example("counter.yaml") + " --store " + f.store);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("exactly one of command"), std::string::npos) << r.out;
}

TEST(ChoirTools, ABadModelsFileIsReportedWithTheFieldAtFault) {
  tools_fixture f("models");
  const auto models = write_temp("bad-models.yaml", "kind: Models\nmodels:\n  local/8B: {provider: oracle}\n");
  auto r = run_choir("--models " + models + " run " + example("notes.yaml") + " --store " + f.store);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("models.local/8B.provider: must be scripted, openai, openai-responses, anthropic or mcp-client"),
            std::string::npos)
      << r.out;
}

TEST(ChoirTools, AnAgentWhoseModelTheGatewayDoesNotServeIsNotAdmitted) {
  tools_fixture f("unserved");
  const auto models =
      write_temp("other-models.yaml", "kind: Models\nmodels:\n  other: {provider: scripted, rules: [{reply: hi}]}\n");
  auto r = run_choir("--models " + models + " run " + example("notes.yaml") + " --store " + f.store);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("no model 'local/8B'"), std::string::npos) << r.out;
}

TEST(ChoirTools, ModelsAndToolsDoNotRunOutsideTheKernel) {
  auto r = run_choir("run " + example("notes.yaml") + " --no-store");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("runs only under the kernel's gate"), std::string::npos) << r.out;
}

TEST(ChoirChat, AConversationInTheTerminalStreamsRepliesAndAsksForConsent) {
  tools_fixture f("chat");
  const auto input = write_temp("chat-input.txt", "hello there\nsave buy milk\ny\n");
  auto r = run_choir("chat scribe --agents " + std::string(CHOIR_SOURCE_DIR) + "/examples --store " + f.store + " < " +
                     input);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("scribe: Tell me what to save"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("consent needed: fs.write(notes/chat.txt)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Saved to notes/chat.txt."), std::string::npos) << r.out;
  std::ifstream note(f.dir / "workspaces" / "local" / "scribe" / "notes" / "chat.txt");
  std::string text((std::istreambuf_iterator<char>(note)), {});
  EXPECT_EQ(text, "save buy milk");
  EXPECT_NE(r.out.find("continue it with: choir chat scribe --run "), std::string::npos) << r.out;
  auto missing = run_choir("chat nobody --agents " + std::string(CHOIR_SOURCE_DIR) + "/examples --store " + f.store);
  EXPECT_EQ(missing.exit_code, 2) << missing.out;
  auto counter = run_choir("chat counter --agents " + std::string(CHOIR_SOURCE_DIR) + "/examples --store " + f.store);
  EXPECT_EQ(counter.exit_code, 2) << counter.out;
}

namespace {

/// A process that holds the store open — as `choir serve` does — must keep its write-ahead log
/// while other processes come and go, even after it opened and closed the store a second time.
/// (Reading the file's header with a separate descriptor once released this process's locks, so
/// the next process to close believed itself the last one and deleted the log: the holder then
/// read a stale database and its own writes went to a deleted file.)
TEST(ChoirStore, AProcessHoldingTheStoreKeepsItsLogWhenOthersComeAndGo) {
  const std::string dir = ::testing::TempDir() + "choir-shared-store-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/choir.db";
  ASSERT_EQ(run_choir("policy apply " + example("policy.yaml") + " --store " + db).exit_code, 0);
  auto held = choir::store::open_sqlite_store(db);
  ASSERT_TRUE(held.ok()) << held.err().message;
  {
    auto again = choir::store::open_sqlite_store(db);  // a second store in this process, closed at once
    ASSERT_TRUE(again.ok());
  }
  auto other = run_choir("run " + example("counter.yaml") + " --input n=1 --store " + db);
  ASSERT_EQ(other.exit_code, 0) << other.out;
  EXPECT_TRUE(std::filesystem::exists(db + "-wal")) << "another process deleted the log this one still uses";
  auto runs = (*held)->list_runs(10);
  ASSERT_TRUE(runs.ok()) << runs.err().message;
  ASSERT_EQ(runs->size(), 1u) << "the run the other process committed is not seen";
  EXPECT_EQ(runs->front().agent, "counter");
  held->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
