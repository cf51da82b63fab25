#include "choir/api/stream.hpp"

#include <algorithm>
#include <utility>

#include "choir/core/json_access.hpp"

namespace choir::api {

frame make_frame(const value& v) { return std::make_shared<const std::string>(dump_json(v)); }

// ---- event_hub -------------------------------------------------------------------------------

event_hub::event_hub(std::shared_ptr<store::event_store> store) : store_(std::move(store)) {}

void event_hub::publish(const runtime::conversation_event& event) {
  std::int64_t step = -1;
  value data = event.data;
  if (event.kind == "step" && data.is_object() && data.contains("sequence_id") &&
      data["sequence_id"].is_number_integer()) {
    step = data["sequence_id"].get<std::int64_t>();
  }
  if (event.kind == "turn_ended" && data.is_object()) data.erase("state");  // large; the REST API has it
  deliver(event.run_id, event.kind, step, std::move(data));
}

void event_hub::publish_error(const std::string& run_id, const std::string& message) {
  deliver(run_id, "error", -1, value{{"message", message}});
}

void event_hub::deliver(const std::string& run_id, std::string_view kind, std::int64_t step, value data) {
  std::vector<std::pair<std::uint64_t, std::shared_ptr<stream_connection>>> targets;
  std::int64_t cursor = -1;
  {
    std::unique_lock lock(mutex_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) {
      lock.unlock();  // first sight of the run: where it stands, for the cursor of its events
      std::int64_t known = -1;
      if (auto run = store_->get_run(run_id); run.ok() && run->last_sequence) known = *run->last_sequence;
      lock.lock();
      it = runs_.try_emplace(run_id).first;
      it->second.last_step = std::max(it->second.last_step, known);
    }
    auto& entry = it->second;
    if (step >= 0) entry.last_step = std::max(entry.last_step, step);
    cursor = entry.last_step;
    std::erase_if(entry.subscribers, [&](const auto& sub) {
      auto conn = sub.second.lock();
      if (!conn) return true;
      targets.emplace_back(sub.first, std::move(conn));
      return false;
    });
  }
  published_.fetch_add(1, std::memory_order_relaxed);
  if (targets.empty()) return;
  delivered_.fetch_add(targets.size(), std::memory_order_relaxed);
  const auto f = make_frame(value{{"type", "event"},
                                  {"run_id", run_id},
                                  {"kind", std::string(kind)},
                                  {"cursor", cursor >= 0 ? value(cursor) : value()},
                                  {"data", std::move(data)}});
  for (const auto& [id, conn] : targets) conn->deliver(run_id, id, step, f);
}

std::uint64_t event_hub::subscribe(const std::string& run_id, std::weak_ptr<stream_connection> connection) {
  std::lock_guard lock(mutex_);
  const auto id = next_id_++;
  runs_[run_id].subscribers.emplace_back(id, std::move(connection));
  return id;
}

void event_hub::unsubscribe(const std::string& run_id, std::uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  std::erase_if(it->second.subscribers, [id](const auto& sub) { return sub.first == id; });
  if (it->second.subscribers.empty()) runs_.erase(it);  // the cursor is looked up again next time
}

std::size_t event_hub::subscribers() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [run, entry] : runs_) n += entry.subscribers.size();
  return n;
}

// ---- stream_connection -----------------------------------------------------------------------

stream_connection::stream_connection(stream_context context) : ctx_(std::move(context)) {}

stream_connection::~stream_connection() = default;

bool stream_connection::authenticated() const {
  std::lock_guard lock(mutex_);
  return who_.has_value();
}

void stream_connection::reply(value v) {
  bool woke = false;
  {
    std::lock_guard lock(mutex_);
    enqueue_locked(make_frame(v), woke);
  }
  if (woke) wake();
}

bool stream_connection::on_frame(std::string_view text) {
  if (text.size() > ctx_.max_frame) return false;
  auto parsed = value::parse(text, nullptr, false);
  const bool authed = authenticated();
  if (parsed.is_discarded() || !parsed.is_object()) {
    if (!authed) return false;
    reply({{"type", "error"}, {"message", "a frame is a JSON object with a \"type\""}});
    return true;
  }
  const auto type = string_at(parsed, "type");
  if (!authed) {
    const auto token = string_at(parsed, "token");
    if (type != "auth" || token.empty()) return false;
    auto found = ctx_.authenticate(token);
    if (!found) {
      reply({{"type", "error"}, {"message", "unknown token"}});
      return false;
    }
    {
      std::lock_guard lock(mutex_);
      who_ = *found;
    }
    reply({{"type", "ready"}, {"tenant", found->tenant}, {"user", found->user}});
    return true;
  }
  if (type == "subscribe" || type == "unsubscribe") {
    const auto run_id = string_at(parsed, "run_id");
    if (run_id.empty() || run_id.size() > 128) {
      reply({{"type", "error"}, {"message", type + " needs a \"run_id\""}});
      return true;
    }
    if (type == "unsubscribe") {
      unsubscribe(run_id);
      return true;
    }
    std::int64_t cursor = -1;
    if (parsed.contains("cursor") && !parsed["cursor"].is_null()) {
      cursor = int_at(parsed, "cursor", -2);
      if (cursor < -1) {
        reply({{"type", "error"}, {"message", "\"cursor\" is a step's sequence id, or -1"}});
        return true;
      }
    }
    subscribe(run_id, cursor);
    return true;
  }
  if (type == "auth") {
    reply({{"type", "error"}, {"message", "already authenticated"}});
    return true;
  }
  reply({{"type", "error"}, {"message", "unknown frame type '" + type + "' (subscribe, unsubscribe)"}});
  return true;
}

void stream_connection::subscribe(const std::string& run_id, std::int64_t cursor) {
  identity who;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    who = *who_;
  }
  auto run = ctx_.store->get_run(run_id);
  if (!run.ok() || run->tenant != who.tenant) {  // another tenant's run does not exist for this client
    reply({{"type", "error"}, {"run_id", run_id}, {"message", "no run " + run_id}});
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (subscriptions_.contains(run_id)) {
      // Subscribing again restarts from the new cursor.
      ctx_.hub->unsubscribe(run_id, subscriptions_[run_id].id);
      subscriptions_.erase(run_id);
    }
    subscriptions_.emplace(run_id, subscription{});
  }
  // From here live events are held; the replay is read, then queued ahead of them.
  const auto id = ctx_.hub->subscribe(run_id, weak_from_this());
  {
    std::lock_guard lock(mutex_);
    auto it = subscriptions_.find(run_id);
    if (it == subscriptions_.end()) {  // closed, or unsubscribed meanwhile
      ctx_.hub->unsubscribe(run_id, id);
      return;
    }
    it->second.id = id;
  }
  auto missed = ctx_.store->steps(run_id, cursor + 1, ctx_.max_replay + 1);
  auto now = ctx_.store->get_run(run_id);
  bool woke = false;
  {
    std::lock_guard lock(mutex_);
    auto it = subscriptions_.find(run_id);
    if (it == subscriptions_.end() || it->second.id != id) return;
    // The replay must fit the queue whole (an overflow in its middle would lose the subscription).
    const bool fits = missed.ok() && queue_.size() + missed->size() + 1 < ctx_.capacity;
    if (!missed.ok() || !now.ok() || missed->size() > ctx_.max_replay || !fits) {
      const std::string why = !missed.ok() ? missed.err().message
                              : !now.ok()  ? now.err().message
                              : !fits      ? "this connection's queue is full; subscribe again from the cursor"
                                           : "more than " + std::to_string(ctx_.max_replay) +
                                            " steps behind: page GET /api/v1/runs/" + run_id +
                                            "/steps?from=" + std::to_string(cursor + 1) + ", then subscribe again";
      enqueue_locked(make_frame({{"type", "resync"}, {"run_id", run_id}, {"cursor", cursor}, {"reason", why}}), woke);
      ctx_.hub->unsubscribe(run_id, id);
      subscriptions_.erase(it);
    } else {
      auto& sub = it->second;
      sub.last_step = cursor;
      for (const auto& step : *missed) {
        enqueue_locked(make_frame({{"type", "event"},
                                   {"run_id", run_id},
                                   {"kind", "step"},
                                   {"cursor", step.sequence_id},
                                   {"data", step.to_json()}}),
                       woke);
        sub.last_step = step.sequence_id;
      }
      value run_json = now->to_json();
      enqueue_locked(make_frame({{"type", "subscribed"},
                                 {"run_id", run_id},
                                 {"cursor", sub.last_step >= 0 ? value(sub.last_step) : value()},
                                 {"run", run_json}}),
                     woke);
      auto held = std::move(sub.held);
      sub.replaying = false;
      for (auto& [step, f] : held) {
        auto still = subscriptions_.find(run_id);  // an overflow may have ended it
        if (still == subscriptions_.end()) break;
        if (step >= 0 && step <= still->second.last_step) continue;
        if (step >= 0) still->second.last_step = step;
        enqueue_locked(std::move(f), woke);
      }
    }
  }
  if (woke) wake();
}

void stream_connection::unsubscribe(const std::string& run_id) {
  std::lock_guard lock(mutex_);
  auto it = subscriptions_.find(run_id);
  if (it == subscriptions_.end()) return;
  if (it->second.id != 0) ctx_.hub->unsubscribe(run_id, it->second.id);
  subscriptions_.erase(it);
}

void stream_connection::deliver(const std::string& run_id, std::uint64_t subscription_id, std::int64_t step,
                                const frame& f) {
  bool woke = false;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    auto it = subscriptions_.find(run_id);
    if (it == subscriptions_.end()) return;
    auto& sub = it->second;
    if (sub.id != 0 && sub.id != subscription_id) return;  // meant for an earlier subscription
    if (sub.replaying) {
      sub.held.emplace_back(step, f);
      return;
    }
    if (step >= 0 && step <= sub.last_step) return;  // the replay had it
    if (step >= 0) sub.last_step = step;
    enqueue_locked(f, woke);
  }
  if (woke) wake();
}

void stream_connection::enqueue_locked(frame f, bool& woke) {
  if (closed_) return;
  if (queue_.size() >= ctx_.capacity && !subscriptions_.empty()) {
    overflow_locked();
    woke = true;
    return;
  }
  queue_.push_back(std::move(f));
  woke = true;
}

void stream_connection::overflow_locked() {
  // The client fell behind: what is queued still goes out; each run resumes from its cursor.
  for (const auto& [run_id, sub] : subscriptions_) {
    if (sub.id != 0) ctx_.hub->unsubscribe(run_id, sub.id);
    queue_.push_back(make_frame({{"type", "resync"},
                                 {"run_id", run_id},
                                 {"cursor", sub.last_step},
                                 {"reason", "this connection fell " + std::to_string(ctx_.capacity) +
                                                " frames behind; subscribe again from the cursor"}}));
  }
  subscriptions_.clear();
}

bool stream_connection::take(std::deque<frame>& out) {
  std::lock_guard lock(mutex_);
  if (queue_.empty()) return false;
  if (out.empty()) {
    out.swap(queue_);
  } else {
    for (auto& f : queue_) out.push_back(std::move(f));
    queue_.clear();
  }
  return true;
}

void stream_connection::closed() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (const auto& [run_id, sub] : subscriptions_) {
    if (sub.id != 0) ctx_.hub->unsubscribe(run_id, sub.id);
  }
  subscriptions_.clear();
  queue_.clear();
}

}  // namespace choir::api
