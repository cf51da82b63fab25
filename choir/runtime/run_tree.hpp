#pragma once
/// Runs and the runs they started (`map`/`agent` children, forks), as the store links them.
#include <string>
#include <string_view>

#include "choir/store/event_store.hpp"

namespace choir::runtime {

/// The run to continue once the call that `run_id` waits on is answered: `run_id` itself, or the
/// outermost of its callers that is suspended with it (a child waiting for consent suspends its
/// caller's step too, and the caller is what drives the child again).
[[nodiscard]] std::string waiting_root(store::event_store& store, std::string_view run_id);

}  // namespace choir::runtime
