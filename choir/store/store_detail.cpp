#include "choir/store/store_detail.hpp"

#include "choir/core/json_text.hpp"

namespace choir::store::detail {

result<value> parse_column(const std::string& text, const std::string& what) {
  value v = value::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return make_error(store_errc::corrupt, what + " is not valid JSON");
  return v;
}

result<void> check_step_columns(const step_write& w) {
  for (const std::string* json : {&w.inputs, &w.result, &w.delta, &w.error}) {
    if (!is_json_text(*json)) {
      return make_error(store_errc::invalid_argument,
                        "step " + std::to_string(w.sequence_id) + " of run " + w.run_id +
                            " holds malformed JSON (each JSON column is one value, nested at most " +
                            std::to_string(json_text_max_depth) + " deep)");
    }
  }
  return {};
}

result<graph::state> rebuild_state(std::string_view run_id, std::int64_t base, const std::string& snapshot_text,
                                   std::int64_t target,
                                   const std::function<result<bool>(std::int64_t&, std::string&)>& next_delta) {
  CHOIR_TRY(value snapshot, parse_column(snapshot_text, "snapshot " + std::to_string(base)));
  auto parsed = graph::state::from_json(snapshot);
  if (!parsed.ok()) {
    return make_error(store_errc::corrupt, "snapshot " + std::to_string(base) + ": " + parsed.err().message);
  }
  graph::state s = std::move(parsed).value();
  std::int64_t expected = base + 1;
  std::int64_t seq = 0;
  std::string text;
  while (expected <= target) {
    CHOIR_TRY(bool more, next_delta(seq, text));
    if (!more) break;
    if (seq != expected) {
      return make_error(store_errc::corrupt,
                        "run " + std::string(run_id) + " is missing step " + std::to_string(expected));
    }
    CHOIR_TRY(value json, parse_column(text, "delta of step " + std::to_string(seq)));
    auto delta = graph::state_delta::from_json(json);
    if (!delta.ok()) {
      return make_error(store_errc::corrupt, "step " + std::to_string(seq) + ": " + delta.err().message);
    }
    auto applied = s.apply(*delta);
    if (!applied.ok()) {
      return make_error(store_errc::corrupt, "step " + std::to_string(seq) + ": " + applied.err().message);
    }
    s = std::move(applied).value();
    ++expected;
  }
  if (expected != target + 1) {
    return make_error(store_errc::step_not_found,
                      "run " + std::string(run_id) + " has no step " + std::to_string(target));
  }
  return s;
}

error leased_error(std::string_view run_id, const std::string& owner, std::int64_t expires_ms, std::int64_t now_ms) {
  const std::int64_t left_s = std::max<std::int64_t>(0, (expires_ms - now_ms + 999) / 1000);
  return make_error(store_errc::run_leased, "run " + std::string(run_id) + " is being driven by " + owner +
                                                " (its lease ends in " + std::to_string(left_s) +
                                                " s unless renewed); only one process may drive a run");
}

result<void> not_leased_by_another(event_store& s, std::string_view run_id, std::int64_t now) {
  CHOIR_TRY(run_record found, s.get_run(run_id));
  if (!found.owner.empty() && found.owner != s.owner() && found.lease_expires_ms > now) {
    return leased_error(run_id, found.owner, found.lease_expires_ms, now);
  }
  return {};
}

error why_not_written(event_store& s, std::string_view run_id, std::int64_t now) {
  auto free = not_leased_by_another(s, run_id, now);
  if (!free.ok()) return std::move(free).err();
  return make_error(store_errc::io_error, "run " + std::string(run_id) + " changed while it was written");
}

result<void> check_outcome_status(std::string_view status) {
  if (status != "succeeded" && status != "failed") {
    return make_error(store_errc::invalid_argument,
                      "an effect's outcome is succeeded or failed, not " + std::string(status));
  }
  return {};
}

result<void> check_consent_answer(std::string_view status) {
  if (status != "approved" && status != "denied" && status != "expired") {
    return make_error(store_errc::invalid_argument, "a consent answer is approved, denied or expired");
  }
  return {};
}

result<consent_record> answered_consent(std::string_view id, bool answered, std::optional<consent_record> stored) {
  if (!stored || stored->id != id) {
    return make_error(store_errc::invalid_argument, "no consent request " + std::string(id));
  }
  if (!answered) {
    return make_error(store_errc::conflict, "consent request " + std::string(id) + " is already " + stored->status);
  }
  return std::move(*stored);
}

result<void> check_policy(const retention_policy& policy) {
  if (!policy.older_than_ms && !policy.keep_last) {
    return make_error(store_errc::invalid_argument, "a retention policy needs an age or a count to keep");
  }
  if (policy.older_than_ms && *policy.older_than_ms < 0) {
    return make_error(store_errc::invalid_argument, "a retention age cannot be negative");
  }
  return {};
}

}  // namespace choir::store::detail
