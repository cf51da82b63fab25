#include "choir/mcp/server.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <istream>
#include <ostream>
#include <thread>

#include "choir/core/json_access.hpp"
#include "choir/mcp/jsonrpc.hpp"

namespace choir::mcp {

const std::vector<std::string>& supported_versions() {
  static const std::vector<std::string> versions = {"2025-11-25", "2025-06-18", "2025-03-26"};
  return versions;
}

result<tool_result> server_provider::call_tool(const std::string& name, const value& arguments, const call_context&) {
  return call_tool(name, arguments);
}

result<void> server_provider::subscribe(const std::string& uri, std::function<void()>) {
  return make_error(core_errc::invalid_argument, "no subscriptions to " + uri);
}

result<std::vector<resource_content>> server_provider::read_resource(const std::string& uri) {
  return make_error(core_errc::not_found, "no resource " + uri);
}

result<prompt_result> server_provider::get_prompt(const std::string& name, const value&) {
  return make_error(core_errc::not_found, "no prompt " + name);
}

server_provider::completion server_provider::complete(const value&, const std::string&, const std::string&,
                                                      const value&) {
  return {};
}

namespace {

constexpr int resource_not_found = -32002;  // MCP's code for resources/read of an unknown URI

/// Where a page of a paginated list starts: the cursor (opaque to clients) is the index of the
/// page's first entry. Empty: a bad cursor.
std::optional<std::size_t> page_start(const value& params, std::size_t count) {
  if (!params.contains("cursor") || params["cursor"].is_null()) return 0;
  const std::string cursor = params["cursor"].is_string() ? params["cursor"].get<std::string>() : "";
  if (cursor.empty() || cursor.size() > 9 ||
      !std::all_of(cursor.begin(), cursor.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoul(cursor) >= count) {
    return std::nullopt;
  }
  return std::stoul(cursor);
}

/// One page of `all`, each entry made by `entry`, under `key`, with `nextCursor` if more follow.
template <typename T, typename F>
value page_of(const std::vector<T>& all, std::size_t start, std::size_t size, const char* key, F entry) {
  value list = value::array();
  const std::size_t end = std::min(all.size(), start + size);
  for (std::size_t i = start; i < end; ++i) list.push_back(entry(all[i]));
  value result{{key, std::move(list)}};
  if (end < all.size()) result["nextCursor"] = std::to_string(end);
  return result;
}

value resource_entry(const resource_descriptor& r, const char* uri_key) {
  value e{{uri_key, r.uri}, {"name", r.name}};
  if (!r.title.empty()) e["title"] = r.title;
  if (!r.description.empty()) e["description"] = r.description;
  if (!r.mime_type.empty()) e["mimeType"] = r.mime_type;
  return e;
}

value content_entry(const resource_content& c) {
  value e{{"uri", c.uri}, {"text", c.text}};
  if (!c.mime_type.empty()) e["mimeType"] = c.mime_type;
  return e;
}

}  // namespace

server::server(server_provider& provider, server_info info, std::size_t page_size)
    : provider_(provider), info_(std::move(info)), page_size_(std::max<std::size_t>(1, page_size)) {}

server::~server() {
  std::set<std::string> subscribed;
  {
    std::lock_guard lock(mutex_);
    subscribed.swap(subscribed_);
  }
  for (const auto& uri : subscribed) provider_.unsubscribe(uri);
}

std::string server::version() const {
  std::lock_guard lock(mutex_);
  return version_;
}

value server::initialize(const value& params) {
  const std::string asked = string_at(params, "protocolVersion");
  const auto& versions = supported_versions();
  // The one asked for if spoken here; otherwise the newest, for the client to accept or leave.
  const std::string agreed =
      std::find(versions.begin(), versions.end(), asked) != versions.end() ? asked : versions.front();
  {
    std::lock_guard lock(mutex_);
    version_ = agreed;
    client_capabilities_ = params.contains("capabilities") && params["capabilities"].is_object()
                               ? params["capabilities"]
                               : value::object();
  }
  bool subscribe = false;
  {
    std::lock_guard lock(mutex_);
    subscribe = send_ && provider_.can_subscribe();  // updates need a channel to the client
  }
  value result{{"protocolVersion", agreed},
               {"capabilities",
                {{"tools", {{"listChanged", false}}},
                 {"resources", {{"subscribe", subscribe}, {"listChanged", false}}},
                 {"prompts", {{"listChanged", false}}},
                 {"completions", value::object()},
                 {"logging", value::object()}}},
               {"serverInfo", {{"name", info_.name}, {"version", info_.version}}}};
  if (!info_.instructions.empty()) result["instructions"] = info_.instructions;
  return result;
}

std::optional<std::string> server::handle(std::string_view message) {
  rpc_failure failure;
  auto parsed = parse_rpc(message, failure);
  if (!parsed) return rpc_error(failure.id, failure.code, failure.message);
  return handle(*parsed);
}

std::optional<std::string> server::handle(const rpc_message& m) {
  switch (m.type) {
    case rpc_message::kind::response: (void)take_response(m); return std::nullopt;
    case rpc_message::kind::notification: return std::nullopt;  // initialized, cancelled, …: nothing to answer
    case rpc_message::kind::request: break;
  }
  try {
    return dispatch(m.id, m.method, m.params);
  } catch (const std::exception& e) {
    return rpc_error(m.id, rpc_code::internal_error, std::string("internal error: ") + e.what());
  }
}

std::optional<std::string> server::dispatch(const value& id, const std::string& method, const value& params) {
  if (method == "initialize") return rpc_result(id, initialize(params));
  if (method == "ping") return rpc_result(id, value::object());
  if (method == "logging/setLevel") {
    const auto& levels = log_levels();
    const std::string level = string_at(params, "level");
    if (std::find(levels.begin(), levels.end(), level) == levels.end()) {
      return rpc_error(id, rpc_code::invalid_params,
                       "level must be one of debug, info, notice, warning, error, "
                       "critical, alert, emergency");
    }
    std::lock_guard lock(mutex_);
    log_level_ = level;
    return rpc_result(id, value::object());
  }
  if (method == "tools/list") {
    const auto all = provider_.tools();
    const auto start = page_start(params, all.size());
    if (!start) return rpc_error(id, rpc_code::invalid_params, "invalid cursor");
    return rpc_result(id, page_of(all, *start, page_size_, "tools", [](const tool_descriptor& t) {
                        value entry{{"name", t.name}, {"description", t.description}, {"inputSchema", t.input_schema}};
                        if (!t.title.empty()) entry["title"] = t.title;
                        if (!t.output_schema.is_null()) entry["outputSchema"] = t.output_schema;
                        if (!t.annotations.is_null()) entry["annotations"] = t.annotations;
                        return entry;
                      }));
  }
  if (method == "tools/call") {
    const std::string name = string_at(params, "name");
    if (name.empty()) return rpc_error(id, rpc_code::invalid_params, "tools/call needs a tool name");
    const auto all = provider_.tools();
    if (std::none_of(all.begin(), all.end(), [&](const tool_descriptor& t) { return t.name == name; })) {
      return rpc_error(id, rpc_code::invalid_params, "Unknown tool: " + name);
    }
    value arguments = params.contains("arguments") ? params["arguments"] : value::object();
    if (arguments.is_null()) arguments = value::object();
    const std::string key = id.is_string() ? id.get<std::string>() : id.dump();
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    {
      std::lock_guard lock(mutex_);
      calls_[key] = cancelled;
    }
    call_context context = context_for(params);
    context.cancelled = [cancelled] { return cancelled->load(); };
    auto called = provider_.call_tool(name, arguments, context);
    {
      std::lock_guard lock(mutex_);
      if (const auto it = calls_.find(key); it != calls_.end() && it->second == cancelled) calls_.erase(it);
    }
    if (cancelled->load()) return std::nullopt;  // the client gave up on it: no answer (MCP, "Cancellation")
    tool_result r;
    if (called.ok()) {
      r = std::move(called).value();
    } else {
      r.is_error = true;
      r.content = value::array({{{"type", "text"}, {"text", called.err().message}}});
    }
    value result{{"content", std::move(r.content)}, {"isError", r.is_error}};
    if (!r.structured.is_null()) result["structuredContent"] = std::move(r.structured);
    return rpc_result(id, std::move(result));
  }
  return resources_and_prompts(id, method, params);
}

std::optional<std::string> server::resources_and_prompts(const value& id, const std::string& method,
                                                         const value& params) {
  if (method == "resources/list" || method == "resources/templates/list") {
    const bool templates = method == "resources/templates/list";
    const auto all = templates ? provider_.resource_templates() : provider_.resources();
    const auto start = page_start(params, all.size());
    if (!start) return rpc_error(id, rpc_code::invalid_params, "invalid cursor");
    const char* uri_key = templates ? "uriTemplate" : "uri";
    return rpc_result(id, page_of(all, *start, page_size_, templates ? "resourceTemplates" : "resources",
                                  [&](const resource_descriptor& r) { return resource_entry(r, uri_key); }));
  }
  if (method == "resources/read") {
    const std::string uri = string_at(params, "uri");
    if (uri.empty()) return rpc_error(id, rpc_code::invalid_params, "resources/read needs a uri");
    auto read = provider_.read_resource(uri);
    if (!read.ok()) {
      return rpc_error(id, resource_not_found, "Resource not found: " + read.err().message, value{{"uri", uri}});
    }
    value contents = value::array();
    for (const auto& c : *read) contents.push_back(content_entry(c));
    return rpc_result(id, value{{"contents", std::move(contents)}});
  }
  if (method == "resources/subscribe" || method == "resources/unsubscribe") {
    const std::string uri = string_at(params, "uri");
    if (uri.empty()) return rpc_error(id, rpc_code::invalid_params, method + " needs a uri");
    if (method == "resources/unsubscribe") {
      bool was = false;
      {
        std::lock_guard lock(mutex_);
        was = subscribed_.erase(uri) > 0;
      }
      if (was) provider_.unsubscribe(uri);
      return rpc_result(id, value::object());
    }
    {
      std::lock_guard lock(mutex_);
      if (!send_ || !provider_.can_subscribe()) {
        return rpc_error(id, rpc_code::method_not_found, "this transport carries no resource updates");
      }
      if (subscribed_.count(uri) != 0) return rpc_result(id, value::object());
    }
    auto subscribed = provider_.subscribe(uri, [this, uri] {
      notify("notifications/resources/updated", value{{"uri", uri}});
    });
    if (!subscribed.ok()) {
      return rpc_error(id, resource_not_found, "Resource not found: " + subscribed.err().message, value{{"uri", uri}});
    }
    std::lock_guard lock(mutex_);
    subscribed_.insert(uri);
    return rpc_result(id, value::object());
  }
  if (method == "prompts/list") {
    const auto all = provider_.prompts();
    const auto start = page_start(params, all.size());
    if (!start) return rpc_error(id, rpc_code::invalid_params, "invalid cursor");
    return rpc_result(id, page_of(all, *start, page_size_, "prompts", [](const prompt_descriptor& p) {
                        value arguments = value::array();
                        for (const auto& a : p.arguments) {
                          value arg{{"name", a.name}, {"required", a.required}};
                          if (!a.description.empty()) arg["description"] = a.description;
                          arguments.push_back(std::move(arg));
                        }
                        value entry{{"name", p.name}, {"arguments", std::move(arguments)}};
                        if (!p.title.empty()) entry["title"] = p.title;
                        if (!p.description.empty()) entry["description"] = p.description;
                        return entry;
                      }));
  }
  if (method == "prompts/get") {
    const std::string name = string_at(params, "name");
    const auto all = provider_.prompts();
    const auto found = std::find_if(all.begin(), all.end(), [&](const prompt_descriptor& p) { return p.name == name; });
    if (found == all.end()) return rpc_error(id, rpc_code::invalid_params, "Unknown prompt: " + name);
    const value arguments =
        params.contains("arguments") && params["arguments"].is_object() ? params["arguments"] : value::object();
    for (const auto& [key, v] : arguments.items()) {
      if (!v.is_string()) return rpc_error(id, rpc_code::invalid_params, "argument " + key + " must be a string");
    }
    for (const auto& a : found->arguments) {
      if (a.required && !arguments.contains(a.name)) {
        return rpc_error(id, rpc_code::invalid_params, "missing required argument: " + a.name);
      }
    }
    auto got = provider_.get_prompt(name, arguments);
    if (!got.ok()) return rpc_error(id, rpc_code::invalid_params, got.err().message);
    value messages = value::array();
    for (const auto& m : got->messages) {
      value content = m.resource ? value{{"type", "resource"}, {"resource", content_entry(*m.resource)}}
                                 : value{{"type", "text"}, {"text", m.text}};
      messages.push_back({{"role", m.role}, {"content", std::move(content)}});
    }
    value result{{"messages", std::move(messages)}};
    if (!got->description.empty()) result["description"] = got->description;
    return rpc_result(id, std::move(result));
  }
  if (method == "completion/complete") {
    const value ref = params.contains("ref") && params["ref"].is_object() ? params["ref"] : value::object();
    const std::string type = string_at(ref, "type");
    if (type != "ref/prompt" && type != "ref/resource") {
      return rpc_error(id, rpc_code::invalid_params, "ref.type must be ref/prompt or ref/resource");
    }
    const value argument =
        params.contains("argument") && params["argument"].is_object() ? params["argument"] : value::object();
    const std::string name = string_at(argument, "name");
    if (name.empty()) return rpc_error(id, rpc_code::invalid_params, "completion/complete needs argument.name");
    const value context =
        params.contains("context") && params["context"].is_object() ? params["context"] : value::object();
    const value known =
        context.contains("arguments") && context["arguments"].is_object() ? context["arguments"] : value::object();
    auto found = provider_.complete(ref, name, string_at(argument, "value"), known);
    constexpr std::size_t max_values = 100;  // the protocol's limit per answer
    const std::size_t total = std::max(found.total, found.values.size());
    if (found.values.size() > max_values) found.values.resize(max_values);
    return rpc_result(
        id,
        value{{"completion", {{"values", found.values}, {"total", total}, {"hasMore", total > found.values.size()}}}});
  }
  return rpc_error(id, rpc_code::method_not_found, "method not found: " + method);
}

// ---- messages from the server ------------------------------------------------------------------

struct server::pending_request {
  std::mutex mutex;
  std::condition_variable answered;
  std::optional<result<value>> answer;
};

void server::set_outbound(std::function<bool(const std::string&)> send, std::function<bool()> can_request) {
  std::lock_guard sending(send_mutex_);  // no notification is on its way out past this point
  std::lock_guard lock(mutex_);
  send_ = std::move(send);
  can_request_ = std::move(can_request);
}

void server::notify(std::string_view method, value params) {
  std::lock_guard sending(send_mutex_);
  std::function<bool(const std::string&)> send;
  {
    std::lock_guard lock(mutex_);
    send = send_;
  }
  if (send) (void)send(rpc_notification(method, std::move(params)));
}

void server::close_outbound() {
  std::map<std::string, std::shared_ptr<pending_request>> waiting;
  {
    std::lock_guard lock(mutex_);
    outbound_closed_ = true;
    waiting.swap(pending_);
  }
  for (auto& [id, p] : waiting) {
    std::lock_guard lock(p->mutex);
    p->answer = make_error(core_errc::io_error, "the client has gone");
    p->answered.notify_all();
  }
}

bool server::take_response(const rpc_message& message) {
  if (message.type == rpc_message::kind::notification && message.method == "notifications/cancelled") {
    const value& target = message.params.contains("requestId") ? message.params["requestId"] : value();
    if (!target.is_string() && !target.is_number_integer()) return false;
    std::lock_guard lock(mutex_);
    const auto call = calls_.find(target.is_string() ? target.get<std::string>() : target.dump());
    if (call == calls_.end()) return false;  // not a call in progress: nothing to tell
    call->second->store(true);
    return true;
  }
  if (message.type != rpc_message::kind::response) return false;
  std::shared_ptr<pending_request> p;
  {
    std::lock_guard lock(mutex_);
    const std::string id = message.id.is_string() ? message.id.get<std::string>() : message.id.dump();
    const auto found = pending_.find(id);
    if (found == pending_.end()) return true;  // late (timed out) or unknown: dropped
    p = found->second;
    pending_.erase(found);
  }
  std::lock_guard lock(p->mutex);
  if (!message.error.is_null()) {
    p->answer = make_error(core_errc::invalid_argument, "the client refused: " + string_at(message.error, "message"));
  } else {
    p->answer = message.result;
  }
  p->answered.notify_all();
  return true;
}

result<value> server::request(const std::string& method, value params, std::chrono::milliseconds timeout) {
  auto p = std::make_shared<pending_request>();
  std::string id;
  std::function<bool(const std::string&)> send;
  {
    std::lock_guard lock(mutex_);
    if (!send_ || outbound_closed_) return make_error(core_errc::io_error, "the client cannot be asked");
    id = "choir-" + std::to_string(++next_request_);
    pending_[id] = p;
    send = send_;
  }
  if (!send(dump_json(value{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}}))) {
    std::lock_guard lock(mutex_);
    pending_.erase(id);
    return make_error(core_errc::io_error, "the client cannot be asked: its stream has closed");
  }
  std::unique_lock lock(p->mutex);
  if (!p->answered.wait_for(lock, timeout, [&] { return p->answer.has_value(); })) {
    lock.unlock();
    {
      std::lock_guard guard(mutex_);
      pending_.erase(id);
    }
    (void)send(rpc_notification("notifications/cancelled", {{"requestId", id}, {"reason", "no answer in time"}}));
    return make_error(core_errc::timed_out, method + ": no answer from the client in time");
  }
  return std::move(*p->answer);
}

const std::vector<std::string>& log_levels() {
  static const std::vector<std::string> levels = {"debug", "info",     "notice", "warning",
                                                  "error", "critical", "alert",  "emergency"};
  return levels;
}

namespace {

/// How severe a level is (its place in `log_levels()`); an unknown name counts as `info`.
std::size_t severity(std::string_view level) {
  const auto& levels = log_levels();
  const auto at = std::find(levels.begin(), levels.end(), level);
  return at == levels.end() ? 1 : static_cast<std::size_t>(at - levels.begin());
}

}  // namespace

call_context server::context_for(const value& params) {
  call_context context;
  std::function<bool(const std::string&)> send;
  std::function<bool()> can_request;
  bool can_elicit = false;
  bool can_sample = false;
  {
    std::lock_guard lock(mutex_);
    if (!send_) return context;
    send = send_;
    can_request = can_request_;
    // Once the client can no longer answer (its input ended), it may still read notifications.
    can_elicit = !outbound_closed_ && client_capabilities_.contains("elicitation");
    can_sample = !outbound_closed_ && client_capabilities_.contains("sampling");
    if (can_sample) {
      const value& sampling = client_capabilities_["sampling"];
      context.sample_with_tools = sampling.is_object() && sampling.contains("tools");
    }
  }
  if ((can_elicit || can_sample) && can_request && !can_request()) can_elicit = can_sample = false;
  const value meta = params.contains("_meta") && params["_meta"].is_object() ? params["_meta"] : value::object();
  if (meta.contains("progressToken") &&
      (meta["progressToken"].is_string() || meta["progressToken"].is_number_integer())) {
    const value token = meta["progressToken"];
    context.progress = [send, token](double progress, std::optional<double> total, const std::string& message) {
      value p{{"progressToken", token}, {"progress", progress}};
      if (total) p["total"] = *total;
      if (!message.empty()) p["message"] = message;
      (void)send(rpc_notification("notifications/progress", std::move(p)));
    };
  }
  if (can_elicit) {
    context.elicit = [this](const std::string& message, const value& schema) {
      constexpr std::chrono::minutes wait_for_a_person{10};
      return request("elicitation/create", {{"message", message}, {"requestedSchema", schema}}, wait_for_a_person);
    };
  }
  context.log = [this, send](std::string_view level, const std::string& logger, const value& data) {
    {
      std::lock_guard lock(mutex_);
      if (severity(level) < severity(log_level_)) return;
    }
    value p{{"level", std::string(level)}, {"data", data}};
    if (!logger.empty()) p["logger"] = logger;
    (void)send(rpc_notification("notifications/message", std::move(p)));
  };
  if (can_sample) {
    context.sample = [this](const value& sampling_params) {
      constexpr std::chrono::minutes wait_for_a_person{10};  // a person may review the request first
      return request("sampling/createMessage", sampling_params, wait_for_a_person);
    };
  } else {
    context.sample_with_tools = false;
  }
  return context;
}

void serve_lines(server& s, std::istream& in, std::ostream& out) {
  std::mutex write_mutex;
  const auto write = [&](const std::string& message) {
    std::lock_guard lock(write_mutex);
    out << message << '\n';
    out.flush();
    return static_cast<bool>(out);
  };
  s.set_outbound(write);
  // Requests and notifications go to the handler thread, in order; answers to the server's own
  // requests are taken here at once, since a call on that thread may be waiting for one. Each line
  // is parsed once, here.
  struct item {
    std::optional<rpc_message> message;
    rpc_failure failure;
  };
  std::mutex queue_mutex;
  std::condition_variable queued;
  std::deque<item> queue;
  bool ended = false;
  std::thread handler([&] {
    for (;;) {
      item next;
      {
        std::unique_lock lock(queue_mutex);
        queued.wait(lock, [&] { return ended || !queue.empty(); });
        if (queue.empty()) return;
        next = std::move(queue.front());
        queue.pop_front();
      }
      const auto answer =
          next.message ? s.handle(*next.message) : rpc_error(next.failure.id, next.failure.code, next.failure.message);
      if (answer) (void)write(*answer);
    }
  });
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    item next;
    next.message = parse_rpc(line, next.failure);
    if (next.message && s.take_response(*next.message)) continue;
    {
      std::lock_guard lock(queue_mutex);
      queue.push_back(std::move(next));
    }
    queued.notify_one();
  }
  s.close_outbound();  // nobody is left to answer the server's requests
  {
    std::lock_guard lock(queue_mutex);
    ended = true;
  }
  queued.notify_one();
  handler.join();
  s.set_outbound(nullptr);
}

}  // namespace choir::mcp
