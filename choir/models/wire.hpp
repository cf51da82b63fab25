#pragma once
/// Private to choir/models: the pieces of the providers' wire formats that more than one provider
/// uses (docs/models.md). Nothing outside this folder includes it.
#include <string>
#include <string_view>

#include "choir/core/value.hpp"
#include "choir/models/providers.hpp"

namespace choir::models::wire {

/// A tool call's arguments as the model wrote them: an object (or any JSON) if the text parses,
/// otherwise the text itself (the tool registry then reports it to the model as invalid
/// arguments). Empty text is an empty object.
[[nodiscard]] inline value tool_arguments(std::string_view text) {
  if (text.empty()) return value::object();
  value v = value::parse(text, nullptr, /*allow_exceptions=*/false);
  return v.is_discarded() ? value(std::string(text)) : v;
}

/// Arguments as the JSON text the OpenAI formats carry them in; a string (arguments that never
/// parsed) goes back as it came.
[[nodiscard]] inline std::string arguments_text(const value& arguments) {
  return arguments.is_string() ? arguments.get<std::string>() : dump_json(arguments);
}

/// `url` without trailing slashes, so that `url + "/path"` has exactly one.
[[nodiscard]] inline std::string without_trailing_slashes(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

/// The headers of a request to an OpenAI endpoint: a JSON body, the key as a bearer token (when
/// there is one), then the configured extra headers.
[[nodiscard]] inline net::header_list openai_headers(const http_provider_options& options) {
  net::header_list headers{{"content-type", "application/json"}};
  if (!options.api_key.empty()) headers.emplace_back("authorization", "Bearer " + options.api_key);
  for (const auto& h : options.extra_headers) headers.push_back(h);
  return headers;
}

}  // namespace choir::models::wire
