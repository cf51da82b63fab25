#include "choir/runtime/mcp_servers.hpp"
#include "choir/runtime/mcp_sampling.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <set>

#include "choir/kernel/audit.hpp"
#include "choir/mcp/client.hpp"
#include "choir/models/gateway.hpp"
#include "choir/runtime/actions/services.hpp"
#include "choir/tools/builtin.hpp"
#include "choir/tools/tool.hpp"

namespace choir::runtime {
namespace {

error bad(const std::string& where, const std::string& why) {
  return make_error(core_errc::invalid_argument, where + ": " + why);
}

bool server_name_ok(const std::string& name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

/// MCP's rule for tool names: 1–128 of `[A-Za-z0-9_.-]`.
bool tool_name_ok(const std::string& name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-';
  });
}

/// `${VAR}` from the environment; a variable that is not set is an error (a key left empty
/// would fail later, at the server, less clearly).
result<std::string> expand(const std::string& text, const std::string& where) {
  std::string out;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto open = text.find("${", at);
    if (open == std::string::npos) break;
    const auto close = text.find('}', open);
    if (close == std::string::npos) return bad(where, "an unclosed ${");
    out += text.substr(at, open - at);
    const std::string name = text.substr(open + 2, close - open - 2);
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return bad(where, "the environment variable " + name + " is not set");
    out += v;
    at = close + 1;
  }
  out += text.substr(at);
  return out;
}

result<std::vector<std::string>> string_list(const value& v, const std::string& where) {
  if (!v.is_array()) return bad(where, "expected a list of strings");
  std::vector<std::string> out;
  for (const auto& item : v) {
    if (!item.is_string()) return bad(where, "expected a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

result<std::vector<std::pair<std::string, std::string>>> string_map(const value& v, const std::string& where) {
  if (!v.is_object()) return bad(where, "expected a mapping of names to strings");
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, item] : v.items()) {
    if (!item.is_string() && !item.is_number()) return bad(where + "." + k, "expected a string");
    CHOIR_TRY(std::string text, expand(item.is_string() ? item.get<std::string>() : dump_json(item), where + "." + k));
    out.emplace_back(k, std::move(text));
  }
  return out;
}

std::filesystem::path from_base(const std::filesystem::path& base, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative()) p = base / p;
  return std::filesystem::weakly_canonical(std::filesystem::absolute(p));
}

}  // namespace

result<std::vector<mcp_server_config>> parse_mcp_servers(const value& document, const std::filesystem::path& base) {
  if (!document.is_object() || document.value("kind", std::string()) != "McpServers") {
    return bad("document", "expected kind: McpServers");
  }
  for (const auto& [k, _] : document.items()) {
    if (k != "kind" && k != "apiVersion" && k != "servers") return bad(k, "unknown field (kind, servers)");
  }
  if (!document.contains("servers") || !document["servers"].is_object()) {
    return bad("servers", "expected a mapping of server names to servers");
  }
  std::vector<mcp_server_config> out;
  for (const auto& [name, spec] : document["servers"].items()) {
    const std::string where = "servers." + name;
    if (!server_name_ok(name)) return bad(where, "a server name is lowercase letters, digits, '_' and '-'");
    if (!spec.is_object()) return bad(where, "expected a mapping");
    mcp_server_config c;
    c.name = name;
    for (const auto& [field, v] : spec.items()) {
      const std::string at = where + "." + field;
      if (field == "command") {
        CHOIR_TRY(auto args, string_list(v, at));
        if (args.empty() || args.front().empty()) return bad(at, "needs at least the program");
        for (auto& a : args) {
          if (a.starts_with("./") || a.starts_with("../")) a = from_base(base, a).string();
          c.command.push_back(std::move(a));
        }
      } else if (field == "env") {
        CHOIR_TRY(c.env, string_map(v, at));
      } else if (field == "sandbox") {
        if (!v.is_boolean()) return bad(at, "expected true or false");
        c.sandbox = v.get<bool>();
      } else if (field == "read_only") {
        CHOIR_TRY(auto dirs, string_list(v, at));
        for (const auto& d : dirs) {
          const auto p = from_base(base, d);
          if (!std::filesystem::is_directory(p)) return bad(at, p.string() + " is not a folder");
          c.read_only.push_back(p);
        }
      } else if (field == "workspace") {
        if (!v.is_string()) return bad(at, "expected a folder");
        c.workspace = from_base(base, v.get<std::string>());
      } else if (field == "url") {
        if (!v.is_string()) return bad(at, "expected http(s)://host[:port]/path");
        CHOIR_TRY(c.url, expand(v.get<std::string>(), at));
        if (!c.url.starts_with("http://") && !c.url.starts_with("https://")) {
          return bad(at, "expected http(s)://host[:port]/path");
        }
      } else if (field == "headers") {
        CHOIR_TRY(c.headers, string_map(v, at));
      } else if (field == "timeout_ms") {
        if (!v.is_number_integer() || v.get<std::int64_t>() <= 0) return bad(at, "expected a positive integer");
        c.timeout = std::chrono::milliseconds(v.get<std::int64_t>());
      } else if (field == "idempotent") {
        CHOIR_TRY(c.idempotent, string_list(v, at));
      } else if (field == "only") {
        CHOIR_TRY(c.only, string_list(v, at));
      } else {
        return bad(at,
                   "unknown field (command, env, sandbox, read_only, workspace, url, headers, timeout_ms, "
                   "idempotent, only)");
      }
    }
    if (c.command.empty() == c.url.empty()) return bad(where, "needs exactly one of command (stdio) and url (HTTP)");
    out.push_back(std::move(c));
  }
  return out;
}

struct mcp_servers::changes {
  std::mutex mutex;
  std::condition_variable changed;
  std::set<std::string> servers;  ///< names of servers whose tool list changed
  bool stopping = false;

  void add(const std::string& server) {
    {
      std::lock_guard lock(mutex);
      servers.insert(server);
    }
    changed.notify_one();
  }
};

/// A server's client, restarted if it has ended (a stdio server that exited between calls).
struct mcp_servers::connection {
  mcp_server_config config;
  std::shared_ptr<changes> tools_changed;  ///< told when the server says its tool list changed
  std::filesystem::path workspace;
  /// Sampling requests go to these services (set once they exist).
  struct sampling_route {
    std::mutex mutex;
    std::weak_ptr<const action_services> services;
    std::map<std::string, int> asked;  ///< per tool call: how many times it sampled
  };
  std::shared_ptr<sampling_route> route = std::make_shared<sampling_route>();
  std::mutex mutex;
  std::shared_ptr<mcp::client> client;

  result<std::shared_ptr<mcp::client>> ensure() {
    std::lock_guard lock(mutex);
    if (client && !client->closed()) return client;
    if (client) client->close();
    CHOIR_TRY(auto fresh, connect());
    client = std::move(fresh);
    return client;
  }

  result<std::shared_ptr<mcp::client>> connect() {
    mcp::client_options options;
    options.request_timeout = config.timeout;
    options.on_sampling = [route = route](const value& params, const std::vector<std::string>& tags) {
      return sample(*route, params, tags);
    };
    options.sampling_with_tools = true;  // the gateway's models take tools, and their calls go back
    // On the client's reading thread: only noted here; the import runs on the servers' own thread.
    options.on_tools_changed = [queue = tools_changed, name = config.name] {
      if (queue) queue->add(name);
    };
    std::unique_ptr<mcp::transport> channel;
    if (!config.url.empty()) {
      channel = mcp::http_transport({.url = config.url, .headers = config.headers});
    } else if (config.sandbox) {
      if (::access("/usr/bin/bwrap", X_OK) != 0) {
        return make_error(tools::tool_errc::sandbox_unavailable,
                          "MCP server " + config.name +
                              ": bubblewrap is not installed (Debian: bubblewrap); stdio servers run in its "
                              "sandbox unless the server says sandbox: false");
      }
      options.roots = {"file:///workspace"};
      channel =
          mcp::stdio_transport({.argv = tools::sandbox_command(config.command, workspace,
                                                               {.read_only = config.read_only, .env = config.env})});
    } else {
      options.roots = {"file://" + workspace.string()};
      channel = mcp::stdio_transport({.argv = config.command, .env = config.env, .cwd = workspace.string()});
    }
    auto connected = mcp::client::connect(std::move(channel), std::move(options));
    if (!connected.ok()) {
      return make_error(connected.err().code, "MCP server " + config.name + ": " + connected.err().message);
    }
    return std::shared_ptr<mcp::client>(std::move(connected).value());
  }

  /// A `sampling/createMessage` from the server, for the one run whose call is in flight.
  static result<value> sample(sampling_route& route, const value& params, const std::vector<std::string>& tags) {
    auto services = route.services.lock();
    if (!services || !services->gate || !services->models) {
      return make_error(core_errc::invalid_argument, "this ChoirOS process has no model gateway to sample with");
    }
    if (tags.size() != 1) {
      return make_error(core_errc::invalid_argument,
                        tags.empty() ? "sampling is answered only while a run's tool call is in flight"
                                     : "several runs are calling this server at once: sampling cannot tell whose "
                                       "model policy applies");
    }
    const auto space = tags.front().find(' ');
    const std::string run_id = tags.front().substr(0, space);
    const std::string call_key = space == std::string::npos ? run_id : tags.front().substr(space + 1);
    const auto run = services->gate->admitted(run_id);
    if (!run) return make_error(core_errc::invalid_argument, "run " + run_id + " is not admitted");

    CHOIR_TRY(models::chat_request request, sampled_request(params));
    request.run_id = run_id;
    // A hint the contract allows picks the model; otherwise the contract's first.
    std::string alias;
    if (params.contains("modelPreferences") && params["modelPreferences"].is_object()) {
      for (const auto& h : params["modelPreferences"].value("hints", value::array())) {
        const std::string name = h.is_object() ? h.value("name", std::string()) : std::string();
        const auto& allowed = run->contract->models_allowed;
        if (!name.empty() && std::find(allowed.begin(), allowed.end(), name) != allowed.end()) {
          alias = name;
          break;
        }
      }
    }
    int n = 0;
    {
      std::lock_guard lock(route.mutex);
      n = ++route.asked[call_key];
    }
    const gated_call call{.key = call_key + "/sampling/" + std::to_string(n),
                          .run_id = run_id,
                          .capability = "model.call",
                          .argument = alias,
                          .arguments = value::object()};
    CHOIR_TRY(auto grant, services->gate->check_model(call, models::estimate_tokens(request)));
    request.model = grant.aliases.front();
    if (grant.max_answer_tokens) {
      request.max_tokens = std::min(request.max_tokens.value_or(*grant.max_answer_tokens), *grant.max_answer_tokens);
    }
    const std::vector<std::string> fallbacks(grant.aliases.begin() + 1, grant.aliases.end());
    gated_call granted = call;
    granted.argument = request.model;
    CHOIR_TRY(auto performed, services->gate->run_effect(
                                  granted,
                                  {.kind = "model:" + request.model,
                                   .request = kernel::redact(models::to_json(request), run->contract->log_fields),
                                   .idempotent = true,
                                   .record_failure = false},
                                  [&]() -> result<value> {
                                    CHOIR_TRY(auto answer, services->models->complete(request, fallbacks));
                                    return models::to_json(answer);
                                  }));
    CHOIR_TRY(auto answer, models::response_from_json(performed.outcome));
    if (performed.source != store::effect_source::recorded) {
      services->gate->charge(run_id, answer.usage.total(), answer.cost_usd);
    }
    return sampling_result(answer);
  }
};

namespace {

/// One of a server's tools, as a tool of the registry named `mcp.<server>.<tool>`.
class mcp_tool final : public tools::tool {
 public:
  mcp_tool(tools::tool_spec spec, std::shared_ptr<mcp_servers::connection> connection, std::string remote_name)
      : tool(std::move(spec)), connection_(std::move(connection)), remote_name_(std::move(remote_name)) {}

  result<value> call(const value& arguments, const tools::tool_context& context) override {
    auto client = connection_->ensure();
    if (!client.ok()) return make_error(tools::tool_errc::failed, client.err().message);
    mcp::call_options options;
    options.tag = context.run_id + " " + context.idempotency_key;
    auto answer = (*client)->call_tool(remote_name_, arguments, options);
    {  // the call is over: its sampling count is not needed any more
      std::lock_guard lock(connection_->route->mutex);
      connection_->route->asked.erase(context.idempotency_key);
    }
    if (!answer.ok()) return make_error(tools::tool_errc::failed, answer.err().message);
    if (answer->is_error) return make_error(tools::tool_errc::failed, answer->text());
    // The text is what a model reads; blocks of other kinds (images, resource links) are kept as
    // the server sent them, and so is structured content.
    value out{{"text", answer->text()}};
    const bool only_text = std::all_of(answer->content.begin(), answer->content.end(), [](const value& b) {
      return b.is_object() && b.value("type", std::string()) == "text";
    });
    if (!only_text) out["content"] = answer->content;
    if (!answer->structured.is_null()) out["structured"] = answer->structured;
    return out;
  }

 private:
  std::shared_ptr<mcp_servers::connection> connection_;
  std::string remote_name_;
};

std::string lowercase(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

result<std::shared_ptr<mcp_servers>> mcp_servers::start(std::vector<mcp_server_config> configs,
                                                        tools::tool_registry& registry,
                                                        const std::filesystem::path& state) {
  std::shared_ptr<mcp_servers> servers(new mcp_servers());
  servers->registry_ = &registry;
  servers->changes_ = std::make_shared<changes>();
  for (auto& config : configs) {
    auto c = std::make_shared<connection>();
    c->workspace = config.workspace.empty() ? state / "mcp" / config.name : config.workspace;
    std::error_code ec;
    std::filesystem::create_directories(c->workspace, ec);
    if (ec) return make_error(core_errc::io_error, c->workspace.string() + ": " + ec.message());
    c->workspace = std::filesystem::canonical(c->workspace, ec);
    c->config = std::move(config);
    c->tools_changed = servers->changes_;
    if (auto imported = servers->import(c); !imported.ok()) {
      std::lock_guard lock(c->mutex);
      if (c->client) c->client->close();
      return std::move(imported).err();
    }
    servers->connections_.push_back(c);
  }
  servers->reimporter_ = std::thread([s = servers.get()] { s->reimport_loop(); });
  return servers;
}

result<void> mcp_servers::import(const std::shared_ptr<connection>& c) {
  CHOIR_TRY(auto client, c->ensure());
  const auto& cfg = c->config;
  auto listed = client->list_tools();
  if (!listed.ok()) return make_error(listed.err().code, "MCP server " + cfg.name + ": " + listed.err().message);
  std::vector<std::string> skipped;
  std::vector<std::shared_ptr<tools::tool>> imported;
  for (const auto& t : *listed) {
    if (!cfg.only.empty() && std::find(cfg.only.begin(), cfg.only.end(), t.name) == cfg.only.end()) continue;
    if (!tool_name_ok(t.name)) {
      skipped.push_back("MCP server " + cfg.name + ": tool '" + t.name + "' skipped: not a valid MCP tool name");
      continue;
    }
    std::string description = t.title.empty() ? t.description : t.title + ". " + t.description;
    tools::tool_spec spec{
        .name = "mcp." + cfg.name + "." + lowercase(t.name),
        .description = std::move(description),
        .input_schema = t.input_schema,
        .idempotent = std::find(cfg.idempotent.begin(), cfg.idempotent.end(), t.name) != cfg.idempotent.end()};
    imported.push_back(std::make_shared<mcp_tool>(std::move(spec), c, t.name));
  }
  for (auto& why : registry_->replace_prefix("mcp." + cfg.name + ".", std::move(imported))) {
    skipped.push_back("MCP server " + cfg.name + ": skipped: " + why);
  }
  std::lock_guard lock(mutex_);
  warnings_.insert(warnings_.end(), skipped.begin(), skipped.end());
  return {};
}

void mcp_servers::reimport_loop() {
  for (;;) {
    std::set<std::string> changed;
    {
      std::unique_lock lock(changes_->mutex);
      changes_->changed.wait(lock, [&] { return changes_->stopping || !changes_->servers.empty(); });
      if (changes_->stopping) return;
      changed.swap(changes_->servers);
    }
    for (const auto& c : connections_) {
      if (changed.count(c->config.name) == 0) continue;
      auto imported = import(c);
      std::lock_guard lock(mutex_);
      if (imported.ok()) {
        ++reimports_;
      } else {  // the old tools stay; a call to one that is gone fails at the server
        warnings_.push_back("MCP server " + c->config.name +
                            ": its changed tools could not be listed: " + imported.err().message);
      }
    }
  }
}

std::vector<std::string> mcp_servers::warnings() const {
  std::lock_guard lock(mutex_);
  return warnings_;
}

std::size_t mcp_servers::reimports() const {
  std::lock_guard lock(mutex_);
  return reimports_;
}

mcp_servers::~mcp_servers() { stop(); }

void mcp_servers::route_sampling(const std::shared_ptr<const action_services>& services) {
  for (const auto& c : connections_) {
    std::lock_guard lock(c->route->mutex);
    c->route->services = services;
  }
}

std::vector<std::string> mcp_servers::describe() const {
  std::vector<std::string> out;
  for (const auto& c : connections_) {
    std::lock_guard lock(c->mutex);
    std::string line = c->config.name + ": ";
    if (c->client) {
      line += c->client->describe() + " (MCP " + c->client->protocol_version() + ", " +
              c->client->server_info().value("name", std::string("?")) + ")";
    } else {
      line += "not connected";
    }
    out.push_back(std::move(line));
  }
  return out;
}

void mcp_servers::stop() {
  if (changes_) {
    {
      std::lock_guard lock(changes_->mutex);
      changes_->stopping = true;
    }
    changes_->changed.notify_all();
  }
  if (reimporter_.joinable() && reimporter_.get_id() != std::this_thread::get_id()) reimporter_.join();
  for (const auto& c : connections_) {
    std::lock_guard lock(c->mutex);
    if (c->client) c->client->close();
  }
}

}  // namespace choir::runtime
