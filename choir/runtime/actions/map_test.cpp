#include "choir/runtime/actions/map.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "choir/runtime/actor.hpp"
#include "choir/runtime/agent_run.hpp"
#include "choir/store/synchronized.hpp"

namespace choir::runtime {
namespace {

namespace fs = std::filesystem;

std::string research_graph(const std::string& extra = "", const std::string& child_update = "goal + ': ' + topic") {
  return R"(
apiVersion: agentos/v0.2
kind: Graph
name: research
entrypoint: research
state: {topics: [a, b, c, d, e], goal: learn}
actions:
  research:
    type: map
    over: topics
    as: topic
    with: [goal]
    collect: summary
    into: summaries
    max_concurrency: 2
)" + extra +
         R"(
    graph:
      entrypoint: read
      actions:
        read: {type: set, update: {summary: ")" +
         child_update + R"("}}
  done: {type: pass}
transitions:
  - {from: research, to: done}
)";
}

class Map : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() / ("choir-map-" + std::to_string(::getpid()) + "-" +
                                          ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db"))
                .string();
    remove_files();
  }
  void TearDown() override {
    services_.reset();
    remove_files();
  }
  void remove_files() {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path_ + suffix);
  }
  /// Services with a store and worker actors (threads), or neither.
  std::shared_ptr<action_services> services(bool durable) {
    services_ = std::make_shared<action_services>();
    if (durable) {
      services_->store = store::synchronized(store::open_sqlite_store(path_).value());
      services_->actors = &sys_;
    }
    return services_;
  }
  std::shared_ptr<const agent_definition> load(const std::string& text, std::shared_ptr<action_services> svc) {
    auto agent = load_agent(text, "research.yaml", runtime_registry(svc));
    EXPECT_TRUE(agent.ok()) << agent.err().message;
    return agent.ok() ? *agent : nullptr;
  }
  /// The parent as an application that is not itself persisted (its step may run again).
  static std::unique_ptr<graph::application> parent_app(const agent_definition& agent, const std::string& id,
                                                        graph::state at) {
    auto b = agent.doc.builder;
    b.with_identifiers(id).with_position("research", std::move(at), 7);
    return b.build(agent.graph).value();
  }

  std::string path_;
  actor_system sys_{{.threads = 2}};
  std::shared_ptr<action_services> services_;
};

TEST_F(Map, FansASubgraphOutOverAListAndCollectsTheAnswersInInputOrder) {
  auto agent = load(research_graph(), services(false));
  auto app = agent->doc.builder.build(agent->graph).value();
  auto outcome = app->run();
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, graph::halt_reason::completed);
  EXPECT_EQ(app->current_state().get("summaries"),
            value::array({"learn: a", "learn: b", "learn: c", "learn: d", "learn: e"}));
}

TEST_F(Map, EachChildIsAPersistedRunLinkedToItsParentStep) {
  auto svc = services(true);
  auto agent = load(research_graph(), svc);
  auto app = parent_app(*agent, "parent-1", agent->graph->initial_state());
  auto step = app->step();
  ASSERT_TRUE(step.ok()) << step.err().message;
  ASSERT_EQ((*step)->status, graph::step_status::completed) << (*step)->failure->message;
  EXPECT_EQ(app->current_state().get("summaries").size(), 5U);
  for (int i = 0; i < 5; ++i) {
    const std::string id = "parent-1.research.7." + std::to_string(i);
    auto child = svc->store->get_run(id);
    ASSERT_TRUE(child.ok()) << id;
    EXPECT_EQ(child->status, "completed");
    EXPECT_EQ(child->parent_run, "parent-1");
    EXPECT_EQ(child->parent_step, 7);
    EXPECT_EQ(child->last_sequence, 8);  // its one step follows the parent's step
    EXPECT_TRUE(child->owner.empty());
  }
  EXPECT_EQ((*step)->result["children"].size(), 5U);
}

TEST_F(Map, RunningTheParentStepAgainReusesCompletedChildrenInsteadOfRerunningThem) {
  auto svc = services(true);
  auto agent = load(research_graph(), svc);
  auto first = parent_app(*agent, "parent-2", agent->graph->initial_state());
  ASSERT_TRUE(first->step().ok());
  // The process "died" before the parent's step committed: the step runs again, with a changed
  // goal. Completed children are not run again, so their answers are the recorded ones.
  auto changed = agent->graph->initial_state().update("goal", value("forget"));
  auto again = parent_app(*agent, "parent-2", changed);
  auto step = again->step();
  ASSERT_TRUE(step.ok()) << step.err().message;
  EXPECT_EQ(again->current_state().get("summaries"),
            value::array({"learn: a", "learn: b", "learn: c", "learn: d", "learn: e"}));
  for (int i = 0; i < 5; ++i) {
    auto steps = svc->store->steps("parent-2.research.7." + std::to_string(i), 0, 10).value();
    EXPECT_EQ(steps.size(), 1U);  // each child ran exactly once
  }
}

TEST_F(Map, AChildCaughtMidwayContinuesFromItsLastCommittedStep) {
  auto svc = services(true);
  const std::string text = R"(
apiVersion: agentos/v0.2
kind: Graph
name: two_steps
entrypoint: research
state: {topics: [x]}
actions:
  research:
    type: map
    over: topics
    collect: n
    into: results
    graph:
      entrypoint: one
      state: {n: 0}
      actions:
        one: {type: set, update: {n: n + 1}}
        two: {type: set, update: {n: n + 10}}
      transitions:
        - {from: one, to: two}
)";
  auto agent = load(text, svc);
  // The child's first step committed before the crash.
  auto child_agent = load_agent(R"(
apiVersion: agentos/v0.2
kind: Graph
name: research
entrypoint: one
state: {n: 0, item: null}
actions:
  one: {type: set, update: {n: n + 1}}
  two: {type: set, update: {n: n + 10}}
transitions:
  - {from: one, to: two}
)",
                                "child.yaml", graph::action_registry::with_builtins())
                         .value();
  auto child = start_run(*svc->store, *child_agent,
                         {.run_id = "parent-3.research.7.0",
                          .parent_run = "parent-3",
                          .parent_step = 7,
                          .initial = value{{"item", "x"}}},
                         {})
                   .value();
  ASSERT_TRUE(child->step().ok());
  auto app = parent_app(*agent, "parent-3", agent->graph->initial_state());
  auto step = app->step();
  ASSERT_TRUE(step.ok()) << step.err().message;
  ASSERT_EQ((*step)->status, graph::step_status::completed) << (*step)->failure->message;
  EXPECT_EQ(app->current_state().get("results"), value::array({11}));  // one ran once, then two
  EXPECT_EQ(svc->store->steps("parent-3.research.7.0", 0, 10).value().size(), 2U);
}

TEST_F(Map, ReducersCombineParallelWritesToOneKey) {
  const std::string sum = research_graph("    reduce: sum\n", "1");
  auto agent = load(sum, services(false));
  auto app = agent->doc.builder.build(agent->graph).value();
  ASSERT_TRUE(app->run().ok());
  EXPECT_EQ(app->current_state().get("summaries"), value(5));
}

TEST_F(Map, AFailingChildFailsTheStepNamingTheChild) {
  auto agent = load(research_graph("", "1 / 0"), services(false));
  auto app = agent->doc.builder.build(agent->graph).value();
  auto step = app->step();
  ASSERT_TRUE(step.ok());
  ASSERT_EQ((*step)->status, graph::step_status::failed);
  EXPECT_NE((*step)->failure->message.find("child 0"), std::string::npos) << (*step)->failure->message;
}

TEST_F(Map, BadMapDeclarationsAreRefusedWithTheirField) {
  auto svc = services(false);
  auto registry = runtime_registry(svc);
  auto try_load = [&](const std::string& action) {
    return load_agent(
        "apiVersion: agentos/v0.2\nkind: Graph\nname: bad\nentrypoint: m\nstate: {xs: []}\n"
        "actions:\n  m: " +
            action + "\n",
        "bad.yaml", registry);
  };
  auto no_over = try_load("{type: map, into: out, graph: {entrypoint: a, actions: {a: {type: pass}}}}");
  ASSERT_FALSE(no_over.ok());
  EXPECT_NE(no_over.err().message.find("over"), std::string::npos) << no_over.err().message;
  auto bad_reduce =
      try_load("{type: map, over: xs, into: out, reduce: avg, graph: {entrypoint: a, actions: {a: {type: pass}}}}");
  ASSERT_FALSE(bad_reduce.ok());
  EXPECT_NE(bad_reduce.err().message.find("reduce"), std::string::npos);
  auto no_graph = try_load("{type: map, over: xs, into: out}");
  ASSERT_FALSE(no_graph.ok());
  EXPECT_NE(no_graph.err().message.find("graph"), std::string::npos);
  auto bad_child = try_load("{type: map, over: xs, into: out, graph: {entrypoint: nope, actions: {a: {type: pass}}}}");
  ASSERT_FALSE(bad_child.ok());
  EXPECT_NE(bad_child.err().message.find("nope"), std::string::npos) << bad_child.err().message;
}

constexpr const char* researcher_agent = R"(
apiVersion: agentos/v0.2
kind: Graph
name: researcher
entrypoint: gather
state: {topic: null, notes: []}
actions:
  gather: {type: set, append: {notes: "'read about ' + topic"}}
  summarize: {type: set, reads: [topic, notes], update: {summary: "topic + ': ' + str(size(notes)) + ' note'"}}
transitions:
  - {from: gather, to: summarize}
)";

TEST_F(Map, ActionsSideBySideOverOneStateAreReducedIntoOneKey) {
  auto svc = services(true);
  auto agent = load(R"(
apiVersion: agentos/v0.2
kind: Graph
name: checks
entrypoint: review
state: {change: 40}
actions:
  review:
    type: map
    with: [change]
    actions:
      lint: {type: set, reads: [change], update: {score: change / 10}}
      tests: {type: set, reads: [change], update: {score: change + 1}}
      types: {type: set, update: {score: 2}}
    collect: score
    into: total
    reduce: sum
)",
                    svc);
  auto b = agent->doc.builder;
  b.with_identifiers("parent-5");
  auto run = b.build(agent->graph).value();
  ASSERT_TRUE(run->run().ok());
  EXPECT_EQ(run->current_state().get("total"), value(4 + 41 + 2));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(svc->store->get_run("parent-5.review.0." + std::to_string(i))->status, "completed");
  }
}

TEST_F(Map, AnAgentActionRunsARegisteredAgentAsAChildRunAndWritesItsAnswer) {
  auto svc = services(true);
  svc->agents = std::make_shared<agent_catalog>();
  svc->agents->add(load_agent(researcher_agent, "researcher.yaml", runtime_registry(svc)).value());
  auto agent = load(R"(
apiVersion: agentos/v0.2
kind: Graph
name: asker
entrypoint: ask
state: {topic: owls}
actions:
  ask: {type: agent, agent: researcher, with: [topic], collect: summary, into: advice}
)",
                    svc);
  auto b = agent->doc.builder;
  b.with_identifiers("parent-4");
  auto built = b.build(agent->graph);
  ASSERT_TRUE(built.ok()) << built.err().message;
  auto run = std::move(built).value();
  ASSERT_TRUE(run->run().ok());
  EXPECT_EQ(run->current_state().get("advice"), value("owls: 1 note"));
  auto child = svc->store->get_run("parent-4.ask.0");
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(child->agent, "researcher");
  EXPECT_EQ(child->parent_run, "parent-4");
  EXPECT_EQ(child->status, "completed");
}

TEST_F(Map, AMapFansOutToARegisteredAgent) {
  auto svc = services(false);
  svc->agents = std::make_shared<agent_catalog>();
  svc->agents->add(load_agent(researcher_agent, "researcher.yaml", runtime_registry(svc)).value());
  auto agent = load(R"(
apiVersion: agentos/v0.2
kind: Graph
name: orchestrator
entrypoint: fan
state: {topics: [owls, bats]}
actions:
  fan: {type: map, over: topics, as: topic, agent: researcher, collect: summary, into: findings}
)",
                    svc);
  auto run = agent->doc.builder.build(agent->graph).value();
  ASSERT_TRUE(run->run().ok());
  EXPECT_EQ(run->current_state().get("findings"), value::array({"owls: 1 note", "bats: 1 note"}));
}

TEST_F(Map, AgentsAreFoundByNameInTheCatalogsFoldersAndCyclesAreRefused) {
  const fs::path dir = fs::path(path_ + ".agents");
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::FILE* f = std::fopen((dir / (name + ".yaml")).c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
  };
  write("researcher", researcher_agent);
  write("ping",
        "apiVersion: agentos/v0.2\nkind: Graph\nname: ping\nentrypoint: a\n"
        "actions:\n  a: {type: agent, agent: pong, into: x}\n");
  write("pong",
        "apiVersion: agentos/v0.2\nkind: Graph\nname: pong\nentrypoint: a\n"
        "actions:\n  a: {type: agent, agent: ping, into: x}\n");
  auto svc = services(false);
  svc->agents = std::make_shared<agent_catalog>();
  svc->agents->search_in(dir);
  auto registry = runtime_registry(svc);
  auto found = svc->agents->find("researcher", registry);
  ASSERT_TRUE(found.ok()) << found.err().message;
  EXPECT_EQ((*found)->name, "researcher");
  auto cycle = svc->agents->find("ping", registry);
  ASSERT_FALSE(cycle.ok());
  EXPECT_NE(cycle.err().message.find("refers back to itself"), std::string::npos) << cycle.err().message;
  auto missing = svc->agents->find("nobody", registry);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.err().code, runtime_errc::not_found);
  EXPECT_EQ(svc->agents->find("../etc/passwd", registry).err().code, runtime_errc::invalid_argument);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace choir::runtime
