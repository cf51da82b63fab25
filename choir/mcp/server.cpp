#include "choir/mcp/server.hpp"

#include <algorithm>
#include <istream>
#include <ostream>

#include "choir/core/json_access.hpp"
#include "choir/mcp/jsonrpc.hpp"

namespace choir::mcp {

const std::vector<std::string>& supported_versions() {
  static const std::vector<std::string> versions = {"2025-11-25", "2025-06-18", "2025-03-26"};
  return versions;
}

server::server(server_provider& provider, server_info info, std::size_t page_size)
    : provider_(provider), info_(std::move(info)), page_size_(std::max<std::size_t>(1, page_size)) {}

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
  }
  value result{{"protocolVersion", agreed},
               {"capabilities", {{"tools", {{"listChanged", false}}}, {"logging", value::object()}}},
               {"serverInfo", {{"name", info_.name}, {"version", info_.version}}}};
  if (!info_.instructions.empty()) result["instructions"] = info_.instructions;
  return result;
}

std::optional<std::string> server::handle(std::string_view message) {
  rpc_failure failure;
  auto parsed = parse_rpc(message, failure);
  if (!parsed) return rpc_error(failure.id, failure.code, failure.message);
  const rpc_message& m = *parsed;
  switch (m.type) {
    case rpc_message::kind::response: return std::nullopt;      // this server sends no requests yet
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
    static const std::vector<std::string> levels = {"debug", "info",     "notice", "warning",
                                                    "error", "critical", "alert",  "emergency"};
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
    std::size_t start = 0;
    if (params.contains("cursor") && !params["cursor"].is_null()) {
      // The cursor is opaque to clients; here it is the index of the page's first tool.
      const std::string cursor = params["cursor"].is_string() ? params["cursor"].get<std::string>() : "";
      if (cursor.empty() || cursor.size() > 9 ||
          !std::all_of(cursor.begin(), cursor.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          std::stoul(cursor) >= all.size()) {
        return rpc_error(id, rpc_code::invalid_params, "invalid cursor");
      }
      start = std::stoul(cursor);
    }
    value tools = value::array();
    const std::size_t end = std::min(all.size(), start + page_size_);
    for (std::size_t i = start; i < end; ++i) {
      const auto& t = all[i];
      value entry{{"name", t.name}, {"description", t.description}, {"inputSchema", t.input_schema}};
      if (!t.title.empty()) entry["title"] = t.title;
      if (!t.output_schema.is_null()) entry["outputSchema"] = t.output_schema;
      if (!t.annotations.is_null()) entry["annotations"] = t.annotations;
      tools.push_back(std::move(entry));
    }
    value result{{"tools", std::move(tools)}};
    if (end < all.size()) result["nextCursor"] = std::to_string(end);
    return rpc_result(id, std::move(result));
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
    auto called = provider_.call_tool(name, arguments);
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
  return rpc_error(id, rpc_code::method_not_found, "method not found: " + method);
}

void serve_lines(server& s, std::istream& in, std::ostream& out) {
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (auto answer = s.handle(line)) {
      out << *answer << '\n';
      out.flush();
    }
  }
}

}  // namespace choir::mcp
