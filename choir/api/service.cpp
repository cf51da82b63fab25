#include "choir/api/service.hpp"

#include "choir/api/mcp_endpoint.hpp"
#include "choir/models/gateway.hpp"
#include "choir/tools/tool.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <fstream>
#include <limits>
#include <sstream>

#include "choir/core/id.hpp"
#include "choir/core/json_access.hpp"
#include "choir/graph/export.hpp"
#include "choir/kernel/contract.hpp"
#include "choir/kernel/policy.hpp"
#include "choir/runtime/errors.hpp"
#include "choir/runtime/run_tree.hpp"
#include "choir/store/group_commit.hpp"

namespace choir::api {

extern const std::string_view openapi_document;  // openapi.json, compiled in

namespace {

using namespace std::string_view_literals;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

/// Why `inputs` do not fit `action`: an input it does not take, or (with `all_required`) a
/// required one missing. Nothing if they fit.
std::optional<std::string> misfit_inputs(const graph::action_spec& action, const value& inputs, bool all_required) {
  if (all_required) {
    std::string missing;
    for (const auto& in : action.inputs) {
      if (in.required && !inputs.contains(in.name)) missing += (missing.empty() ? "" : ", ") + in.name;
    }
    if (!missing.empty()) return "action " + action.name + " needs the inputs " + missing;
  }
  for (const auto& item : inputs.items()) {
    const std::string& key = item.key();
    const bool known =
        std::any_of(action.inputs.begin(), action.inputs.end(), [&](const auto& in) { return in.name == key; });
    if (!known) return "action " + action.name + " takes no input '" + key.substr(0, 128) + "'";
  }
  return std::nullopt;
}

http_response json_response(int status, const value& body) {
  return {.status = status, .body = dump_json(body), .headers = {}};
}

/// Ids in paths: what the store makes (and agent names): `[A-Za-z0-9_.-]`, 1–128 characters.
bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
  });
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  return parts;
}

/// The value of `key` in a query string, undecoded (the API's query values are numbers).
std::optional<std::string_view> query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

/// A non-negative integer query parameter within [lo, hi], its default if absent, or an error.
result<std::int64_t> number_param(std::string_view query, std::string_view key, std::int64_t fallback, std::int64_t lo,
                                  std::int64_t hi) {
  const auto raw = query_param(query, key);
  if (!raw) return fallback;
  std::int64_t n = 0;
  if (raw->empty() || raw->size() > 18 ||
      !std::all_of(raw->begin(), raw->end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return make_error(core_errc::invalid_argument, "'" + std::string(key) + "' must be a whole number");
  }
  for (char c : *raw) n = n * 10 + (c - '0');
  if (n < lo || n > hi) {
    return make_error(core_errc::invalid_argument,
                      "'" + std::string(key) + "' must be " + std::to_string(lo) + "–" + std::to_string(hi));
  }
  return n;
}

std::string content_type_of(const std::filesystem::path& p) {
  const auto ext = p.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".json" || ext == ".map") return "application/json";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

constexpr const char* no_ui_page = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ChoirOS</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>ChoirOS is running</h1>
<p>The API answers under <code>/api/v1</code> (docs/api.md), but the web desktop has not been built.
Build it and restart <code>choir serve</code>:</p>
<pre>npm ci --prefix web &amp;&amp; npm run build --prefix web</pre>
<p>(<code>./scripts/setup.sh</code> does this too), or point <code>choir serve --web DIR</code> at a built copy.</p>
</body></html>
)";

/// The chat so far (docs/api.md, "Conversations and chat messages").
value chat_messages(const std::vector<store::step_entry>& steps, const std::string& listening) {
  value out = value::array();
  for (const auto& step : steps) {
    if (step.action == listening && step.inputs.is_object() && step.inputs.contains("message")) {
      const auto& m = step.inputs["message"];
      out.push_back({{"role", "user"},
                     {"text", m.is_string() ? m.get<std::string>() : dump_json(m)},
                     {"sequence_id", step.sequence_id}});
    }
    if (!step.delta.is_array()) continue;
    for (const auto& op : step.delta) {
      if (string_at(op, "op") == "set" && string_at(op, "key") == "reply" && op.contains("value") &&
          op["value"].is_string()) {
        out.push_back({{"role", "agent"}, {"text", op["value"]}, {"sequence_id", step.sequence_id}});
      }
    }
  }
  return out;
}

/// The HTTP status and code of an error from below.
std::pair<int, const char*> status_for(const error& e) {
  const auto& c = e.code;
  if (c == core_errc::not_found || c == runtime::runtime_errc::not_found || c == store::store_errc::run_not_found ||
      c == store::store_errc::step_not_found) {
    return {404, "not_found"};
  }
  if (c == store::store_errc::run_leased || c == runtime::runtime_errc::rejected) return {409, "conflict"};
  if (c == kernel::kernel_errc::not_admitted || c == kernel::kernel_errc::denied ||
      c == kernel::kernel_errc::no_contract) {
    return {403, "forbidden"};
  }
  if (c == core_errc::invalid_argument || c == runtime::runtime_errc::invalid_argument ||
      c == store::store_errc::invalid_argument) {
    return {400, "bad_request"};
  }
  if (c == runtime::runtime_errc::overloaded || c == runtime::runtime_errc::unavailable ||
      c == runtime::runtime_errc::timed_out) {
    return {503, "unavailable"};
  }
  return {500, "internal"};
}

}  // namespace

http_response error_response(int status, std::string_view code, std::string_view message) {
  return json_response(status, value{{"error", {{"code", std::string(code)}, {"message", std::string(message)}}}});
}

value service::tool_json(const tools::tool_spec& t) {
  return value{{"name", t.name},
               {"description", t.description},
               {"input_schema", t.input_schema},
               {"output_schema", t.output_schema},
               {"idempotent", t.idempotent}};
}

value service::agent_tools(const runtime::agent_definition& agent) const {
  value list = value::array();
  if (!agent.contract || !opts_.services || !opts_.services->tools) return list;
  for (const auto& t : opts_.services->tools->list()) {
    if (agent.contract->allows(t.name)) list.push_back(tool_json(t));
  }
  return list;
}

value service::agent_models(const runtime::agent_definition& agent) const {
  value list = value::array();
  if (!agent.contract) return list;
  for (const auto& alias : agent.contract->models_allowed) {
    const bool served = opts_.services && opts_.services->models && opts_.services->models->find(alias) != nullptr;
    list.push_back({{"alias", alias}, {"served", served}});
  }
  return list;
}

service::service(service_options options)
    : opts_(std::move(options)),
      mcp_(std::make_unique<mcp_endpoint>(opts_, [this](std::string_view name) { return find_agent(name); })) {
  load_stored_agents();
}

namespace {
/// The store document registered agent files are kept in: `{"NAME": "the file's text", …}`.
constexpr std::string_view agents_document = "agents";
}  // namespace

std::shared_ptr<const runtime::agent_definition> service::find_agent(std::string_view name) const {
  std::shared_lock lock(agents_mutex_);
  auto it = opts_.agents.find(name);
  return it == opts_.agents.end() ? nullptr : it->second;
}

std::map<std::string, std::shared_ptr<const runtime::agent_definition>, std::less<>> service::agents() const {
  std::shared_lock lock(agents_mutex_);
  return opts_.agents;
}

void service::load_stored_agents() {
  if (!opts_.load_agent || !opts_.store) return;
  auto doc = opts_.store->get_document(agents_document);
  if (!doc.ok()) {
    stored_agent_errors_.push_back("the registered agents could not be read: " + doc.err().message);
    return;
  }
  if (!*doc) return;
  const value files = value::parse((*doc)->body, nullptr, false);
  if (!files.is_object()) {
    stored_agent_errors_.emplace_back("the store's document 'agents' is not a JSON object");
    return;
  }
  for (const auto& [name, text] : files.items()) {
    if (!text.is_string()) {
      stored_agent_errors_.push_back("registered agent " + name + ": its file is not a string");
      continue;
    }
    auto agent = opts_.load_agent(text.get<std::string>(), "registered agent " + name);
    if (!agent.ok()) {
      stored_agent_errors_.push_back(agent.err().message);
      continue;
    }
    if (opts_.services && opts_.services->agents) opts_.services->agents->add(*agent);
    opts_.agents[name] = std::move(agent).value();
  }
}

void service::post_turn(const std::string& run_id, runtime::conversation_directory::request req) {
  auto hub = opts_.hub;
  opts_.directory->post(run_id, std::move(req), [hub, run_id](result<runtime::turn_result> out) {
    if (!out.ok()) hub->publish_error(run_id, out.err().message);  // it never became a turn
  });
}

result<store::run_record> service::start_hosted(const std::shared_ptr<const runtime::agent_definition>& agent,
                                                const identity& who, const value& inputs) {
  const std::string run_id = new_id().to_string();
  const runtime::principal owner{who.tenant, who.user};
  // Created and admitted now (or refused here); from here on it runs on this server's actors.
  runtime::run_hosting hosting;
  hosting.gate = opts_.gate;
  CHOIR_TRY(auto app,
            runtime::start_run(*opts_.store, *agent,
                               runtime::run_start{.run_id = run_id, .who = owner, .inputs = inputs}, hosting));
  app.reset();
  CHOIR_CHECK(runtime::settle_run(*opts_.store, run_id, "running", opts_.gate.get()));
  CHOIR_CHECK(opts_.directory->host(run_id, agent, owner));
  post_turn(run_id, {runtime::conversation_directory::request::kind::resume, inputs});
  return opts_.store->get_run(run_id);
}

value service::agent_detail(const runtime::agent_definition& agent) const {
  return value{{"name", agent.name},
               {"description", agent.doc.description},
               {"version", agent.version},
               {"contract", agent.contract ? agent.contract->to_json() : value()},
               {"source", agent.source},
               {"mermaid", graph::to_mermaid(*agent.graph)},
               {"graph", agent.graph->describe()},
               {"listening_action", agent.listening_action()},
               {"tools", agent_tools(agent)},
               {"models", agent_models(agent)}};
}

http_response service::register_agent(const http_request& request, const identity& who) {
  if (!opts_.load_agent) return error_response(405, "method_not_allowed", "this server does not take agent files");
  if (request.body.size() > opts_.max_body) {
    return error_response(413, "bad_request", "the agent file is larger than the limit");
  }
  std::string text;
  const std::string_view type = request.content_type;
  if (type.starts_with("application/json")) {
    const value body = value::parse(request.body, nullptr, false);
    if (!body.is_object() || !body.contains("source") || !body["source"].is_string()) {
      return error_response(400, "bad_request", "\"source\" (a string) is the agent file's YAML");
    }
    text = body["source"].get<std::string>();
  } else if (type.starts_with("application/yaml") || type.starts_with("application/x-yaml") ||
             type.starts_with("text/yaml")) {
    text = request.body;
  } else {
    return error_response(415, "unsupported_media_type",
                          "send the agent file as application/yaml, or as JSON {\"source\": \"…\"}");
  }
  if (text.empty()) return error_response(400, "bad_request", "the agent file is empty");
  auto loaded = opts_.load_agent(text, "the agent file");
  if (!loaded.ok()) return error_response(400, "invalid_agent", loaded.err().message);
  auto agent = std::move(loaded).value();
  if (!agent->contract) {
    return error_response(400, "invalid_agent", "the file has no AgentContract, so nothing would admit its runs");
  }
  if (!valid_id(agent->name)) {
    return error_response(400, "invalid_agent", "an agent's name is letters, digits, '_', '-' and '.'");
  }
  if (!opts_.gate) return error_response(503, "unavailable", "this server has no kernel gate");
  // Every tenant's users see the agents of the server: registering one is granted by the policy.
  if (auto may = opts_.gate->authorize(runtime::principal{who.tenant, who.user}, "agent.register", agent->name,
                                       value{{"version", agent->version}});
      !may.ok()) {
    const auto [status, code] = status_for(may.err());
    return error_response(status, code, may.err().message);
  }
  if (auto current = find_agent(agent->name); current && current->version == agent->version) {
    value out = agent_detail(*current);
    out["registered"] = false;  // this version is served already
    return json_response(200, out);
  }
  // Kept in the store first, so that the agent is served again after a restart.
  for (int attempt = 0;; ++attempt) {
    auto doc = opts_.store->get_document(agents_document);
    if (!doc.ok()) return error_response(500, "internal", doc.err().message);
    value files = value::object();
    std::int64_t version = 0;
    if (*doc) {
      files = value::parse((*doc)->body, nullptr, false);
      if (!files.is_object()) return error_response(500, "internal", "the store's document 'agents' is damaged");
      version = (*doc)->version;
    }
    files[agent->name] = text;
    auto put = opts_.store->put_document(agents_document, dump_json(files), version);
    if (put.ok()) break;
    if (put.err().code != store::store_errc::conflict || attempt >= 8) {
      return error_response(500, "internal", put.err().message);
    }
  }
  if (opts_.services && opts_.services->agents) opts_.services->agents->add(agent);
  {
    std::unique_lock lock(agents_mutex_);
    opts_.agents[agent->name] = agent;
  }
  value out = agent_detail(*agent);
  out["registered"] = true;
  return json_response(201, out);
}

service::~service() = default;

void service::close_mcp_sessions() { mcp_->close_all(); }

std::optional<identity> service::caller(const http_request& request) const {
  std::string_view auth = request.authorization;
  constexpr auto bearer = "Bearer "sv;
  if (auth.size() > bearer.size() && iequals(auth.substr(0, bearer.size()), bearer)) {
    return authenticate(auth.substr(bearer.size()));
  }
  return std::nullopt;
}

void service::allow_host(std::string host_port) { opts_.allowed_hosts.push_back(std::move(host_port)); }

void service::refresh_policy() const {
  if (opts_.policy_document.empty() || !opts_.gate) return;
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  auto last = policy_checked_ms_.load();
  if (last != 0 && now - last < 1'000) return;
  if (!policy_checked_ms_.compare_exchange_strong(last, now)) return;  // another thread is looking
  auto doc = opts_.store->get_document(opts_.policy_document);
  if (!doc.ok() || !*doc || (*doc)->version == policy_version_.load()) return;
  auto loaded = kernel::policy::load((*doc)->body, "stored policy v" + std::to_string((*doc)->version));
  if (!loaded.ok()) return;  // `choir policy apply` stores only valid policies; keep the one in force
  opts_.gate->set_policy(std::make_shared<const kernel::policy>(std::move(loaded).value()));
  policy_version_.store((*doc)->version);
}

std::optional<identity> service::authenticate(std::string_view token) const {
  if (token.empty() || token.size() > 256 || !opts_.gate) return std::nullopt;
  refresh_policy();
  auto policy = opts_.gate->current_policy();
  if (!policy) return std::nullopt;
  auto found = policy->authenticate(token);
  if (!found) return std::nullopt;
  return identity{found->tenant, found->user};
}

stream_context service::stream_settings() const {
  return stream_context{.hub = opts_.hub, .store = opts_.store, .authenticate = [this](std::string_view token) {
                          return authenticate(token);
                        }};
}

std::optional<http_response> service::check_origin(const http_request& request) const {
  const bool host_ok = std::any_of(opts_.allowed_hosts.begin(), opts_.allowed_hosts.end(),
                                   [&](const std::string& h) { return iequals(h, request.host); });
  if (!host_ok) {
    return error_response(421, "misdirected_request",
                          "this server does not answer to Host '" + request.host.substr(0, 200) + "'");
  }
  if (!request.origin.empty()) {
    const bool origin_ok =
        std::any_of(opts_.allowed_hosts.begin(), opts_.allowed_hosts.end(), [&](const std::string& h) {
          return iequals("http://" + h, request.origin) ||
                 iequals("https://" + h, request.origin);  // behind a TLS proxy
        });
    if (!origin_ok) return error_response(403, "forbidden_origin", "requests from another origin are refused");
  }
  return std::nullopt;
}

http_response service::handle(const http_request& request) {
  if (auto refused = check_origin(request)) return *refused;
  std::string_view target = request.target;
  const auto q = target.find('?');
  const auto path = target.substr(0, q);
  const auto query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  http_response out;
  if (path == "/metrics") {
    out = request.method == "GET" ? metrics() : error_response(405, "method_not_allowed", "GET /metrics");
  } else if (path == "/healthz") {
    out = request.method == "GET" || request.method == "HEAD"
              ? json_response(200, value{{"status", "ok"}})
              : error_response(405, "method_not_allowed", "GET /healthz");
  } else if (path == "/mcp") {
    if (auto who = caller(request)) {
      out = mcp_->handle(request, *who, query);
    } else {
      out = error_response(401, "unauthorized", "an API token is needed: Authorization: Bearer TOKEN");
      out.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"choir\"");
    }
    out.headers.emplace_back("Cache-Control", "no-store");
  } else if (path == "/api/v1" || path.starts_with("/api/v1/")) {
    out = route(request, path, query);
    out.headers.emplace_back("Cache-Control", "no-store");
  } else if (request.method != "GET" && request.method != "HEAD") {
    out = error_response(405, "method_not_allowed", "only GET is served outside /api/v1");
  } else {
    out = static_file(path);
  }
  out.headers.emplace_back("X-Content-Type-Options", "nosniff");
  const auto cls = static_cast<std::size_t>(out.status / 100);
  if (cls < responses_.size()) responses_[cls].fetch_add(1, std::memory_order_relaxed);
  return out;
}

http_response service::metrics() const {
  std::string m;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& samples) {
    m += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + samples;
  };
  std::string by_class;
  for (std::size_t c = 1; c < responses_.size(); ++c) {
    by_class += "choir_http_responses_total{class=\"" + std::to_string(c) + "xx\"} " +
                std::to_string(responses_[c].load()) + "\n";
  }
  metric("choir_http_responses_total", "counter", "HTTP responses by status class.", by_class);
  if (opts_.connections) {
    metric("choir_http_connections", "gauge", "Open HTTP and WebSocket connections.",
           "choir_http_connections " + std::to_string(opts_.connections()) + "\n");
  }
  metric("choir_stream_subscriptions", "gauge", "WebSocket subscriptions to runs.",
         "choir_stream_subscriptions " + std::to_string(opts_.hub->subscribers()) + "\n");
  metric("choir_stream_events_total", "counter", "Conversation events published (steps, turns, tokens).",
         "choir_stream_events_total " + std::to_string(opts_.hub->published()) + "\n");
  metric("choir_stream_frames_total", "counter", "Event frames handed to WebSocket connections.",
         "choir_stream_frames_total " + std::to_string(opts_.hub->delivered()) + "\n");
  metric("choir_conversations", "gauge", "Conversations this server hosts (active or passivated).",
         "choir_conversations " + std::to_string(opts_.directory->registered()) + "\n");
  metric("choir_agents", "gauge", "Agents served.", "choir_agents " + std::to_string(agents().size()) + "\n");
  if (opts_.committer) {
    metric("choir_step_commits_total", "counter", "Conversation steps committed through group commit.",
           "choir_step_commits_total " + std::to_string(opts_.committer->steps()) + "\n");
    metric("choir_step_commit_transactions_total", "counter",
           "Transactions those steps shared (steps per transaction: the batching).",
           "choir_step_commit_transactions_total " + std::to_string(opts_.committer->transactions()) + "\n");
  }
  metric("choir_mcp_sessions", "gauge", "Open MCP sessions at /mcp.",
         "choir_mcp_sessions " + std::to_string(mcp_->sessions()) + "\n");
  std::string decisions;
  const auto decided = opts_.gate ? opts_.gate->audit().decisions() : decltype(opts_.gate->audit().decisions()){};
  for (const auto& [what, count] : decided) {
    decisions += "choir_gate_decisions_total{kind=" + dump_json(value(what.first)) +
                 ",decision=" + dump_json(value(what.second)) + "} " + std::to_string(count) + "\n";
  }
  metric("choir_gate_decisions_total", "counter",
         "Audited kernel decisions of this process by kind and decision (call allow/deny, consent, effect outcome, "
         "admission, budget).",
         decisions);
  if (opts_.dispatcher) m += opts_.dispatcher->prometheus();
  return {.status = 200, .content_type = "text/plain; version=0.0.4; charset=utf-8", .body = m, .headers = {}};
}

http_response service::static_file(std::string_view path) const {
  std::error_code ec;
  const bool have_ui = !opts_.web_dir.empty() && std::filesystem::is_regular_file(opts_.web_dir / "index.html", ec);
  if (path == "/" || path == "/index.html") {
    if (!have_ui) return {.status = 200, .content_type = "text/html; charset=utf-8", .body = no_ui_page, .headers = {}};
    path = "/index.html";
  }
  if (!have_ui) return error_response(404, "not_found", "no such file");
  // Only plain names: no `..`, no escapes, no hidden files.
  const auto parts = split_path(path);
  if (parts.empty() || parts.size() > 8) return error_response(404, "not_found", "no such file");
  std::filesystem::path file = opts_.web_dir;
  for (auto part : parts) {
    if (part.front() == '.' || part.find_first_of("\\%:") != std::string_view::npos) {
      return error_response(404, "not_found", "no such file");
    }
    file /= std::string(part);
  }
  if (!std::filesystem::is_regular_file(file, ec)) return error_response(404, "not_found", "no such file");
  std::ifstream in(file, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  http_response out{.status = 200, .content_type = content_type_of(file), .body = body.str(), .headers = {}};
  if (file.extension() == ".html") {
    out.headers.emplace_back("Content-Security-Policy",
                             "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                             "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    out.headers.emplace_back("Cache-Control", "no-cache");
  } else if (parts.front() == "assets") {
    out.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");  // hashed names
  }
  return out;
}

http_response service::route(const http_request& request, std::string_view path, std::string_view query) {
  if (path == "/api/v1/openapi.json") {  // public: it describes, it holds nothing
    if (request.method != "GET") return error_response(405, "method_not_allowed", "GET only");
    return {.status = 200, .content_type = "application/json", .body = std::string(openapi_document), .headers = {}};
  }
  // Who is asking: a bearer token, never one in the URL.
  const std::optional<identity> who = caller(request);
  if (!who) {
    auto out = error_response(401, "unauthorized", "an API token is needed: Authorization: Bearer TOKEN");
    out.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"choir\"");
    return out;
  }
  const auto parts = split_path(path);  // "api", "v1", …
  const std::size_t n = parts.size();
  const auto& method = request.method;
  auto is = [&](std::string_view m, std::size_t count) { return method == m && n == count; };

  // The body of a POST: a JSON object.
  auto body_object = [&]() -> result<value> {
    if (request.body.size() > opts_.max_body) {
      return make_error(core_errc::invalid_argument, "the body is larger than the limit");
    }
    if (!request.content_type.starts_with("application/json")) {
      return make_error(core_errc::invalid_argument, "the body must be JSON (Content-Type: application/json)");
    }
    auto v = value::parse(request.body, nullptr, false);
    if (v.is_discarded()) return make_error(core_errc::invalid_argument, "the body is not valid JSON");
    if (!v.is_object()) return make_error(core_errc::invalid_argument, "the body must be a JSON object");
    return v;
  };
  // A run of the caller's tenant (another tenant's is as if it did not exist).
  auto own_run = [&](std::string_view id) -> result<store::run_record> {
    if (!valid_id(id)) return make_error(core_errc::not_found, "no run " + std::string(id.substr(0, 128)));
    auto run = opts_.store->get_run(id);
    if (!run.ok() || run->tenant != who->tenant) {
      if (!run.ok() && run.err().code != store::store_errc::run_not_found) return std::move(run).err();
      return make_error(core_errc::not_found, "no run " + std::string(id));
    }
    return run;
  };
  // Makes sure the directory hosts the run (after a restart it knows none).
  auto host_conversation = [&](const store::run_record& run) -> std::optional<http_response> {
    if (opts_.directory->contains(run.run_id)) return std::nullopt;
    auto agent = find_agent(run.agent);
    if (!agent) return error_response(409, "agent_unavailable", "this server does not have agent " + run.agent);
    if (auto added = opts_.directory->host(run.run_id, agent, runtime::principal{run.tenant, run.user}); !added.ok()) {
      return error_response(409, "not_conversable", added.err().message);
    }
    return std::nullopt;
  };
  auto fail = [](const error& e) {
    const auto [status, code] = status_for(e);
    return error_response(status, code, e.message);
  };

  if (n < 3) return error_response(404, "not_found", "no such route");
  const auto resource = parts[2];

  if (resource == "agents") {
    if (is("POST", 3)) return register_agent(request, *who);
    if (is("GET", 3)) {
      value list = value::array();
      for (const auto& [name, agent] : agents()) {
        value caps = value::array();
        value models = value::array();
        std::string latency = "SRT";
        if (agent->contract) {
          for (const auto& c : agent->contract->capabilities) caps.push_back(c.name);
          for (const auto& m : agent->contract->models_allowed) models.push_back(m);
          latency = agent->contract->to_json().value("class", value::object()).value("latency", "SRT");
        }
        list.push_back({{"name", name},
                        {"description", agent->doc.description},
                        {"latency", latency},
                        {"conversable", runtime::check_conversable(*agent, "message").ok()},
                        {"capabilities", caps},
                        {"models", models}});
      }
      return json_response(200, value{{"agents", list}});
    }
    if (is("GET", 4)) {
      auto agent = find_agent(parts[3]);
      if (!agent) return error_response(404, "not_found", "no agent " + std::string(parts[3]));
      return json_response(200, agent_detail(*agent));
    }
    return error_response(n <= 4 ? 405 : 404, n <= 4 ? "method_not_allowed" : "not_found",
                          n == 3 ? "GET the agents, or POST an agent file" : "GET only");
  }

  if (resource == "tools") {
    if (!is("GET", 3))
      return error_response(n == 3 ? 405 : 404, n == 3 ? "method_not_allowed" : "not_found", "GET only");
    value list = value::array();
    if (opts_.services && opts_.services->tools) {
      for (const auto& t : opts_.services->tools->list()) list.push_back(tool_json(t));
    }
    return json_response(200, value{{"tools", list}});
  }

  if (resource == "models") {
    if (!is("GET", 3))
      return error_response(n == 3 ? 405 : 404, n == 3 ? "method_not_allowed" : "not_found", "GET only");
    value list = value::array();
    if (opts_.services && opts_.services->models) {
      for (const auto& alias : opts_.services->models->aliases()) {
        const auto* route = opts_.services->models->find(alias);
        value m{{"alias", alias},
                {"model", route->model.empty() ? alias : route->model},
                {"context_tokens", route->context_tokens ? value(*route->context_tokens) : value()},
                {"usd_per_million_input", route->usd_per_million_input},
                {"usd_per_million_output", route->usd_per_million_output}};
        list.push_back(std::move(m));
      }
    }
    return json_response(200, value{{"models", list}});
  }

  if (resource == "conversations") {
    if (is("POST", 3)) {
      auto body = body_object();
      if (!body.ok())
        return error_response(request.body.size() > opts_.max_body ? 413 : 400, "bad_request", body.err().message);
      const auto name = string_at(*body, "agent");
      if (name.empty()) return error_response(400, "bad_request", "\"agent\" (a string) names the agent to talk to");
      auto agent = find_agent(name);
      if (!agent) return error_response(404, "not_found", "no agent " + name.substr(0, 128));
      if (auto ok = runtime::check_conversable(*agent, "message"); !ok.ok()) {
        return error_response(409, "not_conversable", ok.err().message);
      }
      // Its first turn, up to where it listens, runs on its actor: its steps arrive on the stream.
      auto run = start_hosted(agent, *who, value::object());
      if (!run.ok()) return fail(run.err());
      return json_response(
          201, value{{"run_id", run->run_id}, {"agent", name}, {"status", run->status}, {"run", run->to_json()}});
    }
    if (is("GET", 3)) {
      auto runs = opts_.store->list_runs(500, std::nullopt, {.tenant = who->tenant, .top_level = true});
      if (!runs.ok()) return fail(runs.err());
      value list = value::array();
      for (const auto& r : *runs) {
        auto agent = find_agent(r.agent);
        if (!agent || !runtime::check_conversable(*agent, "message").ok()) continue;
        list.push_back(r.to_json());
      }
      return json_response(200, value{{"conversations", list}});
    }
    if (is("GET", 4)) {
      auto run = own_run(parts[3]);
      if (!run.ok()) return fail(run.err());
      auto agent = find_agent(run->agent);
      const std::string listening = agent ? agent->listening_action() : std::string();
      // A fork's history starts with its parent's up to the fork point (and so on up the forks).
      std::vector<store::run_record> line{*run};
      while (line.size() < 16 && !line.back().parent_run.empty() && line.back().parent_step) {
        auto parent = opts_.store->get_run(line.back().parent_run);
        if (!parent.ok() || parent->tenant != who->tenant) break;
        line.push_back(std::move(parent).value());
      }
      std::vector<store::step_entry> history;
      for (auto r = line.rbegin(); r != line.rend(); ++r) {
        // Each run's own steps, up to where the next run of the line forked from it.
        const auto next = std::next(r) == line.rend() ? std::nullopt : std::next(r)->parent_step;
        const std::int64_t first = r->parent_step ? *r->parent_step + 1 : 0;
        const std::size_t room = 5'000 - std::min<std::size_t>(history.size(), 5'000);
        if (room == 0) break;
        auto steps = opts_.store->steps(r->run_id, first, room);
        if (!steps.ok()) return fail(steps.err());
        for (auto& step : *steps) {
          if (next && step.sequence_id > *next) break;
          history.push_back(std::move(step));
        }
      }
      return json_response(200, value{{"run", run->to_json()}, {"messages", chat_messages(history, listening)}});
    }
    if (n == 5 && parts[4] == "messages") {
      if (method != "POST") return error_response(405, "method_not_allowed", "POST a message");
      auto run = own_run(parts[3]);
      if (!run.ok()) return fail(run.err());
      auto body = body_object();
      if (!body.ok())
        return error_response(request.body.size() > opts_.max_body ? 413 : 400, "bad_request", body.err().message);
      if (!body->contains("text") || !(*body)["text"].is_string()) {
        return error_response(400, "bad_request", "\"text\" (a string) is the message");
      }
      const auto text = (*body)["text"].get<std::string>();
      if (text.empty()) return error_response(400, "bad_request", "the message is empty");
      if (auto agent = find_agent(run->agent); agent && !runtime::check_conversable(*agent, "message").ok()) {
        return error_response(409, "not_conversable", "agent " + agent->name + " takes no messages");
      }
      if (auto refused = host_conversation(*run)) return *refused;
      const std::string run_id = run->run_id;
      post_turn(run_id, {runtime::conversation_directory::request::kind::message, value(text)});
      return json_response(
          202, value{{"run_id", run_id}, {"cursor", run->last_sequence ? value(*run->last_sequence) : value()}});
    }
    return error_response(404, "not_found", "no such route");
  }

  if (resource == "audit") {
    if (is("GET", 4) && parts[3] == "verify") {
      auto report = kernel::verify_audit(*opts_.store, opts_.audit);
      if (!report.ok()) return fail(report.err());
      value out = report->to_json();
      out["ok"] = report->ok();
      return json_response(200, out);
    }
    if (!is("GET", 3)) return error_response(n <= 4 ? 405 : 404, n <= 4 ? "method_not_allowed" : "not_found", "GET");
    auto limit = number_param(query, "limit", 200, 1, 1000);
    if (!limit.ok()) return error_response(400, "bad_request", limit.err().message);
    std::string run_filter;
    if (auto raw = query_param(query, "run")) {
      if (!valid_id(*raw)) return error_response(400, "bad_request", "'run' is a run id");
      run_filter = std::string(*raw);
    }
    // 0 (absent): from the newest entry.
    auto before = number_param(query, "before", 0, 1, std::numeric_limits<std::int64_t>::max());
    if (!before.ok()) return error_response(400, "bad_request", before.err().message);
    // Newest first, until `limit` entries of the caller's tenant (and run) are found. An entry's
    // canonical text holds `"tenant":"…"` as written: an entry without it is skipped unparsed.
    const bool plain = std::all_of(who->tenant.begin(), who->tenant.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
    });
    const std::string tenant_needle = plain ? "\"tenant\":\"" + who->tenant + "\"" : std::string();
    const std::string run_needle = run_filter.empty() ? std::string() : "\"run\":\"" + run_filter + "\"";
    std::vector<value> newest;
    std::int64_t oldest = 0;
    bool more = false;
    auto scanned = opts_.store->scan_audit_back(*before, [&](const store::audit_view& row) {
      if (static_cast<std::int64_t>(newest.size()) >= *limit) {
        more = true;
        return false;
      }
      if (!tenant_needle.empty() && row.entry.find(tenant_needle) == std::string_view::npos) return true;
      if (!run_needle.empty() && row.entry.find(run_needle) == std::string_view::npos) return true;
      value entry = value::parse(row.entry, nullptr, false);
      if (!entry.is_object() || string_at(entry, "tenant") != who->tenant) return true;
      if (!run_filter.empty() && string_at(entry, "run") != run_filter) return true;
      newest.push_back(std::move(entry));
      oldest = row.seq;
      return true;
    });
    if (!scanned.ok()) return fail(scanned.err());
    value entries = value::array();
    for (auto e = newest.rbegin(); e != newest.rend(); ++e) entries.push_back(std::move(*e));
    return json_response(200, value{{"entries", entries}, {"next_before", more ? value(oldest) : value()}});
  }

  if (resource == "me" && n == 3) {
    if (method != "GET") return error_response(405, "method_not_allowed", "GET only");
    return json_response(200, value{{"tenant", who->tenant}, {"user", who->user}});
  }

  if (resource == "stream" && n == 3) {
    return error_response(426, "upgrade_required", "the stream is a WebSocket (docs/api.md)");
  }

  if (resource == "consents") {
    if (is("GET", 3)) {
      std::string status = "pending";
      if (auto raw = query_param(query, "status")) status = std::string(*raw);
      if (status != "pending" && status != "approved" && status != "denied" && status != "expired" && status != "all") {
        return error_response(400, "bad_request", "'status' is pending, approved, denied, expired or all");
      }
      auto list = opts_.store->list_consents(who->tenant, status == "all" ? "" : status, 500);
      if (!list.ok()) return fail(list.err());
      value out = value::array();
      for (const auto& c : *list) out.push_back(c.to_json());
      return json_response(200, value{{"consents", out}});
    }
    if (n == 5 && (parts[4] == "approve" || parts[4] == "deny")) {
      if (method != "POST") return error_response(405, "method_not_allowed", "POST an answer");
      if (!valid_id(parts[3])) return error_response(404, "not_found", "no consent request");
      std::string reason;
      if (!request.body.empty()) {
        auto body = body_object();
        if (!body.ok()) return error_response(400, "bad_request", body.err().message);
        if (body->contains("reason") && !(*body)["reason"].is_string()) {
          return error_response(400, "bad_request", "\"reason\" is a string");
        }
        reason = string_at(*body, "reason");
        if (reason.size() > 2'000) return error_response(400, "bad_request", "the reason is longer than 2000 bytes");
      }
      // Another tenant's request does not exist for this caller.
      auto found = opts_.store->get_consent(parts[3]);
      if (!found.ok()) return fail(found.err());
      if (!*found || (*found)->tenant != who->tenant || (*found)->id != parts[3]) {
        return error_response(404, "not_found", "no consent request " + std::string(parts[3]));
      }
      auto answered =
          opts_.gate->answer(parts[3], parts[4] == "approve", runtime::principal{who->tenant, who->user}, reason);
      if (!answered.ok()) {
        if (answered.err().code == store::store_errc::conflict) {
          return error_response(409, "conflict", answered.err().message);
        }
        return fail(answered.err());
      }
      // A conversation waiting on it goes on by itself.
      const std::string run_id = runtime::waiting_root(*opts_.store, answered->run_id);
      bool continued = false;
      auto run = opts_.store->get_run(run_id);
      if (run.ok() && run->status == "waiting_consent" && !host_conversation(*run)) {
        post_turn(run_id, {});
        continued = true;
      }
      return json_response(200, value{{"consent", answered->to_json()}, {"run_id", run_id}, {"continued", continued}});
    }
    return error_response(404, "not_found", "no such route");
  }

  if (resource == "runs") {
    if (is("POST", 3)) {
      auto body = body_object();
      if (!body.ok())
        return error_response(request.body.size() > opts_.max_body ? 413 : 400, "bad_request", body.err().message);
      const auto name = string_at(*body, "agent");
      if (name.empty()) return error_response(400, "bad_request", "\"agent\" (a string) names the agent to run");
      value inputs = value::object();
      if (body->contains("inputs")) {
        if (!(*body)["inputs"].is_object()) {
          return error_response(400, "bad_request", "\"inputs\" is an object: the first step's inputs");
        }
        inputs = (*body)["inputs"];
      }
      auto agent = find_agent(name);
      if (!agent) return error_response(404, "not_found", "no agent " + name.substr(0, 128));
      // The entry action's inputs: only those it takes (a required one may be left for later).
      const auto& entry = agent->graph->nodes()[agent->graph->entrypoint()].act->spec();
      if (auto misfit = misfit_inputs(entry, inputs, false)) return error_response(400, "bad_request", *misfit);
      auto run = start_hosted(agent, *who, inputs);
      if (!run.ok()) return fail(run.err());
      return json_response(201, run->to_json());
    }
    if (is("GET", 3)) {
      auto limit = number_param(query, "limit", 50, 1, 500);
      if (!limit.ok()) return error_response(400, "bad_request", limit.err().message);
      const auto agent_filter = query_param(query, "agent").value_or("");
      const auto status_filter = query_param(query, "status").value_or("");
      const auto parent_filter = query_param(query, "parent").value_or("");
      // `before=RUN_ID`: the page after that run (the `next_before` of the page before).
      std::optional<store::run_cursor> cursor;
      if (auto raw = query_param(query, "before")) {
        auto from = valid_id(*raw) ? opts_.store->get_run(*raw)
                                   : result<store::run_record>(make_error(core_errc::not_found, "no run"));
        if (!from.ok() || from->tenant != who->tenant) {
          return error_response(400, "bad_request", "'before' names no run of yours");
        }
        cursor = store::run_cursor{from->created_ms, from->run_id};
      }
      // The caller's runs, newest first, and one more to tell whether there is a next page.
      auto runs = opts_.store->list_runs(static_cast<std::size_t>(*limit) + 1, cursor,
                                         {.tenant = who->tenant,
                                          .agent = std::string(agent_filter),
                                          .status = std::string(status_filter),
                                          .parent_run = std::string(parent_filter)});
      if (!runs.ok()) return fail(runs.err());
      value list = value::array();
      std::string next;
      for (const auto& r : *runs) {
        if (static_cast<std::int64_t>(list.size()) == *limit) {
          next = list.back()["run_id"].get<std::string>();
          break;
        }
        list.push_back(r.to_json());
      }
      return json_response(200, value{{"runs", list}, {"next_before", next.empty() ? value() : value(next)}});
    }
    if (is("GET", 4)) {
      auto run = own_run(parts[3]);
      if (!run.ok()) return fail(run.err());
      return json_response(200, run->to_json());
    }
    if (is("GET", 5) && parts[4] == "state") {
      auto run = own_run(parts[3]);
      if (!run.ok()) return fail(run.err());
      if (!run->last_sequence && !run->parent_step) return error_response(404, "not_found", "the run has no steps yet");
      auto at = number_param(query, "at", run->position(), 0, std::int64_t{1} << 53);
      if (!at.ok()) return error_response(400, "bad_request", at.err().message);
      auto state = opts_.store->state_at(run->run_id, *at);
      if (!state.ok()) return fail(state.err());
      return json_response(200, value{{"run_id", run->run_id}, {"at", *at}, {"state", state->to_json()}});
    }
    if (is("GET", 5) && parts[4] == "diff") {
      auto run = own_run(parts[3]);
      if (!run.ok()) return fail(run.err());
      if (!run->last_sequence) return error_response(404, "not_found", "the run has no steps yet");
      auto to = number_param(query, "to", run->position(), 0, std::int64_t{1} << 53);
      if (!to.ok()) return error_response(400, "bad_request", to.err().message);
      auto from = number_param(query, "from", *to - 1, -1, std::int64_t{1} << 53);
      if (!from.ok()) return error_response(400, "bad_request", from.err().message);
      auto after = opts_.store->state_at(run->run_id, *to);
      if (!after.ok()) return fail(after.err());
      // Before the first step: the state the run started with.
      auto before = opts_.store->state_at(run->run_id, *from);
      if (!before.ok()) return fail(before.err());
      const value a = before->to_json();
      const value b = after->to_json();
      value added = value::object();
      value removed = value::object();
      value changed = value::object();
      for (const auto& [key, v] : b.items()) {
        if (!a.contains(key)) {
          added[key] = v;
        } else if (a[key] != v) {
          changed[key] = {{"from", a[key]}, {"to", v}};
        }
      }
      for (const auto& [key, v] : a.items()) {
        if (!b.contains(key)) removed[key] = v;
      }
      return json_response(200, value{{"run_id", run->run_id},
                                      {"from", *from},
                                      {"to", *to},
                                      {"added", added},
                                      {"removed", removed},
                                      {"changed", changed}});
    }
    if (n == 5 && parts[4] == "fork") {
      if (method != "POST") return error_response(405, "method_not_allowed", "POST to fork");
      auto run = own_run(parts[3]);
      if (!run.ok()) return fail(run.err());
      std::optional<std::int64_t> at;
      if (!request.body.empty()) {
        auto body = body_object();
        if (!body.ok()) return error_response(400, "bad_request", body.err().message);
        if (body->contains("at")) {
          if (!(*body)["at"].is_number_integer() || (*body)["at"].get<std::int64_t>() < 0) {
            return error_response(400, "bad_request", "\"at\" is a step's sequence id");
          }
          at = (*body)["at"].get<std::int64_t>();
        }
      }
      auto forked = runtime::fork_run(*opts_.store, run->run_id, at);
      if (!forked.ok()) return fail(forked.err());
      return json_response(201, forked->to_json());
    }
    if (n == 5 && (parts[4] == "resume" || parts[4] == "input" || parts[4] == "cancel")) {
      if (method != "POST") return error_response(405, "method_not_allowed", "POST to " + std::string(parts[4]));
      auto run = own_run(parts[3]);
      if (!run.ok()) return fail(run.err());
      const std::string_view what = parts[4];
      value inputs = value::object();
      if (what == "input" || !request.body.empty()) {
        auto body = body_object();
        if (!body.ok())
          return error_response(request.body.size() > opts_.max_body ? 413 : 400, "bad_request", body.err().message);
        if (body->contains("inputs")) {
          if (what == "cancel" || !(*body)["inputs"].is_object()) {
            return error_response(400, "bad_request", "\"inputs\" is an object: the next step's inputs");
          }
          inputs = (*body)["inputs"];
        } else if (what == "input") {
          return error_response(400, "bad_request", "\"inputs\" (an object) is what the waiting action takes");
        }
      }
      if (run->status == "cancelled" && what != "cancel") {
        return error_response(409, "conflict", "run " + run->run_id + " was cancelled");
      }
      if (run->status == "completed") return error_response(409, "conflict", "run " + run->run_id + " is complete");
      // Another live process drives it (`choir run`, another server): not this one's to move.
      const auto now_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      if (!run->owner.empty() && run->owner != opts_.store->owner() && run->lease_expires_ms > now_ms &&
          !store::owner_known_dead(run->owner)) {
        return error_response(409, "run_leased", "run " + run->run_id + " is driven by " + run->owner);
      }
      auto agent = find_agent(run->agent);
      if (!agent) return error_response(409, "agent_unavailable", "this server does not have agent " + run->agent);
      if (what == "input") {
        if (run->status != "waiting") {
          return error_response(409, "conflict",
                                "run " + run->run_id + " is not waiting for input (it is " + run->status + ")");
        }
        // The inputs the waiting action needs, all of them; and only inputs it takes.
        if (const auto index = agent->graph->index_of(run->next_action)) {
          const auto& spec = agent->graph->nodes()[*index].act->spec();
          if (auto misfit = misfit_inputs(spec, inputs, true)) return error_response(400, "bad_request", *misfit);
        }
      }
      if (auto refused = host_conversation(*run)) return *refused;
      using request_kind = runtime::conversation_directory::request::kind;
      const std::string run_id = run->run_id;
      post_turn(run_id, {what == "cancel" ? request_kind::cancel : request_kind::resume, inputs});
      return json_response(202, value{{"run_id", run_id},
                                      {"cursor", run->last_sequence ? value(*run->last_sequence) : value()},
                                      {"accepted", std::string(what)}});
    }
    if (is("GET", 5) && parts[4] == "steps") {
      auto run = own_run(parts[3]);
      if (!run.ok()) return fail(run.err());
      auto from = number_param(query, "from", 0, 0, std::int64_t{1} << 53);
      if (!from.ok()) return error_response(400, "bad_request", from.err().message);
      auto limit = number_param(query, "limit", 200, 1, 1000);
      if (!limit.ok()) return error_response(400, "bad_request", limit.err().message);
      auto steps = opts_.store->steps(run->run_id, *from, static_cast<std::size_t>(*limit) + 1);
      if (!steps.ok()) return fail(steps.err());
      value list = value::array();
      value next;
      for (const auto& s : *steps) {
        if (static_cast<std::int64_t>(list.size()) == *limit) {
          next = s.sequence_id;
          break;
        }
        list.push_back(s.to_json());
      }
      return json_response(200, value{{"steps", list}, {"next", next}});
    }
    if (n <= 5 && method != "GET") return error_response(405, "method_not_allowed", "GET only");
    return error_response(404, "not_found", "no such route");
  }
  return error_response(404, "not_found", "no such route");
}

}  // namespace choir::api
