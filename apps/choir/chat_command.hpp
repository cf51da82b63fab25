#pragma once
/// `choir chat AGENT`: a conversation with an agent in the terminal — the same conversation actor
/// as a desktop window, its replies streamed, a consent it needs asked on the spot.
#include <iosfwd>
#include <string>
#include <vector>

namespace choir::cli {

struct chat_options {
  std::string agent;  ///< an agent file, or a name found in `agents` (default ./examples)
  std::string store;
  std::vector<std::string> agents;
  std::string run_id;  ///< continue this conversation (default: a new one)
  std::string tenant;
  std::string user;
};

/// Reads messages line by line from `in` until it ends. Returns the exit code.
int chat_command(const chat_options& options, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace choir::cli
