/// libFuzzer target for the expression language: compiles the input as an expression and, if it
/// compiles, evaluates it against a small fixed state and against the empty state. Compiling and
/// evaluating must never crash, throw, or trip a sanitizer; every failure must be a `result` error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "choir/graph/expression.hpp"
#include "choir/graph/state.hpp"

namespace {

const choir::graph::state& sample_state() {
  static const choir::graph::state s = [] {
    auto parsed = choir::graph::state::from_json(choir::value::parse(R"({
      "count": 3,
      "limit": 10,
      "big": 9223372036854775807,
      "ratio": 0.5,
      "name": "Ada",
      "done": false,
      "nothing": null,
      "tags": ["x", "y", 3],
      "history": [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}],
      "user": {"name": "Ada", "age": 36, "tags": ["a", "b"], "address": {"city": "London"}}
    })"));
    if (!parsed.ok()) std::abort();
    return *parsed;
  }();
  return s;
}

void exercise(const choir::graph::expression& e, const choir::graph::state& s) {
  const choir::graph::state_scope scope(s);
  auto v = e.evaluate(scope);
  auto t = e.test(scope);
  // test() must agree with evaluate(): a bool result tests as that bool, anything else fails.
  if (v.ok() && v->is_boolean() && (!t.ok() || *t != v->get<bool>())) std::abort();
  if (v.ok() && !v->is_boolean() && t.ok()) std::abort();
  if (v.ok()) (void)v->dump(-1, ' ', false, choir::value::error_handler_t::replace);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  auto compiled = choir::graph::expression::compile(source);
  if (!compiled.ok()) {
    if (compiled.err().message.empty()) std::abort();
    return 0;
  }
  if (compiled->source() != source) std::abort();
  exercise(*compiled, sample_state());
  static const choir::graph::state empty;
  exercise(*compiled, empty);
  return 0;
}
