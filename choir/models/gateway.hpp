#pragma once
/// The model gateway: model aliases (`local/8B`, `cloud/70B`) mapped to providers, with timeouts,
/// retries with backoff on 429 and 5xx only, fallback to the next allowed alias, and token and cost
/// accounting. It knows nothing of policy or budgets: the runtime's gate decides whether a run may
/// call a model, and charges what the gateway reports. The configuration file is documented in
/// docs/models.md.
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/models/chat.hpp"

namespace choir::models {

class sampler_registry;

/// One backend that answers chat requests. Implementations are thread-safe.
class provider {
 public:
  virtual ~provider() = default;
  /// Answers `request` (its `model` is the provider's own model name by now). Streams into
  /// `stream` if given. Errors are `model_errc` (`rate_limited`, `provider_error`, `rejected`,
  /// `bad_response`) or `core_errc::timed_out`/`io_error`; the gateway decides what to retry.
  [[nodiscard]] virtual result<chat_response> complete(const chat_request& request, chat_stream* stream) = 0;
};

/// How one alias is reached.
struct model_route {
  std::string alias;
  std::shared_ptr<provider> backend;
  std::string model;     ///< the name the provider knows it by (default: the alias)
  int max_attempts = 3;  ///< per alias, for retryable failures (429, 5xx, timeouts, broken connections)
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{8'000};
  std::optional<std::int64_t> context_tokens;  ///< the model's window, if known
  double usd_per_million_input = 0;
  double usd_per_million_output = 0;
};

/// What one `complete` call did, for the journal and the audit.
struct call_report {
  std::vector<std::string> attempts;  ///< `alias: outcome` for each try, in order
};

class gateway {
 public:
  /// The wait between retries; tests pass one that does not sleep.
  using sleeper = std::function<void(std::chrono::milliseconds)>;

  gateway();
  explicit gateway(sleeper sleep);

  /// Adds or replaces a route. Not thread-safe with `complete`: configure first.
  void add(model_route route);
  [[nodiscard]] std::vector<std::string> aliases() const;
  [[nodiscard]] const model_route* find(std::string_view alias) const;
  /// Where the runtime attaches, for a run, the MCP client that answers its `mcp-client` aliases
  /// (choir/models/sampling.hpp). Thread-safe.
  [[nodiscard]] sampler_registry& samplers() const { return *samplers_; }

  /// Answers `request` with the alias it names; if that alias fails after its retries, tries each
  /// of `fallbacks` in order (aliases the caller is allowed to use; the requested one is skipped
  /// there). Retries only what may succeed later: 429, 5xx, timeouts and broken connections; a
  /// rejected request (4xx) or a malformed answer fails at once. The response names the alias that
  /// answered and its cost. Thread-safe.
  [[nodiscard]] result<chat_response> complete(const chat_request& request, std::span<const std::string> fallbacks = {},
                                               chat_stream* stream = nullptr, call_report* report = nullptr) const;

  /// Builds a gateway from a `kind: Models` document (docs/models.md). An `mcp-client` alias is
  /// answered by the samplers the runtime attaches (`samplers()`). Scripted models' rule
  /// files are resolved against `base_dir`; credentials come from the environment variables the
  /// document names (`api_key_env`), read when the gateway is built. Errors:
  /// `core_errc::invalid_argument` naming the field.
  [[nodiscard]] static result<std::shared_ptr<gateway>> from_config(const value& config, std::string_view base_dir,
                                                                    sleeper sleep = {});

 private:
  std::vector<model_route> routes_;
  sleeper sleep_;
  std::shared_ptr<sampler_registry> samplers_;
};

/// Whether a failure is worth another attempt (429, 5xx, timeouts, I/O).
[[nodiscard]] bool retryable(const error& e);

}  // namespace choir::models
