#include "choir/store/effects.hpp"

namespace choir::store {
namespace {

result<effect_result> run_and_record(event_store& store, const effect_call& call,
                                     const std::function<result<value>()>& effect, effect_source source) {
  auto outcome = effect();
  if (!outcome.ok()) {
    const error failure = std::move(outcome).err();
    if (!call.record_failure && call.idempotent) return failure;  // left pending: the next attempt runs it
    CHOIR_CHECK(
        store.finish_effect(call.key, "failed", value{{"code", failure.code.message()}, {"message", failure.message}}));
    return failure;
  }
  CHOIR_CHECK(store.finish_effect(call.key, "succeeded", *outcome));
  return effect_result{std::move(outcome).value(), source};
}

}  // namespace

result<effect_result> perform_effect(event_store& store, const effect_call& call,
                                     const std::function<result<value>()>& effect) {
  effect_record intent;
  intent.key = call.key;
  intent.run_id = call.run_id;
  intent.sequence_id = call.sequence_id;
  intent.kind = call.kind;
  intent.request = call.request;
  CHOIR_TRY(effect_begin begun, store.begin_effect(intent));
  if (begun.fresh) return run_and_record(store, call, effect, effect_source::ran);
  const effect_record& known = begun.record;
  if (known.status == "succeeded") return effect_result{known.outcome, effect_source::recorded};
  if (known.status == "failed") {
    const std::string message = known.outcome.is_object() ? known.outcome.value("message", std::string()) : "";
    return make_error(store_errc::effect_failed,
                      "effect " + call.key + " (" + known.kind + ") failed when it ran: " + message);
  }
  if (call.idempotent) return run_and_record(store, call, effect, effect_source::rerun);
  return make_error(store_errc::effect_outcome_unknown,
                    "effect " + call.key + " (" + known.kind +
                        ") was in flight when its process stopped and is not idempotent: whether it happened is "
                        "unknown, so it is not run again");
}

}  // namespace choir::store
