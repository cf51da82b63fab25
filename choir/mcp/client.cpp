#include "choir/mcp/client.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "choir/core/json_schema.hpp"
#include "choir/mcp/jsonrpc.hpp"

namespace choir::mcp {
namespace {

class mcp_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "mcp"; }
  std::string message(int code) const override {
    switch (static_cast<mcp_errc>(code)) {
      case mcp_errc::closed: return "the MCP connection ended";
      case mcp_errc::timed_out: return "the MCP request timed out";
      case mcp_errc::rpc_error: return "the MCP server answered with an error";
      case mcp_errc::bad_response: return "the MCP server's answer does not follow the protocol";
      case mcp_errc::unsupported_version: return "the MCP server speaks no protocol version this client does";
      case mcp_errc::session_expired: return "the MCP session expired";
      case mcp_errc::transport_failed: return "the MCP transport failed";
    }
    return "unknown MCP error";
  }
};

std::string error_text(const value& error) {
  std::string text = "error " + std::to_string(error.value("code", 0)) + ": " + error.value("message", std::string());
  if (error.contains("data") && !error["data"].is_null()) text += " (" + dump_json(error["data"]) + ")";
  return text;
}

std::optional<double> number_at(const value& v, const char* key) {
  const auto it = v.find(key);
  if (it == v.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

/// `CHOIR_MCP_TRACE=1`: every message in and out is written to stderr (`>>` sent, `<<` received).
bool tracing() {
  static const bool on = [] {
    const char* v = std::getenv("CHOIR_MCP_TRACE");
    return v != nullptr && *v != '\0' && std::string_view(v) != "0";
  }();
  return on;
}

void trace(const char* direction, const std::string& where, std::string_view message) {
  if (!tracing()) return;
  std::fprintf(stderr, "%s %s %.*s\n", where.c_str(), direction, static_cast<int>(message.size()), message.data());
}

}  // namespace

const std::error_category& mcp_category() noexcept {
  static const mcp_category_impl instance;
  return instance;
}
std::error_code make_error_code(mcp_errc e) noexcept { return {static_cast<int>(e), mcp_category()}; }

std::string call_result::text() const {
  std::string out;
  if (!content.is_array()) return out;
  for (const auto& block : content) {
    if (!out.empty()) out += "\n";
    const std::string type = block.is_object() ? block.value("type", std::string()) : std::string();
    if (type == "text" && block.contains("text") && block["text"].is_string()) {
      out += block["text"].get<std::string>();
    } else if (type == "resource_link" && block.contains("uri") && block["uri"].is_string()) {
      out += "[resource_link " + block["uri"].get<std::string>() + "]";
    } else {
      out += "[" + (type.empty() ? std::string("content") : type) + "]";
    }
  }
  return out;
}

client::client(std::unique_ptr<transport> channel, client_options options)
    : channel_(std::move(channel)), options_(std::move(options)) {}

client::~client() { close(); }

result<std::unique_ptr<client>> client::connect(std::unique_ptr<transport> channel, client_options options) {
  if (!channel) return make_error(mcp_errc::transport_failed, "no transport");
  std::unique_ptr<client> c(new client(std::move(channel), std::move(options)));
  client* self = c.get();
  c->worker_ = std::thread([self] { self->worker_loop(); });
  auto started = c->channel_->start([self](std::string_view m) { self->on_message(m); },
                                    [self](const std::string& why) { self->on_closed(why); });
  if (!started.ok()) {
    c->close();
    return make_error(mcp_errc::transport_failed, c->channel_->describe() + ": " + started.err().message);
  }
  auto init = c->initialize();
  if (!init.ok()) {
    c->close();
    return init.err();
  }
  return c;
}

result<void> client::initialize() {
  value capabilities = value::object();
  if (options_.on_sampling) {
    capabilities["sampling"] = options_.sampling_with_tools ? value{{"tools", value::object()}} : value::object();
  }
  if (options_.on_elicitation) capabilities["elicitation"] = value{{"form", value::object()}};
  if (!options_.roots.empty()) capabilities["roots"] = value{{"listChanged", false}};
  CHOIR_TRY(value answer,
            request("initialize", {{"protocolVersion", options_.protocol_version},
                                   {"capabilities", std::move(capabilities)},
                                   {"clientInfo", {{"name", options_.name}, {"version", options_.version}}}}));
  if (!answer.is_object() || !answer.contains("protocolVersion") || !answer["protocolVersion"].is_string()) {
    return make_error(mcp_errc::bad_response, describe() + ": initialize answered without a protocolVersion");
  }
  version_ = answer["protocolVersion"].get<std::string>();
  const auto& known = supported_versions();
  if (std::find(known.begin(), known.end(), version_) == known.end()) {
    std::string list;
    for (const auto& v : known) list += (list.empty() ? "" : ", ") + v;
    return make_error(mcp_errc::unsupported_version,
                      describe() + ": the server speaks MCP " + version_ + "; this client speaks " + list);
  }
  server_info_ = answer.value("serverInfo", value::object());
  capabilities_ = answer.value("capabilities", value::object());
  if (answer.contains("instructions") && answer["instructions"].is_string()) {
    instructions_ = answer["instructions"].get<std::string>();
  }
  channel_->agreed(version_);
  return notify("notifications/initialized", value::object());
}

result<void> client::send(const std::string& message) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(mcp_errc::closed, describe() + ": " + close_reason_);
  }
  trace(">>", describe(), message);
  auto sent = channel_->send(message);
  if (!sent.ok()) {
    if (sent.err().code == make_error_code(mcp_errc::session_expired)) return sent.err();
    if (sent.err().code == make_error_code(mcp_errc::closed)) {
      // The server went away: its end, with its last words, is usually reported a moment later.
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, std::chrono::milliseconds(500), [&] { return closed_; });
      return make_error(mcp_errc::closed, closed_ ? describe() + ": " + close_reason_ : sent.err().message);
    }
    return make_error(mcp_errc::transport_failed, describe() + ": " + sent.err().message);
  }
  return {};
}

result<value> client::request(const std::string& method, value params, const call_options& options) {
  const auto timeout = options.timeout.value_or(options_.request_timeout);
  std::int64_t id = 0;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return make_error(mcp_errc::closed, describe() + ": " + close_reason_);
    id = next_id_++;
    const auto now = std::chrono::steady_clock::now();
    pending p;
    p.on_progress = options.on_progress;
    p.tag = options.tag;
    p.timeout = timeout;
    p.deadline = now + timeout;
    p.hard_deadline = now + std::max(timeout, options_.max_request_time);
    pending_.emplace(id, std::move(p));
  }
  if (options.on_progress) params["_meta"]["progressToken"] = id;
  auto sent = send(dump_json(value{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}}));
  std::unique_lock lock(mutex_);
  if (!sent.ok()) {
    pending_.erase(id);
    return sent.err();
  }
  for (;;) {
    auto& p = pending_.at(id);
    if (p.result || p.error) break;
    if (closed_) {
      pending_.erase(id);
      return make_error(mcp_errc::closed, describe() + ": " + close_reason_ + " (during " + method + ")");
    }
    const auto until = std::min(p.deadline, p.hard_deadline);
    if (std::chrono::steady_clock::now() >= until) {
      pending_.erase(id);
      lock.unlock();
      if (method != "initialize") {  // initialize cannot be cancelled
        (void)notify("notifications/cancelled", {{"requestId", id}, {"reason", "timed out"}});
      }
      return make_error(mcp_errc::timed_out, describe() + ": no answer to " + method + " within " +
                                                 std::to_string(timeout.count()) + " ms; it was cancelled");
    }
    changed_.wait_until(lock, until);
  }
  pending p = std::move(pending_.at(id));
  pending_.erase(id);
  if (p.error) {
    return make_error(mcp_errc::rpc_error, describe() + ": " + method + " failed: " + error_text(*p.error));
  }
  return std::move(*p.result);
}

result<void> client::notify(const std::string& method, value params) {
  return send(rpc_notification(method, std::move(params)));
}

result<void> client::ping() {
  CHOIR_TRY(value answer, request("ping", value::object()));
  if (!answer.is_object()) return make_error(mcp_errc::bad_response, describe() + ": ping answered with a non-object");
  return {};
}

result<std::vector<tool_descriptor>> client::list_tools() {
  std::vector<tool_descriptor> tools;
  std::map<std::string, value> schemas;
  value params = value::object();
  for (int page = 0; page < 1000; ++page) {
    CHOIR_TRY(value answer, request("tools/list", params));
    if (!answer.is_object() || !answer.contains("tools") || !answer["tools"].is_array()) {
      return make_error(mcp_errc::bad_response, describe() + ": tools/list answered without a tools array");
    }
    for (const auto& t : answer["tools"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string() || t["name"].get<std::string>().empty()) {
        return make_error(mcp_errc::bad_response, describe() + ": tools/list: a tool without a name");
      }
      tool_descriptor tool;
      tool.name = t["name"].get<std::string>();
      tool.title = t.contains("title") && t["title"].is_string() ? t["title"].get<std::string>() : "";
      tool.description =
          t.contains("description") && t["description"].is_string() ? t["description"].get<std::string>() : "";
      if (t.contains("inputSchema")) {
        if (!t["inputSchema"].is_object()) {
          return make_error(mcp_errc::bad_response,
                            describe() + ": tool " + tool.name + ": inputSchema is not an object");
        }
        tool.input_schema = t["inputSchema"];
      }
      if (t.contains("outputSchema") && t["outputSchema"].is_object()) tool.output_schema = t["outputSchema"];
      if (t.contains("annotations") && t["annotations"].is_object()) tool.annotations = t["annotations"];
      if (!tool.output_schema.is_null()) schemas[tool.name] = tool.output_schema;
      tools.push_back(std::move(tool));
    }
    const auto next = answer.find("nextCursor");
    if (next == answer.end() || next->is_null()) {
      std::lock_guard lock(schemas_mutex_);
      output_schemas_ = std::move(schemas);
      return tools;
    }
    if (!next->is_string()) return make_error(mcp_errc::bad_response, describe() + ": nextCursor is not a string");
    params = {{"cursor", *next}};
  }
  return make_error(mcp_errc::bad_response, describe() + ": tools/list went on for more than 1000 pages");
}

result<call_result> client::call_tool(const std::string& name, const value& arguments, const call_options& options) {
  CHOIR_TRY(value answer, request("tools/call", {{"name", name}, {"arguments", arguments}}, options));
  if (!answer.is_object()) return make_error(mcp_errc::bad_response, describe() + ": tools/call answered a non-object");
  call_result out;
  if (answer.contains("content")) {
    if (!answer["content"].is_array()) {
      return make_error(mcp_errc::bad_response, describe() + ": " + name + ": content is not an array");
    }
    out.content = answer["content"];
  }
  if (answer.contains("isError") && answer["isError"].is_boolean()) out.is_error = answer["isError"].get<bool>();
  if (answer.contains("structuredContent") && !answer["structuredContent"].is_null()) {
    out.structured = answer["structuredContent"];
  }
  if (out.is_error) return out;
  value schema;
  {
    std::lock_guard lock(schemas_mutex_);
    const auto it = output_schemas_.find(name);
    if (it != output_schemas_.end()) schema = it->second;
  }
  if (!schema.is_null()) {
    if (out.structured.is_null()) {
      return make_error(mcp_errc::bad_response,
                        describe() + ": " + name + " declares an output schema but returned no structuredContent");
    }
    auto compiled = json_schema::compile(schema);
    if (compiled.ok()) {
      const auto violations = compiled->validate(out.structured);
      if (!violations.empty()) {
        return make_error(mcp_errc::bad_response, describe() + ": " + name +
                                                      "'s structuredContent does not match its output schema: " +
                                                      violations.front().pointer + " " + violations.front().message);
      }
    }
  }
  return out;
}

bool client::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

std::string client::close_reason() const {
  std::lock_guard lock(mutex_);
  return close_reason_;
}

void client::close() {
  {
    std::lock_guard lock(mutex_);
    if (!closed_) {
      closed_ = true;
      close_reason_ = "the client closed the connection";
    }
  }
  changed_.notify_all();
  channel_->close();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  inbox_changed_.notify_all();
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

void client::on_closed(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    close_reason_ = why;
  }
  changed_.notify_all();
}

std::vector<std::string> client::tags_in_flight() const {
  std::vector<std::string> tags;
  std::lock_guard lock(mutex_);
  for (const auto& [id, p] : pending_) {
    if (!p.tag.empty() && std::find(tags.begin(), tags.end(), p.tag) == tags.end()) tags.push_back(p.tag);
  }
  return tags;
}

void client::on_message(std::string_view text) {
  trace("<<", describe(), text);
  rpc_failure failure;
  auto message = parse_rpc(text, failure);
  if (!message) {
    trace("dropped:", describe(), failure.message);
    // A server's malformed message cannot be answered usefully unless it had an id.
    if (!failure.id.is_null()) (void)send(rpc_error(failure.id, failure.code, failure.message));
    return;
  }
  switch (message->type) {
    case rpc_message::kind::response: {
      if (!message->id.is_number_integer()) return;  // not one of ours: ours are integers
      const auto id = message->id.get<std::int64_t>();
      {
        std::lock_guard lock(mutex_);
        const auto it = pending_.find(id);
        if (it == pending_.end()) return;                   // late (timed out and cancelled) or unknown: dropped
        if (it->second.result || it->second.error) return;  // a second answer to one request: the first stands
        if (!message->error.is_null()) {
          it->second.error = std::move(message->error);
        } else {
          it->second.result = std::move(message->result);
        }
      }
      changed_.notify_all();
      return;
    }
    case rpc_message::kind::notification: {
      const auto& m = message->method;
      const auto& p = message->params;
      if (m == "notifications/progress") {
        const auto token = p.find("progressToken");
        if (token == p.end() || !token->is_number_integer()) return;
        std::function<void(const progress_update&)> callback;
        {
          std::lock_guard lock(mutex_);
          const auto it = pending_.find(token->get<std::int64_t>());
          if (it == pending_.end()) return;
          // Progress shows the request is alive: its clock restarts (within the hard limit).
          it->second.deadline = std::chrono::steady_clock::now() + it->second.timeout;
          callback = it->second.on_progress;
        }
        if (callback) {
          progress_update u;
          u.progress = number_at(p, "progress").value_or(0);
          u.total = number_at(p, "total");
          if (p.contains("message") && p["message"].is_string()) u.message = p["message"].get<std::string>();
          callback(u);
        }
      } else if (m == "notifications/tools/list_changed") {
        if (options_.on_tools_changed) options_.on_tools_changed();
      } else if (m == "notifications/message") {
        if (options_.on_log) options_.on_log(p);
      }
      // notifications/cancelled refers to the server's requests, which are answered quickly by
      // the worker; others (resources, prompts) are of no use to this client.
      return;
    }
    case rpc_message::kind::request: {
      if (message->method == "ping") {
        (void)send(rpc_result(message->id, value::object()));
        return;
      }
      {
        std::lock_guard lock(mutex_);
        inbox_.push_back({message->id, message->method, message->params});
      }
      inbox_changed_.notify_one();
      return;
    }
  }
}

void client::worker_loop() {
  for (;;) {
    server_request r;
    {
      std::unique_lock lock(mutex_);
      inbox_changed_.wait(lock, [&] { return stopping_ || !inbox_.empty(); });
      if (stopping_) return;
      r = std::move(inbox_.front());
      inbox_.pop_front();
    }
    answer_server_request(r.id, r.method, r.params);
  }
}

void client::answer_server_request(const value& id, const std::string& method, const value& params) {
  auto refuse = [&](int code, const std::string& why) { (void)send(rpc_error(id, code, why)); };
  if (method == "roots/list") {
    if (options_.roots.empty()) return refuse(rpc_code::method_not_found, "this client does not declare roots");
    value roots = value::array();
    for (const auto& r : options_.roots) roots.push_back({{"uri", r}});
    (void)send(rpc_result(id, {{"roots", std::move(roots)}}));
    return;
  }
  const server_request_handler* handler = nullptr;
  if (method == "sampling/createMessage") handler = &options_.on_sampling;
  if (method == "elicitation/create") handler = &options_.on_elicitation;
  if (handler == nullptr || !*handler) {
    return refuse(rpc_code::method_not_found, "this client does not offer " + method);
  }
  auto answer = (*handler)(params, tags_in_flight());
  if (!answer.ok()) return refuse(rpc_code::internal_error, answer.err().message);
  (void)send(rpc_result(id, std::move(answer).value()));  // if the channel ended, so did the request
}

namespace {

class in_process final : public transport {
 public:
  explicit in_process(server& engine) : engine_(engine) {}
  result<void> start(message_handler on_message, close_handler /*on_close*/) override {
    on_message_ = std::move(on_message);
    return {};
  }
  result<void> send(const std::string& message) override {
    if (auto answer = engine_.handle(message)) on_message_(*answer);
    return {};
  }
  void close() override {}
  std::string describe() const override { return "in-process"; }

 private:
  server& engine_;
  message_handler on_message_;
};

}  // namespace

std::unique_ptr<transport> in_process_transport(server& engine) { return std::make_unique<in_process>(engine); }

}  // namespace choir::mcp
