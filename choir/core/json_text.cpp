#include "choir/core/json_text.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <system_error>
#include <vector>

namespace choir {

namespace {

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Reads the 4 hex digits of a `\u` escape at `text[i]`; -1 if they are not there.
long read_hex4(std::string_view text, std::size_t i) noexcept {
  if (text.size() - i < 4) return -1;
  long out = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    const int h = hex_value(text[i + k]);
    if (h < 0) return -1;
    out = out * 16 + h;
  }
  return out;
}

/// Length of the well-formed UTF-8 sequence (RFC 3629: no overlong form, no surrogate, nothing
/// above U+10FFFF) starting with the non-ASCII byte at `text[i]`; 0 if it is not one.
std::size_t utf8_length(std::string_view text, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const auto in = [&](std::size_t k, unsigned lo, unsigned hi) {
    return i + k < text.size() && byte(k) >= lo && byte(k) <= hi;
  };
  const unsigned b = byte(0);
  if (b >= 0xC2 && b <= 0xDF) return in(1, 0x80, 0xBF) ? 2 : 0;
  if (b == 0xE0) return in(1, 0xA0, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
  if (b == 0xED) return in(1, 0x80, 0x9F) && in(2, 0x80, 0xBF) ? 3 : 0;
  if (b == 0xF0) return in(1, 0x90, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  if (b >= 0xF1 && b <= 0xF3) return in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  if (b == 0xF4) return in(1, 0x80, 0x8F) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  return 0;
}

/// Skips the string whose opening quote is at `text[i]`; the index after its closing quote, or
/// npos if it is not a valid JSON string.
std::size_t skip_string(std::string_view text, std::size_t i) noexcept {
  ++i;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"') return i + 1;
    if (c < 0x20) return std::string_view::npos;
    if (c == '\\') {
      if (i + 1 >= text.size()) return std::string_view::npos;
      const char e = text[i + 1];
      if (e == 'u') {
        const long unit = read_hex4(text, i + 2);
        if (unit < 0) return std::string_view::npos;
        i += 6;
        if (unit >= 0xDC00 && unit <= 0xDFFF) return std::string_view::npos;  // a low surrogate alone
        if (unit >= 0xD800 && unit <= 0xDBFF) {  // a high surrogate: its low half must follow
          if (text.size() - i < 6 || text[i] != '\\' || text[i + 1] != 'u') return std::string_view::npos;
          const long low = read_hex4(text, i + 2);
          if (low < 0xDC00 || low > 0xDFFF) return std::string_view::npos;
          i += 6;
        }
        continue;
      }
      if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
        return std::string_view::npos;
      }
      i += 2;
      continue;
    }
    if (c < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_length(text, i);
    if (n == 0) return std::string_view::npos;
    i += n;
  }
  return std::string_view::npos;
}

/// Skips the number at `text[i]`; the index after it, or npos if it is not a JSON number or
/// would not be finite as a double (what a JSON reader of doubles cannot hold, `1e400`).
std::size_t skip_number(std::string_view text, std::size_t i) noexcept {
  const std::size_t start = i;
  const auto digits = [&] {
    const std::size_t from = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    return i - from;
  };
  if (text[i] == '-') ++i;
  if (i >= text.size() || !is_digit(text[i])) return std::string_view::npos;
  const std::size_t int_start = i;
  std::size_t int_digits = 1;  // "0", or digits without a leading zero
  if (text[i] == '0') {
    ++i;
  } else {
    int_digits = digits();
  }
  std::size_t fraction_start = i;
  std::size_t fraction_digits = 0;
  if (i < text.size() && text[i] == '.') {
    fraction_start = ++i;
    if ((fraction_digits = digits()) == 0) return std::string_view::npos;
  }
  bool has_exponent = false;
  bool exponent_negative = false;
  std::size_t exponent_start = i;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    has_exponent = true;
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) exponent_negative = text[i++] == '-';
    exponent_start = i;
    if (digits() == 0) return std::string_view::npos;
  }
  // Only a number this long, or with a fraction or an exponent, can leave the range of a double.
  if (fraction_digits == 0 && !has_exponent && int_digits <= 300) return i;
  double parsed = 0;
  const auto [end, ec] = std::from_chars(text.data() + start, text.data() + i, parsed);
  if (ec == std::errc::result_out_of_range) {
    // Too large (not finite) or too small (rounds to zero, which a reader accepts): the decimal
    // exponent of the first significant digit tells which, roughly — far from zero either way.
    long magnitude = static_cast<long>(int_digits);
    if (text[int_start] == '0') {
      magnitude = 0;
      for (std::size_t d = fraction_start; d < fraction_start + fraction_digits && text[d] == '0'; ++d) --magnitude;
    }
    // Every exponent digit is read, saturating: a capped exponent could flip the sign of the
    // magnitude when the number has as many leading zeros.
    constexpr long saturated = 1'000'000'000'000'000L;  // more than any text's length
    long exponent = 0;
    for (std::size_t d = exponent_start; has_exponent && d < i; ++d) {
      exponent = std::min(saturated, exponent * 10 + (text[d] - '0'));
    }
    return magnitude + (exponent_negative ? -exponent : exponent) > 0 ? std::string_view::npos : i;
  }
  if (ec != std::errc() || end != text.data() + i) return std::string_view::npos;
  return i;
}

bool skip_literal(std::string_view text, std::size_t& i, std::string_view word) noexcept {
  if (text.substr(i, word.size()) != word) return false;
  i += word.size();
  return true;
}

}  // namespace

std::string dump_json(const value& v, int indent) {
  if (indent >= 0) return v.dump(indent, ' ', false, value::error_handler_t::replace);
  std::string out;
  append_json(out, v);
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F || c == '"' || c == '\\') {
      out += value(std::string(text)).dump(-1, ' ', false, value::error_handler_t::replace);
      return;
    }
  }
  out += '"';
  out += text;
  out += '"';
}

void append_json(std::string& out, const value& v) {
  switch (v.type()) {
    case value::value_t::null: out += "null"; return;
    case value::value_t::boolean: out += v.get_ref<const value::boolean_t&>() ? "true" : "false"; return;
    case value::value_t::number_integer:
    case value::value_t::number_unsigned: {
      char digits[24];
      const auto written = v.is_number_unsigned()
                               ? std::to_chars(std::begin(digits), std::end(digits), v.get<std::uint64_t>())
                               : std::to_chars(std::begin(digits), std::end(digits), v.get<std::int64_t>());
      out.append(digits, written.ptr);
      return;
    }
    case value::value_t::string: append_json_string(out, v.get_ref<const std::string&>()); return;
    case value::value_t::array: {
      out += '[';
      bool first = true;
      for (const value& item : v) {
        if (!first) out += ',';
        first = false;
        append_json(out, item);
      }
      out += ']';
      return;
    }
    case value::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.items()) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, key);
        out += ':';
        append_json(out, item);
      }
      out += '}';
      return;
    }
    default:  // floating-point numbers (the library's shortest round-trip form), binary, discarded
      out += v.dump(-1, ' ', false, value::error_handler_t::replace);
      return;
  }
}

bool is_json_text(std::string_view text) noexcept {
  // An explicit stack of open containers ('[' or '{'): nesting costs memory, not recursion.
  std::vector<char> open;
  std::size_t i = 0;
  const auto skip_space = [&] {
    while (i < text.size() && is_space(text[i])) ++i;
  };
  // A member's key and the colon after it.
  const auto member_key = [&] {
    skip_space();
    if (i >= text.size() || text[i] != '"') return false;
    i = skip_string(text, i);
    if (i == std::string_view::npos) return false;
    skip_space();
    if (i >= text.size() || text[i] != ':') return false;
    ++i;
    return true;
  };
  // The parser's position: expecting a value, or what may follow one inside a container.
  for (;;) {
    // A value.
    skip_space();
    if (i >= text.size()) return false;
    const char c = text[i];
    if (c == '{' || c == '[') {
      if (open.size() == json_text_max_depth) return false;
      open.push_back(c);
      ++i;
      skip_space();
      if (i < text.size() && text[i] == (c == '{' ? '}' : ']')) {
        open.pop_back();
        ++i;
      } else if (c == '{') {
        if (!member_key()) return false;  // the first member's key, then its value
        continue;
      } else {
        continue;
      }
    } else if (c == '"') {
      i = skip_string(text, i);
      if (i == std::string_view::npos) return false;
    } else if (c == '-' || is_digit(c)) {
      i = skip_number(text, i);
      if (i == std::string_view::npos) return false;
    } else if (!skip_literal(text, i, "true") && !skip_literal(text, i, "false") && !skip_literal(text, i, "null")) {
      return false;
    }
    // After a value: close containers, or go on to the next element or member.
    for (;;) {
      skip_space();
      if (open.empty()) return i == text.size();
      if (i >= text.size()) return false;
      const char after = text[i];
      if (after == ',') {
        ++i;
        if (open.back() == '{' && !member_key()) return false;
        break;  // the next value
      }
      if (after != (open.back() == '{' ? '}' : ']')) return false;
      open.pop_back();
      ++i;
    }
  }
}

}  // namespace choir
