#include "choir/runtime/actor.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace choir::runtime {
namespace {

using namespace std::chrono_literals;

system_options deterministic() { return {.deterministic = true}; }

/// Something a coroutine waits on that a test fires from outside any actor.
class manual_event {
 public:
  void fire() {
    std::vector<std::coroutine_handle<>> waiting;
    {
      std::lock_guard lock(mutex_);
      fired_ = true;
      waiting.swap(waiters_);
    }
    for (auto h : waiting) h.resume();
  }
  auto operator co_await() {
    struct awaiter {
      manual_event& ev;
      bool await_ready() {
        std::lock_guard lock(ev.mutex_);
        return ev.fired_;
      }
      bool await_suspend(std::coroutine_handle<> h) {
        std::lock_guard lock(ev.mutex_);
        if (ev.fired_) return false;
        ev.waiters_.push_back(h);
        return true;
      }
      void await_resume() const noexcept {}
    };
    return awaiter{*this};
  }

 private:
  std::mutex mutex_;
  bool fired_ = false;
  std::vector<std::coroutine_handle<>> waiters_;
};

/// A leaf awaitable resumes on the thread that completes it; wrapping it in a task brings the
/// awaiting actor's coroutine back inside the actor.
task<void> wait_for(manual_event& ev) { co_await ev; }

/// Answers a call only once its event fires.
struct waiter {
  task<int> wait(manual_event* e) const {
    co_await wait_for(*e);
    co_return 1;
  }
};

struct recorder {
  std::vector<int> seen;
  void add(int v) { seen.push_back(v); }
  [[nodiscard]] std::vector<int> all() const { return seen; }
  [[nodiscard]] std::size_t count() const { return seen.size(); }
};

struct counter {
  int total = 0;
  int add(int n) { return total += n; }
  [[nodiscard]] int get() const { return total; }
  int crash(const std::string& why) { throw std::runtime_error(why); }
};

TEST(Actor, MessagesFromOneSenderRunInTheOrderSent) {
  actor_system sys(deterministic());
  auto r = sys.spawn<recorder>({}).value();
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(r.tell(&recorder::add, i).ok());
  sys.run_until_idle();
  auto seen = r.ask(&recorder::all);
  sys.run_until_idle();
  auto got = seen.try_get();
  ASSERT_TRUE(got && got->ok());
  std::vector<int> expected(500);
  for (int i = 0; i < 500; ++i) expected[i] = i;
  EXPECT_EQ(**got, expected);
}

TEST(Actor, ConcurrentSendersEachKeepTheirOwnOrder) {
  actor_system sys({.threads = 2});
  struct per_sender {
    std::vector<int> last = std::vector<int>(4, -1);
    bool in_order = true;
    void add(int sender, int seq) {
      if (seq != last[sender] + 1) in_order = false;
      last[sender] = seq;
    }
  };
  auto a = sys.spawn<per_sender>({.mailbox_capacity = 0}).value();
  std::vector<std::thread> senders;
  for (int s = 0; s < 4; ++s) {
    senders.emplace_back([&, s] {
      for (int i = 0; i < 5'000; ++i) ASSERT_TRUE(a.tell(&per_sender::add, s, i).ok());
    });
  }
  for (auto& t : senders) t.join();
  auto state = a.ask([](per_sender& p) { return std::make_pair(p.in_order, p.last); }).get(10s);
  ASSERT_TRUE(state.ok()) << state.err().message;
  EXPECT_TRUE(state->first);
  EXPECT_EQ(state->second, std::vector<int>(4, 4'999));
}

TEST(Actor, APlainThreadWaitsOnAnAsk) {
  actor_system sys({.threads = 2});
  auto c = sys.spawn<counter>({}).value();
  ASSERT_TRUE(c.tell(&counter::add, 40).ok());
  auto total = c.ask(&counter::add, 2).get(5s);
  ASSERT_TRUE(total.ok()) << total.err().message;
  EXPECT_EQ(*total, 42);
}

TEST(Actor, AHandlerErrorReachesTheCallerAsTheCallsError) {
  actor_system sys(deterministic());
  struct validator {
    result<int> check(int v) {
      if (v < 0) return make_error(core_errc::invalid_argument, "negative");
      return v;
    }
  };
  auto v = sys.spawn<validator>({}).value();
  auto good = v.ask(&validator::check, 3);
  auto bad = v.ask(&validator::check, -1);
  sys.run_until_idle();
  EXPECT_EQ(**good.try_get(), 3);
  auto failed = *bad.try_get();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.err().code, core_errc::invalid_argument);
  EXPECT_EQ(v.restarts(), 0U);  // an error value is an answer, not a crash
}

TEST(Actor, AnActorAsksAnotherFromACoroutineHandler) {
  actor_system sys({.threads = 2});
  struct adder {
    actor_ref<counter> target;
    task<result<int>> add_twice(int n) {
      auto first = co_await target.ask(&counter::add, n);
      if (!first.ok()) co_return std::move(first).err();
      co_return co_await target.ask(&counter::add, n);
    }
  };
  auto c = sys.spawn<counter>({}).value();
  auto a = sys.spawn<adder>({}, adder{c}).value();
  auto got = a.ask(&adder::add_twice, 5).get(5s);
  ASSERT_TRUE(got.ok()) << got.err().message;
  EXPECT_EQ(*got, 10);
}

TEST(Actor, ACoroutineHandlerResumesInsideItsActorNeverBesideAnotherMessage) {
  actor_system sys({.threads = 2});
  struct guarded {
    std::atomic<int> inside{0};
    bool overlapped = false;
    int handled = 0;
    void enter() {
      if (inside.fetch_add(1) != 0) overlapped = true;
    }
    void leave() { inside.fetch_sub(1); }
    task<int> slow(manual_event* ev) {
      enter();
      leave();
      co_await wait_for(*ev);  // resumed by a foreign thread: must come back inside the actor
      enter();
      ++handled;
      std::this_thread::yield();
      leave();
      co_return handled;
    }
    void quick() {
      enter();
      ++handled;
      leave();
    }
  };
  auto g = sys.spawn<guarded>({.mailbox_capacity = 0}).value();
  std::vector<manual_event> events(50);
  std::vector<reply<int>> replies;
  for (auto& ev : events) replies.push_back(g.ask(&guarded::slow, &ev));
  std::thread firer([&] {
    for (auto& ev : events) ev.fire();
  });
  for (int i = 0; i < 2'000; ++i) ASSERT_TRUE(g.tell(&guarded::quick).ok());
  firer.join();
  for (auto& r : replies) ASSERT_TRUE(r.get(10s).ok());
  auto state = g.ask([](guarded& s) { return std::make_pair(s.overlapped, s.handled); }).get(10s);
  ASSERT_TRUE(state.ok());
  EXPECT_FALSE(state->first);
  EXPECT_EQ(state->second, 2'050);
}

// ── Supervision ──

TEST(Supervision, ACrashRestartsTheActorWithItsConstructorRunAgainAndKeepsQueuedMessages) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({.restart = {.max_restarts = 3, .backoff_initial = 0ms}}).value();
  (void)c.tell(&counter::add, 5);
  auto crash = c.ask(&counter::crash, std::string("boom"));
  (void)c.tell(&counter::add, 7);  // queued behind the crash: survives the restart
  auto total = c.ask(&counter::get);
  sys.run_until_idle();
  auto crashed = *crash.try_get();
  ASSERT_FALSE(crashed.ok());
  EXPECT_EQ(crashed.err().code, runtime_errc::died);
  EXPECT_NE(crashed.err().message.find("boom"), std::string::npos);
  EXPECT_EQ(**total.try_get(), 7);  // the 5 was in the old incarnation's state
  EXPECT_EQ(c.restarts(), 1U);
  EXPECT_TRUE(c.alive());
}

TEST(Supervision, RestartsWaitOutAnExponentialBackoff) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({.restart = {.max_restarts = 5, .backoff_initial = 100ms, .backoff_max = 1s}}).value();
  (void)c.ask(&counter::crash, std::string("first"));
  sys.run_until_idle();
  auto total = c.ask(&counter::add, 1);
  sys.run_until_idle();
  EXPECT_FALSE(total.ready());  // restarting: the message waits
  sys.advance(99ms);
  sys.run_until_idle();
  EXPECT_FALSE(total.ready());
  sys.advance(1ms);
  sys.run_until_idle();
  ASSERT_TRUE(total.ready());
  EXPECT_EQ(**total.try_get(), 1);
  // The second crash within the period waits twice as long.
  (void)c.ask(&counter::crash, std::string("second"));
  auto again = c.ask(&counter::add, 1);
  sys.run_until_idle();
  sys.advance(199ms);
  sys.run_until_idle();
  EXPECT_FALSE(again.ready());
  sys.advance(1ms);
  sys.run_until_idle();
  EXPECT_EQ(**again.try_get(), 1);
}

TEST(Supervision, MoreCrashesThanTheIntensityAllowsKillTheActorAndFailEveryPendingCall) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({.restart = {.max_restarts = 2, .period = 1s, .backoff_initial = 0ms}}).value();
  for (int i = 0; i < 3; ++i) (void)c.ask(&counter::crash, std::string("again"));
  auto queued = c.ask(&counter::get);
  sys.run_until_idle();
  EXPECT_FALSE(c.alive());
  auto failed = *queued.try_get();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.err().code, runtime_errc::died);
  EXPECT_NE(failed.err().message.find("more than 2 times"), std::string::npos);
  // Later calls fail at once, without waiting for anything to run.
  auto later = c.ask(&counter::get);
  ASSERT_TRUE(later.ready());
  EXPECT_EQ(later.try_get()->err().code, runtime_errc::died);
  EXPECT_EQ(c.tell(&counter::add, 1).err().code, runtime_errc::died);
  EXPECT_EQ(sys.live_actors(), 0U);
}

TEST(Supervision, CrashesOutsideThePeriodDoNotCount) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({.restart = {.max_restarts = 1, .period = 1s, .backoff_initial = 0ms}}).value();
  for (int i = 0; i < 5; ++i) {
    (void)c.ask(&counter::crash, std::string("once a second"));
    sys.run_until_idle();
    sys.advance(1001ms);
  }
  EXPECT_TRUE(c.alive());
  EXPECT_EQ(c.restarts(), 5U);
}

struct flaky {
  std::shared_ptr<std::atomic<int>> attempts;
  int fail_first;
  int work() {
    if (attempts->fetch_add(1) < fail_first) throw std::runtime_error("transient");
    return attempts->load();
  }
};

TEST(Supervision, TheCallThatCrashedIsRetriedUpToMaxTaskRetries) {
  actor_system sys(deterministic());
  auto attempts = std::make_shared<std::atomic<int>>(0);
  auto f = sys.spawn<flaky>({.restart = {.backoff_initial = 0ms}, .max_task_retries = 2}, flaky{attempts, 2}).value();
  auto got = f.ask(&flaky::work);
  sys.run_until_idle();
  ASSERT_TRUE(got.try_get()->ok());
  EXPECT_EQ(attempts->load(), 3);
  EXPECT_EQ(f.restarts(), 2U);
}

TEST(Supervision, WithoutRetriesTheCrashedCallFailsAtMostOnce) {
  actor_system sys(deterministic());
  auto attempts = std::make_shared<std::atomic<int>>(0);
  auto f = sys.spawn<flaky>({.restart = {.backoff_initial = 0ms}}, flaky{attempts, 1}).value();
  auto got = f.ask(&flaky::work);
  sys.run_until_idle();
  EXPECT_EQ(got.try_get()->err().code, runtime_errc::died);
  EXPECT_EQ(attempts->load(), 1);  // ran once, not again
  EXPECT_TRUE(f.alive());
}

TEST(Supervision, AConstructorThatThrowsAtSpawnIsAnError) {
  actor_system sys(deterministic());
  struct broken {
    broken() { throw std::runtime_error("no config"); }
  };
  auto b = sys.spawn<broken>({});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.err().code, runtime_errc::died);
  EXPECT_NE(b.err().message.find("no config"), std::string::npos);
  EXPECT_EQ(sys.live_actors(), 0U);
}

TEST(Supervision, ACrashInACoroutineHandlerRestartsTheActor) {
  actor_system sys(deterministic());
  struct async_worker {
    int calls = 0;
    task<int> explode() {
      ++calls;
      co_await std::suspend_never{};
      throw std::runtime_error("late failure");
    }
    int count() const { return calls; }
  };
  auto w = sys.spawn<async_worker>({.restart = {.backoff_initial = 0ms}}).value();
  auto boom = w.ask(&async_worker::explode);
  auto after = w.ask(&async_worker::count);
  sys.run_until_idle();
  EXPECT_EQ(boom.try_get()->err().code, runtime_errc::died);
  EXPECT_EQ(**after.try_get(), 0);  // a fresh incarnation
  EXPECT_EQ(w.restarts(), 1U);
}

// ── Death, kill and deadlines ──

TEST(Death, KillFailsQueuedCallsAtOnce) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({}).value();
  auto a = c.ask(&counter::add, 1);
  auto b = c.ask(&counter::add, 2);
  c.kill("test over");
  sys.run_until_idle();
  for (auto* r : {&a, &b}) {
    auto got = *r->try_get();
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.err().code, runtime_errc::died);
    EXPECT_NE(got.err().message.find("test over"), std::string::npos);
  }
  EXPECT_FALSE(c.alive());
}

TEST(Death, KillFailsACallInFlightWhileItsCoroutineIsSuspended) {
  actor_system sys(deterministic());
  manual_event ev;
  auto w = sys.spawn<waiter>({}).value();
  auto pending = w.ask(&waiter::wait, &ev);
  sys.run_until_idle();
  EXPECT_FALSE(pending.ready());
  w.kill();
  sys.run_until_idle();
  ASSERT_TRUE(pending.ready());
  EXPECT_EQ(pending.try_get()->err().code, runtime_errc::died);
  ev.fire();  // the abandoned coroutine finishes harmlessly
  sys.run_until_idle();
}

TEST(Death, ADeadlineFailsACallThatGetsNoAnswer) {
  actor_system sys(deterministic());
  manual_event never;
  auto w = sys.spawn<waiter>({}).value();
  auto pending = w.ask([&](waiter& s) { return s.wait(&never); }, {.timeout = 50ms});
  sys.run_until_idle();
  sys.advance(49ms);
  EXPECT_FALSE(pending.ready());
  sys.advance(1ms);
  ASSERT_TRUE(pending.ready());
  EXPECT_EQ(pending.try_get()->err().code, runtime_errc::timed_out);
  never.fire();  // the late answer is discarded
  sys.run_until_idle();
}

TEST(Death, AThreadGivesUpWaitingAfterItsTimeout) {
  actor_system sys({.threads = 1});
  manual_event never;
  auto w = sys.spawn<waiter>({}).value();
  auto pending = w.ask([&](waiter& s) { return s.wait(&never); });
  auto got = pending.get(20ms);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.err().code, runtime_errc::timed_out);
  never.fire();
}

TEST(Death, StoppingTheSystemFailsCallsStillPending) {
  // A handler that works until it is told to stop, and calls queued behind it.
  struct worker {
    actor_context* ctx;
    explicit worker(actor_context& c) : ctx(&c) {}
    task<int> work() {
      while (!ctx->stop_requested()) co_await yield_to_mailbox();
      co_return 1;
    }
    static int quick() { return 2; }
  };
  reply<int> in_flight;
  std::vector<reply<int>> queued;
  {
    actor_system sys({.threads = 2});
    auto w = sys.spawn<worker>({}).value();
    in_flight = w.ask(&worker::work);
    for (int i = 0; i < 100; ++i) queued.push_back(w.ask([](worker&) { return worker::quick(); }));
  }
  // Every call has its outcome once the system is gone: answered, or failed with `died` (the
  // worker may notice the stop and answer before its death fails the call).
  ASSERT_TRUE(in_flight.ready());
  auto got = *in_flight.try_get();
  EXPECT_TRUE(got.ok() ? *got == 1 : got.err().code == runtime_errc::died);
  for (auto& q : queued) {
    ASSERT_TRUE(q.ready());
    auto answer = *q.try_get();
    EXPECT_TRUE(answer.ok() ? *answer == 2 : answer.err().code == runtime_errc::died);
  }
}

TEST(Death, ACoroutineOutlivingItsDeadActorAndEveryHandleFinishesSafely) {
  actor_system sys(deterministic());
  manual_event ev;
  reply<int> pending;
  {
    auto w = sys.spawn<waiter>({}).value();
    pending = w.ask(&waiter::wait, &ev);
    sys.run_until_idle();
    w.kill();
    sys.run_until_idle();
  }  // the last handle is gone; the coroutine still holds the actor's cell
  EXPECT_EQ(pending.try_get()->err().code, runtime_errc::died);
  ev.fire();
  sys.run_until_idle();  // under ASan: no use after free
}

TEST(Supervision, ACoroutineOfAnEndedIncarnationIsToldToStop) {
  actor_system sys(deterministic());
  auto stopped = std::make_shared<bool>(false);
  struct looper {
    actor_context* ctx;
    std::shared_ptr<bool> stopped;
    looper(actor_context& c, std::shared_ptr<bool> flag) : ctx(&c), stopped(std::move(flag)) {}
    task<int> loop() {
      while (!ctx->stop_requested()) co_await yield_to_mailbox();
      *stopped = true;
      co_return 0;
    }
    void crash() { throw std::runtime_error("restart me"); }
  };
  auto l = sys.spawn<looper>({.restart = {.backoff_initial = 0ms}}, stopped).value();
  auto running = l.ask(&looper::loop);
  for (int i = 0; i < 5; ++i) sys.run_once();
  EXPECT_FALSE(*stopped);
  (void)l.tell(&looper::crash);
  sys.run_until_idle();
  EXPECT_TRUE(*stopped);  // the old incarnation's loop saw the restart and returned
  EXPECT_EQ(running.try_get()->err().code, runtime_errc::died);
  EXPECT_TRUE(l.alive());
}

TEST(Death, TimerMessagesReachABusyActorWhoseMailboxIsFull) {
  actor_system sys(deterministic());
  auto r = sys.spawn<recorder>({.mailbox_capacity = 1}).value();
  ASSERT_TRUE(r.tell(&recorder::add, 1).ok());  // full now
  r.tell_after(10ms, [](recorder& x) { x.add(2); });
  sys.advance(10ms);
  sys.run_until_idle();
  auto seen = r.ask(&recorder::all);
  sys.run_until_idle();
  EXPECT_EQ(**seen.try_get(), (std::vector<int>{1, 2}));
}

// ── Backpressure ──

TEST(Backpressure, AFullMailboxRefusesASenderThatWillNotWait) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({.mailbox_capacity = 2}).value();
  EXPECT_TRUE(c.tell(&counter::add, 1).ok());
  EXPECT_TRUE(c.tell(&counter::add, 1).ok());
  auto refused = c.tell(&counter::add, 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, runtime_errc::overloaded);
  sys.run_once();
  EXPECT_TRUE(c.tell(&counter::add, 1).ok());  // room again
}

TEST(Backpressure, MaxPendingCallsBoundsOutstandingAsks) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({.max_pending_calls = 2}).value();
  auto a = c.ask(&counter::add, 1);
  auto b = c.ask(&counter::add, 1);
  auto over = c.ask(&counter::add, 1);
  ASSERT_TRUE(over.ready());
  EXPECT_EQ(over.try_get()->err().code, runtime_errc::overloaded);
  EXPECT_TRUE(c.tell(&counter::add, 100).ok());  // one-way messages are not calls
  sys.run_until_idle();
  auto after = c.ask(&counter::get);
  sys.run_until_idle();
  EXPECT_EQ(**after.try_get(), 102);
}

TEST(Backpressure, AThreadThatChoosesToWaitBlocksUntilThereIsRoom) {
  actor_system sys({.threads = 2});
  auto r = sys.spawn<recorder>({.mailbox_capacity = 4}).value();
  for (int i = 0; i < 20'000; ++i) {
    ASSERT_TRUE(r.tell([i](recorder& x) { x.add(i); }, {.full = when_full::wait}).ok());
  }
  auto count = r.ask(&recorder::count, {.full = when_full::wait}).get(10s);
  ASSERT_TRUE(count.ok()) << count.err().message;
  EXPECT_EQ(*count, 20'000U);
}

TEST(Backpressure, ACoroutineSenderSuspendsUntilTheReceiverMakesRoom) {
  actor_system sys(deterministic());
  auto r = sys.spawn<recorder>({.mailbox_capacity = 2}).value();
  struct producer {
    actor_ref<recorder> to;
    task<int> produce(int n) {
      int sent = 0;
      for (int i = 0; i < n; ++i) {
        auto ok = co_await to.send([i](recorder& x) { x.add(i); }, {.full = when_full::wait});
        if (ok.ok()) ++sent;
      }
      co_return sent;
    }
  };
  auto p = sys.spawn<producer>({}, producer{r}).value();
  auto done = p.ask(&producer::produce, 10);
  sys.run_once(p);  // the producer fills the mailbox and parks
  EXPECT_FALSE(done.ready());
  sys.run_until_idle();
  ASSERT_TRUE(done.ready());
  EXPECT_EQ(**done.try_get(), 10);
  auto seen = r.ask(&recorder::all);
  sys.run_until_idle();
  EXPECT_EQ(**seen.try_get(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(Backpressure, ACoroutineCallerWaitsForRoomWithCall) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({.mailbox_capacity = 1, .max_pending_calls = 1}).value();
  struct caller {
    actor_ref<counter> to;
    task<int> add_all(int n) {
      int last = 0;
      for (int i = 0; i < n; ++i) {
        auto added = co_await to.call([](counter& x) { return x.add(1); }, {.full = when_full::wait});
        if (!added.ok()) co_return -1;
        last = *added;
      }
      co_return last;
    }
  };
  auto a = sys.spawn<caller>({}, caller{c}).value();
  auto b = sys.spawn<caller>({}, caller{c}).value();
  auto ra = a.ask(&caller::add_all, 5);
  auto rb = b.ask(&caller::add_all, 5);
  sys.run_until_idle();
  ASSERT_TRUE(ra.ready() && rb.ready());
  EXPECT_EQ(std::max(**ra.try_get(), **rb.try_get()), 10);  // all ten calls ran, none was refused
}

TEST(Backpressure, AThreadWaitsForAPendingCallToFinishUnderMaxPendingCalls) {
  actor_system sys({.threads = 2});
  auto c = sys.spawn<counter>({.max_pending_calls = 2}).value();
  std::vector<reply<int>> replies;
  for (int i = 0; i < 200; ++i) {
    replies.push_back(c.ask([](counter& x) { return x.add(1); }, {.full = when_full::wait}));
  }
  int last = 0;
  for (auto& r : replies) {
    auto got = r.get(10s);
    ASSERT_TRUE(got.ok()) << got.err().message;
    last = std::max(last, *got);
  }
  EXPECT_EQ(last, 200);
}

TEST(Backpressure, AnActorCannotBlockOnAnotherMailbox) {
  actor_system sys(deterministic());
  auto r = sys.spawn<recorder>({}).value();
  struct blocker {
    actor_ref<recorder> to;
    result<void> try_block() {
      return to.tell([](recorder& x) { x.add(1); }, {.full = when_full::wait});
    }
  };
  auto b = sys.spawn<blocker>({}, blocker{r}).value();
  auto got = b.ask(&blocker::try_block);
  sys.run_until_idle();
  EXPECT_EQ(got.try_get()->err().code, runtime_errc::invalid_argument);
}

// ── Names and lifetimes ──

TEST(Names, ANamedActorIsFoundByNameInItsNamespace) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({.name = "tally", .name_space = "billing"}).value();
  auto found = sys.get<counter>("billing", "tally");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, c);
  EXPECT_EQ(sys.get<counter>("default", "tally").err().code, runtime_errc::not_found);
  EXPECT_EQ(sys.get<recorder>("billing", "tally").err().code, runtime_errc::wrong_type);
  auto twice = sys.spawn<counter>({.name = "tally", .name_space = "billing"});
  EXPECT_EQ(twice.err().code, runtime_errc::name_taken);
}

TEST(Names, GetOrCreateMakesOneActorAndThenReturnsIt) {
  actor_system sys(deterministic());
  auto first = sys.get_or_create<counter>({.name = "shared"}).value();
  auto second = sys.get_or_create<counter>({.name = "shared"}).value();
  EXPECT_EQ(first, second);
  EXPECT_EQ(sys.live_actors(), 1U);
  EXPECT_EQ(sys.get_or_create<recorder>({.name = "shared"}).err().code, runtime_errc::wrong_type);
  EXPECT_EQ(sys.get_or_create<counter>({}).err().code, runtime_errc::invalid_argument);
}

TEST(Names, ADeadActorsNameIsFreeAgain) {
  actor_system sys(deterministic());
  auto c = sys.spawn<counter>({.name = "once"}).value();
  c.kill();
  sys.run_until_idle();
  EXPECT_EQ(sys.get<counter>("default", "once").err().code, runtime_errc::not_found);
  auto again = sys.spawn<counter>({.name = "once"});
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->id(), c.id());
}

TEST(Names, BadOptionsAreRefused) {
  actor_system sys(deterministic());
  EXPECT_EQ(sys.spawn<counter>({.name_space = ""}).err().code, runtime_errc::invalid_argument);
  EXPECT_EQ(sys.spawn<counter>({.name = std::string("a\0b", 3)}).err().code, runtime_errc::invalid_argument);
  EXPECT_EQ(sys.spawn<counter>({.name = std::string(600, 'n')}).err().code, runtime_errc::invalid_argument);
  EXPECT_EQ(sys.spawn<counter>({.restart = {.max_restarts = -2}}).err().code, runtime_errc::invalid_argument);
  EXPECT_EQ(sys.spawn<counter>({.restart = {.backoff_initial = 2s, .backoff_max = 1s}}).err().code,
            runtime_errc::invalid_argument);
}

struct parent {
  actor_ref<counter> owned;
  actor_ref<counter> detached;
  explicit parent(actor_context& ctx) {
    owned = ctx.system().spawn<counter>({}).value();
    detached = ctx.system().spawn<counter>({.detached = true}).value();
  }
  std::pair<actor_ref<counter>, actor_ref<counter>> children() const { return {owned, detached}; }
  void crash() { throw std::runtime_error("parent fails"); }
};

TEST(Lifetimes, OwnedActorsDieWithTheirOwnerAndDetachedOnesDoNot) {
  actor_system sys(deterministic());
  auto p = sys.spawn<parent>({}).value();
  auto kids = p.ask(&parent::children);
  sys.run_until_idle();
  auto [owned, detached] = **kids.try_get();
  p.kill();
  sys.run_until_idle();
  EXPECT_FALSE(owned.alive());
  EXPECT_TRUE(detached.alive());
  EXPECT_EQ(owned.tell(&counter::add, 1).err().code, runtime_errc::died);
}

TEST(Lifetimes, AnOwnersRestartEndsTheActorsItsOldIncarnationOwned) {
  actor_system sys(deterministic());
  auto p = sys.spawn<parent>({.restart = {.backoff_initial = 0ms}}).value();
  auto before = p.ask(&parent::children);
  sys.run_until_idle();
  auto old_owned = (**before.try_get()).first;
  (void)p.tell(&parent::crash);
  sys.run_until_idle();
  auto after = p.ask(&parent::children);
  sys.run_until_idle();
  EXPECT_FALSE(old_owned.alive());
  EXPECT_TRUE((**after.try_get()).first.alive());
  EXPECT_NE((**after.try_get()).first, old_owned);
}

// ── The deterministic scheduler ──

TEST(Deterministic, ATestPicksWhichActorRunsNext) {
  actor_system sys(deterministic());
  auto log = std::make_shared<std::vector<std::string>>();
  struct named {
    std::string name;
    std::shared_ptr<std::vector<std::string>> log;
    void hit() { log->push_back(name); }
  };
  auto a = sys.spawn<named>({}, named{"a", log}).value();
  auto b = sys.spawn<named>({}, named{"b", log}).value();
  (void)a.tell(&named::hit);
  (void)b.tell(&named::hit);
  EXPECT_TRUE(sys.run_once(b));
  EXPECT_TRUE(sys.run_once(a));
  EXPECT_FALSE(sys.run_once(a));  // nothing left for a
  EXPECT_EQ(*log, (std::vector<std::string>{"b", "a"}));
}

}  // namespace
}  // namespace choir::runtime
