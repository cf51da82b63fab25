#pragma once
/// Graphs and applications: `application_builder` assembles actions, transitions, an entrypoint
/// and an initial state into a validated `graph`; an `application` runs it step by step.
///
///   auto app = application_builder()
///                  .with_actions({increment, done})
///                  .with_transition("increment", "increment", condition::expr("count < 10"))
///                  .with_transition("increment", "done")
///                  .with_entrypoint("increment")
///                  .with_state(value{{"count", 0}})
///                  .build();
///   auto outcome = app->run({.halt_after = {"done"}});
///
/// Transitions from an action are evaluated in declaration order; the first whose condition holds
/// wins; if none holds the run is complete. The engine owns no threads, clocks or files: time for
/// retry backoff, persistence and parallel work come in through `retry_timer`, `persister` and
/// `parallel_executor`.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/task.hpp"
#include "choir/core/value.hpp"
#include "choir/graph/action.hpp"
#include "choir/graph/condition.hpp"
#include "choir/graph/state.hpp"

namespace choir::graph {

struct transition {
  std::string from;
  std::string to;
  condition when = condition::always();
};

/// A validated, immutable graph: actions, transitions, entrypoint and initial state. Shared by
/// every application that runs it.
class graph {
 public:
  struct edge {
    condition when;
    std::size_t to;
  };
  struct node {
    std::shared_ptr<action> act;
    std::vector<edge> edges;
    std::optional<std::size_t> on_error;  ///< index of the on_error target
  };

  [[nodiscard]] const std::vector<node>& nodes() const noexcept { return nodes_; }
  [[nodiscard]] std::optional<std::size_t> index_of(std::string_view action_name) const;
  [[nodiscard]] std::size_t entrypoint() const noexcept { return entrypoint_; }
  [[nodiscard]] const state& initial_state() const noexcept { return initial_state_; }
  [[nodiscard]] const std::vector<transition>& transitions() const noexcept { return transitions_; }
  /// Every input some action declares (sorted, unique).
  [[nodiscard]] std::vector<std::string> declared_inputs() const;
  /// The graph as JSON: actions (name, type, reads, writes, inputs, tags, cost, class, retry,
  /// on_error, config), transitions (from, to, condition) and entrypoint.
  [[nodiscard]] value describe() const;
  /// A stable 64-bit FNV-1a hash of `describe()` in hex: the graph's code version.
  [[nodiscard]] std::string fingerprint() const;

 private:
  friend class application_builder;
  std::vector<node> nodes_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<transition> transitions_;
  std::size_t entrypoint_ = 0;
  state initial_state_;
};

enum class step_status { completed, failed };

/// One executed step: what ran, on what, with what result and what it changed.
struct step_record {
  std::uint64_t sequence_id = 0;
  std::string action;
  step_status status = step_status::completed;
  value inputs;  ///< the inputs the action saw (its declared ones), or null if it declares none
  value result;
  state_delta delta;
  std::optional<error> failure;  ///< set when `status` is failed
  int attempts = 1;
  std::string next_action;  ///< empty if nothing follows (the run is complete)

  [[nodiscard]] value to_json() const;
};

/// Observes the engine; the one way telemetry, persistence and UIs see what happens. Hooks run on
/// the thread that runs the step and must not throw.
class hooks {
 public:
  virtual ~hooks() = default;
  virtual void pre_run(std::string_view /*app_id*/) {}
  virtual void post_run(std::string_view /*app_id*/) {}
  virtual void pre_step(std::uint64_t /*sequence_id*/, const action& /*act*/, const value& /*inputs*/) {}
  virtual void post_step(const step_record& /*record*/, const state& /*after*/) {}
  virtual void stream_start(const action& /*act*/) {}
  virtual void stream_item(const action& /*act*/, const value& /*chunk*/) {}
  virtual void stream_end(const action& /*act*/) {}
};

/// Who an application is: its id, its partition and the graph version it runs.
struct run_identity {
  std::string app_id;
  std::string partition_key;
  std::string graph_version;
};

/// Makes steps durable. `save_step` is called after a step is computed and before the
/// application moves on; when it fails the step is not taken (the state stays where it was) and
/// the error is returned to the caller. choir/store implements it.
class persister {
 public:
  virtual ~persister() = default;
  [[nodiscard]] virtual result<void> save_step(const run_identity& who, const step_record& record,
                                               const state& after) = 0;
  /// `save_step` for `step_async`/`run_async`: a persister whose commit completes elsewhere (a
  /// group commit) suspends the step until it has, without holding its thread. The arguments live
  /// until it completes. By default, `save_step`.
  [[nodiscard]] virtual task<result<void>> save_step_async(const run_identity& who, const step_record& record,
                                                           const state& after);
};

/// Waits between retry attempts. Without one, retries follow each other at once.
class retry_timer {
 public:
  virtual ~retry_timer() = default;
  virtual void wait(std::chrono::milliseconds d) = 0;
  [[nodiscard]] virtual task<void> wait_async(std::chrono::milliseconds d);
};

/// Runs independent jobs (the children of a parallel action), at most `max_concurrency` at once,
/// and completes when all have. choir/runtime implements it on its thread pool; the default
/// `sequential_executor` runs them one after another on the calling thread.
class parallel_executor {
 public:
  virtual ~parallel_executor() = default;
  [[nodiscard]] virtual task<void> run_all(std::vector<std::function<task<void>()>> jobs,
                                           std::size_t max_concurrency) = 0;
};

class sequential_executor final : public parallel_executor {
 public:
  [[nodiscard]] task<void> run_all(std::vector<std::function<task<void>()>> jobs, std::size_t max_concurrency) override;
};

/// When a run stops. Action names, or `@tag:x` for every action tagged `x`.
struct run_options {
  std::vector<std::string> halt_before;
  std::vector<std::string> halt_after;
  std::optional<std::uint64_t> max_steps;
  /// Receives every chunk a streaming action yields, with the action's name.
  std::function<void(const std::string&, const value&)> on_chunk;
};

enum class halt_reason {
  halted_before,  ///< the next action is in `halt_before`; it did not run
  halted_after,   ///< the last action run is in `halt_after`
  completed,      ///< no transition applies: nothing is left to run
  max_steps,      ///< `max_steps` steps ran
  failed,         ///< a step failed and the action has no `on_error` route
  waiting_input,  ///< the next action awaits input that this call did not give; nothing ran
  suspended,      ///< the next action waits for something outside the run (a person's consent):
                  ///< its step committed nothing; `failure` says what it waits for
};
[[nodiscard]] std::string_view to_string(halt_reason r);

struct run_outcome {
  halt_reason reason = halt_reason::completed;
  std::uint64_t steps = 0;  ///< steps executed by this call
  std::optional<step_record> last_step;
  std::optional<error> failure;  ///< set when `reason` is failed (the step's error) or suspended (what it waits for)
};

class application;

/// Iterates a run one step at a time: `for (const step_record& s : app.iterate(opts, inputs))`.
/// When the loop ends, `outcome()` says why (or `error()` holds an engine error).
class step_range {
 public:
  class iterator {
   public:
    using value_type = step_record;
    using difference_type = std::ptrdiff_t;
    const step_record& operator*() const { return *range_->current_; }
    const step_record* operator->() const { return &*range_->current_; }
    iterator& operator++() {
      range_->advance();
      return *this;
    }
    void operator++(int) { range_->advance(); }
    bool operator==(std::default_sentinel_t) const { return range_->done_; }

   private:
    friend class step_range;
    explicit iterator(step_range* r) : range_(r) {}
    step_range* range_;
  };

  iterator begin();
  std::default_sentinel_t end() const { return {}; }
  [[nodiscard]] const run_outcome& outcome() const noexcept { return outcome_; }
  [[nodiscard]] const std::optional<error>& engine_error() const noexcept { return error_; }

 private:
  friend class application;
  step_range(application& app, run_options opts, value inputs);
  void advance();
  application* app_;
  run_options opts_;
  value inputs_;
  std::optional<step_record> current_;
  std::size_t current_index_ = 0;
  std::vector<char> halt_before_;
  std::vector<char> halt_after_;
  run_outcome outcome_;
  std::optional<error> error_;
  bool started_ = false;
  bool done_ = false;
};

/// One run of a graph: its state, its position and its identity. Not thread-safe: drive an
/// application from one thread (or one actor) at a time.
class application {
 public:
  /// Runs the next action. Returns nothing if no action is left. Inputs go to this step only.
  /// A failing action yields a record with status `failed` (the application then stays at that
  /// action, unless the action routes errors with `on_error`); the error result is for problems
  /// outside the action: a missing required input (`missing_input`, also for an action that
  /// awaits input: check `awaiting_input` first), or a persister that could not save.
  [[nodiscard]] result<std::optional<step_record>> step(const value& inputs = value::object());
  /// Steps until a halt condition, completion, `max_steps`, or a failed step. `inputs` go to the
  /// first step only. `halt_before` naming the next action runs nothing. Before each step, in
  /// this order: completed, `max_steps`, `halt_before`, then `waiting_input` if the next action
  /// awaits input (`action_spec::awaits_input`) and the step's inputs (`inputs` on the first step,
  /// none after) lack one of its required inputs. To continue, call again with those inputs.
  [[nodiscard]] result<run_outcome> run(const run_options& options = {}, const value& inputs = value::object());
  /// Runs until the streaming action `action_name` has run, passing every chunk it yields to
  /// `on_chunk` as it is produced (Burr's `stream_result`); the steps before it run as in `run`.
  /// Fails with `invalid_graph` if there is no such action or it does not stream.
  [[nodiscard]] result<run_outcome> stream(std::string_view action_name, std::function<void(const value&)> on_chunk,
                                           const value& inputs = value::object());
  /// Like `run`, one step per iteration.
  [[nodiscard]] step_range iterate(run_options options = {}, value inputs = value::object());

  /// Coroutine twins of `step` and `run`: async actions are awaited, not blocked on.
  [[nodiscard]] task<result<std::optional<step_record>>> step_async(value inputs = value::object());
  [[nodiscard]] task<result<run_outcome>> run_async(run_options options = {}, value inputs = value::object());

  [[nodiscard]] const state& current_state() const noexcept { return state_; }
  [[nodiscard]] std::uint64_t sequence_id() const noexcept { return sequence_id_; }
  /// The action the next step runs, or empty if the run is complete.
  [[nodiscard]] std::string next_action() const;
  [[nodiscard]] bool has_next_action() const noexcept { return next_.has_value(); }
  /// Whether the next action awaits input (`action_spec::awaits_input`) and `inputs` lack one of
  /// its required inputs: then `run`, `run_async` and `iterate` halt with `waiting_input` and
  /// `step` fails with `missing_input`. False when the run is complete.
  [[nodiscard]] bool awaiting_input(const value& inputs = value::object()) const;
  [[nodiscard]] const run_identity& identity() const noexcept { return identity_; }
  [[nodiscard]] const graph& graph_def() const noexcept { return *graph_; }

 private:
  friend class application_builder;
  friend class step_range;
  struct halt_set;
  struct prepared_step;
  struct computed_step;
  application(std::shared_ptr<const graph> g, run_identity who, std::vector<std::shared_ptr<hooks>> hook_list,
              std::shared_ptr<persister> persist, std::shared_ptr<retry_timer> timer);

  result<prepared_step> prepare(const value& inputs);
  /// Runs the next action into `record` (reused across steps); false if nothing is left to run.
  result<bool> step_into(step_record& record, const value& inputs);
  result<void> finish(prepared_step& prepared, result<action_output> output, step_record& record);
  /// What a step leads to (`record` filled in), before it is saved.
  result<computed_step> compute(prepared_step& prepared, result<action_output> output, step_record& record);
  /// Moves on past a saved step.
  void advance(computed_step&& step, const step_record& record);
  result<halt_set> resolve_halts(const run_options& options) const;

  std::shared_ptr<const graph> graph_;
  run_identity identity_;
  std::vector<std::shared_ptr<hooks>> hooks_;
  std::shared_ptr<persister> persister_;
  std::shared_ptr<retry_timer> timer_;
  state state_;
  std::uint64_t sequence_id_ = 0;
  std::optional<std::size_t> next_;
  std::size_t last_index_ = 0;  ///< the action the last step ran
  const std::function<void(const std::string&, const value&)>* on_chunk_ = nullptr;
};

/// Assembles and validates a graph. Every problem is reported by `build()`, which checks: at least
/// one action; unique, well-formed action names; an entrypoint that exists; transitions and
/// `on_error` routes between existing actions; at most one default per action and none followed
/// by further transitions; expressions that compile and name only keys some action writes or the
/// initial state holds; reads that something provides; every action reachable from the entrypoint.
class application_builder {
 public:
  application_builder& with_action(std::shared_ptr<action> a);
  application_builder& with_actions(std::vector<std::shared_ptr<action>> actions);
  application_builder& with_transition(std::string from, std::string to, condition when = condition::always());
  /// One transition from each of `from`.
  application_builder& with_transition(std::vector<std::string> from, std::string to,
                                       condition when = condition::always());
  application_builder& with_entrypoint(std::string name);
  /// The initial state: a JSON object.
  application_builder& with_state(value initial);
  application_builder& with_state(state initial);
  application_builder& with_identifiers(std::string app_id, std::string partition_key = "");
  application_builder& with_hooks(std::shared_ptr<hooks> h);
  application_builder& with_persister(std::shared_ptr<persister> p);
  application_builder& with_retry_timer(std::shared_ptr<retry_timer> t);
  application_builder& with_parallel_executor(std::shared_ptr<parallel_executor> e);
  /// Starts from `at` with `s` and the given sequence id instead of the entrypoint and the initial
  /// state (resume and fork). `at` empty means the run is complete.
  application_builder& with_position(std::string at, state s, std::uint64_t sequence_id);

  /// Validates and builds only the graph (shared by many applications).
  [[nodiscard]] result<std::shared_ptr<const graph>> build_graph() const;
  /// Validates and builds an application.
  [[nodiscard]] result<std::unique_ptr<application>> build() const;
  /// Builds an application over an already validated graph.
  [[nodiscard]] result<std::unique_ptr<application>> build(std::shared_ptr<const graph> g) const;

 private:
  std::vector<std::shared_ptr<action>> actions_;
  std::vector<transition> transitions_;
  std::string entrypoint_;
  value initial_state_ = value::object();
  std::optional<state> initial_state_value_;
  std::string app_id_;
  std::string partition_key_;
  std::vector<std::shared_ptr<hooks>> hooks_;
  std::shared_ptr<persister> persister_;
  std::shared_ptr<retry_timer> timer_;
  std::shared_ptr<parallel_executor> executor_;
  struct position {
    std::string at;
    state s;
    std::uint64_t sequence_id;
  };
  std::optional<position> position_;
};

}  // namespace choir::graph
