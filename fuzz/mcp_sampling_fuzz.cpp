/// libFuzzer target for MCP sampling both ways: the input is one JSON document, read as a server's
/// `sampling/createMessage` params (ChoirOS as the client) and as a client's `CreateMessageResult`
/// (ChoirOS as the server). Nothing may crash, throw or trip a sanitizer; whatever is accepted must
/// survive the way back: a request read from params is sent out again as params that read back,
/// and an answer read from a result is written as a result that reads back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "choir/runtime/mcp_sampling.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const choir::value doc = choir::value::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;

  if (auto request = choir::runtime::sampled_request(doc); request.ok()) {
    auto params = choir::runtime::sampling_params(*request, {}, /*with_tools=*/true);
    if (params.ok() && !choir::runtime::sampled_request(*params).ok()) std::abort();
    (void)choir::runtime::sampling_params(*request, {.hints = {"x"}}, /*with_tools=*/false);
  }
  if (auto answer = choir::runtime::sampling_answer(doc); answer.ok()) {
    answer->model = "m";
    const auto again = choir::runtime::sampling_answer(choir::runtime::sampling_result(*answer));
    if (!again.ok() || again->message.content != answer->message.content ||
        again->message.tool_calls.size() != answer->message.tool_calls.size()) {
      std::abort();
    }
  }
  return 0;
}
