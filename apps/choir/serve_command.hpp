#pragma once
/// `choir serve`: the HTTP/WebSocket API and the web desktop over the conversations of the agents
/// it loads (docs/api.md).
#include <cstddef>
#include <iosfwd>
#include <set>
#include <string>
#include <vector>

#include "choir/core/result.hpp"

namespace choir::cli {

struct serve_options {
  std::string listen = "127.0.0.1:8080";
  std::string store;
  std::vector<std::string> agents;  ///< folders of agent files (default: ./examples if it exists)
  std::string web;                  ///< the desktop's built files (default: web/dist if it exists)
  std::vector<std::string> allow_hosts;
  int threads = 1;
  std::size_t max_connections = 4'096;
  /// Agent steps that run at once (0: one per core), and how many of them only HRT steps may use.
  int step_workers = 0;
  int hrt_workers = 0;
  /// On SIGTERM, how long steps in flight may take to commit; past it the process exits and they
  /// are left uncommitted (a resume runs them again).
  double shutdown_grace_s = 30;
  /// A `kind: ServerConfig` file holding any of the settings above (docs/api.md, "Serving"); a
  /// setting given on the command line (its flag in `given`, e.g. `--listen`) wins over the file.
  std::string config;
  std::set<std::string, std::less<>> given;
};

/// Reads `options.config` into `options`, except for the settings named in `options.given`. Paths
/// in the file are relative to its folder. Errors name the file, line and setting.
[[nodiscard]] result<void> read_serve_config(serve_options& options);

/// Serves until SIGTERM or SIGINT. Prints `listening on http://HOST:PORT`, and on the first start
/// against a store `admin token: …`. Returns the exit code.
int serve_command(const serve_options& options, std::ostream& out, std::ostream& err);

}  // namespace choir::cli
