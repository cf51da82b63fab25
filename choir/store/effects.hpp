#pragma once
/// Exactly-once effects over the effect journal (ARCHITECTURE, "Effects, crashes and exactly once";
/// docs/event-log.md, "The effect journal"). The kernel's gate calls every tool, model and memory
/// effect through `perform_effect`.
#include <functional>
#include <string>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/store/event_store.hpp"

namespace choir::store {

struct effect_call {
  std::string key;  ///< the idempotency key: the same effect of the same step always has the same key
  std::string run_id;
  std::int64_t sequence_id = 0;
  std::string kind;
  value request;
  /// Safe to run twice (a write-temp-then-rename keyed by `key`, a model call). Decides what
  /// happens to an intent whose outcome was never recorded.
  bool idempotent = false;
  /// A failure is journaled as the effect's outcome — returned again, never retried — unless this
  /// is false and the effect is idempotent: then the intent stays pending, so the next attempt
  /// (a retry, a resume) runs the effect again. For effects whose failures pass, such as a model
  /// call during a provider's outage.
  bool record_failure = true;
};

/// How `perform_effect` got its answer.
enum class effect_source {
  ran,       ///< the effect ran now
  recorded,  ///< its recorded outcome was reused (it ran before; it did not run again)
  rerun,     ///< an earlier attempt died in flight and the effect is idempotent: it ran again
};

struct effect_result {
  value outcome;
  effect_source source = effect_source::ran;
};

/// Runs `effect` unless the journal already knows its outcome:
/// - an outcome is recorded: it is returned (a recorded failure as an error) and nothing runs;
/// - only the intent is recorded (the process died while the effect was in flight): an idempotent
///   effect runs again; any other fails with `effect_outcome_unknown`, for the graph to route
///   (`on_error`) or for a person to decide;
/// - the key is new: the intent is journaled, the effect runs, the outcome is journaled.
/// A failed effect's error is journaled as `{code, message}` and returned with its code.
[[nodiscard]] result<effect_result> perform_effect(event_store& store, const effect_call& call,
                                                   const std::function<result<value>()>& effect);

}  // namespace choir::store
