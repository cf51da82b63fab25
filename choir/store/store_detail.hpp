#pragma once
/// What the SQLite and PostgreSQL backends share: the snapshot policy, the JSON column parser and
/// the rebuilding of a state from a snapshot and the deltas after it. Internal to choir/store.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "choir/store/event_store.hpp"

namespace choir::store::detail {

/// The run statuses that retention may delete.
inline constexpr const char* finished_statuses_sql = "('completed', 'failed')";

/// Parses a JSON column; `corrupt` (naming `what`) if it is not JSON.
[[nodiscard]] result<value> parse_column(const std::string& text, const std::string& what);

/// `invalid_argument` unless each of a step's JSON columns (inputs, result, delta, error) is one
/// JSON value that a reader keeps as it is (`is_json_text`): a step is refused, not stored
/// unreadable, and a packed row holding it stays readable.
[[nodiscard]] result<void> check_step_columns(const step_write& w);

/// What decides a run's next snapshot (docs/event-log.md): a new snapshot once the deltas since the
/// last one weigh as much as it did (at least 4 KiB), so that snapshots add at most as many bytes as
/// the deltas and storage stays linear in a run's length however large its state grows; and, for
/// states under 64 KiB, also every `interval` steps, so that few deltas are replayed.
struct snapshot_counters {
  std::int64_t snapshot_bytes = 0;
  std::int64_t delta_bytes_since = 0;
  std::int64_t steps_since = 0;

  [[nodiscard]] bool due(std::int64_t interval) const {
    constexpr std::int64_t min_bytes = 4 << 10;
    constexpr std::int64_t small_state = 64 << 10;
    if (delta_bytes_since >= std::max(snapshot_bytes, min_bytes)) return true;
    return interval > 0 && steps_since >= interval && snapshot_bytes < small_state;
  }
};

/// Rebuilds the state after step `target` from the snapshot at `base` and the deltas after it.
/// `next_delta(seq, text)` yields the stored deltas in order (false when there are no more).
[[nodiscard]] result<graph::state> rebuild_state(
    std::string_view run_id, std::int64_t base, const std::string& snapshot_text, std::int64_t target,
    const std::function<result<bool>(std::int64_t&, std::string&)>& next_delta);

/// `run_leased`, naming the holder and when its lease ends.
[[nodiscard]] error leased_error(std::string_view run_id, const std::string& owner, std::int64_t expires_ms,
                                 std::int64_t now_ms);

/// `run_leased` if an owner other than `s.owner()` holds the run with a lease live at `now` (a
/// known effect is then not `s`'s to reuse or run again); `run_not_found` if there is no run.
[[nodiscard]] result<void> not_leased_by_another(event_store& s, std::string_view run_id, std::int64_t now);

/// Why a conditional write to a run changed nothing: no such run, or another live owner (else an
/// `io_error`: the run changed under the write).
[[nodiscard]] error why_not_written(event_store& s, std::string_view run_id, std::int64_t now);

/// `invalid_argument` unless an effect's outcome status is `succeeded` or `failed`.
[[nodiscard]] result<void> check_outcome_status(std::string_view status);

/// `invalid_argument` unless a consent answer is `approved`, `denied` or `expired`.
[[nodiscard]] result<void> check_consent_answer(std::string_view status);
/// What `answer_consent` returns once its update ran: the request as now stored, `conflict` if the
/// update found it answered already, `invalid_argument` if there is no request `id`.
[[nodiscard]] result<consent_record> answered_consent(std::string_view id, bool answered,
                                                      std::optional<consent_record> stored);

/// Checks a retention policy; `invalid_argument` if it selects nothing by construction.
[[nodiscard]] result<void> check_policy(const retention_policy& policy);

}  // namespace choir::store::detail
