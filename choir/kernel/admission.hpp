#pragma once
/// Admission's resource clauses (docs/audit.md, "Admission"): an agent's run is admitted only if
/// its compute fits what the node has left, the models its contract allows exist in the gateway,
/// and — for hard real-time work — every HRT action declares a worst-case cost that fits its
/// deadline and the set of admitted HRT work fits the capacity reserved for it (earliest deadline
/// first is feasible while utilization stays within the reserved cores). What a run reserves is
/// released when it ends. Pure bookkeeping; thread-safe.
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/graph/application.hpp"
#include "choir/kernel/contract.hpp"
#include "choir/kernel/policy.hpp"

namespace choir::kernel {

/// What a node gives the agents it admits.
struct node_resources {
  double cpu = 0;  ///< cores
  std::uint64_t mem_bytes = 0;
  double hrt_cpu = 1;               ///< cores reserved for HRT work, scheduled earliest deadline first
  std::vector<std::string> models;  ///< the model aliases the gateway serves

  /// This machine: its cores and memory, one core reserved for HRT work, no models (until a
  /// gateway says which it serves).
  [[nodiscard]] static node_resources of_this_machine();
};

/// An HRT action as admission sees it.
struct hrt_action {
  std::string name;
  double worst_ms = 0;  ///< cost_ms × attempts, plus the backoffs between attempts
};

/// The HRT clause for one agent: which of its actions are HRT (all of them for an HRT agent,
/// unless an action says otherwise; those of an HRT mode (`modes`), under the mode's deadline;
/// those marked `latency: HRT` in any agent), each with its
/// worst case, and the share of one core the agent needs (worst case / deadline of its slowest
/// action, since a run takes one step at a time). Refused (`not_admitted`) if an HRT action has
/// no `cost_ms`, calls something no deadline can bound (another agent, a person), or cannot meet
/// the deadline even alone.
struct hrt_plan {
  std::vector<hrt_action> actions;
  double utilization = 0;
};
[[nodiscard]] result<hrt_plan> plan_hrt(const agent_contract& contract, const graph::graph& g);

class admission {
 public:
  explicit admission(node_resources node);

  /// Checks the resource clauses for a run and reserves what it asks (replacing what the same run
  /// held). A refusal names the clause and what is left.
  [[nodiscard]] decision reserve(std::string_view run_id, const agent_contract& contract, const graph::graph& g);
  void release(std::string_view run_id);

  struct usage {
    double cpu = 0;
    std::uint64_t mem_bytes = 0;
    double hrt_utilization = 0;
    std::size_t runs = 0;
  };
  [[nodiscard]] usage in_use() const;
  [[nodiscard]] const node_resources& node() const { return node_; }

 private:
  struct held {
    double cpu = 0;
    std::uint64_t mem_bytes = 0;
    double hrt = 0;
  };
  node_resources node_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, held> runs_;
  usage used_;
};

}  // namespace choir::kernel
