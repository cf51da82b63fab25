/// libFuzzer target for what the model gateway reads from the network and from its files: the
/// input is fed to the server-sent-events parser in pieces (split at bytes the input chooses), and
/// parsed as a whole OpenAI Chat Completions answer, a whole OpenAI Responses answer, a whole
/// Anthropic answer, a chat message and a scripted model's rules. None may crash, hang or trip a
/// sanitizer; every failure must be a `result` error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "choir/models/chat.hpp"
#include "choir/models/providers.hpp"
#include "choir/models/scripted.hpp"
#include "choir/net/sse.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  choir::net::sse_parser parser(4096);
  std::size_t events = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    // Piece lengths come from the input itself, so the fuzzer explores every split.
    const std::size_t len = 1 + static_cast<unsigned char>(text[start]) % 61;
    auto fed = parser.feed(text.substr(start, len), [&](const choir::net::sse_event& e) {
      events += e.data.size() + e.event.size() > 0 ? 1 : 0;
    });
    if (!fed.ok()) break;
    start += len;
  }

  (void)choir::models::parse_openai_answer(text);
  (void)choir::models::parse_openai_responses_answer(text);
  (void)choir::models::parse_anthropic_answer(text);
  const choir::value v = choir::value::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!v.is_discarded()) {
    (void)choir::models::message_from_json(v);
    (void)choir::models::response_from_json(v);
  }
  if (auto model = choir::models::scripted_from_yaml(text, "fuzz.yaml"); model.ok()) {
    choir::models::chat_request request{.model = "m", .messages = {{.role = "user", .content = "note: hi"}}};
    (void)(*model)->complete(request, nullptr);
  }
  return 0;
}
