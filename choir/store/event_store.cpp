#include "choir/store/event_store.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <string>

#include "choir/core/id.hpp"

namespace choir::store {
namespace {

class store_category_impl final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "choir.store"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<store_errc>(ev)) {
      case store_errc::open_failed: return "cannot open the store";
      case store_errc::not_a_store: return "not a ChoirOS store";
      case store_errc::newer_schema: return "store from a newer version";
      case store_errc::corrupt: return "corrupt store";
      case store_errc::run_not_found: return "run not found";
      case store_errc::step_not_found: return "step not found";
      case store_errc::duplicate_step: return "step already committed";
      case store_errc::duplicate_run: return "run already exists";
      case store_errc::io_error: return "store i/o error";
      case store_errc::run_leased: return "run leased by another owner";
      case store_errc::lease_lost: return "lease lost";
      case store_errc::effect_outcome_unknown: return "effect outcome unknown";
      case store_errc::invalid_argument: return "invalid argument";
      case store_errc::effect_failed: return "effect failed";
      case store_errc::conflict: return "conflict";
    }
    return "unknown store error";
  }
};

}  // namespace

const std::error_category& store_category() noexcept {
  static const store_category_impl category;
  return category;
}

std::error_code make_error_code(store_errc e) noexcept { return {static_cast<int>(e), store_category()}; }

value run_record::to_json() const {
  return {{"run_id", run_id},
          {"partition_key", partition_key},
          {"agent", agent},
          {"graph_version", graph_version},
          {"parent_run", parent_run.empty() ? value() : value(parent_run)},
          {"parent_step", parent_step ? value(*parent_step) : value()},
          {"status", status},
          {"next_action", next_action.empty() ? value() : value(next_action)},
          {"last_sequence", last_sequence ? value(*last_sequence) : value()},
          {"pinned", pinned},
          {"tenant", tenant.empty() ? value() : value(tenant)},
          {"user", user.empty() ? value() : value(user)},
          {"owner", owner.empty() ? value() : value(owner)},
          {"lease_expires_ms", owner.empty() ? value() : value(lease_expires_ms)},
          {"created_ms", created_ms},
          {"updated_ms", updated_ms}};
}

value consent_record::to_json() const {
  return {{"id", id},
          {"key", key},
          {"tenant", tenant},
          {"user", user},
          {"agent", agent},
          {"run_id", run_id},
          {"step", step ? value(*step) : value()},
          {"capability", capability},
          {"argument", argument},
          {"arguments", arguments},
          {"status", status},
          {"answered_by", answered_by.empty() ? value() : value(answered_by)},
          {"reason", reason.empty() ? value() : value(reason)},
          {"created_ms", created_ms},
          {"expires_ms", expires_ms},
          {"answered_ms", answered_ms == 0 ? value() : value(answered_ms)}};
}

value step_entry::to_json() const {
  value out = {{"sequence_id", sequence_id},
               {"action", action},
               {"status", status},
               {"inputs", inputs},
               {"result", result},
               {"delta", delta},
               {"attempts", attempts},
               {"next", next_action.empty() ? value() : value(next_action)},
               {"graph_version", graph_version},
               {"committed_ms", committed_ms}};
  if (!error.is_null()) out["error"] = error;
  return out;
}

value effect_record::to_json() const {
  return {{"key", key},
          {"run_id", run_id},
          {"sequence_id", sequence_id},
          {"kind", kind},
          {"request", request},
          {"status", status},
          {"outcome", outcome},
          {"created_ms", created_ms},
          {"completed_ms", completed_ms == 0 ? value() : value(completed_ms)}};
}

step_write make_step_write(std::string run_id, const graph::step_record& step, graph::state after,
                           std::string graph_version) {
  step_write w;
  w.run_id = std::move(run_id);
  w.sequence_id = static_cast<std::int64_t>(step.sequence_id);
  w.action = step.action;
  w.failed = step.status == graph::step_status::failed;
  w.inputs = dump_json(step.inputs);
  w.result = dump_json(step.result);
  w.delta = step.delta.to_json_text();
  w.error = step.failure ? dump_json(value{{"code", step.failure->code.message()}, {"message", step.failure->message}})
                         : std::string("null");
  w.attempts = step.attempts;
  w.next_action = step.next_action;
  w.graph_version = std::move(graph_version);
  w.after = std::move(after);
  return w;
}

prepared_step event_store::make_prepared(step_write step, result<void> checked, std::string form) {
  prepared_step p;
  p.step_ = std::move(step);
  p.checked_ = std::move(checked);
  p.form_ = std::move(form);
  return p;
}

prepared_step event_store::prepare(step_write step) const {
  // Nothing to do ahead: `append_steps` checks every step it is given.
  return make_prepared(std::move(step), {}, {});
}

std::vector<result<void>> event_store::append_prepared(std::span<const prepared_step> steps) {
  std::vector<step_write> batch;
  batch.reserve(steps.size());
  for (const prepared_step& p : steps) batch.push_back(p.step_);
  return append_steps(batch);
}

result<void> event_store::append_step(std::string_view run_id, const graph::step_record& step,
                                      const graph::state& after, std::string_view graph_version) {
  const step_write w = make_step_write(std::string(run_id), step, after, std::string(graph_version));
  auto results = append_steps(std::span<const step_write>(&w, 1));
  return std::move(results.front());
}

std::string default_owner() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  static const std::string suffix = new_id().to_string().substr(24);
  return std::string(host[0] != '\0' ? host : "localhost") + "/" + std::to_string(::getpid()) + "/" + suffix;
}

bool owner_known_dead(const std::string& owner) {
  const auto first = owner.find('/');
  const auto second = first == std::string::npos ? std::string::npos : owner.find('/', first + 1);
  if (second == std::string::npos) return false;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || owner.compare(0, first, host) != 0) return false;
  const std::string pid_text = owner.substr(first + 1, second - first - 1);
  if (pid_text.empty() || pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
  if (pid <= 0 || pid == ::getpid()) return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

result<std::unique_ptr<event_store>> open_store(const std::string& where, const store_options& options,
                                                const clock& time) {
  const auto starts = [&](const char* prefix) { return where.rfind(prefix, 0) == 0; };
  if (starts("postgresql://") || starts("postgres://") || starts("host=") || starts("dbname=") || starts("service=") ||
      starts("user=")) {
    return open_pg_store(where, options, time);
  }
  return open_sqlite_store(where, options, time);
}

result<void> lease_keeper::renew_if_due(event_store& store) {
  if (ttl_ms_ <= 0) return {};
  const auto now = std::chrono::steady_clock::now();
  if (now - renewed_ < std::chrono::milliseconds(ttl_ms_ / 3)) return {};
  CHOIR_CHECK(store.renew_lease(run_id_, ttl_ms_));
  renewed_ = now;
  return {};
}

result<void> run_persister::save_step(const graph::run_identity& /*who*/, const graph::step_record& record,
                                      const graph::state& after) {
  CHOIR_CHECK(lease_.renew_if_due(*store_));
  return store_->append_step(run_id_, record, after, graph_version_);
}

}  // namespace choir::store
