/// libFuzzer target for the MCP client: what a hostile or broken server sends. After a proper
/// handshake, every request the client makes is answered by the input's lines (each `$ID` replaced
/// by the request's id), then by an error with that id, so each request ends. The lines may be
/// anything: responses to other ids, notifications, progress for unknown tokens, requests back to
/// the client (sampling, roots, elicitation, ping), malformed JSON. Nothing may crash, hang,
/// throw or trip a sanitizer, and every call must end with a value or an error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "choir/mcp/client.hpp"

namespace {

std::vector<std::string> lines_of(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty() && out.size() < 64) {
    const auto nl = text.find('\n');
    out.emplace_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

class hostile_server final : public choir::mcp::transport {
 public:
  explicit hostile_server(std::vector<std::string> lines) : lines_(std::move(lines)) {}
  choir::result<void> start(message_handler on_message, close_handler) override {
    on_message_ = std::move(on_message);
    return {};
  }
  choir::result<void> send(const std::string& message) override {
    const auto m = choir::value::parse(message, nullptr, false);
    if (m.is_discarded() || !m.contains("id") || !m.contains("method")) return {};
    const std::string id = m["id"].dump();
    if (m["method"] == "initialize") {
      on_message_(R"({"jsonrpc":"2.0","id":)" + id +
                  R"(,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"f"}}})");
      return {};
    }
    for (auto line : lines_) {
      for (auto at = line.find("$ID"); at != std::string::npos; at = line.find("$ID", at + id.size())) {
        line.replace(at, 3, id);
      }
      on_message_(line);
    }
    on_message_(R"({"jsonrpc":"2.0","id":)" + id + R"(,"error":{"code":-32603,"message":"end"}})");
    return {};
  }
  void close() override {}
  std::string describe() const override { return "fuzz"; }

 private:
  std::vector<std::string> lines_;
  message_handler on_message_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  choir::mcp::client_options options;
  options.request_timeout = std::chrono::milliseconds(2'000);
  options.roots = {"file:///workspace"};
  options.on_sampling = [](const choir::value& params, const std::vector<std::string>&) -> choir::result<choir::value> {
    if (!params.is_object()) return choir::make_error(choir::core_errc::invalid_argument, "bad");
    return choir::value{{"role", "assistant"}, {"content", {{"type", "text"}, {"text", "x"}}}, {"model", "m"}};
  };
  auto c = choir::mcp::client::connect(std::make_unique<hostile_server>(lines_of(text)), options);
  if (!c.ok()) std::abort();  // the handshake itself is well-formed
  (void)(*c)->list_tools();
  choir::mcp::call_options call;
  call.on_progress = [](const choir::mcp::progress_update&) {};
  call.tag = "run";
  if (auto r = (*c)->call_tool("x", choir::value::object(), call); r.ok()) (void)r->text();
  (void)(*c)->ping();
  (*c)->close();
  return 0;
}
