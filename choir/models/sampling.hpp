#pragma once
/// Models that are not ChoirOS's to call: whoever is connected for a run answers. An MCP client
/// that runs an agent through `choir mcp serve` (or `/mcp`) lends its own model — the runtime asks
/// it with `sampling/createMessage` — and an alias of provider `mcp-client` (docs/models.md) sends
/// the run's requests there. The gateway knows nothing of MCP: the runtime attaches a sampler for a
/// run while a client is there to answer for it, and detaches it when the call ends.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "choir/models/gateway.hpp"

namespace choir::models {

/// What an alias of provider `mcp-client` tells the client about the model it would like (MCP's
/// `modelPreferences`): names to match, in order of preference, and priorities from 0 to 1.
struct sampling_preferences {
  std::vector<std::string> hints;
  std::optional<double> cost_priority;
  std::optional<double> speed_priority;
  std::optional<double> intelligence_priority;
};

/// The samplers attached to runs. Thread-safe; made with `std::make_shared` (attachments hold it weakly).
class sampler_registry : public std::enable_shared_from_this<sampler_registry> {
 public:
  /// Answers one request of the run, or fails: `model_errc::rejected` when the client declines
  /// or cannot sample, `core_errc::timed_out` when nobody answered in time.
  using sampler = std::function<result<chat_response>(const chat_request& request,
                                                      const sampling_preferences& preferences, chat_stream* stream)>;

  /// Keeps a sampler attached; detaches it when destroyed.
  class attachment {
   public:
    attachment() = default;
    attachment(attachment&& other) noexcept;
    attachment& operator=(attachment&& other) noexcept;
    attachment(const attachment&) = delete;
    attachment& operator=(const attachment&) = delete;
    ~attachment();

   private:
    friend class sampler_registry;
    attachment(std::weak_ptr<sampler_registry> owner, std::string run_id, std::uint64_t id);
    std::weak_ptr<sampler_registry> owner_;
    std::string run_id_;
    std::uint64_t id_ = 0;
  };

  /// Sends the requests of run `run_id`, and of the runs below it (`<run_id>.…`, its child runs),
  /// to `answer` until the attachment is destroyed. The run attached nearest to the asking run
  /// answers for it; attaching a run again shadows the earlier sampler until it is detached.
  [[nodiscard]] attachment attach(std::string run_id, sampler answer);

  /// Asks the sampler attached for `request.run_id`. `model_errc::rejected` if there is none (the
  /// run is not being run for an MCP client), naming the run.
  [[nodiscard]] result<chat_response> complete(const chat_request& request, const sampling_preferences& preferences,
                                               chat_stream* stream) const;

 private:
  void detach(const std::string& run_id, std::uint64_t id);
  mutable std::mutex mutex_;
  std::uint64_t next_id_ = 0;
  std::map<std::string, std::vector<std::pair<std::uint64_t, std::shared_ptr<const sampler>>>> samplers_;
};

/// The provider of `mcp-client` aliases: asks `registry` for the request's run, with `preferences`.
[[nodiscard]] std::shared_ptr<provider> sampling_provider(std::shared_ptr<const sampler_registry> registry,
                                                          sampling_preferences preferences);

}  // namespace choir::models
