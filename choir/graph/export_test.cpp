#include "choir/graph/export.hpp"

#include <gtest/gtest.h>

namespace choir::graph {
namespace {

std::shared_ptr<const graph> sample() {
  auto noop = [](const std::string& name) {
    return action_builder(name).run([](const state_view&) { return result<action_output>(action_output{}); });
  };
  auto risky = action_builder("risky").on_error("fix").run(
      [](const state_view&) { return result<action_output>(action_output{}); });
  return *application_builder()
              .with_actions({noop("start"), risky, noop("fix"), noop("end-it")})
              .with_transition("start", "risky", condition::expr("mode == \"go\""))
              .with_transition("start", "end-it")
              .with_transition("risky", "end-it")
              .with_transition("fix", "end-it")
              .with_entrypoint("start")
              .with_state(value{{"mode", "go"}})
              .build_graph();
}

TEST(Export, MermaidShowsEveryActionEdgeAndCondition) {
  const std::string m = to_mermaid(*sample());
  EXPECT_EQ(m.rfind("flowchart TD\n", 0), 0u);
  EXPECT_NE(m.find("start((start)) --> a0"), std::string::npos);
  EXPECT_NE(m.find("a0[\"start\"]"), std::string::npos);
  EXPECT_NE(m.find("a3[\"end-it\"]"), std::string::npos);
  EXPECT_NE(m.find("a0 -->|\"mode == #quot;go#quot;\"| a1"), std::string::npos);
  EXPECT_NE(m.find("a0 --> a3"), std::string::npos);
  EXPECT_NE(m.find("a1 -.->|\"on error\"| a2"), std::string::npos);
}

TEST(Export, DotQuotesNamesAndLabelsConditions) {
  const std::string d = to_dot(*sample());
  EXPECT_EQ(d.rfind("digraph G {", 0), 0u);
  EXPECT_NE(d.find("\"start\" -> \"risky\" [label=\"mode == \\\"go\\\"\", style=dashed];"), std::string::npos);
  EXPECT_NE(d.find("\"__start\" -> \"start\";"), std::string::npos);
  EXPECT_NE(d.find("\"risky\" -> \"fix\" [label=\"on error\", style=dotted, color=red];"), std::string::npos);
  EXPECT_EQ(d.back(), '\n');
}

}  // namespace
}  // namespace choir::graph
