/// libFuzzer target for what `web.fetch` and the HTTP client read from outside: URLs (an agent's
/// argument, a redirect's `Location`) and addresses. `net::parse_url` must accept or refuse
/// without crashing, and what it accepts must be well formed; `tools::refused_address` must give
/// a verdict for any text. Nothing may crash, hang, throw or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "choir/net/http_client.hpp"
#include "choir/tools/builtin.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 8192) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto parts = choir::net::parse_url(text); parts.ok()) {
    if (parts->scheme != "http" && parts->scheme != "https") std::abort();
    if (parts->host.empty() || parts->port.empty() || parts->target.empty() || parts->target.front() != '/') {
      std::abort();
    }
    for (const char c : parts->target) {
      if (static_cast<unsigned char>(c) <= ' ') std::abort();  // no control characters or spaces reach a request line
    }
  }
  (void)choir::tools::refused_address(text);
  return 0;
}
