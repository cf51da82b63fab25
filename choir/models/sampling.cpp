#include "choir/models/sampling.hpp"

#include <algorithm>
#include <utility>

namespace choir::models {

sampler_registry::attachment::attachment(std::weak_ptr<sampler_registry> owner, std::string run_id, std::uint64_t id)
    : owner_(std::move(owner)), run_id_(std::move(run_id)), id_(id) {}

sampler_registry::attachment::attachment(attachment&& other) noexcept
    : owner_(std::move(other.owner_)), run_id_(std::move(other.run_id_)), id_(std::exchange(other.id_, 0)) {}

sampler_registry::attachment& sampler_registry::attachment::operator=(attachment&& other) noexcept {
  if (this != &other) {
    if (auto owner = owner_.lock(); owner && id_ != 0) owner->detach(run_id_, id_);
    owner_ = std::move(other.owner_);
    run_id_ = std::move(other.run_id_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

sampler_registry::attachment::~attachment() {
  if (auto owner = owner_.lock(); owner && id_ != 0) owner->detach(run_id_, id_);
}

sampler_registry::attachment sampler_registry::attach(std::string run_id, sampler answer) {
  std::lock_guard lock(mutex_);
  const std::uint64_t id = ++next_id_;
  samplers_[run_id].emplace_back(id, std::make_shared<const sampler>(std::move(answer)));
  return attachment(weak_from_this(), std::move(run_id), id);
}

void sampler_registry::detach(const std::string& run_id, std::uint64_t id) {
  std::lock_guard lock(mutex_);
  const auto it = samplers_.find(run_id);
  if (it == samplers_.end()) return;
  std::erase_if(it->second, [&](const auto& entry) { return entry.first == id; });
  if (it->second.empty()) samplers_.erase(it);
}

result<chat_response> sampler_registry::complete(const chat_request& request, const sampling_preferences& preferences,
                                                 chat_stream* stream) const {
  std::shared_ptr<const sampler> answer;
  {
    std::lock_guard lock(mutex_);
    // The run itself, then each run above it: `a.mcp.1.fan.3` → `a.mcp.1.fan` → `a.mcp.1` → ….
    for (std::string id = request.run_id; !id.empty() && !answer;) {
      if (const auto it = samplers_.find(id); it != samplers_.end()) answer = it->second.back().second;
      const auto dot = id.rfind('.');
      id.resize(dot == std::string::npos ? 0 : dot);
    }
  }
  if (!answer) {
    return make_error(model_errc::rejected,
                      (request.run_id.empty() ? std::string("this request names no run")
                                              : "run " + request.run_id + " is not running for an MCP client") +
                          ": a model of provider mcp-client is the model of the MCP client that runs the agent "
                          "(choir mcp serve, /mcp)");
  }
  return (*answer)(request, preferences, stream);
}

namespace {

class delegated final : public provider {
 public:
  delegated(std::shared_ptr<const sampler_registry> registry, sampling_preferences preferences)
      : registry_(std::move(registry)), preferences_(std::move(preferences)) {}

  result<chat_response> complete(const chat_request& request, chat_stream* stream) override {
    return registry_->complete(request, preferences_, stream);
  }

 private:
  std::shared_ptr<const sampler_registry> registry_;
  sampling_preferences preferences_;
};

}  // namespace

std::shared_ptr<provider> sampling_provider(std::shared_ptr<const sampler_registry> registry,
                                            sampling_preferences preferences) {
  return std::make_shared<delegated>(std::move(registry), std::move(preferences));
}

}  // namespace choir::models
