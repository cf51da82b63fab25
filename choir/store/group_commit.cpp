#include "choir/store/group_commit.hpp"

#include <algorithm>
#include <coroutine>
#include <future>
#include <iterator>
#include <optional>
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
  prepared_step prepared = store_->prepare(std::move(step));  // here, not on the committer's thread
  {
    std::lock_guard lock(mutex_);
    queued_steps_.push_back(std::move(prepared));
    queued_done_.push_back(std::move(done));
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

std::chrono::nanoseconds group_committer::busy() const {
  std::lock_guard lock(mutex_);
  return busy_;
}

void group_committer::loop() {
  std::vector<prepared_step> steps;
  std::vector<callback> done;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queued_steps_.empty(); });
      if (queued_steps_.empty()) return;  // stopping, and everything is committed
      if (queued_steps_.size() <= max_batch_) {
        steps.swap(queued_steps_);  // the whole queue, and the queue keeps the batch's capacity
        done.swap(queued_done_);
      } else {
        const auto n = static_cast<std::ptrdiff_t>(max_batch_);
        std::move(queued_steps_.begin(), queued_steps_.begin() + n, std::back_inserter(steps));
        std::move(queued_done_.begin(), queued_done_.begin() + n, std::back_inserter(done));
        queued_steps_.erase(queued_steps_.begin(), queued_steps_.begin() + n);
        queued_done_.erase(queued_done_.begin(), queued_done_.begin() + n);
      }
    }
    const auto began = std::chrono::steady_clock::now();
    auto results = store_->append_prepared(steps);
    const auto took = std::chrono::steady_clock::now() - began;
    {
      std::lock_guard lock(mutex_);
      ++transactions_;
      steps_ += steps.size();
      busy_ += std::chrono::duration_cast<std::chrono::nanoseconds>(took);
    }
    for (std::size_t i = 0; i < done.size(); ++i) done[i](std::move(results[i]));
    steps.clear();  // outside the lock: the steps' memory goes back while callers queue more
    done.clear();
  }
}

result<void> group_persister::renew_if_due() {
  return store_ == nullptr ? result<void>{} : lease_.renew_if_due(*store_);
}

result<void> group_persister::save_step(const graph::run_identity& /*who*/, const graph::step_record& record,
                                        const graph::state& after) {
  CHOIR_CHECK(renew_if_due());
  return committer_->commit(make_step_write(run_id_, record, after, graph_version_));
}

namespace {

/// Hands a step to the committer and suspends until its transaction committed; the coroutine
/// goes on inside the context it was suspended in.
struct commit_awaiter {
  group_committer* committer;
  step_write step;
  resume_context* context;
  std::optional<result<void>> out{};

  [[nodiscard]] bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    committer->submit(std::move(step), [this, h](result<void> r) {
      out.emplace(std::move(r));
      context->resume(h);
    });
  }
  result<void> await_resume() { return std::move(*out); }
};

}  // namespace

task<result<void>> group_persister::save_step_async(const graph::run_identity& who, const graph::step_record& record,
                                                    const graph::state& after) {
  resume_context* here = current_resume_context();
  // Outside a context the committer's thread would run the rest of the step: wait here instead.
  if (here == nullptr) co_return save_step(who, record, after);
  if (auto renewed = renew_if_due(); !renewed.ok()) co_return std::move(renewed).err();
  commit_awaiter waiting{committer_, make_step_write(run_id_, record, after, graph_version_), here};  // named: g++ 12
  auto saved = co_await waiting;
  co_return saved;
}

}  // namespace choir::store
