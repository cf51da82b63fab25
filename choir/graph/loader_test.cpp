#include "choir/graph/loader.hpp"

#include <gtest/gtest.h>

#include "choir/graph/errors.hpp"

namespace choir::graph {
namespace {

const action_registry& registry() {
  static const action_registry r = action_registry::with_builtins();
  return r;
}

std::string load_error(const std::string& yaml) {
  auto doc = load_graph(yaml, "g.yaml", registry());
  return doc.ok() ? std::string("(loaded)") : doc.err().message;
}

constexpr const char* counter_yaml = R"(apiVersion: agentos/v0.2
kind: Graph
name: counter
entrypoint: start
state:
  count: 0
actions:
  start:
    type: set
    inputs: {n: {default: 3}}
    update: {limit: n}
  increment:
    type: set
    update: {count: count + 1}
    tags: [loop]
  done:
    type: pass
transitions:
  - {from: start, to: increment}
  - {from: increment, to: increment, when: count < limit}
  - {from: increment, to: done}
)";

TEST(Loader, LoadsAndRunsTheCounterGraph) {
  auto doc = load_graph(counter_yaml, "counter.yaml", registry());
  ASSERT_TRUE(doc.ok()) << doc.err().message;
  EXPECT_EQ(doc->name, "counter");
  auto app = doc->builder.build();
  ASSERT_TRUE(app.ok()) << app.err().message;
  auto outcome = (*app)->run({}, value{{"n", 4}});
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::completed);
  EXPECT_EQ((*app)->current_state().get("count"), 4);
}

TEST(Loader, OptionalInputsFallBackToTheirDefault) {
  auto doc = load_graph(counter_yaml, "counter.yaml", registry());
  auto app = *doc->builder.build();
  ASSERT_TRUE(app->run().ok());
  EXPECT_EQ(app->current_state().get("count"), 3);
}

TEST(Loader, SetActionsDeriveReadsAndWritesFromTheirExpressions) {
  auto doc = load_graph(counter_yaml, "counter.yaml", registry());
  auto g = *doc->builder.build_graph();
  const action_spec& inc = g->nodes()[*g->index_of("increment")].act->spec();
  EXPECT_EQ(inc.reads, std::vector<std::string>{"count"});
  EXPECT_EQ(inc.writes, std::vector<std::string>{"count"});
  const action_spec& start = g->nodes()[*g->index_of("start")].act->spec();
  EXPECT_TRUE(start.reads.empty());  // `n` is an input, not a state key
  EXPECT_TRUE(start.has_tag("loop") == false);
}

TEST(Loader, SetActionSupportsEveryOperation) {
  auto doc = load_graph(R"(apiVersion: agentos/v0.2
kind: Graph
name: ops
entrypoint: a
state: {n: 1, gone: true, l: [1]}
actions:
  a:
    type: set
    update: {s: "'text'", lit: 5, obj: {k: [1, 2]}}
    append: {l: n + 1}
    extend: {more: "[n, n]"}
    increment: {n: 10}
    remove: [gone]
)",
                        "ops.yaml", registry());
  ASSERT_TRUE(doc.ok()) << doc.err().message;
  auto app = *doc->builder.build();
  ASSERT_TRUE(app->run().ok());
  EXPECT_EQ(app->current_state().to_json(),
            value::parse(R"({"l":[1,2],"lit":5,"more":[1,1],"n":11,"obj":{"k":[1,2]},"s":"text"})"));
}

TEST(Loader, ErrorsGiveFileLineColumnAndFieldPath) {
  EXPECT_EQ(load_error(R"(apiVersion: agentos/v0.2
kind: Graph
name: bad
entrypoint: a
actions:
  a:
    type: set
    update:
      count: count +
)"),
            "g.yaml:9:14: actions.a.update.count: column 8: expected an expression but found end of expression");
}

TEST(Loader, RejectsAnUnknownActionType) {
  EXPECT_EQ(load_error(R"(apiVersion: agentos/v0.2
kind: Graph
name: bad
entrypoint: a
actions:
  a: {type: teleport}
)"),
            "g.yaml:6:13: actions.a.type: unknown action type 'teleport' (known: pass, set)");
}

TEST(Loader, RejectsUnknownFields) {
  EXPECT_EQ(load_error("apiVersion: agentos/v0.2\nkind: Graph\nname: x\nentrypoint: a\nactoins: {}\n"),
            "g.yaml:5:10: actoins: unknown field (a Graph has apiVersion, kind, name, description, entrypoint, state, "
            "actions, transitions)");
  EXPECT_EQ(load_error("apiVersion: agentos/v0.2\nkind: Graph\nname: x\nentrypoint: a\nactions:\n  a: {type: pass, "
                       "udpate: {}}\n"),
            "g.yaml:6:27: actions.a.udpate: unknown field for an action of type 'pass'");
}

TEST(Loader, RejectsAWrongApiVersionOrMissingFields) {
  EXPECT_EQ(load_error("apiVersion: v1\nkind: Graph\nname: x\n"),
            "g.yaml:1:13: apiVersion: apiVersion must be agentos/v0.2");
  EXPECT_EQ(load_error("apiVersion: agentos/v0.2\nkind: Graph\nentrypoint: a\n"),
            "g.yaml:1:1: a Graph needs a non-empty string 'name'");
  EXPECT_EQ(load_error("apiVersion: agentos/v0.2\nkind: Graph\nname: x\nentrypoint: a\n"),
            "g.yaml:1:1: a Graph needs a mapping of 'actions'");
}

TEST(Loader, ReportsYamlSyntaxErrorsWithTheirPosition) {
  const std::string message = load_error("kind: Graph\nname: [unclosed\n");
  EXPECT_EQ(message.rfind("g.yaml:", 0), 0u) << message;
}

TEST(Loader, RejectsAFileWithoutAGraphDocument) {
  EXPECT_EQ(load_error("kind: AgentContract\nname: x\n"), "g.yaml: no 'kind: Graph' document");
  EXPECT_EQ(load_error("- 1\n- 2\n"), "g.yaml:1:1: a document must be a mapping");
}

TEST(Loader, SkipsOtherDocumentsAndListsTheirKinds) {
  auto doc = load_graph(std::string("apiVersion: agentos/v0.2\nkind: AgentContract\nname: c\n---\n") + counter_yaml,
                        "agent.yaml", registry());
  ASSERT_TRUE(doc.ok()) << doc.err().message;
  EXPECT_EQ(doc->other_kinds, std::vector<std::string>{"AgentContract"});
}

TEST(Loader, ReportsGraphLevelProblems) {
  EXPECT_EQ(load_error(R"(apiVersion: agentos/v0.2
kind: Graph
name: bad
entrypoint: a
actions:
  a: {type: pass}
  b: {type: pass}
)"),
            "g.yaml:1:1: graph 'bad': unreachable from the entrypoint 'a': 'b'");
  EXPECT_EQ(load_error(R"(apiVersion: agentos/v0.2
kind: Graph
name: bad
entrypoint: a
actions:
  a: {type: pass}
transitions:
  - {from: a, to: a, when: cuont > 1}
)"),
            "g.yaml:1:1: graph 'bad': transition a -> a: the condition 'cuont > 1' reads 'cuont', which no action "
            "writes and the initial state does not provide");
}

TEST(Loader, SetExpressionsMayReadOnlyDeclaredKeysAndInputs) {
  EXPECT_EQ(load_error(R"(apiVersion: agentos/v0.2
kind: Graph
name: bad
entrypoint: a
state: {x: 1, y: 2}
actions:
  a:
    type: set
    reads: [x]
    update: {z: x + y}
)"),
            "g.yaml:9:12: actions.a.reads: an expression reads 'y', which is neither in reads nor an input");
}

TEST(Loader, EqualityMapsAreWhenConditions) {
  auto doc = load_graph(R"(apiVersion: agentos/v0.2
kind: Graph
name: modes
entrypoint: a
state: {mode: CALM}
actions:
  a: {type: pass}
  calm: {type: pass}
  other: {type: pass}
transitions:
  - {from: a, to: calm, when: {mode: CALM}}
  - {from: a, to: other}
)",
                        "m.yaml", registry());
  ASSERT_TRUE(doc.ok()) << doc.err().message;
  auto app = *doc->builder.build();
  ASSERT_TRUE(app->step().ok());
  EXPECT_EQ(app->next_action(), "calm");
}

TEST(Loader, ParsesRetryOnErrorCostAndLatency) {
  auto doc = load_graph(R"(apiVersion: agentos/v0.2
kind: Graph
name: r
entrypoint: a
actions:
  a:
    type: pass
    cost_ms: 2.5
    latency: HRT
    retry: {max_attempts: 3, backoff_ms: 100, multiplier: 2, max_backoff_ms: 1000}
    on_error: {to: b, capture: why}
  b: {type: pass}
)",
                        "r.yaml", registry());
  ASSERT_TRUE(doc.ok()) << doc.err().message;
  auto g = *doc->builder.build_graph();
  const action_spec& a = g->nodes()[0].act->spec();
  EXPECT_EQ(*a.cost_ms, 2.5);
  EXPECT_EQ(*a.latency, latency_class::hrt);
  EXPECT_EQ(a.retry.max_attempts, 3);
  EXPECT_EQ(a.retry.initial_backoff.count(), 100);
  EXPECT_EQ(a.on_error->to, "b");
  EXPECT_EQ(a.on_error->capture, "why");
}

TEST(Loader, RejectsBadCommonFields) {
  const std::string head =
      "apiVersion: agentos/v0.2\nkind: Graph\nname: x\nentrypoint: a\nactions:\n  a:\n    type: pass\n";
  EXPECT_EQ(load_error(head + "    latency: FAST\n"), "g.yaml:8:14: actions.a.latency: expected HRT, SRT or DT");
  EXPECT_EQ(load_error(head + "    cost_ms: -1\n"), "g.yaml:8:14: actions.a.cost_ms: expected a number >= 0");
  EXPECT_EQ(load_error(head + "    retry: {max_attempts: 0}\n"),
            "g.yaml:8:27: actions.a.retry.max_attempts: expected an integer from 1 to 100");
  EXPECT_EQ(load_error(head + "    reads: [1]\n"), "g.yaml:8:13: actions.a.reads.0: expected a string");
}

TEST(Loader, RejectsTextThatIsNotUtf8NamingWhere) {
  EXPECT_EQ(load_error("kind: Graph\nname: ab\xff\n"), "g.yaml:2:9: not valid UTF-8");
  EXPECT_EQ(load_error("kind: Graph\nname: \xc3\n"), "g.yaml:2:7: not valid UTF-8");
}

TEST(Loader, ActionsKeepTheirOrderFromTheFile) {
  auto doc = load_graph(R"(apiVersion: agentos/v0.2
kind: Graph
name: order
entrypoint: zeta
actions:
  zeta: {type: pass}
  alpha: {type: pass}
transitions:
  - {from: zeta, to: alpha}
)",
                        "o.yaml", registry());
  ASSERT_TRUE(doc.ok()) << doc.err().message;
  auto g = *doc->builder.build_graph();
  EXPECT_EQ(g->nodes()[0].act->name(), "zeta");
  EXPECT_EQ(g->nodes()[1].act->name(), "alpha");
}

}  // namespace
}  // namespace choir::graph
