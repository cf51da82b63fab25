#pragma once
/// The one JSON type of ChoirOS: the value of state keys, inputs, results, events, tool arguments
/// and API bodies (see ARCHITECTURE, "One JSON type").
#include <nlohmann/json.hpp>

namespace choir {

using value = nlohmann::json;

}  // namespace choir
