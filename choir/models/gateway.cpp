#include "choir/models/gateway.hpp"

#include "choir/core/json_access.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "choir/models/providers.hpp"
#include "choir/models/sampling.hpp"
#include "choir/models/scripted.hpp"

namespace choir::models {

bool retryable(const error& e) {
  return e.code == model_errc::rate_limited || e.code == model_errc::provider_error || e.code == core_errc::timed_out ||
         e.code == core_errc::io_error;
}

gateway::gateway() : gateway(sleeper{}) {}

gateway::gateway(sleeper sleep) : sleep_(std::move(sleep)), samplers_(std::make_shared<sampler_registry>()) {
  if (!sleep_) sleep_ = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

void gateway::add(model_route route) {
  if (route.model.empty()) route.model = route.alias;
  auto it = std::find_if(routes_.begin(), routes_.end(), [&](const model_route& r) { return r.alias == route.alias; });
  if (it != routes_.end())
    *it = std::move(route);
  else
    routes_.push_back(std::move(route));
}

std::vector<std::string> gateway::aliases() const {
  std::vector<std::string> out;
  out.reserve(routes_.size());
  for (const auto& r : routes_) out.push_back(r.alias);
  return out;
}

const model_route* gateway::find(std::string_view alias) const {
  auto it = std::find_if(routes_.begin(), routes_.end(), [&](const model_route& r) { return r.alias == alias; });
  return it == routes_.end() ? nullptr : &*it;
}

result<chat_response> gateway::complete(const chat_request& request, std::span<const std::string> fallbacks,
                                        chat_stream* stream, call_report* report) const {
  std::vector<std::string> order{request.model};
  for (const auto& f : fallbacks) {
    if (std::find(order.begin(), order.end(), f) == order.end()) order.push_back(f);
  }
  std::optional<error> last;
  for (const auto& alias : order) {
    const model_route* route = find(alias);
    if (route == nullptr) {
      if (alias == request.model) {
        last = make_error(model_errc::unknown_model, "no model is configured under the alias '" + alias + "'");
        if (report != nullptr) report->attempts.push_back(alias + ": unknown");
      }
      continue;
    }
    const std::int64_t estimate = estimate_tokens(request);
    if (route->context_tokens && estimate + request.max_tokens.value_or(0) > *route->context_tokens) {
      last = make_error(
          model_errc::context_too_long,
          "'" + alias + "' holds " + std::to_string(*route->context_tokens) + " tokens; the request needs about " +
              std::to_string(estimate) +
              (request.max_tokens ? " plus " + std::to_string(*request.max_tokens) + " for the answer" : ""));
      if (report != nullptr) report->attempts.push_back(alias + ": context too long");
      continue;
    }
    chat_request routed = request;
    routed.model = route->model;
    auto backoff = route->initial_backoff;
    for (int attempt = 1; attempt <= std::max(1, route->max_attempts); ++attempt) {
      if (attempt > 1) {
        sleep_(backoff);
        backoff = std::min(route->max_backoff, backoff * 2);
      }
      auto answer = route->backend->complete(routed, stream);
      if (answer.ok()) {
        chat_response r = std::move(answer).value();
        r.model = alias;
        if (r.usage.input_tokens == 0 && r.usage.output_tokens == 0) {
          r.usage.input_tokens = estimate;
          r.usage.output_tokens = estimate_tokens(r.message.content);
          r.usage.estimated = true;
        }
        r.cost_usd = (static_cast<double>(r.usage.input_tokens) * route->usd_per_million_input +
                      static_cast<double>(r.usage.output_tokens) * route->usd_per_million_output) /
                     1e6;
        if (report != nullptr) report->attempts.push_back(alias + ": ok");
        return r;
      }
      last = std::move(answer).err();
      if (report != nullptr) report->attempts.push_back(alias + ": " + last->message);
      if (!retryable(*last)) break;
    }
  }
  if (!last)
    last = make_error(model_errc::unknown_model, "no model is configured under the alias '" + request.model + "'");
  return *last;
}

namespace {

error bad(std::string_view field, std::string_view what) {
  return make_error(core_errc::invalid_argument, "models: " + std::string(field) + ": " + std::string(what));
}

result<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(core_errc::io_error, path.string() + ": cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

result<std::shared_ptr<gateway>> gateway::from_config(const value& config, std::string_view base_dir, sleeper sleep) {
  if (!config.is_object() || string_at(config, "kind") != "Models") return bad("kind", "must be Models");
  const auto models = config.find("models");
  if (models == config.end() || !models->is_object() || models->empty()) {
    return bad("models", "a mapping from alias to model is required");
  }
  static const std::vector<std::string> known = {"provider",
                                                 "model",
                                                 "base_url",
                                                 "api_key_env",
                                                 "timeout_ms",
                                                 "max_attempts",
                                                 "backoff_ms",
                                                 "max_backoff_ms",
                                                 "context_tokens",
                                                 "usd_per_million_input",
                                                 "usd_per_million_output",
                                                 "headers",
                                                 "max_tokens_field",
                                                 "api_version",
                                                 "default_max_tokens",
                                                 "script",
                                                 "rules",
                                                 "hints",
                                                 "cost_priority",
                                                 "speed_priority",
                                                 "intelligence_priority"};
  auto g = std::make_shared<gateway>(std::move(sleep));
  for (const auto& item : models->items()) {
    const std::string alias = item.key();
    const value& m = item.value();  // (named, not a structured binding: lambdas below capture it)
    const std::string at = "models." + alias;
    if (!m.is_object()) return bad(at, "must be a mapping");
    for (const auto& [k, _] : m.items()) {
      if (std::find(known.begin(), known.end(), k) == known.end()) return bad(at + "." + k, "unknown field");
    }
    auto str = [&](const char* key, std::string fallback) -> result<std::string> {
      if (!m.contains(key)) return fallback;
      if (!m[key].is_string()) return bad(at + "." + key, "must be a string");
      return m[key].get<std::string>();
    };
    auto num = [&](const char* key, double fallback, double min) -> result<double> {
      if (!m.contains(key)) return fallback;
      if (!m[key].is_number() || m[key].get<double>() < min) {
        return bad(at + "." + key, "must be a number ≥ " + std::to_string(static_cast<long long>(min)));
      }
      return m[key].get<double>();
    };
    model_route route;
    route.alias = alias;
    CHOIR_TRY(std::string kind, str("provider", ""));
    CHOIR_TRY(route.model, str("model", alias));
    // A client's model is asked once: a person may be deciding, and a refusal is not retried.
    CHOIR_TRY(double attempts, num("max_attempts", kind == "mcp-client" ? 1 : 3, 1));
    CHOIR_TRY(double backoff, num("backoff_ms", 500, 0));
    CHOIR_TRY(double max_backoff, num("max_backoff_ms", 8000, 0));
    CHOIR_TRY(route.usd_per_million_input, num("usd_per_million_input", 0, 0));
    CHOIR_TRY(route.usd_per_million_output, num("usd_per_million_output", 0, 0));
    route.max_attempts = static_cast<int>(std::min(attempts, 100.0));
    route.initial_backoff = std::chrono::milliseconds(static_cast<std::int64_t>(backoff));
    route.max_backoff = std::chrono::milliseconds(static_cast<std::int64_t>(max_backoff));
    if (m.contains("context_tokens")) {
      CHOIR_TRY(double ctx, num("context_tokens", 0, 1));
      route.context_tokens = static_cast<std::int64_t>(ctx);
    }
    if (kind == "scripted") {
      if (m.contains("script") == m.contains("rules"))
        return bad(at, "a scripted model needs `script` (a file) or `rules`");
      if (m.contains("rules")) {
        CHOIR_TRY(route.backend, scripted_from_json(value{{"kind", "ScriptedModel"}, {"rules", m["rules"]}}, at));
      } else {
        CHOIR_TRY(std::string file, str("script", ""));
        std::filesystem::path path(file);
        if (path.is_relative()) path = std::filesystem::path(base_dir) / path;
        CHOIR_TRY(std::string text, read_text(path));
        CHOIR_TRY(route.backend, scripted_from_yaml(text, path.string()));
      }
    } else if (kind == "openai" || kind == "openai-responses" || kind == "anthropic") {
      http_provider_options options;
      CHOIR_TRY(options.base_url,
                str("base_url", kind == "anthropic" ? "https://api.anthropic.com/v1" : "https://api.openai.com/v1"));
      CHOIR_TRY(std::string key_env, str("api_key_env", ""));
      if (!key_env.empty()) {
        const char* key = std::getenv(key_env.c_str());
        if (key == nullptr || *key == '\0')
          return bad(at + ".api_key_env", "the environment variable " + key_env + " is not set");
        options.api_key = key;
      }
      CHOIR_TRY(double timeout, num("timeout_ms", 120'000, 1));
      options.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(timeout));
      CHOIR_TRY(options.max_tokens_field, str("max_tokens_field", "max_tokens"));
      CHOIR_TRY(options.api_version, str("api_version", "2023-06-01"));
      CHOIR_TRY(double default_max, num("default_max_tokens", 4096, 1));
      options.default_max_tokens = static_cast<std::int64_t>(default_max);
      if (m.contains("headers")) {
        if (!m["headers"].is_object()) return bad(at + ".headers", "must be a mapping of strings");
        for (const auto& [h, v] : m["headers"].items()) {
          if (!v.is_string()) return bad(at + ".headers." + h, "must be a string");
          options.extra_headers.emplace_back(h, v.get<std::string>());
        }
      }
      if (auto url = net::parse_url(options.base_url); !url.ok()) return bad(at + ".base_url", url.err().message);
      if (kind == "openai")
        route.backend = openai_chat_provider(std::move(options));
      else if (kind == "openai-responses")
        route.backend = openai_responses_provider(std::move(options));
      else
        route.backend = anthropic_provider(std::move(options));
    } else if (kind == "mcp-client") {
      sampling_preferences preferences;
      if (m.contains("hints")) {
        if (!m["hints"].is_array()) return bad(at + ".hints", "must be a list of model names");
        for (const auto& h : m["hints"]) {
          if (!h.is_string() || h.get<std::string>().empty())
            return bad(at + ".hints", "must be a list of model names");
          preferences.hints.push_back(h.get<std::string>());
        }
      }
      for (auto [key, slot] : {std::pair{"cost_priority", &preferences.cost_priority},
                               std::pair{"speed_priority", &preferences.speed_priority},
                               std::pair{"intelligence_priority", &preferences.intelligence_priority}}) {
        if (!m.contains(key)) continue;
        if (!m[key].is_number() || m[key].get<double>() < 0 || m[key].get<double>() > 1) {
          return bad(at + "." + key, "must be a number from 0 to 1");
        }
        *slot = m[key].get<double>();
      }
      route.backend = sampling_provider(g->samplers_, std::move(preferences));
    } else {
      return bad(at + ".provider", "must be scripted, openai, openai-responses, anthropic or mcp-client");
    }
    g->add(std::move(route));
  }
  return g;
}

}  // namespace choir::models
