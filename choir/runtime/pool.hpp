#pragma once
/// Actor pools for stateless services: several actors of one type behind one handle. Each message
/// goes to the less loaded of two members picked at random (the "power of two choices"), skipping
/// dead members; a member restarted by its supervisor stays in the pool.
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "choir/runtime/actor.hpp"

namespace choir::runtime {

template <class T>
class actor_pool {
 public:
  actor_pool() = default;
  explicit actor_pool(std::vector<actor_ref<T>> members)
      : members_(std::make_shared<const std::vector<actor_ref<T>>>(std::move(members))) {}

  [[nodiscard]] std::size_t size() const noexcept { return members_ ? members_->size() : 0; }
  [[nodiscard]] const std::vector<actor_ref<T>>& members() const { return *members_; }

  /// One-way, to one member. Errors as `actor_ref::tell`; `died` only when every member is dead.
  template <class F>
  result<void> tell(F f, call_options opts = {}) const {
    return pick().tell(std::move(f), opts);
  }
  /// A call to one member. Errors as `actor_ref::ask`; `died` only when every member is dead.
  template <class F>
  auto ask(F f, call_options opts = {}) const {
    return pick().ask(std::move(f), opts);
  }
  /// Kills every member.
  void kill(const std::string& reason = "killed") const {
    for (const auto& m : *members_) m.kill(reason);
  }

 private:
  const actor_ref<T>& pick() const {
    const auto& all = *members_;
    const std::size_t n = all.size();
    // A cheap, thread-safe pseudo-random sequence (splitmix64 over a shared counter).
    std::uint64_t x = counter_->fetch_add(0x9E3779B97F4A7C15ULL, std::memory_order_relaxed);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    x ^= x >> 31;
    const auto& a = all[x % n];
    const auto& b = all[(x >> 32) % n];
    const bool a_ok = a.alive();
    const bool b_ok = b.alive();
    if (a_ok && b_ok) return a.cell()->queued() <= b.cell()->queued() ? a : b;
    if (a_ok) return a;
    if (b_ok) return b;
    for (const auto& m : all) {
      if (m.alive()) return m;
    }
    return a;  // all dead: the call fails with `died`
  }

  std::shared_ptr<const std::vector<actor_ref<T>>> members_;
  std::shared_ptr<std::atomic<std::uint64_t>> counter_ = std::make_shared<std::atomic<std::uint64_t>>(0);
};

/// Spawns `n` actors `T(args…)` with `opts` (anonymous: a pool has no per-member names) as a pool.
/// Errors: `invalid_argument` for `n == 0` or a named `opts`, and those of `spawn` (the members
/// spawned before a failure are killed).
template <class T, class... A>
result<actor_pool<T>> spawn_pool(actor_system& sys, std::size_t n, spawn_options opts, A... args) {
  if (n == 0) return make_error(runtime_errc::invalid_argument, "a pool needs at least one member");
  if (!opts.name.empty()) return make_error(runtime_errc::invalid_argument, "pool members cannot be named");
  std::vector<actor_ref<T>> members;
  members.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto member = sys.spawn<T>(opts, args...);
    if (!member.ok()) {
      for (auto& m : members) m.kill("its pool could not be completed");
      return std::move(member).err();
    }
    members.push_back(std::move(member).value());
  }
  return actor_pool<T>(std::move(members));
}

}  // namespace choir::runtime
