#include "choir/graph/export.hpp"

namespace choir::graph {
namespace {

/// Mermaid labels go inside double quotes; a quote is written as its entity.
std::string mermaid_label(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"') {
      out += "#quot;";
    } else if (c == '\n') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

/// Mermaid node ids may not contain '-' or '.', so every action gets a positional id.
std::string mermaid_id(std::size_t index) { return "a" + std::to_string(index); }

std::string dot_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string type_suffix(const action& a) { return a.spec().type == "function" ? "" : " (" + a.spec().type + ")"; }

}  // namespace

std::string to_mermaid(const graph& g) {
  std::string out = "flowchart TD\n";
  out += "  start((start)) --> " + mermaid_id(g.entrypoint()) + "\n";
  const auto& nodes = g.nodes();
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    out += "  " + mermaid_id(i) + "[\"" + mermaid_label(nodes[i].act->name() + type_suffix(*nodes[i].act)) + "\"]\n";
  }
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& e : nodes[i].edges) {
      if (e.when.is_default()) {
        out += "  " + mermaid_id(i) + " --> " + mermaid_id(e.to) + "\n";
      } else {
        out += "  " + mermaid_id(i) + " -->|\"" + mermaid_label(e.when.describe()) + "\"| " + mermaid_id(e.to) + "\n";
      }
    }
    if (nodes[i].on_error) {
      out += "  " + mermaid_id(i) + " -.->|\"on error\"| " + mermaid_id(*nodes[i].on_error) + "\n";
    }
  }
  return out;
}

std::string to_dot(const graph& g) {
  std::string out = "digraph G {\n  rankdir=TB;\n  node [shape=box, style=rounded];\n";
  out += "  \"__start\" [shape=circle, label=\"start\"];\n";
  const auto& nodes = g.nodes();
  for (const auto& n : nodes) {
    out += "  " + dot_string(n.act->name()) + " [label=" + dot_string(n.act->name() + type_suffix(*n.act)) + "];\n";
  }
  out += "  \"__start\" -> " + dot_string(nodes[g.entrypoint()].act->name()) + ";\n";
  for (const auto& n : nodes) {
    for (const auto& e : n.edges) {
      out += "  " + dot_string(n.act->name()) + " -> " + dot_string(nodes[e.to].act->name());
      if (!e.when.is_default()) out += " [label=" + dot_string(e.when.describe()) + ", style=dashed]";
      out += ";\n";
    }
    if (n.on_error) {
      out += "  " + dot_string(n.act->name()) + " -> " + dot_string(nodes[*n.on_error].act->name()) +
             " [label=\"on error\", style=dotted, color=red];\n";
    }
  }
  return out + "}\n";
}

}  // namespace choir::graph
