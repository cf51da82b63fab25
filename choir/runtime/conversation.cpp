#include "choir/runtime/conversation.hpp"

#include <algorithm>

#include "choir/core/id.hpp"

namespace choir::runtime {

namespace {

/// The latency class of a step of `action` — the action's own, else its mode's (the contract's
/// `modes`), else the agent's (SRT without a contract) — and the HRT deadline of its mode or agent.
/// An unknown action (none) gives the agent's class.
std::pair<graph::latency_class, std::optional<std::int64_t>> step_class(const agent_definition& agent,
                                                                        const std::string& action) {
  graph::latency_class cls = graph::latency_class::srt;
  std::optional<std::int64_t> deadline;
  if (agent.contract) {
    const auto [latency, levels] = agent.contract->class_of(action);
    cls = latency;
    deadline = levels.deadline_ms;
  }
  if (const auto index = agent.graph->index_of(action)) {
    if (const auto own = agent.graph->nodes()[*index].act->spec().latency) cls = *own;
  }
  return {cls, deadline};
}

/// The service levels a turn that ended at `action` is held to: its mode's, else the agent's.
kernel::service_level turn_levels(const agent_definition& agent, const std::string& action) {
  return agent.contract ? agent.contract->class_of(action).second : kernel::service_level{};
}

}  // namespace

value turn_result::to_json() const {
  value out = {{"run_id", run_id}, {"ended", ended}, {"steps", steps}, {"state", state}};
  out["next_action"] = next_action.empty() ? value() : value(next_action);
  if (failure) out["error"] = failure->message;
  return out;
}

/// Relays each committed step to the conversation's listeners (runs on the actor, inside the step).
class conversation::step_relay final : public graph::hooks {
 public:
  explicit step_relay(conversation& c) : conv_(&c) {}
  void post_step(const graph::step_record& record, const graph::state& /*after*/) override {
    conv_->emit("step", record.to_json());
  }
  void stream_item(const graph::action& act, const value& chunk) override {
    if (chunk.is_object() && chunk.contains("token") && chunk["token"].is_string()) {
      conv_->emit("token", value{{"action", act.name()}, {"text", chunk["token"]}});
    }
  }

 private:
  conversation* conv_;
};

/// Waits for the conversation's turn: turns run one at a time, in the order they asked.
struct conversation::gate {
  conversation& conv;
  [[nodiscard]] bool await_ready() const noexcept {
    if (conv.busy_) return false;
    conv.busy_ = true;
    return true;
  }
  void await_suspend(std::coroutine_handle<> h) const { conv.waiting_turns_.push_back(h); }
  void await_resume() const noexcept {}  // handed the turn with `busy_` still set
};

conversation::conversation(actor_context& ctx, conversation_options opts) : ctx_(&ctx), opts_(std::move(opts)) {
  hosting_.lease_ttl_ms = opts_.lease_ttl_ms;
  hosting_.gate = opts_.gate;
  hosting_.committer = opts_.committer;
  hosting_.hooks.push_back(std::make_shared<step_relay>(*this));
  if (opts_.dispatcher) dispatch_owner_ = opts_.dispatcher->new_owner();
  touch();
}

void conversation::touch() {
  last_activity_ = ctx_->system().time().steady_now();
  if (opts_.idle_after.count() > 0 && !idle_check_armed_) arm_idle_check(opts_.idle_after);
}

void conversation::arm_idle_check(std::chrono::nanoseconds after) {
  idle_check_armed_ = true;
  ctx_->self<conversation>().tell_after(after, [](conversation& c) { c.idle_check(); });
}

void conversation::idle_check() {
  idle_check_armed_ = false;
  if (opts_.idle_after.count() <= 0) return;
  if (busy_ || paused_ || !waiting_turns_.empty() || !waiting_resume_.empty() || !listeners_.empty()) {
    arm_idle_check(opts_.idle_after);  // in use: look again later
    return;
  }
  const auto idle = ctx_->system().time().steady_now() - last_activity_;
  if (idle < opts_.idle_after) {
    arm_idle_check(opts_.idle_after - idle);
    return;
  }
  ctx_->self<conversation>().deactivate("passivated after " + std::to_string(opts_.idle_after.count()) +
                                        " ms idle; its run lives on in the store");
}

conversation::~conversation() {
  // Dying in the middle of a turn: let another process take the run at once.
  if (busy_ && app_) (void)opts_.store->release_lease(opts_.run_id);
  if (opts_.gate && app_) opts_.gate->release(opts_.run_id);  // its reservations go back to the node
}

std::uint64_t conversation::subscribe(conversation_listener listener) {
  touch();
  const auto id = next_listener_++;
  listeners_.emplace_back(id, std::move(listener));
  return id;
}

void conversation::unsubscribe(std::uint64_t id) {
  touch();
  std::erase_if(listeners_, [id](const auto& entry) { return entry.first == id; });
}

void conversation::emit(const std::string& kind, const value& data) {
  // A turn's first visible output: a streamed token, or a step past the one that took the message.
  // Measured under the class and levels of the action that gave it (its mode's, or the agent's).
  if (kind == "step" && data.is_object()) turn_last_action_ = data.value("action", "");
  if (!turn_output_seen_ && opts_.dispatcher && data.is_object() &&
      (kind == "token" || (kind == "step" && data.value("action", "") != opts_.agent->listening_action()))) {
    turn_output_seen_ = true;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - turn_started_).count();
    const std::string action = data.value("action", "");
    opts_.dispatcher->record_onset(step_class(*opts_.agent, action).first, seconds,
                                   turn_levels(*opts_.agent, action).onset_ms);
  }
  const conversation_event event{kind, opts_.run_id, data};
  if (opts_.observer) {
    try {
      opts_.observer(event);
    } catch (...) {  // an observer's failure is its own; the conversation goes on
    }
  }
  // A listener that throws is dropped; the conversation goes on.
  std::vector<std::uint64_t> failed;
  for (const auto& [id, listener] : listeners_) {
    try {
      listener(event);
    } catch (...) {
      failed.push_back(id);
    }
  }
  for (auto id : failed) unsubscribe(id);
}

value conversation::describe() const {
  value out = {{"run_id", opts_.run_id}, {"agent", opts_.agent->name}, {"busy", busy_}, {"paused", paused_}};
  if (app_) {
    out["next_action"] = app_->has_next_action() ? value(app_->next_action()) : value();
    out["state"] = app_->current_state().to_json();
  }
  return out;
}

result<void> conversation::ensure_run() {
  auto& s = *opts_.store;
  if (app_) {
    // Take the run again and check that nobody moved it while this actor did not hold it.
    auto seen = s.get_run(opts_.run_id);
    if (!seen.ok()) {
      app_.reset();
      return std::move(seen).err();
    }
    if (seen->status == "cancelled") {
      app_.reset();
      return cancelled_error();
    }
    auto leased = s.acquire_lease(opts_.run_id, hosting_.lease_ttl_ms);
    if (!leased.ok() && leased.err().code == store::store_errc::run_leased && store::owner_known_dead(seen->owner)) {
      leased = s.acquire_lease(opts_.run_id, hosting_.lease_ttl_ms, seen->owner);
    }
    CHOIR_CHECK(leased);
    auto run = s.get_run(opts_.run_id);
    if (run.ok() && static_cast<std::uint64_t>(run->position() + 1) == app_->sequence_id() &&
        run->graph_version == opts_.agent->version) {
      return {};
    }
    (void)s.release_lease(opts_.run_id);
    app_.reset();
  }
  auto existing = s.get_run(opts_.run_id);
  if (!existing.ok() && existing.err().code == store::store_errc::run_not_found) {
    CHOIR_TRY(app_, start_run(s, *opts_.agent, run_start{.run_id = opts_.run_id, .who = opts_.who}, hosting_));
    return {};
  }
  if (!existing.ok()) return std::move(existing).err();
  run_opening opening;
  opening.admit = [this](const store::run_record& run) -> result<void> {
    if (run.status == "cancelled") return cancelled_error();
    return {};
  };
  CHOIR_TRY(app_, open_run(s, opts_.run_id, *opts_.agent, hosting_, &opening));
  return {};
}

error conversation::cancelled_error() const {
  return make_error(runtime_errc::rejected, "run " + opts_.run_id + " was cancelled: it takes no more turns");
}

void conversation::finish_turn() {
  touch();
  // Hand the turn to the next waiting message, which continues inside this actor later.
  if (!waiting_turns_.empty() && current_resume_context() != nullptr) {
    auto next = waiting_turns_.front();
    waiting_turns_.pop_front();
    current_resume_context()->resume(next);
    return;
  }
  busy_ = false;
}

void conversation::renew_lease() {
  renewal_armed_ = false;
  if (!busy_ || !app_ || opts_.lease_ttl_ms <= 0) return;
  if (auto renewed = opts_.store->renew_lease(opts_.run_id, opts_.lease_ttl_ms); !renewed.ok()) {
    lease_lost_ = std::move(renewed).err();  // another process took the run: stop at the next boundary
    stop_turn_ = true;
    return;
  }
  renewal_armed_ = true;
  ctx_->self<conversation>().tell_after(std::chrono::milliseconds(opts_.lease_ttl_ms / 3),
                                        [](conversation& c) { c.renew_lease(); });
}

error conversation::stopped_error() const {
  return make_error(runtime_errc::unavailable, "conversation " + opts_.run_id + " stopped before this message ran");
}

void conversation::on_stop() {
  stop_turn_ = true;
  // A step waiting for a worker never starts now, and a worker held by a step is given back.
  if (opts_.dispatcher) opts_.dispatcher->cancel_owner(dispatch_owner_);
  resume_context* here = current_resume_context();
  auto release = [&](std::deque<std::coroutine_handle<>>& parked) {
    for (auto h : parked) {
      if (here != nullptr) {
        here->resume(h);
      } else {
        h.resume();
      }
    }
    parked.clear();
  };
  release(waiting_resume_);
  release(waiting_turns_);
}

task<result<turn_result>> conversation::say(value message) {
  if (opts_.message_input.empty()) {
    co_return make_error(runtime_errc::invalid_argument,
                         "run " + opts_.run_id + " of " + opts_.agent->name + " takes no messages");
  }
  if (busy_ && opts_.when_busy == busy_policy::reject) {
    co_return make_error(runtime_errc::rejected, "conversation " + opts_.run_id + " is busy with another message");
  }
  if (busy_ && opts_.when_busy == busy_policy::interrupt) stop_turn_ = true;
  while (paused_ && !ctx_->stop_requested()) {
    struct wait_resume {
      conversation& conv;
      [[nodiscard]] bool await_ready() const noexcept { return !conv.paused_; }
      void await_suspend(std::coroutine_handle<> h) const { conv.waiting_resume_.push_back(h); }
      void await_resume() const noexcept {}
    };
    co_await wait_resume{*this};
  }
  if (ctx_->stop_requested()) co_return stopped_error();
  co_await gate{*this};
  auto turn_task = take_turn(std::move(message), value::object());  // named: see the g++ 12 caveat in actor.hpp
  co_return co_await std::move(turn_task);
}

task<result<turn_result>> conversation::take_turn(std::optional<value> message, value inputs) {
  // Holding the turn: give it on to the next message however this turn ends.
  if (ctx_->stop_requested()) {
    finish_turn();
    co_return stopped_error();
  }
  std::optional<result<turn_result>> out;
  try {
    auto turn_task = turn(std::move(message), std::move(inputs));
    out.emplace(co_await std::move(turn_task));
  } catch (...) {
    finish_turn();
    throw;
  }
  finish_turn();
  co_return std::move(*out);
}

task<result<turn_result>> conversation::resume(value inputs) {
  if (!inputs.is_object()) co_return make_error(runtime_errc::invalid_argument, "a step's inputs are a JSON object");
  paused_ = false;
  co_await gate{*this};
  // Messages that waited for the resume queue up behind this turn.
  for (auto h : waiting_resume_) current_resume_context()->resume(h);
  waiting_resume_.clear();
  auto turn_task = take_turn(std::nullopt, std::move(inputs));
  co_return co_await std::move(turn_task);
}

task<result<turn_result>> conversation::cancel() {
  cancelled_ = true;
  paused_ = false;
  if (busy_) stop_turn_ = true;  // the running turn ends at its next step boundary
  // Messages parked behind a pause run now, and are refused.
  for (auto h : waiting_resume_) current_resume_context()->resume(h);
  waiting_resume_.clear();
  co_await gate{*this};
  auto out = settle_cancel();
  finish_turn();
  co_return out;
}

result<turn_result> conversation::settle_cancel() {
  auto& s = *opts_.store;
  CHOIR_TRY(auto run, s.get_run(opts_.run_id));
  turn_result out;
  out.run_id = opts_.run_id;
  out.ended = "cancelled";
  out.next_action = run.next_action;
  if (app_) out.state = app_->current_state().to_json();
  if (run.status != "cancelled") {
    if (run.status == "completed") {
      cancelled_ = false;
      return make_error(runtime_errc::rejected, "run " + opts_.run_id + " is complete: there is nothing to cancel");
    }
    // Its owner only: a run driven by another live process is refused (`run_leased`).
    auto leased = s.acquire_lease(opts_.run_id, hosting_.lease_ttl_ms);
    if (!leased.ok() && leased.err().code == store::store_errc::run_leased && store::owner_known_dead(run.owner)) {
      leased = s.acquire_lease(opts_.run_id, hosting_.lease_ttl_ms, run.owner);
    }
    if (!leased.ok()) {
      cancelled_ = false;
      return std::move(leased).err();
    }
    CHOIR_CHECK(settle_run(s, opts_.run_id, "cancelled"));
  }
  if (app_ && opts_.gate) opts_.gate->release(opts_.run_id);  // its reservations go back to the node
  app_.reset();
  emit("status", value{{"run_id", opts_.run_id}, {"status", "cancelled"}});
  return out;
}

void conversation::pause() {
  paused_ = true;
  if (busy_) stop_turn_ = true;
}

void conversation::terminate() {
  paused_ = true;
  if (busy_) stop_turn_ = true;
  ctx_->self<conversation>().kill("the conversation was terminated");
}

task<result<turn_result>> conversation::turn(std::optional<value> message, value inputs) {
  if (cancelled_) co_return cancelled_error();
  turn_started_ = std::chrono::steady_clock::now();
  turn_output_seen_ = false;
  turn_last_action_.clear();
  stop_turn_ = false;
  lease_lost_.reset();
  if (auto owned = ensure_run(); !owned.ok()) co_return std::move(owned).err();
  if (!renewal_armed_ && opts_.lease_ttl_ms > 0) {
    renewal_armed_ = true;
    ctx_->self<conversation>().tell_after(std::chrono::milliseconds(opts_.lease_ttl_ms / 3),
                                          [](conversation& c) { c.renew_lease(); });
  }
  auto& s = *opts_.store;
  auto give_back = [&](const std::string& status) { (void)settle_run(s, opts_.run_id, status); };

  if (message) {
    if (!app_->has_next_action()) {
      give_back("completed");
      co_return make_error(runtime_errc::rejected, "run " + opts_.run_id + " of " + opts_.agent->name +
                                                       " is complete: it takes no more messages");
    }
    inputs[opts_.message_input] = *message;
    // Not waiting for a message (interrupted, paused, or never reached its listening action):
    // the message starts at the listening action, from the state committed so far.
    const std::string listen = opts_.agent->listening_action();
    if (app_->next_action() != listen) {
      auto moved = reposition(s, *app_, *opts_.agent, listen, hosting_);
      if (!moved.ok()) {
        give_back("halted");
        co_return std::move(moved).err();
      }
      app_ = std::move(moved).value();
    }
  }
  if (auto running = s.set_status(opts_.run_id, "running"); !running.ok()) {
    give_back("halted");
    co_return std::move(running).err();
  }
  emit("turn_started", message ? *message : value());

  turn_result out;
  out.run_id = opts_.run_id;
  bool first = true;
  for (;;) {
    if (!app_->has_next_action()) {
      out.ended = "completed";
      break;
    }
    if (app_->awaiting_input(first ? inputs : value::object())) {
      out.ended = "waiting";
      break;
    }
    if (ctx_->stop_requested()) {
      out.ended = "stopped";
      break;
    }
    if (lease_lost_) {  // nothing more may commit; the run belongs to another process now
      app_.reset();
      emit("turn_ended", value{{"run_id", opts_.run_id}, {"ended", "error"}, {"error", lease_lost_->message}});
      co_return *lease_lost_;
    }
    if (stop_turn_) {
      out.ended = cancelled_ ? "cancelled" : paused_ ? "paused" : "interrupted";
      break;
    }
    if (out.steps >= opts_.max_steps_per_turn) {
      out.ended = "halted";
      break;
    }
    graph::run_options one;
    one.max_steps = 1;
    value step_inputs = first ? inputs : value::object();  // a named argument (g++ 12, co_await temporaries)
    std::optional<std::uint64_t> ticket;
    if (opts_.dispatcher) {
      // The step waits for a worker; while all are busy, steps start in latency-class order.
      const auto cls = step_class(*opts_.agent, app_->next_action());
      auto slot = opts_.dispatcher->acquire(cls.first, cls.second, dispatch_owner_);
      ticket = co_await slot;
      if (stop_turn_ || ctx_->stop_requested()) {
        opts_.dispatcher->release(*ticket);
        continue;  // the loop's checks end the turn
      }
    }
    auto stepped = co_await app_->run_async(one, std::move(step_inputs));
    if (ticket) opts_.dispatcher->release(*ticket);
    first = false;
    if (!stepped.ok()) {  // the engine or the store failed (a lost lease, a full disk): nothing more commits
      give_back("halted");
      app_.reset();
      emit("turn_ended", value{{"run_id", opts_.run_id}, {"ended", "error"}, {"error", stepped.err().message}});
      co_return std::move(stepped).err();
    }
    out.steps += stepped->steps;
    if (stepped->reason == graph::halt_reason::failed) {
      out.ended = "failed";
      out.failure = stepped->failure;
      break;
    }
    if (stepped->reason == graph::halt_reason::suspended) {
      out.ended = "waiting_consent";
      out.failure = stepped->failure;
      break;
    }
    co_await yield_to_mailbox();  // a step boundary: let interrupts, pauses and kills in
  }
  out.next_action = app_->has_next_action() ? app_->next_action() : std::string();
  out.state = app_->current_state().to_json();
  std::string status = "halted";
  if (out.ended == "completed" || out.ended == "failed") status = out.ended;
  if (out.ended == "waiting" || out.ended == "waiting_consent" || out.ended == "cancelled") status = out.ended;
  give_back(status);
  if (opts_.dispatcher) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - turn_started_).count();
    opts_.dispatcher->record_turn(step_class(*opts_.agent, turn_last_action_).first, seconds,
                                  turn_levels(*opts_.agent, turn_last_action_).turn_ms);
  }
  emit("turn_ended", out.to_json());
  co_return out;
}

result<void> check_conversable(const agent_definition& agent, const std::string& message_input) {
  if (message_input.empty()) return make_error(runtime_errc::invalid_argument, "message_input is empty");
  const std::string listen = agent.listening_action();
  const auto index = agent.graph->index_of(listen);
  for (const auto& in : agent.graph->nodes()[*index].act->spec().inputs) {
    if (in.name == message_input) return {};
  }
  return make_error(runtime_errc::invalid_argument, "agent " + agent.name +
                                                        " cannot hold a conversation: " + "its listening action '" +
                                                        listen + "' does not take the input '" + message_input + "'");
}

namespace {
constexpr const char* conversations_namespace = "conversations";
}

result<actor_ref<conversation>> spawn_conversation(actor_system& sys, conversation_options opts, spawn_options spawn) {
  if (!opts.agent || !opts.store) {
    return make_error(runtime_errc::invalid_argument, "a conversation needs an agent and a store");
  }
  if (!opts.message_input.empty()) CHOIR_CHECK(check_conversable(*opts.agent, opts.message_input));
  if (opts.run_id.empty()) opts.run_id = new_id().to_string();
  if (spawn.name.empty()) {
    spawn.name = opts.run_id;
    if (spawn.name_space == "default") spawn.name_space = conversations_namespace;
  }
  return sys.spawn<conversation>(std::move(spawn), std::move(opts));
}

// ── conversation_directory ──

conversation_directory::conversation_directory(actor_system& sys, directory_options opts)
    : sys_(&sys), opts_(std::move(opts)) {}

result<void> conversation_directory::add(const std::string& run_id, std::shared_ptr<const agent_definition> agent,
                                         principal who) {
  if (!agent) return make_error(runtime_errc::invalid_argument, "a run id and an agent are needed");
  CHOIR_CHECK(check_conversable(*agent, "message"));
  return register_run(run_id, std::move(agent), std::move(who), true);
}

result<void> conversation_directory::host(const std::string& run_id, std::shared_ptr<const agent_definition> agent,
                                          principal who) {
  if (!agent) return make_error(runtime_errc::invalid_argument, "a run id and an agent are needed");
  const bool messages = check_conversable(*agent, "message").ok();
  return register_run(run_id, std::move(agent), std::move(who), messages);
}

result<void> conversation_directory::register_run(const std::string& run_id,
                                                  std::shared_ptr<const agent_definition> agent, principal who,
                                                  bool messages) {
  if (run_id.empty() || !agent) return make_error(runtime_errc::invalid_argument, "a run id and an agent are needed");
  std::lock_guard lock(mutex_);
  if (entries_.contains(run_id)) return {};
  std::uint32_t index = 0;
  while (index < agents_.size() && agents_[index] != agent) ++index;
  if (index == agents_.size()) agents_.push_back(std::move(agent));
  entries_.emplace(run_id, entry{index, std::move(who), messages});
  return {};
}

bool conversation_directory::contains(const std::string& run_id) const {
  std::lock_guard lock(mutex_);
  return entries_.contains(run_id);
}

result<actor_ref<conversation>> conversation_directory::activate(const std::string& run_id) {
  std::shared_ptr<const agent_definition> agent;
  principal who;
  bool messages = true;
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(run_id);
    if (it == entries_.end()) {
      return make_error(runtime_errc::not_found, "no conversation " + run_id + " is registered");
    }
    agent = agents_[it->second.agent];
    who = it->second.who;
    messages = it->second.messages;
  }
  conversation_options conv{.agent = std::move(agent),
                            .store = opts_.store,
                            .run_id = run_id,
                            .gate = opts_.gate,
                            .who = std::move(who),
                            .when_busy = opts_.when_busy,
                            .message_input = messages ? "message" : "",
                            .max_steps_per_turn = opts_.max_steps_per_turn,
                            .idle_after = opts_.idle_after,
                            .observer = opts_.observer,
                            .dispatcher = opts_.dispatcher,
                            .committer = opts_.committer};
  return sys_->get_or_create<conversation>({.name = run_id, .name_space = conversations_namespace}, std::move(conv));
}

task<result<turn_result>> conversation_directory::say(std::string run_id, value message) {
  auto turn = ask(std::move(run_id), request{request::kind::message, std::move(message)});
  co_return co_await std::move(turn);
}

task<result<turn_result>> conversation_directory::resume(std::string run_id, value inputs) {
  auto turn = ask(std::move(run_id), request{request::kind::resume, std::move(inputs)});
  co_return co_await std::move(turn);
}

task<result<turn_result>> conversation_directory::cancel(std::string run_id) {
  auto turn = ask(std::move(run_id), request{request::kind::cancel, value()});
  co_return co_await std::move(turn);
}

task<result<turn_result>> conversation_directory::ask(std::string run_id, request req) {
  for (int attempt = 0;; ++attempt) {
    auto target = activate(run_id);
    if (!target.ok()) co_return std::move(target).err();
    auto pending = target->ask([req](conversation& c) {
      switch (req.what) {
        case request::kind::message: return c.say(req.data);
        case request::kind::cancel: return c.cancel();
        case request::kind::resume: break;
      }
      return c.resume(req.data);
    });
    auto out = co_await pending;
    // `unavailable`: the activation passivated before the request ran. Go again on a fresh one.
    if (out.ok() || out.err().code != runtime_errc::unavailable || attempt >= 8) co_return out;
  }
}

void conversation_directory::post(std::string run_id, request req, std::function<void(result<turn_result>)> done) {
  [](conversation_directory* self, std::string id, request r,
     std::function<void(result<turn_result>)> cb) -> detail::detached_coroutine {
    auto turn = self->ask(std::move(id), std::move(r));
    auto out = co_await std::move(turn);
    if (cb) cb(std::move(out));
  }(this, std::move(run_id), std::move(req), std::move(done));
}

std::size_t conversation_directory::registered() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace choir::runtime
