#include "choir/store/event_store.hpp"

#include <string>

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
          {"created_ms", created_ms},
          {"updated_ms", updated_ms}};
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

result<void> run_persister::save_step(const graph::run_identity& /*who*/, const graph::step_record& record,
                                      const graph::state& after) {
  return store_->append_step(run_id_, record, after, graph_version_);
}

}  // namespace choir::store
