#include "choir/runtime/agent_catalog.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "choir/runtime/errors.hpp"

namespace choir::runtime {

void agent_catalog::add(std::shared_ptr<const agent_definition> agent) {
  std::lock_guard lock(mutex_);
  agents_[agent->name] = std::move(agent);
}

void agent_catalog::clear() {
  std::lock_guard lock(mutex_);
  agents_.clear();
}

void agent_catalog::search_in(std::filesystem::path folder) {
  std::lock_guard lock(mutex_);
  if (std::find(folders_.begin(), folders_.end(), folder) == folders_.end()) folders_.push_back(std::move(folder));
}

result<std::shared_ptr<const agent_definition>> agent_catalog::find(const std::string& name,
                                                                    const graph::action_registry& registry) {
  const bool well_formed = !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  if (!well_formed) {
    return make_error(runtime_errc::invalid_argument,
                      "'" + name + "' is not an agent name (letters, digits, '_' and '-', at most 128)");
  }
  std::lock_guard lock(mutex_);
  if (auto it = agents_.find(name); it != agents_.end()) return it->second;
  if (loading_.contains(name)) {
    return make_error(runtime_errc::invalid_argument,
                      "agent '" + name + "' refers back to itself through other agents");
  }
  std::string searched;
  for (const auto& folder : folders_) {
    const auto file = folder / (name + ".yaml");
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      searched += (searched.empty() ? "" : ", ") + folder.string();
      continue;
    }
    std::ostringstream text;
    text << in.rdbuf();
    loading_.insert(name);
    auto loaded = load_agent(text.str(), file.string(), registry);
    loading_.erase(name);
    if (!loaded.ok()) return std::move(loaded).err();
    if ((*loaded)->name != name) {
      return make_error(runtime_errc::invalid_argument,
                        file.string() + ": its graph is named '" + (*loaded)->name + "', not '" + name + "'");
    }
    agents_[name] = *loaded;
    return std::move(loaded).value();
  }
  return make_error(runtime_errc::not_found, "no agent named '" + name + "' is registered" +
                                                 (searched.empty() ? std::string(" (no folder to look in)")
                                                                   : " or found as " + name + ".yaml in " + searched));
}

}  // namespace choir::runtime
