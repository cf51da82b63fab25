#pragma once
/// Agents by name, for the actions that run another agent as a child run (`agent`, and `map` with
/// `agent:`). An agent is added explicitly, or found as `<folder>/<name>.yaml` in one of the
/// catalog's folders and loaded once. Thread-safe.
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/graph/loader.hpp"
#include "choir/runtime/agent_run.hpp"

namespace choir::runtime {

class agent_catalog {
 public:
  /// Adds (or replaces) an agent under its graph's name.
  void add(std::shared_ptr<const agent_definition> agent);
  /// Adds a folder where `find` looks for `<name>.yaml`.
  void search_in(std::filesystem::path folder);
  /// Forgets every agent. An agent's actions hold the services this catalog usually belongs to
  /// (`action_services::agents`): a cycle that its owner breaks with this when it is done.
  void clear();

  /// The agent named `name`, loaded with `registry` the first time. Errors: `invalid_argument`
  /// (a name that is not `[A-Za-z0-9_-]+`, or agents that refer to each other in a cycle),
  /// `not_found` (naming the folders searched), and the loader's errors for its file.
  [[nodiscard]] result<std::shared_ptr<const agent_definition>> find(const std::string& name,
                                                                     const graph::action_registry& registry);

 private:
  std::recursive_mutex mutex_;  // a file being loaded may refer to other agents
  std::map<std::string, std::shared_ptr<const agent_definition>, std::less<>> agents_;
  std::vector<std::filesystem::path> folders_;
  std::set<std::string, std::less<>> loading_;
};

}  // namespace choir::runtime
