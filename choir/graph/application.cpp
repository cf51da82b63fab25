#include "choir/graph/application.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include "choir/graph/errors.hpp"

namespace choir::graph {

// ---- graph -----------------------------------------------------------------------------------

std::optional<std::size_t> graph::index_of(std::string_view action_name) const {
  auto it = index_.find(std::string(action_name));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> graph::declared_inputs() const {
  std::set<std::string> names;
  for (const auto& n : nodes_) {
    for (const auto& in : n.act->spec().inputs) names.insert(in.name);
  }
  return {names.begin(), names.end()};
}

value graph::describe() const {
  value actions = value::array();
  for (const auto& n : nodes_) {
    const action_spec& s = n.act->spec();
    value inputs = value::array();
    for (const auto& in : s.inputs) {
      value entry = {{"name", in.name}, {"required", in.required}};
      if (!in.required) entry["default"] = in.default_value;
      inputs.push_back(std::move(entry));
    }
    value a = {
        {"name", s.name}, {"type", s.type}, {"reads", s.reads}, {"writes", s.writes}, {"inputs", std::move(inputs)},
        {"tags", s.tags}};
    if (s.cost_ms) a["cost_ms"] = *s.cost_ms;
    if (s.latency) a["latency"] = to_string(*s.latency);
    if (s.retry.max_attempts > 1) {
      a["retry"] = {{"max_attempts", s.retry.max_attempts},
                    {"initial_backoff_ms", s.retry.initial_backoff.count()},
                    {"multiplier", s.retry.multiplier},
                    {"max_backoff_ms", s.retry.max_backoff.count()}};
    }
    if (s.on_error) a["on_error"] = {{"to", s.on_error->to}, {"capture", s.on_error->capture}};
    if (s.awaits_input) a["awaits_input"] = true;
    if (!s.config.is_null()) a["config"] = s.config;
    actions.push_back(std::move(a));
  }
  value transitions = value::array();
  for (const auto& t : transitions_) {
    transitions.push_back({{"from", t.from}, {"to", t.to}, {"condition", t.when.describe()}});
  }
  return {{"entrypoint", nodes_[entrypoint_].act->name()},
          {"actions", std::move(actions)},
          {"transitions", std::move(transitions)},
          {"state", initial_state_.to_json()}};
}

std::string graph::fingerprint() const {
  const std::string text = dump_json(describe());
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// ---- records and small types -----------------------------------------------------------------

std::string_view to_string(halt_reason r) {
  switch (r) {
    case halt_reason::halted_before: return "halted_before";
    case halt_reason::halted_after: return "halted_after";
    case halt_reason::completed: return "completed";
    case halt_reason::max_steps: return "max_steps";
    case halt_reason::failed: return "failed";
    case halt_reason::waiting_input: return "waiting_input";
    case halt_reason::suspended: return "suspended";
  }
  return "?";
}

value step_record::to_json() const {
  value out = {{"sequence_id", sequence_id},
               {"action", action},
               {"status", status == step_status::completed ? "completed" : "failed"},
               {"inputs", inputs},
               {"result", result},
               {"delta", delta.to_json()},
               {"attempts", attempts},
               {"next", next_action.empty() ? value() : value(next_action)}};
  if (failure) {
    out["error"] = {{"code", failure->code.message()}, {"message", failure->message}};
  }
  return out;
}

task<void> retry_timer::wait_async(std::chrono::milliseconds d) {
  wait(d);
  co_return;
}

task<void> sequential_executor::run_all(std::vector<std::function<task<void>()>> jobs,
                                        std::size_t /*max_concurrency*/) {
  for (auto& job : jobs) co_await job();
}

// ---- application -----------------------------------------------------------------------------

namespace {

const value& empty_object() {
  static const value empty = value::object();
  return empty;
}

/// Forwards a streaming action's chunks to the hooks and the run's chunk callback.
class chunk_forwarder final : public stream_sink {
 public:
  chunk_forwarder(const action& act, const std::vector<std::shared_ptr<hooks>>& h,
                  const std::function<void(const std::string&, const value&)>* on_chunk)
      : act_(act), hooks_(h), on_chunk_(on_chunk) {}
  void item(const value& chunk) override {
    for (const auto& h : hooks_) h->stream_item(act_, chunk);
    if (on_chunk_ != nullptr && *on_chunk_) (*on_chunk_)(act_.name(), chunk);
  }

 private:
  const action& act_;
  const std::vector<std::shared_ptr<hooks>>& hooks_;
  const std::function<void(const std::string&, const value&)>* on_chunk_;
};

bool retryable(const error& e) {
  return e.code != graph_errc::undeclared_read && e.code != graph_errc::undeclared_write &&
         e.code != graph_errc::missing_input && e.code != graph_errc::suspended;
}

/// Runs an action once, turning exceptions into errors.
result<action_output> run_once(action& act, const state_view& view, stream_sink& sink) {
  try {
    return act.execute(view, sink);
  } catch (const access_error& e) {
    return make_error(e.code(), e.what());
  } catch (const std::exception& e) {
    return make_error(graph_errc::action_failed, "action '" + act.name() + "' threw: " + e.what());
  } catch (...) {
    return make_error(graph_errc::action_failed, "action '" + act.name() + "' threw a non-standard exception");
  }
}

task<result<action_output>> run_once_async(action& act, state_view view, stream_sink& sink) {
  std::optional<result<action_output>> out;
  try {
    out.emplace(co_await act.execute_async(view, sink));
  } catch (const access_error& e) {
    out.emplace(make_error(e.code(), e.what()));
  } catch (const std::exception& e) {
    out.emplace(make_error(graph_errc::action_failed, "action '" + act.name() + "' threw: " + e.what()));
  } catch (...) {
    out.emplace(make_error(graph_errc::action_failed, "action '" + act.name() + "' threw a non-standard exception"));
  }
  co_return std::move(*out);
}

}  // namespace

struct application::prepared_step {
  std::size_t index = 0;
  value inputs;  // null when the action declares none
  int attempts = 0;
};

struct application::halt_set {
  std::vector<char> before;
  std::vector<char> after;
};

application::application(std::shared_ptr<const graph> g, run_identity who,
                         std::vector<std::shared_ptr<hooks>> hook_list, std::shared_ptr<persister> persist,
                         std::shared_ptr<retry_timer> timer)
    : graph_(std::move(g)),
      identity_(std::move(who)),
      hooks_(std::move(hook_list)),
      persister_(std::move(persist)),
      timer_(std::move(timer)) {}

std::string application::next_action() const { return next_ ? graph_->nodes()[*next_].act->name() : std::string(); }

result<application::prepared_step> application::prepare(const value& inputs) {
  prepared_step p;
  p.index = *next_;
  const action_spec& spec = graph_->nodes()[p.index].act->spec();
  if (!spec.inputs.empty()) {
    p.inputs = value::object();
    for (const auto& in : spec.inputs) {
      if (inputs.is_object() && inputs.contains(in.name)) {
        p.inputs[in.name] = inputs[in.name];
      } else if (!in.required) {
        p.inputs[in.name] = in.default_value;
      } else {
        return make_error(graph_errc::missing_input,
                          "action '" + spec.name + "' needs the input '" + in.name + "', which was not given");
      }
    }
  }
  for (const auto& h : hooks_) h->pre_step(sequence_id_, *graph_->nodes()[p.index].act, p.inputs);
  return p;
}

struct application::computed_step {
  state next_state;
  std::optional<std::size_t> next;
  std::size_t index = 0;
};

task<result<void>> persister::save_step_async(const run_identity& who, const step_record& record, const state& after) {
  co_return save_step(who, record, after);
}

result<void> application::finish(prepared_step& p, result<action_output> output, step_record& record) {
  CHOIR_TRY(computed_step c, compute(p, std::move(output), record));
  if (persister_) CHOIR_CHECK(persister_->save_step(identity_, record, c.next_state));
  advance(std::move(c), record);
  return {};
}

void application::advance(computed_step&& c, const step_record& record) {
  state_ = std::move(c.next_state);
  ++sequence_id_;
  next_ = c.next;
  last_index_ = c.index;
  for (const auto& h : hooks_) h->post_step(record, state_);
}

result<application::computed_step> application::compute(prepared_step& p, result<action_output> output,
                                                        step_record& record) {
  const graph::node& node = graph_->nodes()[p.index];
  const action_spec& spec = node.act->spec();
  // The record is reused from step to step by `run`: assign every field (strings keep their buffers).
  record.sequence_id = sequence_id_;
  record.action = spec.name;
  record.status = step_status::completed;
  record.inputs = std::move(p.inputs);
  record.result = value();
  record.delta.clear();
  record.failure.reset();
  record.attempts = p.attempts;

  std::optional<error> failure;
  state next_state;
  std::optional<std::size_t> next;
  if (output.ok()) {
    action_output& out = output.value();
    for (const auto& op : out.changes.ops()) {
      if (!spec.writes_key(op.key)) {
        failure = make_error(graph_errc::undeclared_write,
                             "action '" + spec.name + "' wrote '" + op.key + "', which it does not declare in writes");
        break;
      }
    }
    if (!failure) {
      auto applied = state_.apply(out.changes);
      if (applied.ok()) {
        next_state = std::move(applied).value();
      } else {
        failure = make_error(applied.err().code, "action '" + spec.name + "': " + applied.err().message);
      }
    }
    if (!failure) {
      for (const auto& e : node.edges) {
        auto taken = e.when.evaluate(next_state);
        if (!taken.ok()) {
          failure = make_error(taken.err().code, "transition " + spec.name + " -> " +
                                                     graph_->nodes()[e.to].act->name() + ": " + taken.err().message);
          break;
        }
        if (*taken) {
          next = e.to;
          break;
        }
      }
    }
    if (!failure) {
      record.result = std::move(out.result);
      record.delta = std::move(out.changes);
    }
  } else {
    failure = std::move(output).err();
  }

  if (failure) {
    record.status = step_status::failed;
    record.failure = failure;
    if (spec.on_error) {
      value captured = {{"action", spec.name},
                        {"code", failure->code.message()},
                        {"message", failure->message},
                        {"attempts", p.attempts}};
      record.delta.set(spec.on_error->capture, captured);
      next_state = state_.update(spec.on_error->capture, std::move(captured));
      next = node.on_error;
    } else {
      next_state = state_;
      next = p.index;  // stay: the next step retries this action
    }
  }
  if (next) {
    record.next_action = graph_->nodes()[*next].act->name();
  } else {
    record.next_action.clear();
  }

  return computed_step{std::move(next_state), next, p.index};
}

result<std::optional<step_record>> application::step(const value& inputs) {
  step_record record;
  CHOIR_TRY(bool ran, step_into(record, inputs));
  if (!ran) return std::optional<step_record>();
  return std::optional<step_record>(std::move(record));
}

result<bool> application::step_into(step_record& record, const value& inputs) {
  if (!next_) return false;
  CHOIR_TRY(prepared_step p, prepare(inputs));
  action& act = *graph_->nodes()[p.index].act;
  const state_view view(state_, act.spec(), p.inputs.is_null() ? empty_object() : p.inputs,
                        step_origin{identity_.app_id, identity_.partition_key, sequence_id_});
  chunk_forwarder sink(act, hooks_, on_chunk_);
  const int max_attempts = std::max(1, act.spec().retry.max_attempts);
  std::optional<result<action_output>> output;
  for (p.attempts = 1;; ++p.attempts) {
    if (p.attempts > 1 && timer_) timer_->wait(act.spec().retry.backoff_before(p.attempts));
    if (act.is_streaming()) {
      for (const auto& h : hooks_) h->stream_start(act);
    }
    output.emplace(run_once(act, view, sink));
    if (act.is_streaming()) {
      for (const auto& h : hooks_) h->stream_end(act);
    }
    if (output->ok() || p.attempts >= max_attempts || !retryable(output->err())) break;
  }
  // Suspended: nothing is committed and the run stays at this action.
  if (!output->ok() && output->err().code == graph_errc::suspended) return std::move(*output).err();
  CHOIR_CHECK(finish(p, std::move(*output), record));
  return true;
}

task<result<std::optional<step_record>>> application::step_async(value inputs) {
  if (!next_) co_return std::optional<step_record>();
  auto prepared = prepare(inputs);
  if (!prepared.ok()) co_return std::move(prepared).err();
  prepared_step p = std::move(prepared).value();
  action& act = *graph_->nodes()[p.index].act;
  const value inputs_seen = p.inputs.is_null() ? value::object() : p.inputs;
  const state_view view(state_, act.spec(), inputs_seen,
                        step_origin{identity_.app_id, identity_.partition_key, sequence_id_});
  chunk_forwarder sink(act, hooks_, on_chunk_);
  const int max_attempts = std::max(1, act.spec().retry.max_attempts);
  std::optional<result<action_output>> output;
  for (p.attempts = 1;; ++p.attempts) {
    if (p.attempts > 1 && timer_) co_await timer_->wait_async(act.spec().retry.backoff_before(p.attempts));
    if (act.is_streaming()) {
      for (const auto& h : hooks_) h->stream_start(act);
    }
    output.emplace(co_await run_once_async(act, view, sink));
    if (act.is_streaming()) {
      for (const auto& h : hooks_) h->stream_end(act);
    }
    if (output->ok() || p.attempts >= max_attempts || !retryable(output->err())) break;
  }
  if (!output->ok() && output->err().code == graph_errc::suspended) co_return std::move(*output).err();
  step_record record;
  auto computed = compute(p, std::move(*output), record);
  if (!computed.ok()) co_return std::move(computed).err();
  if (persister_) {
    auto saving = persister_->save_step_async(identity_, record, computed->next_state);  // named: g++ 12
    auto saved = co_await std::move(saving);
    if (!saved.ok()) co_return std::move(saved).err();
  }
  advance(std::move(computed).value(), record);
  co_return std::optional<step_record>(std::move(record));
}

result<application::halt_set> application::resolve_halts(const run_options& options) const {
  halt_set halts;
  const std::size_t n = graph_->nodes().size();
  halts.before.assign(n, 0);
  halts.after.assign(n, 0);
  auto mark = [&](const std::vector<std::string>& names, std::vector<char>& into) -> result<void> {
    for (const auto& name : names) {
      if (name.rfind("@tag:", 0) == 0) {
        const std::string tag = name.substr(5);
        bool any = false;
        for (std::size_t i = 0; i < n; ++i) {
          if (graph_->nodes()[i].act->spec().has_tag(tag)) into[i] = any = true;
        }
        if (!any) return make_error(graph_errc::invalid_graph, "no action is tagged '" + tag + "'");
      } else {
        auto idx = graph_->index_of(name);
        if (!idx) return make_error(graph_errc::invalid_graph, "cannot halt at '" + name + "': no such action");
        into[*idx] = 1;
      }
    }
    return {};
  };
  CHOIR_CHECK(mark(options.halt_before, halts.before));
  CHOIR_CHECK(mark(options.halt_after, halts.after));
  return halts;
}

namespace {

/// Whether `spec` awaits input and `inputs` lack one of its required inputs.
bool lacks_awaited_input(const action_spec& spec, const value& inputs) {
  if (!spec.awaits_input) return false;
  return std::any_of(spec.inputs.begin(), spec.inputs.end(), [&](const input_spec& in) {
    return in.required && !(inputs.is_object() && inputs.contains(in.name));
  });
}

/// The halt checks shared by `run`, `run_async` and `iterate`. `step_inputs` are the inputs the
/// step would be given.
std::optional<halt_reason> halt_before_step(const graph& g, const std::optional<std::size_t>& next, std::uint64_t steps,
                                            const run_options& options, const std::vector<char>& before,
                                            const value& step_inputs) {
  if (!next) return halt_reason::completed;
  if (options.max_steps && steps >= *options.max_steps) return halt_reason::max_steps;
  if (before[*next] != 0) return halt_reason::halted_before;
  if (lacks_awaited_input(g.nodes()[*next].act->spec(), step_inputs)) return halt_reason::waiting_input;
  return std::nullopt;
}

/// A step that is suspended halts the run (`suspended`, with what it waits for) instead of
/// failing it: says whether `stepped` is one, and records it in `outcome`.
template <class Stepped>
bool halts_suspended(Stepped& stepped, run_outcome& outcome) {
  if (stepped.ok() || stepped.err().code != graph_errc::suspended) return false;
  outcome.reason = halt_reason::suspended;
  outcome.failure = std::move(stepped).err();
  return true;
}

/// `index` is the action the step ran.
std::optional<halt_reason> halt_after_step(const step_record& record, std::size_t index, const graph& g,
                                           const std::vector<char>& after) {
  const bool routed = g.nodes()[index].act->spec().on_error.has_value();
  if (record.status == step_status::failed && !routed) return halt_reason::failed;
  if (after[index] != 0) return halt_reason::halted_after;
  return std::nullopt;
}

}  // namespace

bool application::awaiting_input(const value& inputs) const {
  return next_ && lacks_awaited_input(graph_->nodes()[*next_].act->spec(), inputs);
}

result<run_outcome> application::run(const run_options& options, const value& inputs) {
  CHOIR_TRY(halt_set halts, resolve_halts(options));
  for (const auto& h : hooks_) h->pre_run(identity_.app_id);
  on_chunk_ = &options.on_chunk;
  run_outcome outcome;
  step_record record;  // reused by every step of the run
  for (;;) {
    const value& step_inputs = outcome.steps == 0 ? inputs : empty_object();
    if (auto stop = halt_before_step(*graph_, next_, outcome.steps, options, halts.before, step_inputs)) {
      outcome.reason = *stop;
      break;
    }
    auto stepped = step_into(record, step_inputs);
    if (halts_suspended(stepped, outcome)) break;
    if (!stepped.ok()) {
      on_chunk_ = nullptr;
      return std::move(stepped).err();
    }
    ++outcome.steps;
    if (auto stop = halt_after_step(record, last_index_, *graph_, halts.after)) {
      outcome.reason = *stop;
      if (*stop == halt_reason::failed) outcome.failure = record.failure;
      break;
    }
  }
  if (outcome.steps > 0) outcome.last_step = std::move(record);
  on_chunk_ = nullptr;
  for (const auto& h : hooks_) h->post_run(identity_.app_id);
  return outcome;
}

task<result<run_outcome>> application::run_async(run_options options, value inputs) {
  auto halts = resolve_halts(options);
  if (!halts.ok()) co_return std::move(halts).err();
  for (const auto& h : hooks_) h->pre_run(identity_.app_id);
  on_chunk_ = &options.on_chunk;
  run_outcome outcome;
  for (;;) {
    // A named argument: g++ 12 destroys temporaries inside a co_await expression twice.
    value step_inputs = outcome.steps == 0 ? inputs : value::object();
    if (auto stop = halt_before_step(*graph_, next_, outcome.steps, options, halts->before, step_inputs)) {
      outcome.reason = *stop;
      break;
    }
    auto stepped = co_await step_async(std::move(step_inputs));
    if (halts_suspended(stepped, outcome)) break;
    if (!stepped.ok()) {
      on_chunk_ = nullptr;
      co_return std::move(stepped).err();
    }
    ++outcome.steps;
    outcome.last_step = std::move(**stepped);
    if (auto stop = halt_after_step(*outcome.last_step, last_index_, *graph_, halts->after)) {
      outcome.reason = *stop;
      if (*stop == halt_reason::failed) outcome.failure = outcome.last_step->failure;
      break;
    }
  }
  on_chunk_ = nullptr;
  for (const auto& h : hooks_) h->post_run(identity_.app_id);
  co_return outcome;
}

result<run_outcome> application::stream(std::string_view action_name, std::function<void(const value&)> on_chunk,
                                        const value& inputs) {
  const auto index = graph_->index_of(action_name);
  if (!index)
    return make_error(graph_errc::invalid_graph, "cannot stream '" + std::string(action_name) + "': no such action");
  if (!graph_->nodes()[*index].act->is_streaming()) {
    return make_error(graph_errc::invalid_graph,
                      "cannot stream '" + std::string(action_name) + "': it does not stream");
  }
  run_options options;
  options.halt_after = {std::string(action_name)};
  options.on_chunk = [&](const std::string& from, const value& chunk) {
    if (from == action_name) on_chunk(chunk);
  };
  return run(options, inputs);
}

step_range application::iterate(run_options options, value inputs) {
  return step_range(*this, std::move(options), std::move(inputs));
}

// ---- step_range ------------------------------------------------------------------------------

step_range::step_range(application& app, run_options opts, value inputs)
    : app_(&app), opts_(std::move(opts)), inputs_(std::move(inputs)) {}

step_range::iterator step_range::begin() {
  if (!started_) {
    started_ = true;
    advance();
  }
  return iterator(this);
}

void step_range::advance() {
  if (done_) return;
  if (!current_) {
    // Resolve the halts once, on the first step.
    auto halts = app_->resolve_halts(opts_);
    if (!halts.ok()) {
      error_ = std::move(halts).err();
      done_ = true;
      return;
    }
    halt_before_ = std::move(halts->before);
    halt_after_ = std::move(halts->after);
  } else if (auto stop = halt_after_step(*current_, current_index_, app_->graph_def(), halt_after_)) {
    outcome_.reason = *stop;
    if (*stop == halt_reason::failed) outcome_.failure = current_->failure;
    outcome_.last_step = std::move(current_);
    done_ = true;
    return;
  }
  const value& step_inputs = outcome_.steps == 0 ? inputs_ : empty_object();
  if (auto stop = halt_before_step(app_->graph_def(), app_->next_, outcome_.steps, opts_, halt_before_, step_inputs)) {
    outcome_.reason = *stop;
    outcome_.last_step = std::move(current_);
    done_ = true;
    return;
  }
  app_->on_chunk_ = &opts_.on_chunk;
  step_record& record = current_ ? *current_ : current_.emplace();
  auto stepped = app_->step_into(record, step_inputs);
  app_->on_chunk_ = nullptr;
  if (halts_suspended(stepped, outcome_)) {
    if (outcome_.steps > 0) {
      outcome_.last_step = std::move(current_);  // the step before, untouched by the suspended one
    } else {
      current_.reset();
    }
    done_ = true;
    return;
  }
  if (!stepped.ok()) {
    error_ = std::move(stepped).err();
    if (outcome_.steps > 0) outcome_.last_step = std::move(current_);
    done_ = true;
    return;
  }
  ++outcome_.steps;
  current_index_ = app_->last_index_;
}

// ---- application_builder ---------------------------------------------------------------------

application_builder& application_builder::with_action(std::shared_ptr<action> a) {
  actions_.push_back(std::move(a));
  return *this;
}
application_builder& application_builder::with_actions(std::vector<std::shared_ptr<action>> actions) {
  for (auto& a : actions) actions_.push_back(std::move(a));
  return *this;
}
application_builder& application_builder::with_transition(std::string from, std::string to, condition when) {
  transitions_.push_back({std::move(from), std::move(to), std::move(when)});
  return *this;
}
application_builder& application_builder::with_transition(std::vector<std::string> from, std::string to,
                                                          condition when) {
  for (auto& f : from) transitions_.push_back({std::move(f), to, when});
  return *this;
}
application_builder& application_builder::with_entrypoint(std::string name) {
  entrypoint_ = std::move(name);
  return *this;
}
application_builder& application_builder::with_state(value initial) {
  initial_state_ = std::move(initial);
  initial_state_value_.reset();
  return *this;
}
application_builder& application_builder::with_state(state initial) {
  initial_state_value_ = std::move(initial);
  return *this;
}
application_builder& application_builder::with_identifiers(std::string app_id, std::string partition_key) {
  app_id_ = std::move(app_id);
  partition_key_ = std::move(partition_key);
  return *this;
}
application_builder& application_builder::with_hooks(std::shared_ptr<hooks> h) {
  hooks_.push_back(std::move(h));
  return *this;
}
application_builder& application_builder::with_persister(std::shared_ptr<persister> p) {
  persister_ = std::move(p);
  return *this;
}
application_builder& application_builder::with_retry_timer(std::shared_ptr<retry_timer> t) {
  timer_ = std::move(t);
  return *this;
}
application_builder& application_builder::with_parallel_executor(std::shared_ptr<parallel_executor> e) {
  executor_ = std::move(e);
  return *this;
}
application_builder& application_builder::with_position(std::string at, state s, std::uint64_t sequence_id) {
  position_ = position{std::move(at), std::move(s), sequence_id};
  return *this;
}

namespace {

bool valid_action_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

}  // namespace

result<std::shared_ptr<const graph>> application_builder::build_graph() const {
  auto g = std::make_shared<graph>();
  if (actions_.empty()) return make_error(graph_errc::invalid_graph, "a graph needs at least one action");
  for (const auto& a : actions_) {
    if (!a) return make_error(graph_errc::invalid_graph, "an action is null");
    const action_spec& s = a->spec();
    if (!valid_action_name(s.name)) {
      return make_error(graph_errc::invalid_graph,
                        "action name '" + s.name + "' is not valid: use 1 to 128 letters, digits, '_', '-' or '.'");
    }
    if (!g->index_.emplace(s.name, g->nodes_.size()).second) {
      return make_error(graph_errc::invalid_graph, "two actions are named '" + s.name + "'");
    }
    if (s.retry.max_attempts < 1) {
      return make_error(graph_errc::invalid_graph, "action '" + s.name + "': retry max_attempts must be at least 1");
    }
    std::set<std::string> input_names;
    for (const auto& in : s.inputs) {
      if (!input_names.insert(in.name).second) {
        return make_error(graph_errc::invalid_graph, "action '" + s.name + "' declares input '" + in.name + "' twice");
      }
    }
    g->nodes_.push_back({a, {}, std::nullopt});
  }
  if (entrypoint_.empty()) return make_error(graph_errc::invalid_graph, "the graph has no entrypoint");
  auto entry = g->index_of(entrypoint_);
  if (!entry) {
    return make_error(graph_errc::invalid_graph, "the entrypoint '" + entrypoint_ + "' is not an action");
  }
  g->entrypoint_ = *entry;

  // The keys that can exist: the initial state, every write, every error capture.
  state initial;
  if (initial_state_value_) {
    initial = *initial_state_value_;
  } else {
    auto parsed = state::from_json(initial_state_);
    if (!parsed.ok()) return make_error(graph_errc::invalid_graph, "initial state: " + parsed.err().message);
    initial = std::move(parsed).value();
  }
  g->initial_state_ = initial;
  const auto initial_keys = initial.keys();
  std::set<std::string> known(initial_keys.begin(), initial_keys.end());
  for (const auto& n : g->nodes_) {
    const action_spec& s = n.act->spec();
    known.insert(s.writes.begin(), s.writes.end());
    if (s.on_error) known.insert(s.on_error->capture);
  }

  for (auto& n : g->nodes_) {
    const action_spec& s = n.act->spec();
    if (s.on_error) {
      auto to = g->index_of(s.on_error->to);
      if (!to) {
        return make_error(graph_errc::invalid_graph,
                          "action '" + s.name + "' routes errors to '" + s.on_error->to + "', which is not an action");
      }
      n.on_error = *to;
    }
    for (const auto& key : s.reads) {
      if (!known.count(key)) {
        return make_error(graph_errc::invalid_graph,
                          "action '" + s.name + "' reads '" + key +
                              "', which no action writes and the initial state does not provide");
      }
    }
  }

  for (const auto& t : transitions_) {
    const std::string label = "transition " + t.from + " -> " + t.to;
    auto from = g->index_of(t.from);
    if (!from) return make_error(graph_errc::invalid_graph, label + ": '" + t.from + "' is not an action");
    auto to = g->index_of(t.to);
    if (!to) return make_error(graph_errc::invalid_graph, label + ": '" + t.to + "' is not an action");
    if (auto e = t.when.compile_error()) return make_error(e->code, label + ": " + e->message);
    for (const auto& key : t.when.keys()) {
      if (!known.count(key)) {
        return make_error(graph_errc::expression_unknown_key,
                          label + ": the condition '" + t.when.describe() + "' reads '" + key +
                              "', which no action writes and the initial state does not provide");
      }
    }
    auto& edges = g->nodes_[*from].edges;
    if (!edges.empty() && edges.back().when.is_default()) {
      return make_error(graph_errc::invalid_graph,
                        label + " can never be taken: it follows the default transition from '" + t.from + "'");
    }
    edges.push_back({t.when, *to});
  }
  g->transitions_ = transitions_;

  // Every action must be reachable from the entrypoint.
  std::vector<char> seen(g->nodes_.size(), 0);
  std::vector<std::size_t> pending{g->entrypoint_};
  seen[g->entrypoint_] = 1;
  while (!pending.empty()) {
    const std::size_t i = pending.back();
    pending.pop_back();
    auto visit = [&](std::size_t j) {
      if (!seen[j]) {
        seen[j] = 1;
        pending.push_back(j);
      }
    };
    for (const auto& e : g->nodes_[i].edges) visit(e.to);
    if (g->nodes_[i].on_error) visit(*g->nodes_[i].on_error);
  }
  std::string unreachable;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) unreachable += (unreachable.empty() ? "'" : ", '") + g->nodes_[i].act->name() + "'";
  }
  if (!unreachable.empty()) {
    return make_error(graph_errc::invalid_graph,
                      "unreachable from the entrypoint '" + entrypoint_ + "': " + unreachable);
  }
  return std::shared_ptr<const graph>(std::move(g));
}

result<std::unique_ptr<application>> application_builder::build() const {
  CHOIR_TRY(auto g, build_graph());
  return build(std::move(g));
}

result<std::unique_ptr<application>> application_builder::build(std::shared_ptr<const graph> g) const {
  if (!g) return make_error(graph_errc::invalid_graph, "no graph given");
  run_identity who{app_id_, partition_key_, g->fingerprint()};
  std::unique_ptr<application> app(new application(g, std::move(who), hooks_, persister_, timer_));
  if (position_) {
    if (!position_->at.empty()) {
      auto at = g->index_of(position_->at);
      if (!at) return make_error(graph_errc::invalid_graph, "cannot start at '" + position_->at + "': no such action");
      app->next_ = *at;
    }
    app->state_ = position_->s;
    app->sequence_id_ = position_->sequence_id;
  } else {
    app->next_ = g->entrypoint();
    app->state_ = g->initial_state();
  }
  return app;
}

}  // namespace choir::graph
