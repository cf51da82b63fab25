#include "choir/api/mcp_endpoint.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <optional>
#include <thread>
#include <vector>

#include "choir/mcp/jsonrpc.hpp"
#include "choir/mcp/server.hpp"
#include "choir/runtime/mcp_session.hpp"

namespace choir::api {
namespace {

/// A JSON-RPC error as the whole body of an HTTP answer (what MCP clients read on a 4xx).
http_response rpc_refusal(int status, int code, std::string_view message, const value& id = nullptr) {
  return {
      .status = status, .content_type = "application/json", .body = mcp::rpc_error(id, code, message), .headers = {}};
}

std::string session_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return {};
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 15]);
  }
  return out;
}

std::string query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == key) return std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

constexpr std::size_t max_sessions = 256;
constexpr auto idle_limit = std::chrono::minutes(60);

}  // namespace

namespace {

/// The event stream answering the tool call this thread is running, if its answer is one: the
/// messages the call sends (progress, requests to the client) go there.
thread_local std::shared_ptr<event_stream> call_stream;

}  // namespace

struct mcp_endpoint::session {
  session() = default;
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() { stop_worker(); }

  std::string id;
  identity who;
  std::unique_ptr<runtime::mcp_session> provider;
  std::unique_ptr<mcp::server> engine;
  std::mutex calls;  ///< one message at a time, in the order they arrive (as over stdio)
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();
  /// The GET stream, where the server's own messages go (resource updates); at most one open.
  std::mutex listener_mutex;
  std::shared_ptr<event_stream> listener;

  /// Tool calls answered as event streams run on the session's own thread, in order, so that the
  /// client's answers to the call's requests — POSTed while it waits — are read meanwhile.
  struct streamed_call {
    mcp::rpc_message message;
    std::shared_ptr<event_stream> stream;
  };
  std::mutex queue_mutex;
  std::condition_variable queued;
  std::deque<streamed_call> queue;
  bool stopping = false;
  std::thread worker;

  void stream_call(mcp::rpc_message message, std::shared_ptr<event_stream> stream) {
    {
      std::lock_guard lock(queue_mutex);
      queue.push_back({std::move(message), std::move(stream)});
      if (!worker.joinable()) worker = std::thread([this] { work(); });
    }
    queued.notify_one();
  }

  void work() {
    for (;;) {
      streamed_call job;
      {
        std::unique_lock lock(queue_mutex);
        queued.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        job = std::move(queue.front());
        queue.pop_front();
      }
      std::optional<std::string> answer;
      {
        std::lock_guard lock(calls);
        last_used = std::chrono::steady_clock::now();
        call_stream = job.stream;
        answer = engine->handle(job.message);
        call_stream = nullptr;
      }
      if (answer) (void)job.stream->push(*answer);
      job.stream->end();
    }
  }

  /// Where the server's own messages go: the stream of the call that sends them, else the GET stream.
  bool send(const std::string& message) {
    if (call_stream) return call_stream->push(message);
    std::lock_guard lock(listener_mutex);
    return listener && listener->push(message);
  }

  /// Lets the calls queued finish, then stops the session's thread.
  void stop_worker() {
    {
      std::lock_guard lock(queue_mutex);
      stopping = true;
    }
    queued.notify_one();
    if (worker.joinable() && worker.get_id() != std::this_thread::get_id()) worker.join();
  }

  void end() {
    engine->close_outbound();  // a call waiting for the client's answer stops waiting
    stop_worker();
    {
      std::lock_guard lock(listener_mutex);
      if (listener) listener->end();
    }
    std::lock_guard lock(calls);
    provider->close();
  }
};

mcp_endpoint::mcp_endpoint(const service_options& options,
                           std::function<std::shared_ptr<const runtime::agent_definition>(std::string_view)> find_agent)
    : options_(options), find_agent_(std::move(find_agent)) {}

mcp_endpoint::~mcp_endpoint() { close_all(); }

std::size_t mcp_endpoint::sessions() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

void mcp_endpoint::close_all() {
  std::map<std::string, std::shared_ptr<session>, std::less<>> ending;
  {
    std::lock_guard lock(mutex_);
    ending.swap(sessions_);
  }
  for (auto& [id, s] : ending) s->end();
}

void mcp_endpoint::sweep() {
  std::vector<std::shared_ptr<session>> ending;
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (now - it->second->last_used > idle_limit) {
        ending.push_back(it->second);
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : ending) s->end();
}

http_response mcp_endpoint::handle(const http_request& request, const identity& who, std::string_view query) {
  if (!options_.services) return error_response(404, "not_found", "MCP is not served here");
  sweep();
  if (request.method != "POST" && request.method != "DELETE" && request.method != "GET") {
    auto out = error_response(405, "method_not_allowed", "GET, POST and DELETE /mcp");
    out.headers.emplace_back("Allow", "GET, POST, DELETE");
    return out;
  }
  if (!request.mcp_protocol_version.empty()) {
    const auto& known = mcp::supported_versions();
    if (std::find(known.begin(), known.end(), request.mcp_protocol_version) == known.end()) {
      std::string list;
      for (const auto& v : known) list += (list.empty() ? "" : ", ") + v;
      return rpc_refusal(400, mcp::rpc_code::invalid_request,
                         "unsupported MCP-Protocol-Version " + request.mcp_protocol_version.substr(0, 64) +
                             " (supported: " + list + ")");
    }
  }
  std::shared_ptr<session> s;
  if (!request.mcp_session.empty()) {
    std::lock_guard lock(mutex_);
    const auto it = sessions_.find(request.mcp_session);
    // Another user's session is as if it did not exist.
    if (it != sessions_.end() && it->second->who.tenant == who.tenant && it->second->who.user == who.user) {
      s = it->second;
    }
    if (!s) return rpc_refusal(404, -32001, "no such MCP session (it ended or expired): initialize again");
    if (request.method == "DELETE") sessions_.erase(it);
  }
  if (request.method == "DELETE") {
    if (!s) return rpc_refusal(400, mcp::rpc_code::invalid_request, "DELETE /mcp needs an Mcp-Session-Id");
    s->end();
    return {.status = 200, .content_type = "application/json", .body = "{}", .headers = {}};
  }
  if (request.method == "GET") {
    // The session's stream of the server's own messages.
    if (!s) return rpc_refusal(400, mcp::rpc_code::invalid_request, "GET /mcp needs an Mcp-Session-Id");
    if (request.accept.find("text/event-stream") == std::string::npos) {
      return rpc_refusal(406, mcp::rpc_code::invalid_request, "Accept must include text/event-stream");
    }
    std::lock_guard lock(s->listener_mutex);
    if (s->listener && s->listener->open()) {
      return rpc_refusal(409, mcp::rpc_code::invalid_request, "this session already has an open GET stream");
    }
    s->listener = std::make_shared<event_stream>();
    s->last_used = std::chrono::steady_clock::now();
    return {.status = 200, .content_type = "text/event-stream", .body = {}, .headers = {}, .events = s->listener};
  }
  // POST: one JSON-RPC message.
  if (!request.content_type.starts_with("application/json")) {
    return rpc_refusal(415, mcp::rpc_code::invalid_request, "the body must be JSON (Content-Type: application/json)");
  }
  if (!request.accept.empty() && request.accept.find("application/json") == std::string::npos &&
      request.accept.find("*/*") == std::string::npos) {
    return rpc_refusal(406, mcp::rpc_code::invalid_request, "Accept must include application/json");
  }
  if (!s) return open(request, who, query);
  mcp::rpc_failure failure;
  const auto message = mcp::parse_rpc(request.body, failure);  // parsed once, here
  // The client's answer to one of the server's requests goes straight to the call waiting for it.
  if (message && s->engine->take_response(*message)) {
    return {.status = 202, .content_type = "application/json", .body = "", .headers = {}};
  }
  // A tool call, for a client that reads event streams: answered with one, on the session's
  // thread, carrying the call's progress and its requests to the client before its answer.
  if (message && message->type == mcp::rpc_message::kind::request && message->method == "tools/call" &&
      request.accept.find("text/event-stream") != std::string::npos) {
    auto stream = std::make_shared<event_stream>();
    s->stream_call(*message, stream);
    return {.status = 200, .content_type = "text/event-stream", .body = {}, .headers = {}, .events = stream};
  }
  std::optional<std::string> answer;
  {
    std::lock_guard calls(s->calls);
    s->last_used = std::chrono::steady_clock::now();
    answer = message ? s->engine->handle(*message) : mcp::rpc_error(failure.id, failure.code, failure.message);
  }
  if (!answer) return {.status = 202, .content_type = "application/json", .body = "", .headers = {}};
  return {.status = 200, .content_type = "application/json", .body = std::move(*answer), .headers = {}};
}

http_response mcp_endpoint::open(const http_request& request, const identity& who, std::string_view query) {
  mcp::rpc_failure failure;
  const auto message = mcp::parse_rpc(request.body, failure);
  if (!message) return rpc_refusal(400, failure.code, failure.message, failure.id);
  if (message->type != mcp::rpc_message::kind::request || message->method != "initialize") {
    return rpc_refusal(400, mcp::rpc_code::invalid_request,
                       "no Mcp-Session-Id: a session starts with an initialize request", message->id);
  }
  {
    std::lock_guard lock(mutex_);
    if (sessions_.size() >= max_sessions) {
      return rpc_refusal(503, mcp::rpc_code::internal_error, "too many MCP sessions: end one (DELETE) and try again",
                         message->id);
    }
  }
  // The session's agent: one of the server's agents (`?agent=NAME`), or the built-in one.
  std::shared_ptr<const runtime::agent_definition> agent = options_.mcp_agent;
  if (const std::string name = query_value(query, "agent"); !name.empty()) {
    agent = find_agent_(name);
    if (!agent) {
      return rpc_refusal(404, mcp::rpc_code::invalid_params, "no agent named " + name.substr(0, 128), message->id);
    }
  }
  if (!agent) return rpc_refusal(404, mcp::rpc_code::invalid_params, "name an agent: /mcp?agent=NAME", message->id);
  auto provider = runtime::mcp_session::open(options_.services, agent,
                                             runtime::principal{.tenant = who.tenant, .user = who.user}, 30'000);
  if (!provider.ok()) {
    // The kernel refused the session's agent for this user: say which clause.
    return rpc_refusal(403, mcp::rpc_code::invalid_request, provider.err().message, message->id);
  }
  auto s = std::make_shared<session>();
  s->id = session_id();
  if (s->id.empty()) return rpc_refusal(500, mcp::rpc_code::internal_error, "no randomness for a session id");
  s->who = who;
  s->provider = std::move(provider).value();
  s->engine = std::make_unique<mcp::server>(
      *s->provider, mcp::server_info{.name = "choir",
                                     .version = "0.1.0",
                                     .instructions = "ChoirOS tools of agent " + agent->name +
                                                     "; every call is checked by the kernel and audited."});
  // The server's own messages go to the stream of the call that sends them, else to the session's
  // GET stream while one is open. Only a call answered with a stream can ask the client: others
  // run on the server's thread, which would also have to read the client's answer.
  s->engine->set_outbound(
      [weak = std::weak_ptr<session>(s)](const std::string& outgoing) {
        auto held = weak.lock();
        return held && held->send(outgoing);
      },
      [] { return call_stream != nullptr; });
  auto answer = s->engine->handle(*message);
  {
    std::lock_guard lock(mutex_);
    sessions_.emplace(s->id, s);
  }
  http_response out{.status = 200, .content_type = "application/json", .body = answer.value_or("{}"), .headers = {}};
  out.headers.emplace_back("Mcp-Session-Id", s->id);
  return out;
}

}  // namespace choir::api
