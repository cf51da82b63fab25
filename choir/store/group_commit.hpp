#pragma once
/// Group commit: the steps of many concurrent runs share transactions. Callers hand steps to a
/// committer thread, which writes everything queued so far in one transaction and then tells each
/// caller. A step's completion still means exactly what it means alone — its transaction has
/// committed — so a run moves on only after its step is durable; what is shared is the commit's
/// cost. The committer's thread writes the steps; anything else that uses the store meanwhile must
/// go through a store every thread may use (`store::synchronized`).
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "choir/store/event_store.hpp"

namespace choir::store {

class group_committer {
 public:
  using callback = std::function<void(result<void>)>;

  /// At most `max_batch` steps per transaction.
  explicit group_committer(event_store& store, std::size_t max_batch = 512);
  /// Commits what is queued, then stops the committer thread.
  ~group_committer();
  group_committer(const group_committer&) = delete;
  group_committer& operator=(const group_committer&) = delete;

  /// Queues a step, checked and prepared for the store on the caller's thread. `done` runs on the
  /// committer thread once the transaction holding the step has committed (or with the error that
  /// refused it); it must not block.
  void submit(step_write step, callback done);
  /// Queues a step and waits for its commit.
  [[nodiscard]] result<void> commit(step_write step);

  /// Transactions committed so far, steps in them, and the time spent writing them (the
  /// committer's busy time: when it nears the elapsed time, the committer is what limits the rate).
  [[nodiscard]] std::size_t transactions() const;
  [[nodiscard]] std::size_t steps() const;
  [[nodiscard]] std::chrono::nanoseconds busy() const;

 private:
  void loop();

  event_store* store_;
  std::size_t max_batch_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  // What is queued, in order: the steps and, at the same index, whom to tell. Two vectors, so that
  // the committer takes the whole queue by swapping them and hands the steps to the store as they are.
  std::vector<prepared_step> queued_steps_;
  std::vector<callback> queued_done_;
  bool stopping_ = false;
  std::size_t transactions_ = 0;
  std::size_t steps_ = 0;
  std::chrono::nanoseconds busy_{0};
  std::thread thread_;
};

/// Persists an application's steps through a group committer (graph's persister interface). In
/// `run_async`, a step inside a `resume_context` (an actor) waits for its commit without holding
/// its thread, so that other runs' steps join the same transaction; elsewhere it waits on its
/// thread. With a store and a lease duration, it keeps the run's lease as `run_persister` does
/// (`lease_keeper`; `store` must then be one the caller's thread may use).
class group_persister final : public graph::persister {
 public:
  group_persister(group_committer& committer, std::string run_id, std::string graph_version,
                  event_store* store = nullptr, std::int64_t lease_ttl_ms = 0)
      : committer_(&committer),
        run_id_(run_id),
        graph_version_(std::move(graph_version)),
        store_(store),
        lease_(std::move(run_id), store != nullptr ? lease_ttl_ms : 0) {}
  [[nodiscard]] result<void> save_step(const graph::run_identity& who, const graph::step_record& record,
                                       const graph::state& after) override;
  [[nodiscard]] task<result<void>> save_step_async(const graph::run_identity& who, const graph::step_record& record,
                                                   const graph::state& after) override;

 private:
  result<void> renew_if_due();

  group_committer* committer_;
  std::string run_id_;
  std::string graph_version_;
  event_store* store_;
  lease_keeper lease_;
};

}  // namespace choir::store
