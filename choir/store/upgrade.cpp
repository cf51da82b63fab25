#include "choir/store/upgrade.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "choir/store/event_store.hpp"

namespace choir::store {
namespace {

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "nothing" : out;
}

/// "reads count, limit (was: count)" when the two lists differ.
void compare(const char* what, const std::vector<std::string>& before, const std::vector<std::string>& after,
             std::vector<std::string>& changes) {
  const auto a = sorted(before);
  const auto b = sorted(after);
  if (a != b) changes.push_back(std::string(what) + " " + joined(b) + " (was: " + joined(a) + ")");
}

std::vector<std::string> input_names(const graph::action_spec& spec) {
  std::vector<std::string> out;
  for (const auto& in : spec.inputs) out.push_back(in.name + (in.required ? "" : "?"));
  return out;
}

}  // namespace

result<void> check_upgrade(const graph::graph& from, const graph::graph& to, std::string_view at_action) {
  if (at_action.empty()) return {};  // a complete run has nothing left to run
  const auto old_index = from.index_of(at_action);
  if (!old_index) {
    return make_error(store_errc::corrupt,
                      "the run's next action '" + std::string(at_action) + "' is not in the graph version it ran");
  }
  const auto new_index = to.index_of(at_action);
  if (!new_index) {
    return make_error(store_errc::invalid_argument,
                      "the new graph has no action '" + std::string(at_action) +
                          "', where the run continues; keep the action or let the run finish under its version");
  }
  const auto& before = from.nodes()[*old_index].act->spec();
  const auto& after = to.nodes()[*new_index].act->spec();
  std::vector<std::string> changes;
  compare("reads", before.reads, after.reads, changes);
  compare("writes", before.writes, after.writes, changes);
  compare("takes inputs", input_names(before), input_names(after), changes);
  if (!changes.empty()) {
    std::string list;
    for (const auto& c : changes) list += (list.empty() ? "" : "; ") + c;
    return make_error(store_errc::invalid_argument, "the run continues at '" + std::string(at_action) +
                                                        "', which the new graph changes: it now " + list);
  }
  return {};
}

}  // namespace choir::store
