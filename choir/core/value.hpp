#pragma once
/// The one JSON type of ChoirOS: the value of state keys, inputs, results, events, tool arguments
/// and API bodies (see ARCHITECTURE, "One JSON type").
#include <string>

#include <nlohmann/json.hpp>

namespace choir {

using value = nlohmann::json;

/// Serializes `v` as JSON text; never throws on strings that are not valid UTF-8 (each bad byte
/// becomes U+FFFD). Use it wherever the value may hold text from outside.
[[nodiscard]] inline std::string dump_json(const value& v, int indent = -1) {
  return v.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace choir
