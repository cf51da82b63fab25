#pragma once
/// Reading fields of JSON that came from outside (a network peer, a file) without throwing:
/// nlohmann's `value(key, fallback)` throws when the key holds another type; these return the
/// fallback when `v` is not an object, the key is absent, or it holds another type.
#include <cstdint>
#include <string>

#include "choir/core/value.hpp"

namespace choir {

[[nodiscard]] inline std::string string_at(const value& v, const char* key, std::string fallback = {}) {
  if (!v.is_object()) return fallback;
  const auto it = v.find(key);
  return it != v.end() && it->is_string() ? it->get<std::string>() : fallback;
}

[[nodiscard]] inline std::int64_t int_at(const value& v, const char* key, std::int64_t fallback = 0) {
  if (!v.is_object()) return fallback;
  const auto it = v.find(key);
  return it != v.end() && it->is_number_integer() ? it->get<std::int64_t>() : fallback;
}

[[nodiscard]] inline bool bool_at(const value& v, const char* key, bool fallback = false) {
  if (!v.is_object()) return fallback;
  const auto it = v.find(key);
  return it != v.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace choir
