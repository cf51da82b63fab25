#pragma once
/// Safe upgrades: may a run that stopped before `at_action` continue under another graph version?
/// The rule (docs/upgrades.md): the new graph must have an action named `at_action` that reads,
/// writes and takes the same keys and inputs as the old one. What comes after it may change
/// freely — the run's state and position mean the same thing to both versions.
#include <string_view>

#include "choir/core/result.hpp"
#include "choir/graph/application.hpp"

namespace choir::store {

/// Ok if a run positioned before `at_action` of `from` may continue under `to`; otherwise an
/// `invalid_argument` error that says what changed.
[[nodiscard]] result<void> check_upgrade(const graph::graph& from, const graph::graph& to, std::string_view at_action);

}  // namespace choir::store
