#include "choir/kernel/admission.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace choir::kernel {
namespace {

/// Action types whose effects no deadline can bound: another agent's whole run, a person.
const std::set<std::string, std::less<>> unbounded_types = {"map", "agent", "human"};

std::string fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

std::string mib(std::uint64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + " MiB"; }

}  // namespace

node_resources node_resources::of_this_machine() {
  node_resources n;
  n.cpu = std::max(1U, std::thread::hardware_concurrency());
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemTotal:") {
      n.mem_bytes = kib * 1024;
      break;
    }
  }
  if (n.mem_bytes == 0) {
    n.mem_bytes =
        static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  }
  n.hrt_cpu = 1;
  return n;
}

result<hrt_plan> plan_hrt(const agent_contract& contract, const graph::graph& g) {
  hrt_plan plan;
  std::string problems;
  auto problem = [&](const std::string& what) { problems += (problems.empty() ? "" : "; ") + what; };
  for (const auto& n : g.nodes()) {
    const graph::action_spec& spec = n.act->spec();
    // The action's own class, else its mode's, else the agent's.
    const auto [latency, levels] = contract.class_of(spec.name);
    const bool hrt = spec.latency ? *spec.latency == graph::latency_class::hrt : latency == graph::latency_class::hrt;
    if (!hrt) continue;
    if (!levels.deadline_ms) {
      problem("action " + spec.name + " is HRT but the contract declares no class.slo.deadline_ms");
      continue;
    }
    if (unbounded_types.contains(spec.type)) {
      problem("action " + spec.name + " is HRT but a " + spec.type +
              " action waits on something no deadline can bound (another agent's run, or a person)");
      continue;
    }
    if (!spec.cost_ms) {
      problem("action " + spec.name + " is HRT but declares no cost_ms (its worst-case cost)");
      continue;
    }
    // Every attempt may take the whole cost, and a retry waits its backoff first.
    const int attempts = std::max(1, spec.retry.max_attempts);
    double worst = *spec.cost_ms * attempts;
    for (int a = 2; a <= attempts; ++a) worst += static_cast<double>(spec.retry.backoff_before(a).count());
    const auto deadline = static_cast<double>(*levels.deadline_ms);
    if (worst > deadline) {
      problem("action " + spec.name + " may take " + fixed(worst) + " ms" +
              (attempts > 1 ? " (" + std::to_string(attempts) + " attempts)" : std::string()) + ", more than the " +
              fixed(deadline) + " ms deadline");
      continue;
    }
    plan.actions.push_back({spec.name, worst});
    plan.utilization = std::max(plan.utilization, worst / deadline);
  }
  if (!problems.empty()) {
    return make_error(kernel_errc::not_admitted,
                      "agent " + contract.name + " is not admitted: HRT clause: " + problems);
  }
  return plan;
}

admission::admission(node_resources node) : node_(std::move(node)) {}

decision admission::reserve(std::string_view run_id, const agent_contract& contract, const graph::graph& g) {
  // Models: each the contract allows must be served by the gateway.
  std::string missing;
  for (const auto& m : contract.models_allowed) {
    if (std::find(node_.models.begin(), node_.models.end(), m) == node_.models.end()) {
      missing += (missing.empty() ? "" : ", ") + m;
    }
  }
  if (!missing.empty()) {
    std::string served;
    for (const auto& m : node_.models) served += (served.empty() ? "" : ", ") + m;
    return {false, "agent " + contract.name + " is not admitted: model clause: the gateway does not serve " + missing +
                       " (it serves " + (served.empty() ? std::string("no models") : served) + ")"};
  }
  auto hrt = plan_hrt(contract, g);
  if (!hrt.ok()) return {false, hrt.err().message};

  std::lock_guard lock(mutex_);
  held previous;
  if (auto it = runs_.find(std::string(run_id)); it != runs_.end()) previous = it->second;
  held wanted{contract.cpu.value_or(0), contract.mem_bytes.value_or(0), hrt->utilization};
  const double cpu_left = node_.cpu - (used_.cpu - previous.cpu);
  const std::uint64_t mem_left = node_.mem_bytes - std::min(node_.mem_bytes, used_.mem_bytes - previous.mem_bytes);
  const double hrt_left = node_.hrt_cpu - (used_.hrt_utilization - previous.hrt);
  if (wanted.cpu > cpu_left + 1e-9) {
    return {false, "agent " + contract.name + " is not admitted: compute clause: it asks for " + fixed(wanted.cpu) +
                       " cores and " + fixed(std::max(0.0, cpu_left)) + " of " + fixed(node_.cpu) + " are left"};
  }
  if (wanted.mem_bytes > mem_left) {
    return {false, "agent " + contract.name + " is not admitted: compute clause: it asks for " + mib(wanted.mem_bytes) +
                       " and " + mib(mem_left) + " of " + mib(node_.mem_bytes) + " are left"};
  }
  if (wanted.hrt > hrt_left + 1e-9) {
    return {false, "agent " + contract.name + " is not admitted: HRT clause: its HRT actions need " +
                       fixed(wanted.hrt) + " of a core at their deadline and " + fixed(std::max(0.0, hrt_left)) +
                       " of the " + fixed(node_.hrt_cpu) + " cores reserved for HRT work are left"};
  }
  used_.cpu += wanted.cpu - previous.cpu;
  used_.mem_bytes = used_.mem_bytes - previous.mem_bytes + wanted.mem_bytes;
  used_.hrt_utilization += wanted.hrt - previous.hrt;
  if (!runs_.contains(std::string(run_id))) ++used_.runs;
  runs_[std::string(run_id)] = wanted;
  return {true, {}};
}

void admission::release(std::string_view run_id) {
  std::lock_guard lock(mutex_);
  const auto it = runs_.find(std::string(run_id));
  if (it == runs_.end()) return;
  used_.cpu -= it->second.cpu;
  used_.mem_bytes -= it->second.mem_bytes;
  used_.hrt_utilization -= it->second.hrt;
  --used_.runs;
  runs_.erase(it);
  if (runs_.empty()) used_ = {};  // no drift from rounding
}

admission::usage admission::in_use() const {
  std::lock_guard lock(mutex_);
  return used_;
}

}  // namespace choir::kernel
