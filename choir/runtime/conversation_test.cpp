#include "choir/runtime/conversation.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "choir/graph/loader.hpp"
#include "choir/store/group_commit.hpp"
#include "choir/store/synchronized.hpp"

namespace choir::runtime {
namespace {

namespace fs = std::filesystem;

// Listens for a message, counts to `rounds` (one step each), and echoes the message into history.
constexpr const char* echo_agent = R"(
apiVersion: agentos/v0.2
kind: Graph
name: echo
entrypoint: listen
state: {history: [], n: 0, rounds: 3}
actions:
  listen: {type: human, prompt: Say something, inputs: [message], writes: [message]}
  start: {type: set, update: {n: 0}}
  count: {type: set, reads: [n], update: {n: n + 1}}
  reply: {type: set, reads: [message], append: {history: "'echo: ' + message"}}
transitions:
  - {from: listen, to: start}
  - {from: start, to: count}
  - {from: count, to: count, when: n < rounds}
  - {from: count, to: reply}
  - {from: reply, to: listen}
)";

/// Starts `t` without blocking (the deterministic scheduler runs it); the value appears when done.
template <class T>
std::shared_ptr<std::optional<T>> start(task<T> t) {
  auto slot = std::make_shared<std::optional<T>>();
  [](task<T> inner, std::shared_ptr<std::optional<T>> out) -> detail::detached_coroutine {
    out->emplace(co_await std::move(inner));
  }(std::move(t), slot);
  return slot;
}

class Conversation : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() / ("choir-conversation-" + std::to_string(::getpid()) + "-" +
                                          ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db"))
                .string();
    remove_files();
    store_ = store::synchronized(store::open_sqlite_store(path_).value());
    agent_ = load_agent(echo_agent, "echo.yaml", graph::action_registry::with_builtins()).value();
  }
  void TearDown() override {
    store_.reset();
    remove_files();
  }
  void remove_files() {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path_ + suffix);
  }
  conversation_options options(busy_policy policy = busy_policy::enqueue, std::string run_id = "") {
    return {.agent = agent_, .store = store_, .run_id = std::move(run_id), .when_busy = policy};
  }
  static auto say(const actor_ref<conversation>& c, std::string text) {
    return c.ask([text](conversation& conv) { return conv.say(value(text)); });
  }
  static turn_result take(reply<turn_result>& r) {
    auto got = r.try_get();
    EXPECT_TRUE(got.has_value()) << "no answer yet";
    if (!got) return {};
    EXPECT_TRUE(got->ok()) << got->err().message;
    return got->ok() ? std::move(*got).value() : turn_result{};
  }

  std::string path_;
  std::shared_ptr<store::event_store> store_;
  std::shared_ptr<const agent_definition> agent_;
  actor_system sys_{{.deterministic = true}};
};

TEST_F(Conversation, AMessageRunsTheAgentUntilItWaitsForTheNext) {
  auto conv = spawn_conversation(sys_, options()).value();
  auto first = say(conv, "hi");
  sys_.run_until_idle();
  auto t1 = take(first);
  EXPECT_EQ(t1.ended, "waiting");
  EXPECT_EQ(t1.steps, 6U);  // listen, start, count ×3, reply
  EXPECT_EQ(t1.next_action, "listen");
  EXPECT_EQ(t1.state["history"], value::array({"echo: hi"}));
  auto second = say(conv, "there");
  sys_.run_until_idle();
  EXPECT_EQ(take(second).state["history"], value::array({"echo: hi", "echo: there"}));
  auto run = store_->get_run(t1.run_id).value();
  EXPECT_EQ(run.status, "waiting");
  EXPECT_EQ(run.last_sequence, 11);
  EXPECT_TRUE(run.owner.empty());  // the lease is held only during a turn
}

// Two conversations share one worker of a step dispatcher. While the worker is taken, the steps
// of both wait; when it is free, the SRT conversation's step starts before the DT one's.
TEST_F(Conversation, WithADispatcherAnSrtStepStartsBeforeAWaitingDtStep) {
  std::string dt_text = std::string(
                            "apiVersion: agentos/v0.2\nkind: AgentContract\nname: echo-dt\n"
                            "class: {latency: DT}\ncapabilities: []\n---") +
                        echo_agent;
  dt_text.replace(dt_text.find("name: echo\n"), 11, "name: echo-dt\n");
  auto dt_agent = load_agent(dt_text, "echo-dt.yaml", graph::action_registry::with_builtins());
  ASSERT_TRUE(dt_agent.ok()) << dt_agent.err().message;
  auto dispatcher = std::make_shared<step_dispatcher>(dispatch_options{.workers = 1});
  std::vector<std::string> ended;  // runs, in the order their turns ended
  const auto note = [&ended](const conversation_event& e) {
    if (e.kind == "turn_ended") ended.push_back(e.run_id);
  };
  conversation_options background = options();
  background.agent = *dt_agent;
  background.dispatcher = dispatcher;
  background.observer = note;
  conversation_options interactive = options();
  interactive.dispatcher = dispatcher;
  interactive.observer = note;
  auto slow = spawn_conversation(sys_, background).value();
  auto quick = spawn_conversation(sys_, interactive).value();

  // The test holds the only worker.
  std::optional<std::uint64_t> held;
  [](step_dispatcher& d, std::optional<std::uint64_t>& out) -> detail::detached_coroutine {
    auto slot = d.acquire(graph::latency_class::hrt, 1000, 0);
    out = co_await slot;
  }(*dispatcher, held);
  ASSERT_TRUE(held.has_value());
  auto dt_turn = say(slow, "later");
  auto srt_turn = say(quick, "now");
  sys_.run_until_idle();
  auto counts = dispatcher->counts();
  EXPECT_EQ(counts[1].waiting, 1U);
  EXPECT_EQ(counts[2].waiting, 1U);
  dispatcher->release(*held);
  counts = dispatcher->counts();
  EXPECT_EQ(counts[1].running, 1U) << "the SRT step took the worker";
  EXPECT_EQ(counts[2].waiting, 1U);
  sys_.run_until_idle();
  const auto dt = take(dt_turn);
  const auto srt = take(srt_turn);
  EXPECT_EQ(dt.steps, 6U);
  EXPECT_EQ(srt.steps, 6U);
  EXPECT_EQ(ended, (std::vector<std::string>{srt.run_id, dt.run_id}));
  counts = dispatcher->counts();
  EXPECT_EQ(counts[1].steps, 6U);
  EXPECT_EQ(counts[2].steps, 6U);
  EXPECT_EQ(counts[0].steps, 1U);  // the test's own
  EXPECT_EQ(counts[1].running + counts[2].running + counts[1].waiting + counts[2].waiting, 0U);
  const std::string metrics = dispatcher->prometheus();
  EXPECT_NE(metrics.find("choir_turn_seconds_count{class=\"srt\"} 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("choir_turn_seconds_count{class=\"dt\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("choir_turn_onset_seconds_count{class=\"srt\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("choir_turn_onset_seconds_count{class=\"dt\"} 1\n"), std::string::npos);
}

// A conversation stopped while its step waits for a worker gives its place up.
TEST_F(Conversation, AConversationStoppedWhileItsStepWaitsGivesItsPlaceUp) {
  auto dispatcher = std::make_shared<step_dispatcher>(dispatch_options{.workers = 1});
  conversation_options o = options();
  o.dispatcher = dispatcher;
  auto conv = spawn_conversation(sys_, o).value();
  std::optional<std::uint64_t> held;
  [](step_dispatcher& d, std::optional<std::uint64_t>& out) -> detail::detached_coroutine {
    auto slot = d.acquire(graph::latency_class::srt, std::nullopt, 0);
    out = co_await slot;
  }(*dispatcher, held);
  ASSERT_TRUE(held.has_value());
  auto turn = say(conv, "hi");
  sys_.run_until_idle();
  EXPECT_EQ(dispatcher->counts()[1].waiting, 1U);
  conv.kill("test");
  sys_.run_until_idle();
  EXPECT_EQ(dispatcher->counts()[1].waiting, 0U);
  dispatcher->release(*held);
  const auto counts = dispatcher->counts();
  EXPECT_EQ(counts[1].running, 0U) << "no step of the stopped conversation started";
  EXPECT_EQ(counts[1].steps, 1U);  // the test's own
}

TEST_F(Conversation, EveryCommittedStepIsStreamedToSubscribers) {
  auto conv = spawn_conversation(sys_, options()).value();
  std::vector<std::string> seen;
  auto subscribed = conv.ask([&seen](conversation& c) {
    return c.subscribe([&seen](const conversation_event& e) {
      seen.push_back(e.kind == "step" ? e.data["action"].get<std::string>() : e.kind);
    });
  });
  auto turn = say(conv, "hello");
  sys_.run_until_idle();
  ASSERT_TRUE(subscribed.try_get()->ok());
  (void)take(turn);
  EXPECT_EQ(seen, (std::vector<std::string>{"turn_started", "listen", "start", "count", "count", "count", "reply",
                                            "turn_ended"}));
}

TEST_F(Conversation, MessagesThatArriveWhileBusyWaitTheirTurnByDefault) {
  auto conv = spawn_conversation(sys_, options(busy_policy::enqueue)).value();
  auto a = say(conv, "one");
  auto b = say(conv, "two");
  auto c = say(conv, "three");
  sys_.run_until_idle();
  (void)take(a);
  (void)take(b);
  EXPECT_EQ(take(c).state["history"], value::array({"echo: one", "echo: two", "echo: three"}));
}

TEST_F(Conversation, ARejectingConversationRefusesAMessageWhileBusy) {
  auto conv = spawn_conversation(sys_, options(busy_policy::reject)).value();
  auto a = say(conv, "one");
  sys_.run_once();  // `one` starts and yields after its first step
  auto b = say(conv, "two");
  sys_.run_until_idle();
  EXPECT_EQ(take(a).ended, "waiting");
  auto refused = *b.try_get();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, runtime_errc::rejected);
}

TEST_F(Conversation, AnInterruptingMessageStopsTheTurnAtAStepBoundaryAndKeepsWhatCommitted) {
  auto conv = spawn_conversation(sys_, options(busy_policy::interrupt)).value();
  auto a = say(conv, "long");
  sys_.run_once();  // listen
  sys_.run_once();  // start
  auto b = say(conv, "urgent");
  sys_.run_until_idle();
  auto ta = take(a);
  EXPECT_EQ(ta.ended, "interrupted");
  EXPECT_GE(ta.steps, 2U);
  EXPECT_LT(ta.steps, 6U);
  auto tb = take(b);
  EXPECT_EQ(tb.ended, "waiting");
  EXPECT_EQ(tb.state["history"], value::array({"echo: urgent"}));  // `long` never reached its reply
  auto steps = store_->steps(tb.run_id, 0, 100).value();
  ASSERT_EQ(steps.size(), ta.steps + tb.steps);  // both turns' steps are in the log, in order
  EXPECT_EQ(steps[ta.steps].action, "listen");
}

// Group commit: conversations on a threaded actor system commit their steps through one committer,
// each step waiting for its transaction without holding its actor's thread.
TEST(ConversationGroupCommit, ManyConversationsShareTransactionsAndLoseNoStep) {
  const auto path = (fs::temp_directory_path() / ("choir-group-" + std::to_string(::getpid()) + ".db")).string();
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
  {
    auto store = store::synchronized(store::open_sqlite_store(path).value());
    auto agent = load_agent(echo_agent, "echo.yaml", graph::action_registry::with_builtins()).value();
    auto committer = std::make_shared<store::group_committer>(*store);
    actor_system sys{{.threads = 2}};
    auto directory = std::make_shared<conversation_directory>(
        sys, directory_options{.store = store, .idle_after = std::chrono::milliseconds(0), .committer = committer});
    constexpr int conversations = 12;
    constexpr int messages = 3;
    std::vector<std::string> ids;
    for (int i = 0; i < conversations; ++i) {
      ids.push_back("group-" + std::to_string(i));
      ASSERT_TRUE(directory->add(ids.back(), agent).ok());
    }
    // Every conversation's messages in flight at once (each waits for the one before it).
    std::atomic<int> done{0};
    std::atomic<int> failed{0};
    std::mutex m;
    std::condition_variable cv;
    for (const auto& id : ids) {
      [](std::shared_ptr<conversation_directory> dir, std::string run, std::atomic<int>& ok_count,
         std::atomic<int>& bad, std::mutex& mu, std::condition_variable& wake) -> detail::detached_coroutine {
        for (int n = 0; n < messages; ++n) {
          auto turn = dir->say(run, value("m" + std::to_string(n)));
          auto out = co_await std::move(turn);
          if (!out.ok() || out->ended != "waiting") bad.fetch_add(1);
        }
        std::lock_guard lock(mu);  // notified under the lock: the waiter may destroy `wake` once it wakes
        ok_count.fetch_add(1);
        wake.notify_all();
      }(directory, id, done, failed, m, cv);
    }
    {
      std::unique_lock lock(m);
      ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done.load() == conversations; }));
    }
    EXPECT_EQ(failed.load(), 0);
    // 6 steps a message (listen, start, count ×3, reply), all committed, in order, through the committer.
    for (const auto& id : ids) {
      auto steps = store->steps(id, 0, 1'000).value();
      ASSERT_EQ(steps.size(), static_cast<std::size_t>(6 * messages)) << id;
      for (std::size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i].sequence_id, static_cast<std::int64_t>(i));
      EXPECT_EQ(store->state_at(id, 6 * messages - 1).value().to_json()["history"].size(), 3U);
    }
    EXPECT_EQ(committer->steps(), static_cast<std::size_t>(conversations * messages * 6));
    EXPECT_LE(committer->transactions(), committer->steps());
  }
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
}

// The contract's modes: `count` runs in a DT mode of an SRT agent, so its steps are DT steps.
TEST_F(Conversation, AStepOfAModesActionRunsUnderTheModesClass) {
  const std::string text = std::string(
                               "apiVersion: agentos/v0.2\nkind: AgentContract\nname: echo\n"
                               "class: {latency: SRT}\nmodes: {COUNTING: {latency: DT, actions: [count]}}\n"
                               "capabilities: []\n---") +
                           echo_agent;
  auto moded = load_agent(text, "echo.yaml", graph::action_registry::with_builtins());
  ASSERT_TRUE(moded.ok()) << moded.err().message;
  auto dispatcher = std::make_shared<step_dispatcher>(dispatch_options{.workers = 2});
  auto opts = options();
  opts.agent = *moded;
  opts.dispatcher = dispatcher;
  auto conv = spawn_conversation(sys_, opts).value();
  auto turn = say(conv, "hi");
  sys_.run_until_idle();
  EXPECT_EQ(take(turn).steps, 6U);
  const auto counts = dispatcher->counts();
  EXPECT_EQ(counts[1].steps, 3U);  // listen, start, reply
  EXPECT_EQ(counts[2].steps, 3U);  // count, three times
  // The turn ended with `reply`, outside the mode: it is measured as SRT.
  EXPECT_NE(dispatcher->prometheus().find("choir_turn_seconds_count{class=\"srt\"} 1\n"), std::string::npos);

  // A mode naming an action the graph lacks is refused when the agent loads.
  std::string wrong = text;
  wrong.replace(wrong.find("actions: [count]"), 16, "actions: [cuont]");
  auto refused = load_agent(wrong, "echo.yaml", graph::action_registry::with_builtins());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.err().message.find("modes.COUNTING.actions: the graph has no action 'cuont'"), std::string::npos)
      << refused.err().message;
}

TEST_F(Conversation, CancelStopsTheTurnAtAStepBoundaryAndNoTurnRunsAfter) {
  auto conv = spawn_conversation(sys_, options()).value();
  std::vector<std::string> events;
  ASSERT_TRUE(conv.tell([&events](conversation& c) {
                    c.subscribe([&events](const conversation_event& e) { events.push_back(e.kind); });
                  })
                  .ok());
  auto a = say(conv, "long");
  sys_.run_once();                    // listen
  sys_.run_once();                    // start
  auto queued = say(conv, "queued");  // waits behind the turn
  auto cancelled = conv.ask([](conversation& c) { return c.cancel(); });
  sys_.run_until_idle();
  auto ta = take(a);
  EXPECT_EQ(ta.ended, "cancelled");
  EXPECT_LT(ta.steps, 6U);  // `long` never reached its reply
  auto refused = queued.try_get();
  ASSERT_TRUE(refused.has_value());
  ASSERT_FALSE(refused->ok());
  EXPECT_EQ(refused->err().code, runtime_errc::rejected);
  EXPECT_EQ(take(cancelled).ended, "cancelled");
  auto run = store_->get_run(ta.run_id).value();
  EXPECT_EQ(run.status, "cancelled");
  EXPECT_TRUE(run.owner.empty());
  EXPECT_EQ(store_->steps(ta.run_id, 0, 100).value().size(), ta.steps);
  EXPECT_EQ(events.back(), "status");
  // Not on this actor, nor on a new one.
  auto later = conv.ask([](conversation& c) { return c.resume(); });
  sys_.run_until_idle();
  ASSERT_TRUE(later.try_get().has_value());
  EXPECT_FALSE(later.try_get()->ok());
  conv.kill();
  sys_.run_until_idle();
  auto again = spawn_conversation(sys_, options(busy_policy::enqueue, ta.run_id)).value();
  auto after = say(again, "after");
  sys_.run_until_idle();
  auto out = after.try_get();
  ASSERT_TRUE(out.has_value());
  ASSERT_FALSE(out->ok());
  EXPECT_EQ(out->err().code, runtime_errc::rejected);
  EXPECT_NE(out->err().message.find("cancelled"), std::string::npos);
  EXPECT_EQ(store_->steps(ta.run_id, 0, 100).value().size(), ta.steps);
}

TEST_F(Conversation, AHostedRunTakesInputsButNoMessages) {
  auto opts = options();
  opts.message_input.clear();
  auto conv = spawn_conversation(sys_, opts).value();
  auto message = say(conv, "hi");
  sys_.run_until_idle();
  ASSERT_TRUE(message.try_get().has_value());
  ASSERT_FALSE(message.try_get()->ok());
  EXPECT_EQ(message.try_get()->err().code, runtime_errc::invalid_argument);
  // The listening action's input, given as a resume's inputs.
  auto given = conv.ask([](conversation& c) { return c.resume(value{{"message", "by input"}}); });
  sys_.run_until_idle();
  EXPECT_EQ(take(given).state["history"], value::array({"echo: by input"}));
  auto bad = conv.ask([](conversation& c) { return c.resume(value(3)); });
  sys_.run_until_idle();
  ASSERT_TRUE(bad.try_get().has_value());
  EXPECT_FALSE(bad.try_get()->ok());
}

TEST_F(Conversation, ANewActorForTheRunContinuesFromItsLastCommittedStep) {
  auto first = spawn_conversation(sys_, options()).value();
  auto t = say(first, "before");
  sys_.run_until_idle();
  const auto run_id = take(t).run_id;
  first.kill();
  sys_.run_until_idle();
  auto second = spawn_conversation(sys_, options(busy_policy::enqueue, run_id)).value();
  auto after = say(second, "after");
  sys_.run_until_idle();
  EXPECT_EQ(take(after).state["history"], value::array({"echo: before", "echo: after"}));
}

TEST_F(Conversation, ARunAnotherLiveProcessDrivesIsRefused) {
  auto conv = spawn_conversation(sys_, options()).value();
  auto t = say(conv, "mine");
  sys_.run_until_idle();
  const auto run_id = take(t).run_id;
  store::store_options other;
  other.owner = "elsewhere/1/abc";
  auto intruder = store::open_sqlite_store(path_, other).value();
  ASSERT_TRUE(intruder->acquire_lease(run_id, 60'000).ok());
  auto refused = say(conv, "again");
  sys_.run_until_idle();
  auto got = *refused.try_get();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.err().code, store::store_errc::run_leased);
  ASSERT_TRUE(intruder->release_lease(run_id).ok());
  auto retried = say(conv, "again");
  sys_.run_until_idle();
  EXPECT_EQ(take(retried).state["history"], value::array({"echo: mine", "echo: again"}));
}

TEST_F(Conversation, APausedConversationHoldsMessagesUntilResumed) {
  auto conv = spawn_conversation(sys_, options()).value();
  auto a = say(conv, "first");
  sys_.run_once();
  auto paused = conv.ask([](conversation& c) { c.pause(); });
  sys_.run_until_idle();
  ASSERT_TRUE(paused.try_get()->ok());
  EXPECT_EQ(take(a).ended, "paused");
  auto b = say(conv, "second");
  sys_.run_until_idle();
  EXPECT_FALSE(b.ready());  // held while paused
  auto resumed = conv.ask([](conversation& c) { return c.resume(); });
  sys_.run_until_idle();
  auto tr = take(resumed);
  EXPECT_EQ(tr.ended, "waiting");
  EXPECT_EQ(tr.state["history"], value::array({"echo: first"}));  // the paused turn finished its work
  EXPECT_EQ(take(b).state["history"], value::array({"echo: first", "echo: second"}));
}

TEST_F(Conversation, TerminatingAPausedConversationReleasesTheMessagesItHeld) {
  auto conv = spawn_conversation(sys_, options()).value();
  auto paused = conv.ask([](conversation& c) { c.pause(); });
  sys_.run_until_idle();
  auto held = say(conv, "never runs");
  sys_.run_until_idle();
  EXPECT_FALSE(held.ready());
  auto ended = conv.ask([](conversation& c) { c.terminate(); });
  sys_.run_until_idle();
  ASSERT_TRUE(held.ready());
  auto got = *held.try_get();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.err().code, runtime_errc::died);  // the conversation ended before the message ran
  EXPECT_NE(got.err().message.find("terminated"), std::string::npos) << got.err().message;
  EXPECT_FALSE(conv.alive());
  sys_.run_until_idle();  // the parked coroutine was released and finished (ASan: nothing leaks)
}

TEST_F(Conversation, TerminateStopsTheActorAndLeavesTheRunResumable) {
  auto conv = spawn_conversation(sys_, options()).value();
  auto t = say(conv, "bye");
  sys_.run_until_idle();
  const auto run_id = take(t).run_id;
  auto ended = conv.ask([](conversation& c) { c.terminate(); });
  sys_.run_until_idle();
  EXPECT_FALSE(conv.alive());
  auto run = store_->get_run(run_id).value();
  EXPECT_EQ(run.status, "waiting");
  EXPECT_TRUE(run.owner.empty());
}

TEST_F(Conversation, AnAgentThatCannotTakeAMessageIsRefusedAtSpawn) {
  auto mute = load_agent(R"(
apiVersion: agentos/v0.2
kind: Graph
name: mute
entrypoint: a
actions:
  a: {type: set, update: {x: 1}}
)",
                         "mute.yaml", graph::action_registry::with_builtins())
                  .value();
  auto opts = options();
  opts.agent = mute;
  auto refused = spawn_conversation(sys_, opts);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, runtime_errc::invalid_argument);
  EXPECT_NE(refused.err().message.find("does not take the input 'message'"), std::string::npos);
}

TEST_F(Conversation, ConversationsAreFoundByTheirRunId) {
  auto conv = spawn_conversation(sys_, options()).value();
  auto id = conv.ask([](conversation& c) { return c.run_id(); });
  sys_.run_until_idle();
  auto found = sys_.get<conversation>("conversations", **id.try_get());
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, conv);
}

// ── Leases during long steps ──

/// An action that waits until the test releases it (a slow model call, say).
class gated_action final : public graph::action {
 public:
  gated_action(graph::action_spec spec, std::shared_ptr<bool> open) : action(std::move(spec)), open_(std::move(open)) {}
  [[nodiscard]] bool is_async() const override { return true; }
  result<graph::action_output> execute(const graph::state_view& /*view*/, graph::stream_sink& /*sink*/) override {
    return graph::action_output{};
  }
  task<result<graph::action_output>> execute_async(graph::state_view /*view*/, graph::stream_sink& /*sink*/) override {
    while (!*open_) co_await yield_to_mailbox();  // lets the actor serve its other messages meanwhile
    co_return graph::action_output{};
  }

 private:
  std::shared_ptr<bool> open_;
};

TEST_F(Conversation, TheLeaseIsRenewedOnATimerWhileALongStepRuns) {
  using namespace std::chrono_literals;
  auto open = std::make_shared<bool>(false);
  auto registry = graph::action_registry::with_builtins();
  registry.add("slow", {}, [open](const graph::action_decl& decl) -> result<std::shared_ptr<graph::action>> {
    return std::shared_ptr<graph::action>(std::make_shared<gated_action>(decl.spec(), open));
  });
  auto slow_agent = load_agent(R"(
apiVersion: agentos/v0.2
kind: Graph
name: slow
entrypoint: listen
actions:
  listen: {type: human, inputs: [message], writes: [message]}
  think: {type: slow}
transitions:
  - {from: listen, to: think}
  - {from: think, to: listen}
)",
                               "slow.yaml", registry)
                        .value();
  // The store reads the same manual clock as the actor system, so leases expire in test time.
  const std::string path = path_ + ".slow.db";
  auto timed = store::synchronized(store::open_sqlite_store(path, {}, sys_.time()).value());
  auto conv = spawn_conversation(sys_, {.agent = slow_agent, .store = timed, .lease_ttl_ms = 30'000}).value();
  auto turn = say(conv, "think hard");
  for (int i = 0; i < 20; ++i) sys_.run_once();  // the turn is inside `think`, yielding
  const auto run_id = timed->list_runs(1).value().front().run_id;
  const auto before = timed->get_run(run_id).value().lease_expires_ms;
  sys_.advance(25s);  // two renewals come due (every 10 s)
  for (int i = 0; i < 20; ++i) sys_.run_once();
  const auto after = timed->get_run(run_id).value().lease_expires_ms;
  EXPECT_GE(after - before, 20'000);  // without renewals it would still expire at `before`
  *open = true;
  sys_.run_until_idle();
  EXPECT_EQ(take(turn).ended, "waiting");
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
}

// ── Passivation ──

TEST_F(Conversation, AnIdleConversationPassivatesAndTheNextMessageReactivatesItFromTheStore) {
  using namespace std::chrono_literals;
  conversation_directory dir(sys_, {.store = store_, .idle_after = 1s});
  ASSERT_TRUE(dir.add("chat-1", agent_).ok());
  auto first = start(dir.say("chat-1", value("a")));
  sys_.run_until_idle();
  ASSERT_TRUE(first->has_value() && (*first)->ok());
  auto active = sys_.get<conversation>("conversations", "chat-1");
  ASSERT_TRUE(active.ok());
  sys_.advance(999ms);
  sys_.run_until_idle();
  EXPECT_TRUE(active->alive());
  sys_.advance(1ms);
  sys_.run_until_idle();
  EXPECT_FALSE(active->alive());
  EXPECT_EQ(sys_.live_actors(), 0U);  // nothing of it is left in memory but the directory entry
  auto second = start(dir.say("chat-1", value("b")));
  sys_.run_until_idle();
  ASSERT_TRUE(second->has_value() && (*second)->ok());
  EXPECT_EQ((**second)->state["history"], value::array({"echo: a", "echo: b"}));
  EXPECT_NE(sys_.get<conversation>("conversations", "chat-1")->id(), active->id());
}

TEST_F(Conversation, CallsToADeactivatedActorFailAsUnavailableNotDied) {
  auto conv = spawn_conversation(sys_, options()).value();
  conv.deactivate("passivated");
  auto late = say(conv, "late");
  sys_.run_until_idle();
  auto got = *late.try_get();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.err().code, runtime_errc::unavailable);
}

TEST_F(Conversation, AConversationInUseIsNotPassivated) {
  using namespace std::chrono_literals;
  conversation_directory dir(sys_, {.store = store_, .idle_after = 1s});
  ASSERT_TRUE(dir.add("watched", agent_).ok());
  auto conv = dir.activate("watched").value();
  auto subscribed = conv.ask([](conversation& c) { return c.subscribe([](const conversation_event&) {}); });
  sys_.run_until_idle();
  sys_.advance(5s);
  sys_.run_until_idle();
  EXPECT_TRUE(conv.alive());  // a window is watching it
  auto id = **subscribed.try_get();
  (void)conv.tell([id](conversation& c) { c.unsubscribe(id); });
  sys_.run_until_idle();
  sys_.advance(2s);
  sys_.run_until_idle();
  EXPECT_FALSE(conv.alive());
}

TEST_F(Conversation, AConversationHasAtMostOneActivation) {
  conversation_directory dir(sys_, {.store = store_});
  ASSERT_TRUE(dir.add("one", agent_).ok());
  ASSERT_TRUE(dir.add("one", agent_).ok());  // registering again is a no-op
  auto a = dir.activate("one").value();
  auto b = dir.activate("one").value();
  EXPECT_EQ(a, b);
  EXPECT_EQ(sys_.live_actors(), 1U);
  EXPECT_EQ(dir.registered(), 1U);
  EXPECT_EQ(dir.activate("unknown").err().code, runtime_errc::not_found);
}

}  // namespace
}  // namespace choir::runtime

namespace choir::runtime {
namespace {

TEST_F(Conversation, UnderAGateTheRunIsAdmittedForItsUserOnceForTheActorsLife) {
  kernel::audit_options where;
  where.key_file = path_ + ".audit.key";
  where.head_file = path_ + ".audit.head";
  auto audit = kernel::audit_log::open(store_, where);
  ASSERT_TRUE(audit.ok()) << audit.err().message;
  auto policy = kernel::policy::load(
      "apiVersion: agentos/v0.2\nkind: Policy\ntenants:\n  acme:\n    roles: {member: {grants: []}}\n"
      "    users: {ada: {roles: [member]}}\n",
      "policy.yaml");
  ASSERT_TRUE(policy.ok()) << policy.err().message;
  const std::shared_ptr<kernel::audit_log> audit_log(std::move(audit).value());
  auto g = std::make_shared<gate>(store_, audit_log, std::make_shared<const kernel::policy>(std::move(policy).value()));
  // The echo graph has no contract: no gate admits it.
  auto opts = options();
  opts.gate = g;
  opts.who = {"acme", "ada"};
  auto bare = spawn_conversation(sys_, opts).value();
  auto refused = say(bare, "hi");
  sys_.run_until_idle();
  auto got = refused.try_get();
  ASSERT_TRUE(got.has_value());
  ASSERT_FALSE(got->ok());
  EXPECT_EQ(got->err().code, kernel::kernel_errc::not_admitted);
  // With a contract: admitted once, and it keeps talking.
  opts.agent = load_agent(std::string("apiVersion: agentos/v0.2\nkind: AgentContract\nname: echo\n"
                                      "class: {latency: SRT}\n---\n") +
                              echo_agent,
                          "echo.yaml", graph::action_registry::with_builtins())
                   .value();
  auto conv = spawn_conversation(sys_, opts).value();
  auto first = say(conv, "hi");
  sys_.run_until_idle();
  const auto t1 = take(first);
  EXPECT_EQ(t1.ended, "waiting");
  auto second = say(conv, "again");
  sys_.run_until_idle();
  EXPECT_EQ(take(second).ended, "waiting");
  EXPECT_EQ(store_->get_run(t1.run_id)->user, "ada");
  EXPECT_TRUE(g->admitted(t1.run_id).has_value());
  int admissions = 0;
  ASSERT_TRUE(store_
                  ->scan_audit(1,
                               [&](const store::audit_view& r) {
                                 admissions += value::parse(r.entry)["kind"] == "admission" ? 1 : 0;
                                 return true;
                               })
                  .ok());
  EXPECT_EQ(admissions, 2);  // the refused one, and this run once
  conv.kill("done");
  sys_.run_until_idle();
  EXPECT_FALSE(g->admitted(t1.run_id).has_value());  // given back with the actor

  // The process died in the middle of a turn (the run is recorded `running`, its lease gone),
  // and the policy changed since: reopened, the run is refused, and is not left looking driven.
  ASSERT_TRUE(store_->set_status(t1.run_id, "running").ok());
  auto stricter = kernel::policy::load(
      "apiVersion: agentos/v0.2\nkind: Policy\ntenants:\n  acme:\n    roles: {member: {grants: []}}\n"
      "    users: {bob: {roles: [member]}}\n",
      "policy.yaml");
  ASSERT_TRUE(stricter.ok()) << stricter.err().message;
  opts.gate =
      std::make_shared<gate>(store_, audit_log, std::make_shared<const kernel::policy>(std::move(stricter).value()));
  opts.run_id = t1.run_id;
  auto reopened = spawn_conversation(sys_, opts).value();
  auto again = say(reopened, "still there?");
  sys_.run_until_idle();
  auto answer = again.try_get();
  ASSERT_TRUE(answer.has_value());
  ASSERT_FALSE(answer->ok());
  EXPECT_EQ(answer->err().code, kernel::kernel_errc::not_admitted);
  const auto left = store_->get_run(t1.run_id).value();
  EXPECT_EQ(left.status, "halted");
  EXPECT_EQ(left.owner, "");
  for (const char* suffix : {".audit.key", ".audit.head"}) fs::remove(path_ + suffix);
}

}  // namespace
}  // namespace choir::runtime
