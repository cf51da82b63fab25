#pragma once
/// A conversation: one window of the desktop, an actor hosting one durable run of an agent.
///
/// Each user message is delivered to the agent's listening action (the first action that waits
/// for input) as the input `message`, and the agent runs until it halts: it waits for the next
/// message, completes, fails, or is stopped. Every committed step is streamed to subscribers as it
/// happens. The run lives in the event store: the actor holds the run's lease only during a turn,
/// and a restarted (or new) actor continues from the last committed step. docs/runtime.md.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "choir/runtime/actor.hpp"
#include "choir/runtime/agent_run.hpp"
#include "choir/runtime/step_dispatch.hpp"

namespace choir::runtime {

/// What a message that arrives while the agent is still working does.
enum class busy_policy : std::uint8_t {
  enqueue,    ///< waits for the turns before it (the default)
  reject,     ///< fails at once with `rejected`
  interrupt,  ///< stops the current turn at its next step boundary (what committed stays), then runs
};

/// One event of a conversation, as subscribers see it. `kind` is `turn_started` (data: the
/// message, or null), `step` (data: the committed step, as `graph::step_record::to_json`),
/// `token` (data: `{action, text}`, a piece of a streaming action's output, live only: the
/// committed step carries the whole) or `turn_ended` (data: the `turn_result`).
struct conversation_event {
  std::string kind;
  std::string run_id;
  value data;
};

using conversation_listener = std::function<void(const conversation_event&)>;

/// How a turn ended.
struct turn_result {
  std::string run_id;
  /// `waiting` (for the next message), `waiting_consent` (a call waits for a person's approval:
  /// `resume` continues the step once it is answered; a new message starts over at the listening
  /// action instead), `completed`, `failed`,
  /// `interrupted` (by a newer message), `paused`, `stopped` (the actor was killed) or `halted`
  /// (the turn's step limit).
  std::string ended;
  std::uint64_t steps = 0;
  std::string next_action;
  value state;
  std::optional<error> failure;  ///< the failed step's error, or what a suspended step waits for
  [[nodiscard]] value to_json() const;
};

struct conversation_options {
  std::shared_ptr<const agent_definition> agent;
  std::shared_ptr<store::event_store> store;  ///< shared by threads: see `store::synchronized`
  std::string run_id;  ///< the run to continue; created on the first message if the store lacks it
  /// If set, the run is admitted by it (for `who`, when the run is created; for whoever started it
  /// when it is reopened) and its effects pass it; the admission lasts while the actor lives.
  std::shared_ptr<runtime::gate> gate;
  principal who;
  busy_policy when_busy = busy_policy::enqueue;
  /// The input the listening action takes the message as. Empty: the run takes no messages (a
  /// run of any agent hosted to be resumed, given input or cancelled; `say` is refused).
  std::string message_input = "message";
  std::uint64_t max_steps_per_turn = 10'000;
  std::int64_t lease_ttl_ms = 30'000;
  /// Passivation: after this long without a turn (and with no turn waiting, not paused, nobody
  /// subscribed) the actor deactivates itself; its run lives on in the store and the next message
  /// (through a `conversation_directory`) activates it again. Zero: never.
  std::chrono::milliseconds idle_after{0};
  /// Told every event before the subscribers, for as long as the actor lives (and again after a
  /// restart); unlike a subscriber it does not keep an idle conversation active. Called on the
  /// actor: it must not block.
  conversation_listener observer;
  /// If set, every step waits for a worker of it, in its latency class's order (docs/scheduling.md).
  std::shared_ptr<step_dispatcher> dispatcher;
  /// If set, steps commit through it with other conversations' steps (group commit), each waiting
  /// for its transaction without holding the actor's thread.
  std::shared_ptr<store::group_committer> committer;
};

/// The actor. Spawn it with `spawn_conversation`; talk to it through its `actor_ref`:
///     auto pending = conv.ask([msg](conversation& c) { return c.say(msg); });
///     auto turn = co_await pending;   // named first: see the g++ 12 caveat in actor.hpp
class conversation {
 public:
  conversation(actor_context& ctx, conversation_options opts);
  ~conversation();
  conversation(const conversation&) = delete;
  conversation& operator=(const conversation&) = delete;

  /// A user message: runs the agent until it halts. Errors: `rejected` (busy under policy
  /// `reject`, or the run is complete), store errors (`run_leased`: another process drives the
  /// run), graph errors.
  task<result<turn_result>> say(value message);
  /// Continues the run without a new message (after `pause`, a step limit, a crash, or a consent
  /// answered); `inputs` (an object) go to its next step — what a waiting `human` action takes.
  task<result<turn_result>> resume(value inputs = value::object());
  /// Cancels the run: the running turn stops at its next step boundary (what committed stays), turns
  /// waiting behind it are refused, and the run is recorded `cancelled`, which no turn continues.
  /// Ends `cancelled`. Errors: `rejected` (the run is complete), store errors (`run_leased`: another
  /// process drives it).
  task<result<turn_result>> cancel();
  /// Stops the current turn at its next step boundary; messages wait until `resume`.
  void pause();
  /// Ends the conversation: the run stays in the store as it is, and the actor stops.
  void terminate();

  /// Registers a listener for this conversation's events; called on the actor, must not block.
  std::uint64_t subscribe(conversation_listener listener);
  void unsubscribe(std::uint64_t id);

  /// The run id, whether a turn is running, whether paused, the next action and the state.
  [[nodiscard]] value describe() const;
  [[nodiscard]] const std::string& run_id() const noexcept { return opts_.run_id; }

  /// The actor is stopping (killed, deactivated, restarted): the coroutines of messages parked
  /// behind a pause or a running turn are released so that they finish (their callers were told
  /// already, with `died` or `unavailable`).
  void on_stop();

  /// The timer message of passivation: deactivates the actor if it has been idle long enough.
  void idle_check();
  /// The timer message that renews the run's lease every third of its duration while a turn runs
  /// (a step awaiting a slow model call must not lose the run). A lost lease stops the turn.
  void renew_lease();

 private:
  class step_relay;
  struct gate;
  task<result<turn_result>> turn(std::optional<value> message, value inputs);
  task<result<turn_result>> take_turn(std::optional<value> message, value inputs);
  [[nodiscard]] error stopped_error() const;
  [[nodiscard]] error cancelled_error() const;
  result<turn_result> settle_cancel();
  result<void> ensure_run();
  void emit(const std::string& kind, const value& data);
  void finish_turn();
  void touch();
  void arm_idle_check(std::chrono::nanoseconds after);

  actor_context* ctx_;
  conversation_options opts_;
  run_hosting hosting_;
  std::unique_ptr<graph::application> app_;
  bool busy_ = false;
  bool paused_ = false;
  bool stop_turn_ = false;
  bool cancelled_ = false;  ///< `cancel` was asked: no turn runs any more
  std::deque<std::coroutine_handle<>> waiting_turns_;
  std::deque<std::coroutine_handle<>> waiting_resume_;
  std::vector<std::pair<std::uint64_t, conversation_listener>> listeners_;
  std::uint64_t next_listener_ = 1;
  std::chrono::steady_clock::time_point last_activity_;
  bool idle_check_armed_ = false;
  bool renewal_armed_ = false;
  std::optional<error> lease_lost_;
  std::uint64_t dispatch_owner_ = 0;  ///< this incarnation, to `opts_.dispatcher`
  std::chrono::steady_clock::time_point turn_started_{};
  bool turn_output_seen_ = true;  ///< the running turn's first visible output was recorded
  std::string turn_last_action_;  ///< the action of the running turn's last step (its mode measures the turn)
};

/// Checks that `agent` can hold a conversation: its listening action takes `message_input`.
[[nodiscard]] result<void> check_conversable(const agent_definition& agent, const std::string& message_input);

/// Spawns a conversation actor (named after its run id, in namespace `conversations`, unless
/// `spawn.name` says otherwise). A new run id is made if `opts.run_id` is empty. Errors:
/// `invalid_argument` (no agent or store, or the agent's listening action does not take the
/// message input, unless that is empty), and those of `actor_system::spawn`.
[[nodiscard]] result<actor_ref<conversation>> spawn_conversation(actor_system& sys, conversation_options opts,
                                                                 spawn_options spawn = {});

}  // namespace choir::runtime

namespace choir::runtime {

struct directory_options {
  std::shared_ptr<store::event_store> store;  ///< shared by threads: see `store::synchronized`
  std::shared_ptr<runtime::gate> gate;  ///< if set, every conversation's run is admitted by it and its effects pass it
  std::chrono::milliseconds idle_after{std::chrono::minutes(5)};  ///< passivation; zero: never
  busy_policy when_busy = busy_policy::enqueue;
  std::uint64_t max_steps_per_turn = 10'000;
  conversation_listener observer;                     ///< every conversation's `conversation_options::observer`
  std::shared_ptr<step_dispatcher> dispatcher;        ///< every conversation's `conversation_options::dispatcher`
  std::shared_ptr<store::group_committer> committer;  ///< every conversation's `conversation_options::committer`
};

/// Conversations as virtual actors: every registered conversation always exists, by its run id;
/// an actor hosts it only while it is in use. The first message activates it from the store (at
/// its last committed step), and it passivates itself when idle (`directory_options::idle_after`).
/// At most one activation of a conversation exists in the process (it is named by its run id).
/// Thread-safe.
class conversation_directory {
 public:
  conversation_directory(actor_system& sys, directory_options opts);

  /// Registers run `run_id` of `agent` for `who`, passive until its first message (the run is
  /// created in the store then, if it does not exist). Registering it again is a no-op. Errors:
  /// `invalid_argument` (an agent that cannot hold a conversation, an empty id).
  result<void> add(const std::string& run_id, std::shared_ptr<const agent_definition> agent, principal who = {});
  /// Registers run `run_id` of any agent, to be resumed, given input or cancelled here; it also
  /// takes messages if its agent can hold a conversation. Registering it again is a no-op.
  result<void> host(const std::string& run_id, std::shared_ptr<const agent_definition> agent, principal who = {});
  /// Whether `run_id` is registered.
  [[nodiscard]] bool contains(const std::string& run_id) const;
  /// The conversation's live activation, activating it if needed. Errors: `not_found` (not
  /// registered), and those of `actor_system::spawn`.
  result<actor_ref<conversation>> activate(const std::string& run_id);
  /// Sends a message to the conversation, activating it as needed — again if it passivated while
  /// the message was on its way (the message had not run: `unavailable` is retried).
  task<result<turn_result>> say(std::string run_id, value message);
  /// Continues the conversation without a message (after a consent was answered, a pause or a
  /// crash), activating it as needed.
  task<result<turn_result>> resume(std::string run_id, value inputs = value::object());
  /// Cancels the run (`conversation::cancel`), activating it as needed.
  task<result<turn_result>> cancel(std::string run_id);

  /// What `post` asks of a conversation.
  struct request {
    enum class kind : std::uint8_t { message, resume, cancel };
    kind what = kind::resume;
    value data = value::object();  ///< the message, or the inputs of a resume
  };
  /// `say`, `resume` or `cancel` without waiting: the turn runs on the conversation's actor and
  /// `done` (if set) is called with how it ended, on whichever thread finished it.
  void post(std::string run_id, request req, std::function<void(result<turn_result>)> done);

  [[nodiscard]] std::size_t registered() const;

 private:
  actor_system* sys_;
  directory_options opts_;
  mutable std::mutex mutex_;
  struct entry {
    std::uint32_t agent = 0;  ///< index into agents_
    principal who;
    bool messages = true;  ///< its agent can hold a conversation
  };
  std::vector<std::shared_ptr<const agent_definition>> agents_;
  std::unordered_map<std::string, entry> entries_;
  task<result<turn_result>> ask(std::string run_id, request req);
  result<void> register_run(const std::string& run_id, std::shared_ptr<const agent_definition> agent, principal who,
                            bool messages);
};

}  // namespace choir::runtime
