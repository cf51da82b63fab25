#pragma once
/// Writing JSON text by hand where building a `value` would cost too much (per audit entry, per
/// committed step).
#include <cstddef>
#include <string>
#include <string_view>

#include "choir/core/value.hpp"

namespace choir {

/// How deeply `is_json_text` lets arrays and objects nest: deeper than any agent's state, and far
/// from what writing the value back (recursive, as `dump_json` is) could do to a thread's stack.
inline constexpr std::size_t json_text_max_depth = 512;

/// Whether `text` is one JSON value (RFC 8259), optionally surrounded by whitespace, that a JSON
/// reader keeps as it is: well-formed UTF-8 in strings, escaped surrogates in pairs, numbers that
/// are finite as doubles, and at most `json_text_max_depth` levels of nesting. Such a text may be
/// embedded in a larger JSON text (a packed step in the event log) without making it unreadable.
/// No byte-order mark. Linear time, no recursion: checks a column several times faster than
/// parsing it.
[[nodiscard]] bool is_json_text(std::string_view text) noexcept;

/// Appends `text` as a JSON string, as `dump_json` writes it. Plain printable ASCII (almost every
/// field) is copied as it is; anything else is escaped, and invalid UTF-8 replaced, by the
/// library's serializer.
void append_json_string(std::string& out, std::string_view text);

}  // namespace choir
