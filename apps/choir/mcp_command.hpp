#pragma once
/// `choir mcp serve`: ChoirOS's tools over MCP on stdio, each call through the kernel's gate.
#include <iosfwd>
#include <string>
#include <vector>

namespace choir::cli {

struct mcp_options {
  std::string store;
  std::string agent_file;  ///< the agent whose contract the session acts under (empty: the built-in session)
  std::vector<std::string> agents;
  std::string tenant;
  std::string user;
};

/// Serves MCP over `in`/`out` until `in` ends; diagnostics go to `err`. Returns the exit code.
int mcp_serve(const mcp_options& options, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace choir::cli
