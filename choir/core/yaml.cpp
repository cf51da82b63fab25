#include "choir/core/yaml.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <sstream>
#include <utility>

namespace choir {
namespace {

/// The 1-based line and column (in bytes) of the first byte that is not valid UTF-8, if any.
std::optional<std::pair<int, int>> first_invalid_utf8(std::string_view text) {
  int line = 1;
  int column = 1;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t len = 0;
    std::uint32_t min = 0;
    if (c < 0x80) {
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      min = 0x10000;
    } else {
      return std::make_pair(line, column);
    }
    if (i + len > text.size()) return std::make_pair(line, column);
    std::uint32_t cp = len == 1 ? c : (c & (0xFFu >> (len + 1)));
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return std::make_pair(line, column);
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::make_pair(line, column);
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      column += static_cast<int>(len);
    }
    i += len;
  }
  return std::nullopt;
}

/// Resolves a plain (unquoted) scalar the way the YAML 1.2 core schema does.
value resolve_plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return value();
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  const char* digits = (*begin == '+') ? begin + 1 : begin;
  std::int64_t i = 0;
  if (auto [p, ec] = std::from_chars(digits, end, i); ec == std::errc() && p == end && digits != end) return i;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    std::uint64_t h = 0;
    if (auto [p, ec] = std::from_chars(begin + 2, end, h, 16);
        ec == std::errc() && p == end && h <= static_cast<std::uint64_t>(INT64_MAX)) {
      return static_cast<std::int64_t>(h);
    }
  }
  // Floats: digits with a '.' or an exponent; no inf/nan (JSON has neither).
  const bool looks_numeric = std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+';
  });
  if (looks_numeric) {
    double d = 0;
    if (auto [p, ec] = std::from_chars(digits, end, d); ec == std::errc() && p == end && std::isfinite(d)) return d;
  }
  return s;
}

/// Thrown inside the event handler to stop the parser; caught in `parse_yaml`.
struct build_failure {
  YAML::Mark mark;
  std::string message;
};

}  // namespace

/// Builds JSON values from yaml-cpp's parser events, recording positions and key order, counting
/// nodes (aliases by the size of what they copy) and bounding depth and documents.
class yaml_builder final : public YAML::EventHandler {
 public:
  yaml_builder(std::string_view file, const yaml_limits& limits) : file_(file), limits_(limits) {}

  std::vector<yaml_document> take() { return std::move(documents_); }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_.size() >= limits_.max_documents) {
      throw build_failure{mark, "more than " + std::to_string(limits_.max_documents) + " documents"};
    }
    documents_.emplace_back();
    documents_.back().file_ = std::string(file_);
    anchors_.clear();
    stack_.clear();
    record_position("", mark);
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { add(mark, value(), anchor, 1); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw build_failure{mark, "an alias refers to an unknown anchor"};
    add(mark, it->second.first, 0, it->second.second);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& text) override {
    const bool quoted = tag == "!" || tag == "!!str" || tag == "tag:yaml.org,2002:str";
    if (expecting_key()) {
      stack_.back().pending_key = text;
      stack_.back().key_mark = mark;
      return;
    }
    add(mark, quoted ? value(text) : resolve_plain_scalar(text), anchor, 1);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    open(mark, value::array(), anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    open(mark, value::object(), anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  struct frame {
    value container;
    std::string path;
    YAML::anchor_t anchor = 0;
    std::size_t nodes_at_start = 0;
    std::optional<std::string> pending_key;
    YAML::Mark key_mark;
  };

  bool expecting_key() const {
    return !stack_.empty() && stack_.back().container.is_object() && !stack_.back().pending_key;
  }

  void count(const YAML::Mark& mark, std::size_t n) {
    nodes_ += n;
    if (nodes_ > limits_.max_nodes) {
      throw build_failure{mark, "the document expands to more than " + std::to_string(limits_.max_nodes) + " nodes"};
    }
  }

  void record_position(const std::string& path, const YAML::Mark& mark) {
    documents_.back().positions_[path] = {mark.line + 1, mark.column + 1};
  }

  /// The path of the node about to be added to the innermost container (or the root).
  std::string child_path() const {
    if (stack_.empty()) return "";
    const frame& top = stack_.back();
    const std::string part = top.container.is_object() ? *top.pending_key : std::to_string(top.container.size());
    return top.path.empty() ? part : top.path + "." + part;
  }

  void open(const YAML::Mark& mark, value container, YAML::anchor_t anchor) {
    if (expecting_key()) throw build_failure{mark, "a mapping key must be a plain string"};
    if (stack_.size() >= limits_.max_depth) {
      throw build_failure{mark, "nested more than " + std::to_string(limits_.max_depth) + " deep"};
    }
    count(mark, 1);
    std::string path = child_path();
    record_position(path, mark);
    stack_.push_back({std::move(container), std::move(path), anchor, nodes_, std::nullopt, YAML::Mark()});
  }

  void close() {
    frame done = std::move(stack_.back());
    stack_.pop_back();
    if (done.container.is_object()) documents_.back().key_order_.try_emplace(done.path);
    if (done.anchor != 0) anchors_[done.anchor] = {done.container, nodes_ - done.nodes_at_start + 1};
    place(std::move(done.container));
  }

  void add(const YAML::Mark& mark, value v, YAML::anchor_t anchor, std::size_t nodes) {
    if (expecting_key()) throw build_failure{mark, "a mapping key must be a plain string"};
    count(mark, nodes);
    record_position(child_path(), mark);
    if (anchor != 0) anchors_[anchor] = {v, nodes};
    place(std::move(v));
  }

  void place(value v) {
    if (stack_.empty()) {
      documents_.back().root_ = std::move(v);
      return;
    }
    frame& top = stack_.back();
    if (top.container.is_array()) {
      top.container.push_back(std::move(v));
      return;
    }
    std::string key = std::move(*top.pending_key);
    top.pending_key.reset();
    if (top.container.contains(key)) throw build_failure{top.key_mark, "the key '" + key + "' appears twice"};
    documents_.back().key_order_[top.path].push_back(key);
    top.container[key] = std::move(v);
  }

  std::string_view file_;
  const yaml_limits& limits_;
  std::vector<yaml_document> documents_;
  std::vector<frame> stack_;
  std::unordered_map<YAML::anchor_t, std::pair<value, std::size_t>> anchors_;
  std::size_t nodes_ = 0;
};

std::string yaml_document::locate(std::string_view path) const {
  std::string key(path);
  for (;;) {
    auto it = positions_.find(key);
    if (it != positions_.end()) {
      return file_ + ":" + std::to_string(it->second.line) + ":" + std::to_string(it->second.column);
    }
    if (key.empty()) return file_;
    const auto dot = key.rfind('.');
    key = dot == std::string::npos ? std::string() : key.substr(0, dot);
  }
}

const std::vector<std::string>& yaml_document::keys_in_order(std::string_view path) const {
  static const std::vector<std::string> none;
  auto it = key_order_.find(std::string(path));
  return it != key_order_.end() ? it->second : none;
}

result<std::vector<yaml_document>> parse_yaml(std::string_view text, std::string_view file, const yaml_limits& limits) {
  if (text.size() > limits.max_bytes) {
    return make_error(core_errc::parse_error,
                      std::string(file) + ": larger than " + std::to_string(limits.max_bytes) + " bytes");
  }
  if (auto bad = first_invalid_utf8(text)) {
    return make_error(core_errc::parse_error, std::string(file) + ":" + std::to_string(bad->first) + ":" +
                                                  std::to_string(bad->second) + ": not valid UTF-8");
  }
  auto where = [&](const YAML::Mark& mark) {
    std::string out(file);
    if (mark.line >= 0) out += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
    return out;
  };
  std::istringstream in{std::string(text)};
  yaml_builder builder(file, limits);
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const build_failure& e) {
    return make_error(core_errc::parse_error, where(e.mark) + ": " + e.message);
  } catch (const YAML::Exception& e) {
    return make_error(core_errc::parse_error, where(e.mark) + ": " + e.msg);
  }
  return builder.take();
}

}  // namespace choir
