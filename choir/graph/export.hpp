#pragma once
/// Draws a graph: Mermaid (for Markdown and the web UI) and Graphviz DOT. Conditions label the
/// edges; `on_error` routes are dashed; the entrypoint is marked.
#include <string>

#include "choir/graph/application.hpp"

namespace choir::graph {

[[nodiscard]] std::string to_mermaid(const graph& g);
[[nodiscard]] std::string to_dot(const graph& g);

}  // namespace choir::graph
