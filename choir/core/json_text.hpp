#pragma once
/// Writing JSON text by hand where building a `value` would cost too much (per audit entry, per
/// committed step).
#include <string>
#include <string_view>

#include "choir/core/value.hpp"

namespace choir {

/// Appends `text` as a JSON string. Plain printable ASCII (almost every field) is copied as it is;
/// anything else goes through `dump_json`, which escapes it and replaces invalid UTF-8.
inline void append_json_string(std::string& out, std::string_view text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F || c == '"' || c == '\\') {
      out += dump_json(value(std::string(text)));
      return;
    }
  }
  out += '"';
  out += text;
  out += '"';
}

}  // namespace choir
