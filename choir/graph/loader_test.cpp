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
            "g.yaml:6:13: actions.a.type: unknown action type 'teleport' (known: human, pass, set)");
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

constexpr const char* approval_yaml = R"(apiVersion: agentos/v0.2
kind: Graph
name: approval
entrypoint: start
actions:
  start:
    type: set
    update: {plan: "'ship it'"}
  approve:
    type: human
    prompt: "Approve the plan?"
    inputs: [answer, note]
    writes: [answer]
  done:
    type: set
    reads: [answer]
    update: {approved: answer == 'yes'}
transitions:
  - {from: start, to: approve}
  - {from: approve, to: done}
)";

std::unique_ptr<application> approval_app() {
  auto doc = load_graph(approval_yaml, "approval.yaml", registry());
  EXPECT_TRUE(doc.ok()) << doc.err().message;
  auto app = doc->builder.build();
  EXPECT_TRUE(app.ok()) << app.err().message;
  return std::move(app).value();
}

value answer_yes() { return value{{"answer", "yes"}, {"note", "fine"}}; }

TEST(HumanAction, RunHaltsWaitingForInputAfterTheStepsBeforeIt) {
  auto app = approval_app();
  auto outcome = app->run();
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::waiting_input);
  EXPECT_EQ(to_string(outcome->reason), "waiting_input");
  EXPECT_EQ(outcome->steps, 1u);
  EXPECT_EQ(outcome->last_step->action, "start");
  EXPECT_FALSE(outcome->failure.has_value());
  EXPECT_EQ(app->next_action(), "approve");
  EXPECT_EQ(app->sequence_id(), 1u);
  EXPECT_FALSE(app->current_state().contains("answer"));
}

TEST(HumanAction, InputsGivenToALaterStepDoNotReachIt) {
  auto app = approval_app();
  // The inputs go to the first step (start), so approve still waits.
  auto outcome = app->run({}, answer_yes());
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::waiting_input);
  EXPECT_EQ(outcome->steps, 1u);
}

TEST(HumanAction, RunningAgainWithTheInputRunsItAndContinues) {
  auto app = approval_app();
  ASSERT_EQ(app->run()->reason, halt_reason::waiting_input);
  auto outcome = app->run({}, answer_yes());
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::completed);
  EXPECT_EQ(outcome->steps, 2u);
  EXPECT_EQ(app->current_state().get("answer"), "yes");
  EXPECT_FALSE(app->current_state().contains("note"));  // not in writes: only recorded as an input
  EXPECT_EQ(app->current_state().get("approved"), true);
}

TEST(HumanAction, ItsStepRecordsTheInputsAndReturnsThem) {
  auto app = approval_app();
  ASSERT_EQ(app->run()->reason, halt_reason::waiting_input);
  std::vector<step_record> steps;
  auto range = app->iterate({}, answer_yes());
  for (const auto& s : range) steps.push_back(s);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].action, "approve");
  EXPECT_EQ(steps[0].inputs, answer_yes());
  EXPECT_EQ(steps[0].result, answer_yes());
  EXPECT_EQ(steps[0].delta.to_json(), value::parse(R"([{"op":"set","key":"answer","value":"yes"}])"));
}

TEST(HumanAction, IterateWaitsAndResumesLikeRun) {
  auto app = approval_app();
  std::vector<std::string> seen;
  auto first = app->iterate();
  for (const auto& s : first) seen.push_back(s.action);
  EXPECT_EQ(seen, std::vector<std::string>{"start"});
  EXPECT_EQ(first.outcome().reason, halt_reason::waiting_input);
  EXPECT_EQ(first.outcome().steps, 1u);
  EXPECT_FALSE(first.engine_error().has_value());

  seen.clear();
  auto second = app->iterate({}, answer_yes());
  for (const auto& s : second) seen.push_back(s.action);
  EXPECT_EQ(seen, (std::vector<std::string>{"approve", "done"}));
  EXPECT_EQ(second.outcome().reason, halt_reason::completed);
  EXPECT_EQ(app->current_state().get("answer"), "yes");
}

TEST(HumanAction, RunAsyncWaitsAndResumesLikeRun) {
  auto app = approval_app();
  auto waiting = sync_wait(app->run_async());
  ASSERT_TRUE(waiting.ok()) << waiting.err().message;
  EXPECT_EQ(waiting->reason, halt_reason::waiting_input);
  EXPECT_EQ(waiting->steps, 1u);
  EXPECT_EQ(app->next_action(), "approve");

  auto done = sync_wait(app->run_async({}, answer_yes()));
  ASSERT_TRUE(done.ok()) << done.err().message;
  EXPECT_EQ(done->reason, halt_reason::completed);
  EXPECT_EQ(done->steps, 2u);
  EXPECT_EQ(app->current_state().get("answer"), "yes");
}

TEST(HumanAction, AwaitingInputSaysWhetherTheNextActionLacksItsInput) {
  auto app = approval_app();
  EXPECT_FALSE(app->awaiting_input(value::object()));  // start comes first
  ASSERT_EQ(app->run()->reason, halt_reason::waiting_input);
  EXPECT_TRUE(app->awaiting_input(value::object()));
  EXPECT_TRUE(app->awaiting_input(value{{"answer", "yes"}}));  // `note` is required too
  EXPECT_FALSE(app->awaiting_input(answer_yes()));
  ASSERT_TRUE(app->run({}, answer_yes()).ok());
  EXPECT_FALSE(app->awaiting_input(value::object()));  // the run is complete
}

TEST(HumanAction, StepStillFailsWithMissingInput) {
  auto app = approval_app();
  ASSERT_EQ(app->run()->reason, halt_reason::waiting_input);
  auto stepped = app->step();
  ASSERT_FALSE(stepped.ok());
  EXPECT_EQ(stepped.err().code, graph_errc::missing_input);
  EXPECT_EQ(app->next_action(), "approve");
}

TEST(HumanAction, HaltBeforeItWinsOverWaitingForInput) {
  auto app = approval_app();
  auto outcome = app->run({.halt_before = {"approve"}});
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::halted_before);
  EXPECT_EQ(outcome->steps, 1u);
}

TEST(HumanAction, MaxStepsWinsOverWaitingForInput) {
  auto app = approval_app();
  auto outcome = app->run({.max_steps = 1});
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::max_steps);
}

TEST(HumanAction, OptionalInputsAreDefaultedWhenTheRequiredOnesAreGiven) {
  auto doc = load_graph(R"(apiVersion: agentos/v0.2
kind: Graph
name: ask
entrypoint: ask
actions:
  ask:
    type: human
    inputs: {answer: null, note: {default: none}}
    writes: [answer, note]
)",
                        "ask.yaml", registry());
  ASSERT_TRUE(doc.ok()) << doc.err().message;
  auto app = *doc->builder.build();
  EXPECT_EQ(app->run()->reason, halt_reason::waiting_input);
  EXPECT_EQ(app->sequence_id(), 0u);
  auto outcome = app->run({}, value{{"answer", 42}});
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::completed);
  EXPECT_EQ(app->current_state().to_json(), value::parse(R"({"answer":42,"note":"none"})"));
}

TEST(HumanAction, AwaitsInputAndShowsItsPrompt) {
  auto doc = load_graph(approval_yaml, "approval.yaml", registry());
  ASSERT_TRUE(doc.ok()) << doc.err().message;
  auto g = *doc->builder.build_graph();
  const action_spec& approve = g->nodes()[*g->index_of("approve")].act->spec();
  EXPECT_TRUE(approve.awaits_input);
  EXPECT_EQ(approve.type, "human");
  EXPECT_EQ(approve.config, value::parse(R"({"prompt":"Approve the plan?"})"));
  EXPECT_FALSE(g->nodes()[*g->index_of("start")].act->spec().awaits_input);
  const value described = g->describe()["actions"][1];
  EXPECT_EQ(described["config"]["prompt"], "Approve the plan?");
  EXPECT_EQ(described["awaits_input"], true);
  EXPECT_FALSE(g->describe()["actions"][0].contains("awaits_input"));
}

TEST(HumanAction, NeedsARequiredInput) {
  const std::string head = "apiVersion: agentos/v0.2\nkind: Graph\nname: x\nentrypoint: a\nactions:\n  a:\n";
  EXPECT_EQ(load_error(head + "    type: human\n    prompt: Go?\n"),
            "g.yaml:7:5: actions.a.inputs: a human action needs at least one required input (the answer it waits "
            "for)");
  EXPECT_EQ(load_error(head + "    type: human\n    inputs: {answer: {default: no}}\n"),
            "g.yaml:8:13: actions.a.inputs: a human action needs at least one required input (the answer it waits "
            "for)");
}

TEST(HumanAction, RejectsAWriteThatIsNotAnInputAndANonStringPrompt) {
  const std::string head =
      "apiVersion: agentos/v0.2\nkind: Graph\nname: x\nentrypoint: a\nactions:\n  a:\n    type: human\n    "
      "inputs: [answer]\n";
  EXPECT_EQ(load_error(head + "    writes: [anwser]\n"),
            "g.yaml:9:13: actions.a.writes: 'anwser' is not one of its inputs (a human action writes only those)");
  EXPECT_EQ(load_error(head + "    prompt: [1]\n"), "g.yaml:9:13: actions.a.prompt: expected a string");
  EXPECT_EQ(load_error(head + "    update: {x: 1}\n"),
            "g.yaml:9:13: actions.a.update: unknown field for an action of type 'human'");
}

}  // namespace
}  // namespace choir::graph
