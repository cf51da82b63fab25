// The `choir` command: one binary for every ChoirOS command. See docs/cli.md.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/choir/run_command.hpp"
#include "choir/graph/export.hpp"
#include "choir/graph/loader.hpp"

namespace {

int graph_command(const std::string& file, const std::string& format) {
  using namespace choir::graph;
  auto text = choir::cli::read_file(file);
  if (!text.ok()) {
    fmt::print(stderr, "choir graph: {}\n", text.err().message);
    return choir::cli::exit_invalid;
  }
  const auto registry = choir::cli::default_registry();
  auto doc = load_graph(*text, file, registry);
  if (!doc.ok()) {
    fmt::print(stderr, "choir graph: {}\n", doc.err().message);
    return choir::cli::exit_invalid;
  }
  auto g = doc->builder.build_graph();
  if (!g.ok()) {
    fmt::print(stderr, "choir graph: {}\n", g.err().message);
    return choir::cli::exit_invalid;
  }
  if (format == "mermaid") {
    fmt::print("{}", to_mermaid(**g));
  } else if (format == "dot") {
    fmt::print("{}", to_dot(**g));
  } else {
    fmt::print("{}\n", choir::dump_json((*g)->describe(), 2));
  }
  return choir::cli::exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "choir: the ChoirOS command line — run agents, inspect graphs.\n"
      "Exit codes: 0 success, 1 a step failed, 2 invalid input, 3 stopped by --max-steps."};
  app.set_version_flag("--version", std::string("choir 0.1.0"));
  app.require_subcommand(1);

  choir::cli::run_options run_opts;
  auto* run = app.add_subcommand("run", "Run a YAML graph in memory and print each step");
  run->add_option("file", run_opts.file, "The agent or graph YAML file")->required();
  run->add_option("--input,-i", run_opts.inputs, "An input for the first step, as key=value (value: JSON or text)");
  run->add_option("--halt-after", run_opts.halt_after, "Stop after this action runs (or @tag:NAME)");
  run->add_option("--halt-before", run_opts.halt_before, "Stop before this action would run (or @tag:NAME)");
  run->add_option("--max-steps", run_opts.max_steps, "Stop after this many steps; 0 means no limit")
      ->default_val(100000);
  run->add_flag("--json", run_opts.json, "Print one JSON object per step, then the outcome");

  std::string graph_file;
  std::string graph_format = "mermaid";
  auto* graph = app.add_subcommand("graph", "Print a graph as Mermaid, DOT or JSON");
  graph->add_option("file", graph_file, "The agent or graph YAML file")->required();
  graph->add_option("--format,-f", graph_format, "mermaid, dot or json")
      ->check(CLI::IsMember({"mermaid", "dot", "json"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : choir::cli::exit_invalid;
  }
  if (run->parsed()) return choir::cli::run_command(run_opts, std::cout, std::cerr);
  if (graph->parsed()) return graph_command(graph_file, graph_format);
  return choir::cli::exit_invalid;
}
