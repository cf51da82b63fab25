#include "choir/runtime/step_dispatch.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace choir::runtime {
namespace {

/// Upper bounds of the histograms' buckets, in seconds (the last bucket is +Inf).
constexpr std::array<double, 13> bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
constexpr std::array<const char*, 3> class_names = {"hrt", "srt", "dt"};
/// Upper bounds of the HRT jitter histogram: a step's start delay as a share of its deadline.
constexpr std::array<double, 6> jitter_bounds = {0.01, 0.05, 0.1, 0.25, 0.5, 1};

std::size_t index_of(graph::latency_class c) {
  switch (c) {
    case graph::latency_class::hrt: return 0;
    case graph::latency_class::srt: return 1;
    case graph::latency_class::dt: return 2;
  }
  return 1;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

void step_dispatcher::histogram::add(double seconds) {
  const auto at = std::lower_bound(bounds.begin(), bounds.end(), seconds);
  ++buckets[static_cast<std::size_t>(at - bounds.begin())];
  ++count;
  sum += seconds;
}

step_dispatcher::step_dispatcher(dispatch_options options)
    : options_(options),
      sched_(kernel::sched_options{.workers = std::max(1, options.workers),
                                   .hrt_workers = std::clamp(options.hrt_workers, 0, std::max(1, options.workers) - 1),
                                   .dt_aging = options.dt_aging_ms * 1'000'000}),
      busy_(static_cast<std::size_t>(std::max(1, options.workers)), 0) {
  options_.workers = sched_.options().workers;
  options_.hrt_workers = sched_.options().hrt_workers;
}

std::int64_t step_dispatcher::now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::uint64_t step_dispatcher::new_owner() {
  std::lock_guard lock(mutex_);
  return next_owner_++;
}

step_dispatcher::acquire_awaitable step_dispatcher::acquire(graph::latency_class cls,
                                                            std::optional<std::int64_t> deadline_ms,
                                                            std::uint64_t owner) {
  std::lock_guard lock(mutex_);
  const std::uint64_t ticket = next_ticket_++;
  entry e;
  e.cls = cls;
  e.owner = owner;
  e.ready_ns = now_ns();
  if (cls == graph::latency_class::hrt) e.deadline_ns = e.ready_ns + deadline_ms.value_or(0) * 1'000'000;
  sched_.submit(kernel::sched_item{.id = ticket, .cls = cls, .release = e.ready_ns, .deadline = e.deadline_ns});
  entries_.emplace(ticket, e);
  ++counts_[index_of(cls)].waiting;
  return acquire_awaitable(*this, ticket);
}

bool step_dispatcher::acquire_awaitable::await_ready() {
  grants out;
  bool granted = false;
  {
    std::lock_guard lock(d_->mutex_);
    d_->pump(out);
    const auto it = d_->entries_.find(ticket_);
    granted = it != d_->entries_.end() && it->second.worker >= 0;
  }
  resume(out);
  return granted;
}

bool step_dispatcher::acquire_awaitable::await_suspend(std::coroutine_handle<> h) {
  std::lock_guard lock(d_->mutex_);
  const auto it = d_->entries_.find(ticket_);
  if (it == d_->entries_.end() || it->second.worker >= 0) return false;  // granted meanwhile: go on
  it->second.handle = h;
  it->second.context = current_resume_context();
  return true;
}

void step_dispatcher::pump(grants& out) {
  const std::int64_t now = now_ns();
  for (std::size_t w = 0; w < busy_.size(); ++w) {
    while (busy_[w] == 0) {
      const auto item = sched_.next(static_cast<int>(w), now);
      if (!item) break;
      const auto it = entries_.find(item->id);
      if (it == entries_.end()) continue;
      entry& e = it->second;
      if (e.cancelled) {  // its owner went away while it waited
        entries_.erase(it);
        continue;
      }
      e.worker = static_cast<int>(w);
      e.started_ns = now;
      busy_[w] = item->id;
      auto& c = counts_[index_of(e.cls)];
      --c.waiting;
      ++c.running;
      onset_[index_of(e.cls)].add(static_cast<double>(now - e.ready_ns) / 1e9);
      if (e.deadline_ns && *e.deadline_ns > e.ready_ns) {
        const double share = static_cast<double>(now - e.ready_ns) / static_cast<double>(*e.deadline_ns - e.ready_ns);
        const auto at = std::lower_bound(jitter_bounds.begin(), jitter_bounds.end(), share);
        ++jitter_[static_cast<std::size_t>(at - jitter_bounds.begin())];
        ++jitter_count_;
        jitter_sum_ += share;
      }
      if (e.handle) out.emplace_back(std::exchange(e.handle, {}), e.context);
    }
  }
}

void step_dispatcher::resume(const grants& out) {
  for (const auto& [handle, context] : out) {
    if (context != nullptr) {
      context->resume(handle);
    } else {
      handle.resume();
    }
  }
}

void step_dispatcher::release(std::uint64_t ticket) {
  grants out;
  {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(ticket);
    if (it == entries_.end()) return;  // its owner was cancelled meanwhile
    const entry& e = it->second;
    const std::int64_t now = now_ns();
    const std::size_t c = index_of(e.cls);
    if (e.worker >= 0) {
      busy_[static_cast<std::size_t>(e.worker)] = 0;
      --counts_[c].running;
      ++counts_[c].steps;
      step_time_[c].add(static_cast<double>(now - e.started_ns) / 1e9);
      if (e.deadline_ns && now > *e.deadline_ns) ++counts_[c].misses;
    }
    entries_.erase(it);
    pump(out);
  }
  resume(out);
}

void step_dispatcher::cancel_owner(std::uint64_t owner) {
  grants out;
  {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      entry& e = it->second;
      if (e.owner != owner || e.cancelled) {
        ++it;
        continue;
      }
      auto& c = counts_[index_of(e.cls)];
      if (e.worker >= 0) {
        busy_[static_cast<std::size_t>(e.worker)] = 0;
        --c.running;
        it = entries_.erase(it);
      } else {
        // Still queued in the scheduler (dropped when it comes up); the waiting coroutine goes
        // on without a worker, to end what it was doing.
        e.cancelled = true;
        if (e.handle) out.emplace_back(std::exchange(e.handle, {}), e.context);
        --c.waiting;
        ++it;
      }
    }
    pump(out);
  }
  resume(out);
}

void step_dispatcher::record_turn(graph::latency_class cls, double seconds, std::optional<std::int64_t> slo_ms) {
  std::lock_guard lock(mutex_);
  turn_time_[index_of(cls)].add(seconds);
  if (slo_ms && seconds * 1000.0 > static_cast<double>(*slo_ms)) ++counts_[index_of(cls)].turn_breaches;
}

void step_dispatcher::record_onset(graph::latency_class cls, double seconds, std::optional<std::int64_t> slo_ms) {
  std::lock_guard lock(mutex_);
  turn_onset_[index_of(cls)].add(seconds);
  if (slo_ms && seconds * 1000.0 > static_cast<double>(*slo_ms)) ++counts_[index_of(cls)].onset_breaches;
}

std::array<step_dispatcher::class_counts, 3> step_dispatcher::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

std::string step_dispatcher::prometheus() const {
  std::lock_guard lock(mutex_);
  std::string m;
  const auto header = [&](const char* name, const char* type, const char* help) {
    m += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  const auto per_class = [&](const char* name, const char* type, const char* help, auto value_of) {
    header(name, type, help);
    for (std::size_t c = 0; c < 3; ++c) {
      m += std::string(name) + "{class=\"" + class_names[c] + "\"} " + std::to_string(value_of(counts_[c])) + "\n";
    }
  };
  per_class("choir_steps_total", "counter", "Agent steps run through the step dispatcher, by latency class.",
            [](const class_counts& c) { return c.steps; });
  per_class("choir_step_deadline_misses_total", "counter", "HRT steps finished after their deadline.",
            [](const class_counts& c) { return c.misses; });
  per_class("choir_steps_waiting", "gauge", "Steps ready and waiting for a worker (the queue depth).",
            [](const class_counts& c) { return c.waiting; });
  per_class("choir_steps_running", "gauge", "Steps holding a worker.", [](const class_counts& c) { return c.running; });
  header("choir_turn_slo_breaches_total", "counter",
         "Turns that broke their contract's service level: onset (slo.onset_ms) or turn time (slo.turn_ms).");
  for (std::size_t c = 0; c < 3; ++c) {
    m += std::string("choir_turn_slo_breaches_total{class=\"") + class_names[c] + "\",slo=\"onset\"} " +
         std::to_string(counts_[c].onset_breaches) + "\n";
    m += std::string("choir_turn_slo_breaches_total{class=\"") + class_names[c] + "\",slo=\"turn\"} " +
         std::to_string(counts_[c].turn_breaches) + "\n";
  }
  const auto histograms = [&](const char* name, const char* help, const std::array<histogram, 3>& hs) {
    header(name, "histogram", help);
    for (std::size_t c = 0; c < 3; ++c) {
      const histogram& h = hs[c];
      const std::string label = std::string("class=\"") + class_names[c] + "\"";
      std::uint64_t cumulative = 0;
      for (std::size_t b = 0; b < bounds.size(); ++b) {
        cumulative += h.buckets[b];
        m += std::string(name) + "_bucket{" + label + ",le=\"" + number(bounds[b]) + "\"} " +
             std::to_string(cumulative) + "\n";
      }
      m += std::string(name) + "_bucket{" + label + ",le=\"+Inf\"} " + std::to_string(h.count) + "\n";
      m += std::string(name) + "_sum{" + label + "} " + number(h.sum) + "\n";
      m += std::string(name) + "_count{" + label + "} " + std::to_string(h.count) + "\n";
    }
  };
  histograms("choir_step_onset_seconds", "From a step being ready to its start, by latency class.", onset_);
  histograms("choir_step_seconds", "How long steps ran, by latency class.", step_time_);
  header("choir_step_jitter_ratio", "histogram",
         "HRT steps' start delay as a share of their deadline (0.25: a quarter of the deadline passed before the "
         "step started).");
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < jitter_bounds.size(); ++b) {
    cumulative += jitter_[b];
    m += "choir_step_jitter_ratio_bucket{class=\"hrt\",le=\"" + number(jitter_bounds[b]) + "\"} " +
         std::to_string(cumulative) + "\n";
  }
  m += "choir_step_jitter_ratio_bucket{class=\"hrt\",le=\"+Inf\"} " + std::to_string(jitter_count_) + "\n";
  m += "choir_step_jitter_ratio_sum{class=\"hrt\"} " + number(jitter_sum_) + "\n";
  m += "choir_step_jitter_ratio_count{class=\"hrt\"} " + std::to_string(jitter_count_) + "\n";
  histograms("choir_turn_onset_seconds",
             "From a conversation turn's start to its first visible output (a token, or a step past the one that "
             "took the message), by latency class.",
             turn_onset_);
  histograms("choir_turn_seconds", "Conversation turns, from their start to their last step, by latency class.",
             turn_time_);
  return m;
}

}  // namespace choir::runtime
