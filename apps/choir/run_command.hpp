#pragma once
/// `choir run`: loads a YAML graph, runs it in memory and prints each step.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/graph/loader.hpp"

namespace choir::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_step_failed = 1;
inline constexpr int exit_invalid = 2;
inline constexpr int exit_max_steps = 3;

struct run_options {
  std::string file;
  std::vector<std::string> inputs;  ///< key=value
  std::vector<std::string> halt_after;
  std::vector<std::string> halt_before;
  std::uint64_t max_steps = 100000;  ///< 0: no limit
  bool json = false;
};

/// The action types `choir` knows.
[[nodiscard]] graph::action_registry default_registry();
/// Reads a whole file; errors name the file.
[[nodiscard]] result<std::string> read_file(const std::string& path);
/// Parses `key=value` pairs into an object; a value that parses as JSON is taken as JSON,
/// anything else as a string.
[[nodiscard]] result<value> parse_inputs(const std::vector<std::string>& pairs);
/// Runs the command and returns its exit code.
int run_command(const run_options& options, std::ostream& out, std::ostream& err);

}  // namespace choir::cli
