// Fuzzes the YAML graph loader: any input must load or fail with an error, never crash, hang or
// leak; a graph that loads must also build and run a few steps safely.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "choir/graph/loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace choir::graph;
  static const action_registry registry = action_registry::with_builtins();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = load_graph(text, "fuzz.yaml", registry);
  if (!doc.ok()) return 0;
  auto app = doc->builder.build();
  if (!app.ok()) return 0;
  (void)(*app)->run({.max_steps = 16});
  return 0;
}
