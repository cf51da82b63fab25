#pragma once
/// Server-sent events (the WHATWG "text/event-stream" format): the streaming wire format of the
/// OpenAI and Anthropic APIs and of MCP's Streamable HTTP. The parser is incremental: bytes go in
/// as they arrive, in pieces of any size, and each complete event comes out once.
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "choir/core/result.hpp"

namespace choir::net {

struct sse_event {
  std::string event;  ///< the `event:` field; empty means "message"
  std::string data;   ///< the `data:` lines joined with '\n'
  std::string id;     ///< the last `id:` seen (it carries over to later events, as the spec says)
};

class sse_parser {
 public:
  /// An event larger than `max_event_bytes` (data and field names together) fails the stream
  /// rather than growing without bound.
  explicit sse_parser(std::size_t max_event_bytes = 8u << 20) : max_event_bytes_(max_event_bytes) {}

  /// Feeds the next bytes; calls `on_event` for each event they complete, in order. Lines may end
  /// in LF, CR or CRLF (a CRLF split across two feeds is handled); a leading UTF-8 BOM is skipped;
  /// comment lines (`:…`) and unknown fields are ignored; `retry:` is accepted and ignored.
  /// Errors: `core_errc::parse_error` once an event grows past the limit (the parser then stays
  /// failed).
  [[nodiscard]] result<void> feed(std::string_view bytes, const std::function<void(const sse_event&)>& on_event);

 private:
  void line(std::string_view text, const std::function<void(const sse_event&)>& on_event);

  std::size_t max_event_bytes_;
  std::string line_;   ///< the unfinished line
  sse_event pending_;  ///< the event being assembled
  bool has_data_ = false;
  bool after_cr_ = false;  ///< the last byte was CR: a following LF belongs to it
  bool started_ = false;   ///< past the optional BOM
  bool failed_ = false;
  std::size_t pending_bytes_ = 0;
  std::string last_id_;
};

}  // namespace choir::net
