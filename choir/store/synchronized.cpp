#include "choir/store/synchronized.hpp"

#include <mutex>

namespace choir::store {
namespace {

class synchronized_store final : public event_store {
 public:
  explicit synchronized_store(std::unique_ptr<event_store> inner) : inner_(std::move(inner)) {}

  [[nodiscard]] std::string_view backend() const override { return inner_->backend(); }
  [[nodiscard]] const std::string& owner() const override { return inner_->owner(); }

  result<void> put_graph(const graph_record& g) override {
    return locked([&] { return inner_->put_graph(g); });
  }
  result<graph_record> get_graph(std::string_view version) override {
    return locked([&] { return inner_->get_graph(version); });
  }
  result<void> create_run(const run_record& run, const graph::state& initial, std::int64_t start_after) override {
    return locked([&] { return inner_->create_run(run, initial, start_after); });
  }
  std::vector<result<void>> append_steps(std::span<const step_write> steps) override {
    return locked([&] { return inner_->append_steps(steps); });
  }
  prepared_step prepare(step_write step) const override { return inner_->prepare(std::move(step)); }
  std::vector<result<void>> append_prepared(std::span<const prepared_step> steps) override {
    return locked([&] { return inner_->append_prepared(steps); });
  }
  result<void> set_status(std::string_view run_id, std::string_view status) override {
    return locked([&] { return inner_->set_status(run_id, status); });
  }
  result<void> set_graph_version(std::string_view run_id, std::string_view version) override {
    return locked([&] { return inner_->set_graph_version(run_id, version); });
  }
  result<void> acquire_lease(std::string_view run_id, std::int64_t ttl_ms, std::string_view replacing) override {
    return locked([&] { return inner_->acquire_lease(run_id, ttl_ms, replacing); });
  }
  result<void> renew_lease(std::string_view run_id, std::int64_t ttl_ms) override {
    return locked([&] { return inner_->renew_lease(run_id, ttl_ms); });
  }
  result<void> release_lease(std::string_view run_id) override {
    return locked([&] { return inner_->release_lease(run_id); });
  }
  result<run_record> get_run(std::string_view run_id) override {
    return locked([&] { return inner_->get_run(run_id); });
  }
  result<std::vector<run_record>> list_runs(std::size_t limit, std::optional<run_cursor> before,
                                            const run_filter& filter) override {
    return locked([&] { return inner_->list_runs(limit, before, filter); });
  }
  result<std::vector<step_entry>> steps(std::string_view run_id, std::int64_t from, std::size_t limit) override {
    return locked([&] { return inner_->steps(run_id, from, limit); });
  }
  result<graph::state> state_at(std::string_view run_id, std::int64_t sequence_id) override {
    return locked([&] { return inner_->state_at(run_id, sequence_id); });
  }
  result<effect_begin> begin_effect(const effect_record& intent) override {
    return locked([&] { return inner_->begin_effect(intent); });
  }
  result<void> finish_effect(std::string_view key, std::string_view status, const value& outcome) override {
    return locked([&] { return inner_->finish_effect(key, status, outcome); });
  }
  result<std::optional<effect_record>> get_effect(std::string_view key) override {
    return locked([&] { return inner_->get_effect(key); });
  }
  result<std::vector<effect_record>> effects(std::string_view run_id) override {
    return locked([&] { return inner_->effects(run_id); });
  }
  result<void> append_audit(std::span<const audit_row> rows) override {
    return locked([&] { return inner_->append_audit(rows); });
  }
  result<std::optional<audit_row>> last_audit() override {
    return locked([&] { return inner_->last_audit(); });
  }
  result<void> scan_audit(std::int64_t from, const std::function<bool(const audit_view&)>& visit) override {
    return locked([&] { return inner_->scan_audit(from, visit); });
  }
  result<void> scan_audit_back(std::int64_t before, const std::function<bool(const audit_view&)>& visit) override {
    return locked([&] { return inner_->scan_audit_back(before, visit); });
  }
  result<consent_record> raise_consent(const consent_record& request) override {
    return locked([&] { return inner_->raise_consent(request); });
  }
  result<std::optional<consent_record>> get_consent(std::string_view id_or_key) override {
    return locked([&] { return inner_->get_consent(id_or_key); });
  }
  result<std::vector<consent_record>> list_consents(std::string_view tenant, std::string_view status,
                                                    std::size_t limit) override {
    return locked([&] { return inner_->list_consents(tenant, status, limit); });
  }
  result<consent_record> answer_consent(std::string_view id, std::string_view status, std::string_view by,
                                        std::string_view reason) override {
    return locked([&] { return inner_->answer_consent(id, status, by, reason); });
  }
  result<std::optional<document_record>> get_document(std::string_view name) override {
    return locked([&] { return inner_->get_document(name); });
  }
  result<std::int64_t> put_document(std::string_view name, std::string_view body,
                                    std::int64_t expected_version) override {
    return locked([&] { return inner_->put_document(name, body, expected_version); });
  }
  result<prune_report> prune(const retention_policy& policy) override {
    return locked([&] { return inner_->prune(policy); });
  }

 private:
  template <class F>
  auto locked(F&& f) -> decltype(f()) {
    std::lock_guard lock(mutex_);
    return f();
  }
  std::mutex mutex_;
  std::unique_ptr<event_store> inner_;
};

}  // namespace

std::shared_ptr<event_store> synchronized(std::unique_ptr<event_store> inner) {
  return std::make_shared<synchronized_store>(std::move(inner));
}

}  // namespace choir::store
