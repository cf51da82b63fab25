/// libFuzzer target for MCP's JSON-RPC framing: the input, split into lines as stdio splits it, is
/// served by the MCP protocol engine over a provider with one tool. Every line must get a JSON
/// answer or none; nothing may crash, hang, throw or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string_view>

#include "choir/mcp/jsonrpc.hpp"
#include "choir/mcp/server.hpp"

namespace {

class one_tool final : public choir::mcp::server_provider {
 public:
  std::vector<choir::mcp::tool_descriptor> tools() override {
    return {{.name = "echo", .description = "echo"}, {.name = "fail", .description = "fails"}};
  }
  choir::result<choir::mcp::tool_result> call_tool(const std::string& name, const choir::value& arguments) override {
    if (name == "fail") return choir::make_error(choir::core_errc::invalid_argument, "no");
    return choir::mcp::tool_result{.content = choir::value::array({{{"type", "text"}, {"text", arguments.dump()}}})};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  choir::mcp::rpc_failure failure;
  (void)choir::mcp::parse_rpc(text, failure);

  one_tool provider;
  choir::mcp::server server(provider, {}, 1);
  std::istringstream in{std::string(text)};
  std::ostringstream out;
  choir::mcp::serve_lines(server, in, out);
  std::istringstream answers(out.str());
  std::string line;
  while (std::getline(answers, line)) {
    const auto v = choir::value::parse(line, nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded() || !v.is_object() || v["jsonrpc"] != "2.0") std::abort();  // every answer is JSON-RPC
  }
  return 0;
}
