// End-to-end tests of the `choir` binary: what a person or a script sees.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

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
  auto r = run_choir("run " + example("copilot.yaml") +
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

}  // namespace
