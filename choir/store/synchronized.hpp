#pragma once
/// A store many threads may share: every call of the wrapped store runs under one mutex. The actors
/// of a process (each conversation on whichever worker thread runs it) share their store this way.
#include <memory>

#include "choir/store/event_store.hpp"

namespace choir::store {

/// Wraps `inner` so that any thread may call it; calls are serialized in the order they take the lock.
[[nodiscard]] std::shared_ptr<event_store> synchronized(std::unique_ptr<event_store> inner);

}  // namespace choir::store
