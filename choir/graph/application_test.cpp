#include "choir/graph/application.hpp"

#include <gtest/gtest.h>

#include "choir/core/test_support.hpp"

#include <stdexcept>
#include <thread>

#include "choir/graph/errors.hpp"

namespace choir::graph {
namespace {

std::shared_ptr<action> increment() {
  return action_builder("increment").reads({"count"}).writes({"count"}).run([](const state_view& s) {
    const auto next = s.at("count").get<std::int64_t>() + 1;
    action_output out;
    out.result = next;
    out.changes.set("count", next);
    return result<action_output>(std::move(out));
  });
}

std::shared_ptr<action> noop(const std::string& name, std::vector<std::string> tags = {}) {
  return action_builder(name).tags(std::move(tags)).run([](const state_view&) {
    return result<action_output>(action_output{});
  });
}

/// increment -> check -> (count < limit ? increment : done)
application_builder counter(int limit) {
  application_builder b;
  b.with_actions({increment(), noop("check"), noop("done", {"end"})})
      .with_transition("increment", "check")
      .with_transition("check", "increment", condition::expr("count < " + std::to_string(limit)))
      .with_transition("check", "done")
      .with_entrypoint("increment")
      .with_state(value{{"count", 0}});
  return b;
}

TEST(Application, RunsTheCounterLoopToCompletion) {
  auto app = *counter(3).build();
  auto outcome = app->run();
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::completed);
  EXPECT_EQ(outcome->steps, 7u);  // 3 x (increment, check) + done
  EXPECT_EQ(app->current_state().get("count"), 3);
  EXPECT_EQ(app->sequence_id(), 7u);
  EXPECT_FALSE(app->has_next_action());
}

TEST(Application, TransitionsAreEvaluatedInOrderFirstMatchWins) {
  auto app = *application_builder()
                  .with_actions({noop("start"), noop("first"), noop("second")})
                  .with_transition("start", "first", condition::expr("x > 0"))
                  .with_transition("start", "second", condition::expr("x > 0"))
                  .with_entrypoint("start")
                  .with_state(value{{"x", 1}})
                  .build();
  ASSERT_TRUE(app->step().ok());
  EXPECT_EQ(app->next_action(), "first");
}

TEST(Application, NoMatchingTransitionCompletesTheRun) {
  auto app = *application_builder()
                  .with_actions({noop("start"), noop("other")})
                  .with_transition("start", "other", condition::expr("x > 5"))
                  .with_entrypoint("start")
                  .with_state(value{{"x", 1}})
                  .build();
  auto outcome = app->run();
  EXPECT_EQ(outcome->reason, halt_reason::completed);
  EXPECT_EQ(outcome->steps, 1u);
  auto again = app->step();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
}

TEST(Application, HaltBeforeTheEntrypointRunsNothing) {
  auto app = *counter(3).build();
  auto outcome = app->run({.halt_before = {"increment"}});
  EXPECT_EQ(outcome->reason, halt_reason::halted_before);
  EXPECT_EQ(outcome->steps, 0u);
  EXPECT_EQ(app->current_state().get("count"), 0);
  EXPECT_EQ(app->sequence_id(), 0u);
}

TEST(Application, HaltAfterStopsRightAfterTheAction) {
  auto app = *counter(3).build();
  auto outcome = app->run({.halt_after = {"check"}});
  EXPECT_EQ(outcome->reason, halt_reason::halted_after);
  EXPECT_EQ(outcome->last_step->action, "check");
  EXPECT_EQ(app->current_state().get("count"), 1);
  EXPECT_EQ(app->next_action(), "increment");
}

TEST(Application, HaltsAcceptTags) {
  auto app = *counter(2).build();
  auto outcome = app->run({.halt_after = {"@tag:end"}});
  EXPECT_EQ(outcome->reason, halt_reason::halted_after);
  EXPECT_EQ(outcome->last_step->action, "done");
  EXPECT_EQ(app->run({.halt_after = {"@tag:nope"}}).err().message, "no action is tagged 'nope'");
  EXPECT_EQ(app->run({.halt_before = {"ghost"}}).err().message, "cannot halt at 'ghost': no such action");
}

TEST(Application, MaxStepsBoundsARun) {
  auto app = *counter(1000).build();
  auto outcome = app->run({.max_steps = 10});
  EXPECT_EQ(outcome->reason, halt_reason::max_steps);
  EXPECT_EQ(outcome->steps, 10u);
}

std::shared_ptr<action> needs_input() {
  return action_builder("take").inputs({"n"}).optional_input("unit", "m").writes({"got"}).run([](const state_view& s) {
    action_output out;
    out.changes.set("got", value{{"n", s.input("n")}, {"unit", s.input("unit")}});
    return result<action_output>(std::move(out));
  });
}

TEST(Application, InputsGoToTheFirstStepOnly) {
  auto app = *application_builder()
                  .with_actions({needs_input()})
                  .with_transition("take", "take")
                  .with_entrypoint("take")
                  .build();
  auto outcome = app->run({.max_steps = 3}, value{{"n", 5}});
  // The second step gets no inputs, so it cannot start.
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.err().code, graph_errc::missing_input);
  EXPECT_EQ(outcome.err().message, "action 'take' needs the input 'n', which was not given");
  EXPECT_EQ(app->current_state().get("got"), (value{{"n", 5}, {"unit", "m"}}));
  EXPECT_EQ(app->sequence_id(), 1u);
}

TEST(Application, AStepRecordsOnlyTheDeclaredInputs) {
  auto app = *application_builder().with_actions({needs_input()}).with_entrypoint("take").build();
  auto step = app->step(value{{"n", 1}, {"unit", "s"}, {"stray", true}});
  ASSERT_TRUE(step.ok());
  EXPECT_EQ((*step)->inputs, (value{{"n", 1}, {"unit", "s"}}));
}

TEST(Application, AnUndeclaredWriteFailsTheStepNamingActionAndKey) {
  auto sneaky = action_builder("sneaky").writes({"b"}).run([](const state_view&) {
    action_output out;
    out.changes.set("b", 1).set("secret", 2);
    return result<action_output>(std::move(out));
  });
  auto app = *application_builder().with_actions({sneaky}).with_entrypoint("sneaky").build();
  auto outcome = app->run();
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->reason, halt_reason::failed);
  EXPECT_EQ(outcome->failure->code, graph_errc::undeclared_write);
  EXPECT_EQ(outcome->failure->message, "action 'sneaky' wrote 'secret', which it does not declare in writes");
  EXPECT_EQ(app->current_state().size(), 0u);  // nothing of the failed step was kept
}

TEST(Application, AnUndeclaredReadFailsTheStep) {
  auto nosy = action_builder("nosy").run([](const state_view& s) {
    (void)s.at("count");
    return result<action_output>(action_output{});
  });
  auto app =
      *application_builder().with_actions({nosy}).with_entrypoint("nosy").with_state(value{{"count", 1}}).build();
  auto outcome = app->run();
  EXPECT_EQ(outcome->reason, halt_reason::failed);
  EXPECT_EQ(outcome->failure->code, graph_errc::undeclared_read);
}

TEST(Application, AThrowingActionFailsItsStepAndTheRunKeepsWhatCommitted) {
  auto boom =
      action_builder("boom").run([](const state_view&) -> result<action_output> { throw std::runtime_error("kaput"); });
  auto app = *application_builder()
                  .with_actions({increment(), boom})
                  .with_transition("increment", "boom")
                  .with_entrypoint("increment")
                  .with_state(value{{"count", 0}})
                  .build();
  auto outcome = app->run();
  EXPECT_EQ(outcome->reason, halt_reason::failed);
  EXPECT_EQ(outcome->failure->message, "action 'boom' threw: kaput");
  EXPECT_EQ(app->current_state().get("count"), 1);
  EXPECT_EQ(app->next_action(), "boom");  // a new step retries the failed action
}

class recording_timer final : public retry_timer {
 public:
  void wait(std::chrono::milliseconds d) override { waits.push_back(d.count()); }
  std::vector<std::int64_t> waits;
};

TEST(Application, RetriesFollowThePolicyAndWaitThroughTheTimer) {
  int calls = 0;
  auto flaky = action_builder("flaky")
                   .writes({"ok"})
                   .retry({3, std::chrono::milliseconds(10), 3.0, std::chrono::milliseconds(1000)})
                   .run([&](const state_view&) -> result<action_output> {
                     if (++calls < 3) return make_error(graph_errc::action_failed, "not yet");
                     action_output out;
                     out.changes.set("ok", true);
                     return out;
                   });
  auto timer = std::make_shared<recording_timer>();
  auto app = *application_builder().with_actions({flaky}).with_entrypoint("flaky").with_retry_timer(timer).build();
  auto step = app->step();
  ASSERT_TRUE(step.ok());
  EXPECT_EQ((*step)->status, step_status::completed);
  EXPECT_EQ((*step)->attempts, 3);
  EXPECT_EQ(timer->waits, (std::vector<std::int64_t>{10, 30}));
}

TEST(Application, RetriesStopAtMaxAttempts) {
  int calls = 0;
  auto failing = action_builder("failing").retry({2, {}, 2.0, {}}).run([&](const state_view&) -> result<action_output> {
    ++calls;
    return make_error(graph_errc::action_failed, "no");
  });
  auto app = *application_builder().with_actions({failing}).with_entrypoint("failing").build();
  auto step = app->step();
  EXPECT_EQ((*step)->status, step_status::failed);
  EXPECT_EQ((*step)->attempts, 2);
  EXPECT_EQ(calls, 2);
}

TEST(Application, OnErrorRoutesAFailedStepAndCapturesTheError) {
  auto risky =
      action_builder("risky").on_error("recover", "last_error").run([](const state_view&) -> result<action_output> {
        return make_error(graph_errc::action_failed, "model timed out");
      });
  auto recover = action_builder("recover").reads({"last_error"}).writes({"handled"}).run([](const state_view& s) {
    action_output out;
    out.changes.set("handled", s.at("last_error")["message"]);
    return result<action_output>(std::move(out));
  });
  auto app = *application_builder().with_actions({risky, recover}).with_entrypoint("risky").build();
  auto outcome = app->run();
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->reason, halt_reason::completed);
  EXPECT_EQ(outcome->steps, 2u);
  EXPECT_EQ(app->current_state().get("handled"), "model timed out");
  EXPECT_EQ(app->current_state().get("last_error")["action"], "risky");
}

TEST(Application, EachStepRecordShowsOnlyItsOwnStep) {
  auto risky = action_builder("risky").on_error("recover").run(
      [](const state_view&) -> result<action_output> { return make_error(graph_errc::action_failed, "bad"); });
  auto recover = action_builder("recover").writes({"fixed"}).run([](const state_view&) {
    action_output out;
    out.changes.set("fixed", true);
    return result<action_output>(std::move(out));
  });
  auto app = *application_builder().with_actions({risky, recover}).with_entrypoint("risky").build();
  std::vector<value> records;
  auto range = app->iterate();
  for (const auto& step : range) records.push_back(step.to_json());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["status"], "failed");
  EXPECT_EQ(records[0]["delta"][0]["key"], "error");
  EXPECT_EQ(records[1]["status"], "completed");
  EXPECT_FALSE(records[1].contains("error"));
  EXPECT_EQ(records[1]["delta"], value::parse(R"([{"op":"set","key":"fixed","value":true}])"));
  EXPECT_EQ(records[1]["next"], nullptr);
  EXPECT_EQ(range.outcome().last_step->action, "recover");
}

TEST(Application, AnActionThatAwaitsInputHaltsTheRunBeforeItUntilGiven) {
  int ran = 0;
  auto ask = action_builder("ask").inputs({"answer"}).writes({"answer"}).awaits_input().run([&](const state_view& s) {
    ++ran;
    action_output out;
    out.changes.set("answer", s.input("answer"));
    return result<action_output>(std::move(out));
  });
  auto app = *application_builder()
                  .with_actions({increment(), ask})
                  .with_transition("increment", "ask")
                  .with_entrypoint("increment")
                  .with_state(value{{"count", 0}})
                  .build();
  auto waiting = app->run();
  ASSERT_TRUE(waiting.ok()) << waiting.err().message;
  EXPECT_EQ(waiting->reason, halt_reason::waiting_input);
  EXPECT_EQ(waiting->steps, 1u);
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(app->current_state().get("count"), 1);
  EXPECT_TRUE(app->awaiting_input(value::object()));
  EXPECT_FALSE(app->awaiting_input(value{{"answer", 7}}));

  auto done = app->run({}, value{{"answer", 7}});
  ASSERT_TRUE(done.ok()) << done.err().message;
  EXPECT_EQ(done->reason, halt_reason::completed);
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(app->current_state().get("answer"), 7);
}

TEST(Application, AnActionWithoutTheFlagFailsOnAMissingInputInsteadOfWaiting) {
  auto ask = action_builder("ask").inputs({"answer"}).run([](const state_view&) {
    return result<action_output>(action_output{});
  });
  auto app = *application_builder().with_actions({ask}).with_entrypoint("ask").build();
  EXPECT_FALSE(app->awaiting_input(value::object()));
  auto outcome = app->run();
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.err().code, graph_errc::missing_input);
}

TEST(Application, IterateYieldsEveryStepThenTheOutcome) {
  auto app = *counter(2).build();
  std::vector<std::string> seen;
  auto range = app->iterate({.halt_after = {"done"}});
  for (const auto& step : range) seen.push_back(step.action);
  EXPECT_EQ(seen, (std::vector<std::string>{"increment", "check", "increment", "check", "done"}));
  EXPECT_EQ(range.outcome().reason, halt_reason::halted_after);
  EXPECT_FALSE(range.engine_error().has_value());
}

class recording_hooks final : public hooks {
 public:
  void pre_run(std::string_view) override { events.push_back("pre_run"); }
  void post_run(std::string_view) override { events.push_back("post_run"); }
  void pre_step(std::uint64_t seq, const action& a, const value&) override {
    events.push_back("pre_step " + std::to_string(seq) + " " + a.name());
  }
  void post_step(const step_record& r, const state&) override { events.push_back("post_step " + r.action); }
  void stream_start(const action& a) override { events.push_back("stream_start " + a.name()); }
  void stream_item(const action&, const value& chunk) override { events.push_back("item " + chunk.get<std::string>()); }
  void stream_end(const action& a) override { events.push_back("stream_end " + a.name()); }
  std::vector<std::string> events;
};

TEST(Application, StreamingActionsYieldChunksBeforeTheirResult) {
  auto talk = action_builder("talk").writes({"reply"}).stream([](const state_view&, stream_sink& sink) {
    std::string reply;
    for (const char* word : {"hello", " ", "world"}) {
      sink.item(word);
      reply += word;
    }
    action_output out;
    out.result = reply;
    out.changes.set("reply", reply);
    return result<action_output>(std::move(out));
  });
  auto h = std::make_shared<recording_hooks>();
  auto app = *application_builder().with_actions({talk}).with_entrypoint("talk").with_hooks(h).build();
  std::string streamed;
  run_options opts;
  opts.on_chunk = [&](const std::string& action_name, const value& chunk) {
    EXPECT_EQ(action_name, "talk");
    streamed += chunk.get<std::string>();
  };
  auto outcome = app->run(opts);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(streamed, "hello world");
  EXPECT_EQ(app->current_state().get("reply"), "hello world");
  EXPECT_EQ(h->events,
            (std::vector<std::string>{"pre_run", "pre_step 0 talk", "stream_start talk", "item hello", "item  ",
                                      "item world", "stream_end talk", "post_step talk", "post_run"}));
}

TEST(Application, StreamRunsUpToTheStreamingActionAndHandsOverItsChunks) {
  auto prepare = action_builder("prepare").writes({"topic"}).run([](const state_view&) {
    action_output out;
    out.changes.set("topic", "weather");
    return result<action_output>(std::move(out));
  });
  auto talk =
      action_builder("talk").reads({"topic"}).writes({"reply"}).stream([](const state_view& s, stream_sink& sink) {
        const std::string topic = s.at("topic").get<std::string>();
        sink.item("about ");
        sink.item(topic);
        action_output out;
        out.changes.set("reply", "about " + topic);
        return result<action_output>(std::move(out));
      });
  auto after = action_builder("after").run([](const state_view&) { return result<action_output>(action_output{}); });
  auto app = *application_builder()
                  .with_actions({prepare, talk, after})
                  .with_transition("prepare", "talk")
                  .with_transition("talk", "after")
                  .with_entrypoint("prepare")
                  .build();
  std::vector<std::string> chunks;
  auto outcome = app->stream("talk", [&](const value& chunk) { chunks.push_back(chunk.get<std::string>()); });
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::halted_after);
  EXPECT_EQ(chunks, (std::vector<std::string>{"about ", "weather"}));
  EXPECT_EQ(app->next_action(), "after");
  EXPECT_EQ(app->stream("prepare", [](const value&) {}).err().message, "cannot stream 'prepare': it does not stream");
  EXPECT_EQ(app->stream("ghost", [](const value&) {}).err().message, "cannot stream 'ghost': no such action");
}

using choir::test_support::resume_on_other_thread;

TEST(Application, AsyncActionsAreAwaitedWithoutTheEngineOwningThreads) {
  std::thread worker;
  auto fetch = action_builder("fetch").reads({"count"}).writes({"count"}).run_async(
      [&](state_view s) -> task<result<action_output>> {
        const auto n = s.at("count").get<int>();
        co_await resume_on_other_thread{&worker};
        action_output out;
        out.changes.set("count", n + 10);
        co_return out;
      });
  auto app =
      *application_builder().with_actions({fetch}).with_entrypoint("fetch").with_state(value{{"count", 1}}).build();
  auto outcome = sync_wait(app->run_async());
  worker.join();
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(app->current_state().get("count"), 11);
}

TEST(Application, AsyncActionsAlsoRunFromTheSynchronousApi) {
  auto fetch = action_builder("fetch").writes({"v"}).run_async([](state_view) -> task<result<action_output>> {
    action_output out;
    out.changes.set("v", "done");
    co_return out;
  });
  auto app = *application_builder().with_actions({fetch}).with_entrypoint("fetch").build();
  ASSERT_TRUE(app->run().ok());
  EXPECT_EQ(app->current_state().get("v"), "done");
}

class memory_persister final : public persister {
 public:
  result<void> save_step(const run_identity& who, const step_record& r, const state& after) override {
    if (fail_at && r.sequence_id == *fail_at) return make_error(graph_errc::action_failed, "disk full");
    saved.push_back({who.app_id, r.sequence_id, r.action, after.to_json()});
    return {};
  }
  struct row {
    std::string app_id;
    std::uint64_t seq;
    std::string action;
    value state;
  };
  std::vector<row> saved;
  std::optional<std::uint64_t> fail_at;
};

TEST(Application, EveryStepIsSavedBeforeTheApplicationMovesOn) {
  auto p = std::make_shared<memory_persister>();
  auto app = *counter(1).with_identifiers("run-1", "user-7").with_persister(p).build();
  ASSERT_TRUE(app->run().ok());
  ASSERT_EQ(p->saved.size(), 3u);
  EXPECT_EQ(p->saved[0].app_id, "run-1");
  EXPECT_EQ(p->saved[0].seq, 0u);
  EXPECT_EQ(p->saved[0].state["count"], 1);
  EXPECT_EQ(p->saved[2].action, "done");
  EXPECT_EQ(app->identity().partition_key, "user-7");
}

TEST(Application, AStepThatCannotBeSavedIsNotTaken) {
  auto p = std::make_shared<memory_persister>();
  p->fail_at = 1;
  auto app = *counter(3).with_persister(p).build();
  auto outcome = app->run();
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.err().message, "disk full");
  EXPECT_EQ(app->sequence_id(), 1u);
  EXPECT_EQ(app->next_action(), "check");
  EXPECT_EQ(app->current_state().get("count"), 1);
}

TEST(Application, WithPositionResumesWhereARunLeftOff) {
  auto app = *counter(3).with_position("increment", *state::from_json({{"count", 2}}), 4).build();
  auto outcome = app->run();
  EXPECT_EQ(outcome->steps, 3u);
  EXPECT_EQ(app->current_state().get("count"), 3);
  EXPECT_EQ(app->sequence_id(), 7u);
}

TEST(Application, SequentialExecutorRunsEveryJob) {
  sequential_executor exec;
  int done = 0;
  std::vector<std::function<task<void>()>> jobs;
  for (int i = 0; i < 5; ++i) {
    jobs.push_back([&]() -> task<void> {
      ++done;
      co_return;
    });
  }
  sync_wait(exec.run_all(std::move(jobs), 2));
  EXPECT_EQ(done, 5);
}

// ---- build-time validation -------------------------------------------------------------------

std::string build_error(application_builder b) {
  auto r = b.build();
  return r.ok() ? std::string("(built)") : r.err().message;
}

TEST(ApplicationBuilder, RejectsAGraphWithoutActions) {
  EXPECT_EQ(build_error(application_builder().with_entrypoint("x")), "a graph needs at least one action");
}

TEST(ApplicationBuilder, RejectsAMissingOrUnknownEntrypoint) {
  EXPECT_EQ(build_error(application_builder().with_action(noop("a"))), "the graph has no entrypoint");
  EXPECT_EQ(build_error(application_builder().with_action(noop("a")).with_entrypoint("b")),
            "the entrypoint 'b' is not an action");
}

TEST(ApplicationBuilder, RejectsDuplicateAndMalformedNames) {
  EXPECT_EQ(build_error(application_builder().with_actions({noop("a"), noop("a")}).with_entrypoint("a")),
            "two actions are named 'a'");
  EXPECT_EQ(build_error(application_builder().with_actions({noop("a b")}).with_entrypoint("a b")),
            "action name 'a b' is not valid: use 1 to 128 letters, digits, '_', '-' or '.'");
}

TEST(ApplicationBuilder, RejectsTransitionsToUnknownActions) {
  EXPECT_EQ(build_error(application_builder().with_action(noop("a")).with_transition("a", "zz").with_entrypoint("a")),
            "transition a -> zz: 'zz' is not an action");
  EXPECT_EQ(build_error(application_builder().with_action(noop("a")).with_transition("yy", "a").with_entrypoint("a")),
            "transition yy -> a: 'yy' is not an action");
}

TEST(ApplicationBuilder, RejectsUnreachableActions) {
  EXPECT_EQ(build_error(application_builder().with_actions({noop("a"), noop("b"), noop("c")}).with_entrypoint("a")),
            "unreachable from the entrypoint 'a': 'b', 'c'");
}

TEST(ApplicationBuilder, RejectsAReadThatNothingProvides) {
  auto reader = action_builder("reader").reads({"ghost"}).run(
      [](const state_view&) { return result<action_output>(action_output{}); });
  EXPECT_EQ(build_error(application_builder().with_action(reader).with_entrypoint("reader")),
            "action 'reader' reads 'ghost', which no action writes and the initial state does not provide");
}

TEST(ApplicationBuilder, RejectsTwoDefaultsFromOneAction) {
  EXPECT_EQ(build_error(application_builder()
                            .with_actions({noop("a"), noop("b"), noop("c")})
                            .with_transition("a", "b")
                            .with_transition("a", "c")
                            .with_entrypoint("a")),
            "transition a -> c can never be taken: it follows the default transition from 'a'");
}

TEST(ApplicationBuilder, RejectsExpressionsNamingUnknownKeys) {
  auto r = application_builder()
               .with_actions({noop("a"), noop("b")})
               .with_transition("a", "b", condition::expr("cuont < 3"))
               .with_entrypoint("a")
               .with_state(value{{"count", 0}})
               .build();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, graph_errc::expression_unknown_key);
  EXPECT_EQ(r.err().message,
            "transition a -> b: the condition 'cuont < 3' reads 'cuont', which no action writes and the initial "
            "state does not provide");
}

TEST(ApplicationBuilder, RejectsExpressionsThatDoNotCompile) {
  auto r = application_builder()
               .with_actions({noop("a"), noop("b")})
               .with_transition("a", "b", condition::expr("count <"))
               .with_entrypoint("a")
               .build();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, graph_errc::expression_syntax);
}

TEST(ApplicationBuilder, RejectsAnOnErrorRouteToNowhere) {
  auto a = action_builder("a").on_error("nowhere").run(
      [](const state_view&) { return result<action_output>(action_output{}); });
  EXPECT_EQ(build_error(application_builder().with_action(a).with_entrypoint("a")),
            "action 'a' routes errors to 'nowhere', which is not an action");
}

TEST(ApplicationBuilder, RejectsAnInitialStateThatIsNotAnObject) {
  EXPECT_EQ(build_error(application_builder().with_action(noop("a")).with_entrypoint("a").with_state(value(3))),
            "initial state: state must be a JSON object, not number");
}

TEST(Graph, DescribesItselfAndHasAStableFingerprint) {
  auto g1 = *counter(3).build_graph();
  auto g2 = *counter(3).build_graph();
  auto g3 = *counter(4).build_graph();
  EXPECT_EQ(g1->fingerprint(), g2->fingerprint());
  EXPECT_NE(g1->fingerprint(), g3->fingerprint());
  const value d = g1->describe();
  EXPECT_EQ(d["entrypoint"], "increment");
  EXPECT_EQ(d["actions"].size(), 3u);
  EXPECT_EQ(d["transitions"][1]["condition"], "count < 3");
}

}  // namespace
}  // namespace choir::graph

namespace choir::graph {
namespace {

/// An action that waits for something outside the run until `open` is set.
std::shared_ptr<action> gated(std::shared_ptr<bool> open) {
  return action_builder("gated").writes({"passed"}).run([open](const state_view&) -> result<action_output> {
    if (!*open) return make_error(graph_errc::suspended, "waiting for consent: request r-1");
    action_output out;
    out.changes.set("passed", true);
    return out;
  });
}

TEST(Application, ASuspendedActionCommitsNothingAndRunsAgainWhenTheRunContinues) {
  auto open = std::make_shared<bool>(false);
  auto persisted = std::make_shared<memory_persister>();
  application_builder b;
  b.with_actions({noop("start"), gated(open), noop("end")})
      .with_transition("start", "gated")
      .with_transition("gated", "end")
      .with_entrypoint("start")
      .with_persister(persisted);
  // Suspended: the run halts before the action, with what it waits for, and no retry.
  auto app = *b.build();
  auto outcome = app->run();
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  EXPECT_EQ(outcome->reason, halt_reason::suspended);
  EXPECT_EQ(outcome->steps, 1u);
  ASSERT_TRUE(outcome->failure.has_value());
  EXPECT_EQ(outcome->failure->message, "waiting for consent: request r-1");
  EXPECT_EQ(outcome->last_step->action, "start");
  EXPECT_EQ(app->next_action(), "gated");
  EXPECT_EQ(persisted->saved.size(), 1u);  // only `start`
  EXPECT_EQ(to_string(halt_reason::suspended), "suspended");
  // step() reports it as an error with its code.
  auto stepped = app->step();
  ASSERT_FALSE(stepped.ok());
  EXPECT_EQ(stepped.err().code, graph_errc::suspended);
  // iterate() halts the same way.
  auto range = app->iterate();
  for (const auto& s : range) ADD_FAILURE() << "no step should run: " << s.action;
  EXPECT_EQ(range.outcome().reason, halt_reason::suspended);
  EXPECT_FALSE(range.engine_error().has_value());
  // Once what it waited for happens, the same action runs and the run goes on.
  *open = true;
  outcome = app->run();
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->reason, halt_reason::completed);
  EXPECT_EQ(app->current_state().get("passed"), true);
  EXPECT_EQ(persisted->saved.size(), 3u);
  EXPECT_EQ(persisted->saved[1].seq, 1u);  // no sequence id was used by the suspended attempts
}

}  // namespace
}  // namespace choir::graph
