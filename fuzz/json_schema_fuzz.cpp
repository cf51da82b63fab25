/// libFuzzer target for JSON Schema: the input is a schema and an instance, both JSON, split at the
/// first NUL byte (or in the middle when there is none). A schema that parses is compiled; if it
/// compiles, the instance (or, when that does not parse, the schema itself) is validated. Compiling
/// and validating must never crash, throw, hang or trip a sanitizer; a bad schema must be an
/// `invalid_argument` error with a message, and `accepts` must agree with `validate`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "choir/core/json_schema.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::size_t split = nul == std::string_view::npos ? size / 2 : nul;
  const std::string_view schema_text = input.substr(0, split);
  const std::string_view instance_text = input.substr(nul == std::string_view::npos ? split : split + 1);

  const choir::value schema = choir::value::parse(schema_text, nullptr, false);
  if (schema.is_discarded()) return 0;
  auto compiled = choir::json_schema::compile(schema);
  if (!compiled.ok()) {
    if (compiled.err().message.empty() || compiled.err().code != choir::core_errc::invalid_argument) std::abort();
    return 0;
  }
  choir::value instance = choir::value::parse(instance_text, nullptr, false);
  if (instance.is_discarded()) instance = schema;

  const auto violations = compiled->validate(instance);
  if (violations.size() > choir::json_schema::max_violations) std::abort();
  for (const auto& v : violations) {
    if (v.message.empty() || (!v.pointer.empty() && v.pointer[0] != '/')) std::abort();
  }
  if (compiled->accepts(instance) != violations.empty()) std::abort();
  if (describe(violations).empty() != violations.empty()) std::abort();
  return 0;
}
