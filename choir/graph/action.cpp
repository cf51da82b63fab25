#include "choir/graph/action.hpp"

#include <algorithm>
#include <cmath>

namespace choir::graph {

std::string_view to_string(latency_class c) {
  switch (c) {
    case latency_class::hrt: return "HRT";
    case latency_class::srt: return "SRT";
    case latency_class::dt: return "DT";
  }
  return "?";
}

std::optional<latency_class> parse_latency_class(std::string_view text) {
  if (text == "HRT") return latency_class::hrt;
  if (text == "SRT") return latency_class::srt;
  if (text == "DT") return latency_class::dt;
  return std::nullopt;
}

std::chrono::milliseconds retry_policy::backoff_before(int attempt) const {
  if (attempt <= 1) return std::chrono::milliseconds(0);
  const double factor = std::pow(std::max(1.0, multiplier), attempt - 2);
  const double ms = static_cast<double>(initial_backoff.count()) * factor;
  const double capped = std::min(ms, static_cast<double>(max_backoff.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(capped));
}

bool action_spec::reads_key(std::string_view key) const {
  return std::find(reads.begin(), reads.end(), key) != reads.end();
}
bool action_spec::writes_key(std::string_view key) const {
  return std::find(writes.begin(), writes.end(), key) != writes.end();
}
bool action_spec::has_tag(std::string_view tag) const { return std::find(tags.begin(), tags.end(), tag) != tags.end(); }

// ---- state_view ------------------------------------------------------------------------------

void state_view::check_read(std::string_view key) const {
  if (!spec_->reads_key(key)) {
    throw access_error(graph_errc::undeclared_read, "action '" + spec_->name + "' read '" + std::string(key) +
                                                        "', which it does not declare in reads");
  }
}

const value& state_view::at(std::string_view key) const {
  const value* v = get_if(key);
  if (v == nullptr) {
    throw access_error(graph_errc::invalid_state,
                       "action '" + spec_->name + "' read '" + std::string(key) + "', which is not in state");
  }
  return *v;
}

const value* state_view::get_if(std::string_view key) const {
  check_read(key);
  return state_->get_if(key);
}

const persistent_list& state_view::list(std::string_view key) const {
  check_read(key);
  static const persistent_list empty;
  const value_ref ref = state_->find(key);
  if (!ref) return empty;
  if (ref.list == nullptr) {
    throw access_error(graph_errc::type_mismatch, "action '" + spec_->name + "' read '" + std::string(key) +
                                                      "' as a list, but it holds " + ref.json->type_name());
  }
  return *ref.list;
}

value_ref state_view::find(std::string_view key) const {
  check_read(key);
  return state_->find(key);
}

const value& state_view::input(std::string_view name) const {
  const bool declared =
      std::any_of(spec_->inputs.begin(), spec_->inputs.end(), [&](const input_spec& in) { return in.name == name; });
  if (!declared || !inputs_->is_object() || !inputs_->contains(name)) {
    throw access_error(graph_errc::missing_input, "action '" + spec_->name + "' read input '" + std::string(name) +
                                                      "', which it does not declare");
  }
  return (*inputs_)[std::string(name)];
}

// ---- actions ---------------------------------------------------------------------------------

task<result<action_output>> action::execute_async(state_view view, stream_sink& sink) { co_return execute(view, sink); }

result<action_output> class_action::execute(const state_view& view, stream_sink& /*sink*/) {
  CHOIR_TRY(value computed, run(view));
  CHOIR_TRY(state_delta changes, update(computed, view));
  return action_output{std::move(computed), std::move(changes)};
}

namespace {

class function_action final : public action {
 public:
  function_action(action_spec spec, action_fn fn) : action(std::move(spec)), fn_(std::move(fn)) {}
  result<action_output> execute(const state_view& view, stream_sink& /*sink*/) override { return fn_(view); }

 private:
  action_fn fn_;
};

class streaming_function_action final : public action {
 public:
  streaming_function_action(action_spec spec, streaming_action_fn fn) : action(std::move(spec)), fn_(std::move(fn)) {}
  [[nodiscard]] bool is_streaming() const override { return true; }
  result<action_output> execute(const state_view& view, stream_sink& sink) override { return fn_(view, sink); }

 private:
  streaming_action_fn fn_;
};

class async_function_action final : public action {
 public:
  async_function_action(action_spec spec, async_action_fn fn) : action(std::move(spec)), fn_(std::move(fn)) {}
  [[nodiscard]] bool is_async() const override { return true; }
  result<action_output> execute(const state_view& view, stream_sink& /*sink*/) override { return sync_wait(fn_(view)); }
  task<result<action_output>> execute_async(state_view view, stream_sink& /*sink*/) override { return fn_(view); }

 private:
  async_action_fn fn_;
};

}  // namespace

action_builder& action_builder::reads(std::vector<std::string> keys) {
  spec_.reads = std::move(keys);
  return *this;
}
action_builder& action_builder::writes(std::vector<std::string> keys) {
  spec_.writes = std::move(keys);
  return *this;
}
action_builder& action_builder::inputs(std::vector<std::string> names) {
  for (auto& n : names) spec_.inputs.push_back({std::move(n), true, value()});
  return *this;
}
action_builder& action_builder::optional_input(std::string name, value default_value) {
  spec_.inputs.push_back({std::move(name), false, std::move(default_value)});
  return *this;
}
action_builder& action_builder::tags(std::vector<std::string> t) {
  spec_.tags = std::move(t);
  return *this;
}
action_builder& action_builder::cost_ms(double ms) {
  spec_.cost_ms = ms;
  return *this;
}
action_builder& action_builder::latency(latency_class c) {
  spec_.latency = c;
  return *this;
}
action_builder& action_builder::retry(retry_policy policy) {
  spec_.retry = policy;
  return *this;
}
action_builder& action_builder::on_error(std::string to, std::string capture) {
  spec_.on_error = error_route{std::move(to), std::move(capture)};
  return *this;
}
action_builder& action_builder::awaits_input(bool on) {
  spec_.awaits_input = on;
  return *this;
}

std::shared_ptr<action> action_builder::run(action_fn fn) {
  return std::make_shared<function_action>(spec_, std::move(fn));
}
std::shared_ptr<action> action_builder::stream(streaming_action_fn fn) {
  return std::make_shared<streaming_function_action>(spec_, std::move(fn));
}
std::shared_ptr<action> action_builder::run_async(async_action_fn fn) {
  return std::make_shared<async_function_action>(spec_, std::move(fn));
}

}  // namespace choir::graph
