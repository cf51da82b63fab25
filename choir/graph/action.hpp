#pragma once
/// Actions: the units of work of a graph. Each declares what it reads and writes; the engine
/// enforces both (an action sees only its reads, and a write to an undeclared key fails the step
/// with an error naming the action and the key).
///
/// Forms:
///  - function form: `action_builder("inc").reads({"count"}).writes({"count"}).run(fn)` where
///    `fn(const state_view&) -> result<action_output>` computes the result and the state changes;
///  - class form: derive from `class_action` and implement `run` (compute a result) and `update`
///    (reduce the result into state changes);
///  - streaming: `.stream(fn)` with `fn(const state_view&, stream_sink&)` yielding chunks first;
///  - async: `.run_async(fn)` with `fn(state_view) -> task<result<action_output>>`, a C++20
///    coroutine on choir's task type (the engine owns no threads).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/task.hpp"
#include "choir/core/value.hpp"
#include "choir/graph/errors.hpp"
#include "choir/graph/state.hpp"

namespace choir::graph {

/// The latency classes of the Agent-OS contract: hard real-time, soft real-time, deferred.
enum class latency_class { hrt, srt, dt };
[[nodiscard]] std::string_view to_string(latency_class c);
[[nodiscard]] std::optional<latency_class> parse_latency_class(std::string_view text);

/// A runtime input an action takes. A required input that is not given fails the step before the
/// action runs, naming the input; an optional one falls back to `default_value`.
struct input_spec {
  std::string name;
  bool required = true;
  value default_value;
};

/// How often to try an action before its step fails, and how long to wait between attempts.
/// The wait goes through the application's `retry_timer` (the graph itself never sleeps).
struct retry_policy {
  int max_attempts = 1;
  std::chrono::milliseconds initial_backoff{0};
  double multiplier = 2.0;
  std::chrono::milliseconds max_backoff{30'000};

  /// The wait before attempt `attempt` (2, 3, …).
  [[nodiscard]] std::chrono::milliseconds backoff_before(int attempt) const;
};

/// Where a failed step goes instead of ending the run, and the key that receives the error
/// (`{"action":…, "code":…, "message":…, "attempts":…}`).
struct error_route {
  std::string to;
  std::string capture = "error";
};

/// Everything an action declares about itself.
struct action_spec {
  std::string name;
  std::vector<std::string> reads;
  std::vector<std::string> writes;
  std::vector<input_spec> inputs;
  std::vector<std::string> tags;
  std::optional<double> cost_ms;         ///< worst-case cost, for HRT admission
  std::optional<latency_class> latency;  ///< overrides the agent's class for this action
  retry_policy retry;
  std::optional<error_route> on_error;
  /// The run waits before this action (`run`, `run_async` and `iterate` halt with
  /// `halt_reason::waiting_input`, running nothing) until the inputs given to the step include
  /// every required input. Set by the `human` type.
  bool awaits_input = false;
  std::string type = "function";  ///< the action type (`set`, `pass`, `function`, …)
  value config;                   ///< the type's own settings, for display and export

  [[nodiscard]] bool reads_key(std::string_view key) const;
  [[nodiscard]] bool writes_key(std::string_view key) const;
  [[nodiscard]] bool has_tag(std::string_view tag) const;
};

/// What one run of an action produces: a result (shown, recorded) and the state changes.
struct action_output {
  value result;
  state_delta changes;
};

/// Thrown by `state_view` when an action reads a key it did not declare. The engine turns it into
/// a failed step (`graph_errc::undeclared_read`); it never leaves the graph layer.
class access_error : public std::logic_error {
 public:
  access_error(graph_errc code, const std::string& what) : std::logic_error(what), code_(code) {}
  [[nodiscard]] graph_errc code() const noexcept { return code_; }

 private:
  graph_errc code_;
};

/// Where a step runs: its run (application id and partition) and its sequence id. Actions with
/// durable effects derive their idempotency keys and child runs from it. Empty when the action
/// runs outside an application (a unit test calling it directly).
struct step_origin {
  std::string_view app_id;
  std::string_view partition_key;
  std::uint64_t sequence_id = 0;
};

/// What an action sees: the keys it declares in `reads` and its inputs. Reading anything else
/// throws `access_error` (the step fails naming the action and the key). Cheap to copy; valid as
/// long as the state it views (the engine keeps it alive for the whole step).
class state_view {
 public:
  state_view(const state& s, const action_spec& spec, const value& inputs, step_origin origin = {})
      : state_(&s), spec_(&spec), inputs_(&inputs), origin_(origin) {}

  /// The value of a declared key. Throws `access_error` if undeclared or absent.
  [[nodiscard]] const value& at(std::string_view key) const;
  /// The value of a declared key, or nullptr if absent. Throws if undeclared.
  [[nodiscard]] const value* get_if(std::string_view key) const;
  /// The value converted to `T`, or `fallback` if absent.
  template <class T>
  [[nodiscard]] T get(std::string_view key, T fallback) const {
    const value* v = get_if(key);
    return v != nullptr ? v->get<T>() : fallback;
  }
  /// The list at a declared key without materializing it (empty if absent). Throws if undeclared
  /// or if the key holds something other than a list.
  [[nodiscard]] const persistent_list& list(std::string_view key) const;
  /// What a declared key holds (for expressions).
  [[nodiscard]] value_ref find(std::string_view key) const;
  /// A declared input (after defaults), or throws `access_error`.
  [[nodiscard]] const value& input(std::string_view name) const;
  /// All inputs of this step as an object.
  [[nodiscard]] const value& inputs() const noexcept { return *inputs_; }
  [[nodiscard]] const action_spec& spec() const noexcept { return *spec_; }
  /// The run and step this view belongs to (valid for the step's duration).
  [[nodiscard]] const step_origin& origin() const noexcept { return origin_; }

 private:
  void check_read(std::string_view key) const;
  const state* state_;
  const action_spec* spec_;
  const value* inputs_;
  step_origin origin_;
};

/// Receives the chunks a streaming action yields before its final result.
class stream_sink {
 public:
  virtual ~stream_sink() = default;
  virtual void item(const value& chunk) = 0;
};

/// The engine's view of an action. Implementations must be safe to run from any one thread at a
/// time; the engine never runs one action object concurrently with itself within an application.
class action {
 public:
  explicit action(action_spec spec) : spec_(std::move(spec)) {}
  virtual ~action() = default;
  action(const action&) = delete;
  action& operator=(const action&) = delete;

  [[nodiscard]] const action_spec& spec() const noexcept { return spec_; }
  [[nodiscard]] const std::string& name() const noexcept { return spec_.name; }
  [[nodiscard]] virtual bool is_async() const { return false; }
  [[nodiscard]] virtual bool is_streaming() const { return false; }

  /// Runs the action. May throw; the engine turns exceptions into a failed step.
  [[nodiscard]] virtual result<action_output> execute(const state_view& view, stream_sink& sink) = 0;
  /// Runs the action as a coroutine. The default runs `execute` inline.
  [[nodiscard]] virtual task<result<action_output>> execute_async(state_view view, stream_sink& sink);

 protected:
  action_spec& mutable_spec() noexcept { return spec_; }

 private:
  action_spec spec_;
};

/// The class form: `run` computes a result from what the action reads, `update` reduces it into
/// state changes.
class class_action : public action {
 public:
  using action::action;
  [[nodiscard]] result<action_output> execute(const state_view& view, stream_sink& sink) final;

 protected:
  [[nodiscard]] virtual result<value> run(const state_view& view) = 0;
  [[nodiscard]] virtual result<state_delta> update(const value& result, const state_view& view) = 0;
};

using action_fn = std::function<result<action_output>(const state_view&)>;
using streaming_action_fn = std::function<result<action_output>(const state_view&, stream_sink&)>;
using async_action_fn = std::function<task<result<action_output>>(state_view)>;

/// Builds function-form actions fluently.
class action_builder {
 public:
  explicit action_builder(std::string name) { spec_.name = std::move(name); }
  action_builder& reads(std::vector<std::string> keys);
  action_builder& writes(std::vector<std::string> keys);
  /// Declares required inputs.
  action_builder& inputs(std::vector<std::string> names);
  action_builder& optional_input(std::string name, value default_value);
  action_builder& tags(std::vector<std::string> tags);
  action_builder& cost_ms(double ms);
  action_builder& latency(latency_class c);
  action_builder& retry(retry_policy policy);
  action_builder& on_error(std::string to, std::string capture = "error");
  /// Makes a run wait before this action until its required inputs are given (see
  /// `action_spec::awaits_input`).
  action_builder& awaits_input(bool on = true);

  [[nodiscard]] std::shared_ptr<action> run(action_fn fn);
  [[nodiscard]] std::shared_ptr<action> stream(streaming_action_fn fn);
  [[nodiscard]] std::shared_ptr<action> run_async(async_action_fn fn);
  /// The spec built so far (for action types that construct their own `action` subclass).
  [[nodiscard]] action_spec spec() const { return spec_; }

 private:
  action_spec spec_;
};

}  // namespace choir::graph
