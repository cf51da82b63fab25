#include "choir/net/sse.hpp"

namespace choir::net {

result<void> sse_parser::feed(std::string_view bytes, const std::function<void(const sse_event&)>& on_event) {
  if (failed_) return make_error(core_errc::parse_error, "event stream: an earlier event was over the size limit");
  if (!started_) {
    // The BOM may arrive split across feeds; hold back a prefix of it.
    static constexpr std::string_view bom = "\xEF\xBB\xBF";
    line_.append(bytes);
    if (line_.size() < bom.size() && bom.substr(0, line_.size()) == line_) return {};
    started_ = true;
    std::string held = std::move(line_);
    line_.clear();
    std::string_view rest = held;
    if (rest.substr(0, bom.size()) == bom) rest.remove_prefix(bom.size());
    return feed(rest, on_event);
  }
  std::size_t start = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c != '\n' && c != '\r') continue;
    if (c == '\n' && after_cr_ && i == start && line_.empty()) {
      // The LF of a CRLF whose CR ended the previous piece of input or line.
      after_cr_ = false;
      start = i + 1;
      continue;
    }
    line_.append(bytes.substr(start, i - start));
    line(line_, on_event);
    line_.clear();
    if (failed_) return make_error(core_errc::parse_error, "event stream: an event is over the size limit");
    after_cr_ = c == '\r';
    start = i + 1;
  }
  if (start < bytes.size()) {
    after_cr_ = false;
    line_.append(bytes.substr(start));
    if (line_.size() + pending_bytes_ > max_event_bytes_) {
      failed_ = true;
      return make_error(core_errc::parse_error, "event stream: a line is over the size limit");
    }
  }
  return {};
}

void sse_parser::line(std::string_view text, const std::function<void(const sse_event&)>& on_event) {
  if (text.empty()) {  // dispatch
    if (has_data_) {
      pending_.id = last_id_;
      on_event(pending_);
    }
    pending_ = {};
    has_data_ = false;
    pending_bytes_ = 0;
    return;
  }
  if (text.front() == ':') return;  // a comment
  std::string_view field = text;
  std::string_view val;
  if (const auto colon = text.find(':'); colon != std::string_view::npos) {
    field = text.substr(0, colon);
    val = text.substr(colon + 1);
    if (!val.empty() && val.front() == ' ') val.remove_prefix(1);
  }
  pending_bytes_ += text.size();
  if (pending_bytes_ > max_event_bytes_) {
    failed_ = true;
    return;
  }
  if (field == "data") {
    if (has_data_) pending_.data.push_back('\n');
    pending_.data.append(val);
    has_data_ = true;
  } else if (field == "event") {
    pending_.event = std::string(val);
  } else if (field == "id") {
    if (val.find('\0') == std::string_view::npos) last_id_ = std::string(val);
  }
  // `retry` and unknown fields are ignored.
}

}  // namespace choir::net
