#include "choir/mcp/jsonrpc.hpp"

namespace choir::mcp {

std::optional<rpc_message> parse_rpc(std::string_view text, rpc_failure& failure, std::size_t max_bytes) {
  failure = {};
  if (text.size() > max_bytes) {
    failure = {rpc_code::invalid_request, "message over " + std::to_string(max_bytes) + " bytes", nullptr};
    return std::nullopt;
  }
  value v = value::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) {
    failure = {rpc_code::parse_error, "not JSON", nullptr};
    return std::nullopt;
  }
  if (v.is_array()) {
    failure = {rpc_code::invalid_request, "batches are not supported (one message at a time)", nullptr};
    return std::nullopt;
  }
  if (!v.is_object()) {
    failure = {rpc_code::invalid_request, "a message is a JSON object", nullptr};
    return std::nullopt;
  }
  rpc_message m;
  const auto id = v.find("id");
  if (id != v.end()) {
    if (!id->is_string() && !id->is_number_integer()) {
      failure = {rpc_code::invalid_request, "id must be a string or an integer", nullptr};
      return std::nullopt;
    }
    m.id = *id;
  }
  const auto version = v.find("jsonrpc");
  if (version == v.end() || *version != "2.0") {
    failure = {rpc_code::invalid_request, "jsonrpc must be \"2.0\"", m.id};
    return std::nullopt;
  }
  const auto method = v.find("method");
  if (method != v.end()) {
    if (!method->is_string() || method->get_ref<const std::string&>().empty()) {
      failure = {rpc_code::invalid_request, "method must be a non-empty string", m.id};
      return std::nullopt;
    }
    m.method = method->get<std::string>();
    m.type = m.id.is_null() ? rpc_message::kind::notification : rpc_message::kind::request;
    const auto params = v.find("params");
    if (params != v.end() && !params->is_null()) {
      if (!params->is_object()) {
        failure = {rpc_code::invalid_params, "params must be an object", m.id};
        return std::nullopt;
      }
      m.params = *params;
    }
    return m;
  }
  // A response: to one of our requests.
  if (m.id.is_null() && !v.contains("error")) {
    failure = {rpc_code::invalid_request, "a message needs a method, or an id with a result or an error", nullptr};
    return std::nullopt;
  }
  m.type = rpc_message::kind::response;
  const bool has_result = v.contains("result");
  const bool has_error = v.contains("error");
  if (has_result == has_error) {
    failure = {rpc_code::invalid_request, "a response has exactly one of result and error", m.id};
    return std::nullopt;
  }
  if (has_result) m.result = v["result"];
  if (has_error) {
    const value& e = v["error"];
    if (!e.is_object() || !e.contains("code") || !e["code"].is_number_integer() || !e.contains("message") ||
        !e["message"].is_string()) {
      failure = {rpc_code::invalid_request, "an error needs an integer code and a message", m.id};
      return std::nullopt;
    }
    m.error = e;
  }
  return m;
}

std::string rpc_result(const value& id, value result) {
  return dump_json(value{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}});
}

std::string rpc_error(const value& id, int code, std::string_view message, value data) {
  value e{{"code", code}, {"message", std::string(message)}};
  if (!data.is_null()) e["data"] = std::move(data);
  return dump_json(value{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(e)}});
}

std::string rpc_notification(std::string_view method, value params) {
  return dump_json(value{{"jsonrpc", "2.0"}, {"method", std::string(method)}, {"params", std::move(params)}});
}

}  // namespace choir::mcp
