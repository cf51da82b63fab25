#include "choir/api/event_stream.hpp"

namespace choir::api {

bool event_stream::push(std::string data) {
  std::function<void()> ready;
  {
    std::lock_guard lock(mutex_);
    if (ended_ || gone_) return false;
    queue_.push_back(std::move(data));
    ready = ready_;
  }
  if (ready) ready();
  return true;
}

void event_stream::end() {
  std::function<void()> ready;
  {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    ended_ = true;
    ready = ready_;
  }
  if (ready) ready();
}

bool event_stream::open() const {
  std::lock_guard lock(mutex_);
  return !ended_ && !gone_;
}

void event_stream::on_ready(std::function<void()> ready) {
  std::lock_guard lock(mutex_);
  ready_ = std::move(ready);
}

std::pair<std::vector<std::string>, bool> event_stream::take() {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  out.swap(queue_);
  return {std::move(out), ended_};
}

void event_stream::gone() {
  std::lock_guard lock(mutex_);
  gone_ = true;
  queue_.clear();
  ready_ = nullptr;
}

}  // namespace choir::api
