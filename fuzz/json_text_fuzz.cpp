/// libFuzzer target for `is_json_text`, the check of every JSON column a step commits: compared
/// with the JSON reader. What it accepts, the reader must read, also embedded in a larger text (a
/// packed step inside a log row); what the reader reads, it must accept — but for a byte-order
/// mark, which the reader skips only at the start, a NUL byte, which it takes for the end, and
/// nesting deeper than `json_text_max_depth`.
/// And `dump_json` writes each value read exactly as the library's serializer does.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "choir/core/json_text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool ours = choir::is_json_text(text);
  const bool reader = choir::value::accept(text);
  if (ours) {
    if (!reader) std::abort();
    if (!choir::value::accept("[" + text + "," + text + "]")) std::abort();
    if (!choir::value::accept("{\"k\":" + text + "}")) std::abort();
  } else if (reader && text.rfind("\xEF\xBB\xBF", 0) != 0 && text.find('\0') == std::string::npos &&
             std::count_if(text.begin(), text.end(), [](char c) { return c == '[' || c == '{'; }) <=
                 static_cast<std::ptrdiff_t>(choir::json_text_max_depth)) {
    std::abort();
  }
  // `dump_json` writes what the library's serializer writes, byte for byte.
  if (reader) {
    const choir::value v = choir::value::parse(text, nullptr, false);
    if (!v.is_discarded() && choir::dump_json(v) != v.dump(-1, ' ', false, choir::value::error_handler_t::replace)) {
      std::abort();
    }
  }
  return 0;
}
