/// libFuzzer target for the store's state loaders: the input is a snapshot (its first line) and
/// the deltas after it (one per line), exactly as the store reads them back from its tables.
/// Rebuilding the state must never crash, throw or trip a sanitizer: hostile rows fail with
/// `corrupt` (or `step_not_found` for a short history), and a state that loads round-trips.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "choir/store/event_store.hpp"
#include "choir/store/store_detail.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start <= text.size() && lines.size() < 64) {
    const auto end = text.find('\n', start);
    lines.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (lines.empty()) return 0;
  const std::int64_t target = static_cast<std::int64_t>(lines.size()) - 1;
  std::size_t next = 1;
  auto rebuilt = choir::store::detail::rebuild_state("fuzz", 0 - 1, lines[0], target - 1,
                                                     [&](std::int64_t& seq, std::string& delta) -> choir::result<bool> {
                                                       if (next >= lines.size()) return false;
                                                       seq = static_cast<std::int64_t>(next) - 1;
                                                       delta = lines[next++];
                                                       return true;
                                                     });
  if (rebuilt.ok()) {
    // A state that loads must survive its own round trip through JSON.
    auto again = choir::graph::state::from_json(rebuilt->to_json());
    if (!again.ok() || again->to_json() != rebuilt->to_json()) std::abort();
  } else if (rebuilt.err().code != choir::store::store_errc::corrupt &&
             rebuilt.err().code != choir::store::store_errc::step_not_found) {
    std::abort();
  }
  return 0;
}
