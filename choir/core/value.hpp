#pragma once
/// The one JSON type of ChoirOS: the value of state keys, inputs, results, events, tool arguments
/// and API bodies (see ARCHITECTURE, "One JSON type").
#include <string>

#include <nlohmann/json.hpp>

namespace choir {

using value = nlohmann::json;

/// Serializes `v` as JSON text; never throws on strings that are not valid UTF-8 (each bad byte
/// becomes U+FFFD). Use it wherever the value may hold text from outside. Compact text (no
/// indent) is written without the library's serializer for everything but floating-point numbers
/// and strings that need escaping: byte for byte the same, several times faster (json_text.cpp).
[[nodiscard]] std::string dump_json(const value& v, int indent = -1);
/// Appends what `dump_json(v)` returns to `out`.
void append_json(std::string& out, const value& v);

}  // namespace choir
