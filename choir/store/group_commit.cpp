#include "choir/store/group_commit.hpp"

#include <future>
#include <vector>

namespace choir::store {

group_committer::group_committer(event_store& store, std::size_t max_batch)
    : store_(&store), max_batch_(max_batch == 0 ? 1 : max_batch), thread_([this] { loop(); }) {}

group_committer::~group_committer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void group_committer::submit(step_write step, callback done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(pending{std::move(step), std::move(done)});
  }
  wake_.notify_one();
}

result<void> group_committer::commit(step_write step) {
  std::promise<result<void>> promise;
  auto future = promise.get_future();
  submit(std::move(step), [&promise](result<void> r) { promise.set_value(std::move(r)); });
  return future.get();
}

std::size_t group_committer::transactions() const {
  std::lock_guard lock(mutex_);
  return transactions_;
}

std::size_t group_committer::steps() const {
  std::lock_guard lock(mutex_);
  return steps_;
}

void group_committer::loop() {
  std::vector<pending> batch;
  std::vector<step_write> writes;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is committed
      const std::size_t n = std::min(queue_.size(), max_batch_);
      batch.clear();
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    writes.clear();
    for (auto& p : batch) writes.push_back(std::move(p.step));
    auto results = store_->append_steps(writes);
    {
      std::lock_guard lock(mutex_);
      ++transactions_;
      steps_ += writes.size();
    }
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
  }
}

result<void> group_persister::save_step(const graph::run_identity& /*who*/, const graph::step_record& record,
                                        const graph::state& after) {
  return committer_->commit(make_step_write(run_id_, record, after, graph_version_));
}

}  // namespace choir::store
