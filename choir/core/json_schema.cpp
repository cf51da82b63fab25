#include "choir/core/json_schema.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace choir {
namespace {

static_assert(sizeof(wchar_t) >= 4, "patterns are matched on UTF-32 code points held in wchar_t");

using node_id = std::uint32_t;
constexpr node_id no_node = std::numeric_limits<node_id>::max();

/// Evaluation is bounded in work units, so that hostile schemas (`anyOf` nested in `anyOf`, huge
/// repetitions in a pattern) cannot take exponential or merely very long time. Applying a subschema
/// to a value costs `step_cost`; running a pattern about (bytes × automaton size), which is also
/// roughly what it costs in time. One validation may spend `base_budget`, plus an allowance for each
/// value and each string byte (values and keys) of the instance; past that it stops.
constexpr std::size_t step_cost = 16;
constexpr std::size_t base_budget = 1'000'000;
constexpr std::size_t budget_per_value = 32 * step_cost;
constexpr std::size_t budget_per_string_byte = 64;
/// Subschemas applied inside one another; bounded so that evaluation never exhausts the stack.
constexpr std::size_t max_evaluation_depth = 4 * json_schema::max_depth;
/// Bounds on `pattern`: source length, the size it expands to once `{n,m}` is unrolled (std::regex
/// compiles and matches recursively, and matching time grows with it), and the input length for
/// patterns with a lookahead (each lookahead may rescan the rest of the string).
constexpr std::size_t max_pattern_bytes = 4096;
constexpr std::size_t max_pattern_complexity = 2000;
constexpr std::size_t max_lookahead_input = 512;
/// Alternatives of a failed `anyOf`/`oneOf` whose first violation is quoted in its message.
constexpr std::size_t explained_alternatives = 4;

enum class dialect { draft4, draft6, draft7, draft2019_09, draft2020_12 };

// ------------------------------------------------------------------------------------------------
// Values

enum type_bit : unsigned {
  t_null = 1,
  t_boolean = 2,
  t_integer = 4,
  t_number = 8,
  t_string = 16,
  t_array = 32,
  t_object = 64,
};

constexpr std::pair<std::string_view, unsigned> type_names[] = {
    {"null", t_null},     {"boolean", t_boolean}, {"integer", t_integer}, {"number", t_number},
    {"string", t_string}, {"array", t_array},     {"object", t_object},
};

bool is_integral(const value& v) {
  if (v.is_number_integer()) return true;  // signed or unsigned
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && std::trunc(d) == d;
}

unsigned type_bits(const value& v) {
  switch (v.type()) {
    case value::value_t::null: return t_null;
    case value::value_t::boolean: return t_boolean;
    case value::value_t::number_integer:
    case value::value_t::number_unsigned: return t_number | t_integer;
    case value::value_t::number_float: return is_integral(v) ? (t_number | t_integer) : t_number;
    case value::value_t::string: return t_string;
    case value::value_t::array: return t_array;
    case value::value_t::object: return t_object;
    default: return 0;
  }
}

std::string type_name(const value& v) {
  switch (v.type()) {
    case value::value_t::null: return "null";
    case value::value_t::boolean: return "boolean";
    case value::value_t::number_integer:
    case value::value_t::number_unsigned: return "integer";
    case value::value_t::number_float: return "number";
    case value::value_t::string: return "string";
    case value::value_t::array: return "array";
    case value::value_t::object: return "object";
    default: return "binary";
  }
}

/// `s` as a JSON string, cut to about `limit` bytes, for messages.
std::string quote(std::string_view s, std::size_t limit = 80) {
  if (s.size() <= limit) return dump_json(value(std::string(s)));
  return dump_json(value(std::string(s.substr(0, limit)))) + "…";
}

/// `v` as JSON, cut to about `limit` bytes, for messages.
std::string show(const value& v, std::size_t limit = 200) {
  std::string text = dump_json(v);
  if (text.size() > limit) text = text.substr(0, limit) + "…";
  return text;
}

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

/// How much there is in a value: its values and the bytes of its strings and keys.
struct value_size {
  std::size_t values = 0;
  std::size_t string_bytes = 0;
};

/// Walks `v` without recursion. False if an array or object is nested more than `limit` deep (the
/// outermost counts as 1); `size` receives what was seen.
bool within_depth(const value& v, std::size_t limit, value_size& size) {
  std::vector<std::pair<const value*, std::size_t>> stack{{&v, 1}};
  size = {};
  while (!stack.empty()) {
    const auto [current, depth] = stack.back();
    stack.pop_back();
    ++size.values;
    if (current->is_string()) size.string_bytes += current->get_ref<const std::string&>().size();
    if (!current->is_structured()) continue;
    if (depth > limit) return false;
    if (current->is_object()) {
      for (auto it = current->begin(); it != current->end(); ++it) size.string_bytes += it.key().size();
    }
    for (const value& child : *current) stack.emplace_back(&child, depth + 1);
  }
  return true;
}

/// An integer as sign and magnitude, so that every int64 and uint64 compares exactly.
struct integer_parts {
  bool negative = false;
  std::uint64_t magnitude = 0;
};

integer_parts integer_of(const value& v) {
  if (v.is_number_unsigned()) return {false, v.get<std::uint64_t>()};
  const std::int64_t i = v.get<std::int64_t>();
  if (i >= 0) return {false, static_cast<std::uint64_t>(i)};
  return {true, static_cast<std::uint64_t>(-(i + 1)) + 1};
}

constexpr int unordered = 2;
constexpr double two_to_64 = 18446744073709551616.0;

int compare_integers(integer_parts a, integer_parts b) {
  if (a.negative != b.negative) return a.negative ? -1 : 1;
  if (a.magnitude == b.magnitude) return 0;
  const bool less = a.magnitude < b.magnitude;
  return (less != a.negative) ? -1 : 1;
}

/// The sign of `d - i`, exactly, or `unordered` for NaN.
int compare_double_integer(double d, integer_parts i) {
  if (std::isnan(d)) return unordered;
  if (!i.negative) {
    if (d < 0) return -1;
    if (d >= two_to_64) return 1;
    const double whole = std::floor(d);
    const auto w = static_cast<std::uint64_t>(whole);
    if (w != i.magnitude) return w < i.magnitude ? -1 : 1;
    return d > whole ? 1 : 0;
  }
  if (d >= 0) return 1;
  const double nd = -d;
  if (nd >= two_to_64) return -1;
  const double whole = std::floor(nd);
  const auto w = static_cast<std::uint64_t>(whole);
  if (w != i.magnitude) return w < i.magnitude ? 1 : -1;
  return nd > whole ? -1 : 0;
}

/// -1, 0 or 1 as `a` is less than, equal to or greater than `b` (both numbers); `unordered` for NaN.
int compare_numbers(const value& a, const value& b) {
  const bool af = a.is_number_float();
  const bool bf = b.is_number_float();
  if (!af && !bf) return compare_integers(integer_of(a), integer_of(b));
  if (af && bf) {
    const double x = a.get<double>();
    const double y = b.get<double>();
    if (x < y) return -1;
    if (x > y) return 1;
    return x == y ? 0 : unordered;
  }
  if (af) return compare_double_integer(a.get<double>(), integer_of(b));
  const int c = compare_double_integer(b.get<double>(), integer_of(a));
  return c == unordered ? unordered : -c;
}

bool is_multiple_of(const value& v, const value& divisor) {
  if (!v.is_number_float() && !divisor.is_number_float()) {
    return integer_of(v).magnitude % integer_of(divisor).magnitude == 0;
  }
  const double q = v.get<double>() / divisor.get<double>();
  if (!std::isfinite(q)) return false;
  // Decimal fractions are inexact in binary: 0.3 / 0.1 is 2.9999999999999996. Allow a few ulps.
  return std::fabs(q - std::round(q)) <= std::max(1.0, std::fabs(q)) * 8 * std::numeric_limits<double>::epsilon();
}

/// JSON equality as JSON Schema defines it: 1 and 1.0 are equal, objects compare without order.
bool same_value(const value& a, const value& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case value::value_t::array: {
      if (a.size() != b.size()) return false;
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!same_value(a[i], b[i])) return false;
      }
      return true;
    }
    case value::value_t::object: {
      if (a.size() != b.size()) return false;
      for (auto x = a.begin(), y = b.begin(); x != a.end(); ++x, ++y) {
        if (x.key() != y.key() || !same_value(x.value(), y.value())) return false;
      }
      return true;
    }
    default: return a == b;
  }
}

std::size_t combine(std::size_t seed, std::size_t h) {
  return seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
}

/// A hash consistent with `same_value` (equal numbers of any representation hash alike).
std::size_t hash_value(const value& v) {
  switch (v.type()) {
    case value::value_t::number_integer:
    case value::value_t::number_unsigned:
    case value::value_t::number_float: {
      if (v.is_number_float()) {
        const double d = v.get<double>();
        if (!is_integral(v) || std::fabs(d) >= two_to_64) return combine(3, std::hash<double>{}(d));
        const auto m = static_cast<std::uint64_t>(std::fabs(d));
        return combine(d < 0 && m != 0 ? 4 : 5, std::hash<std::uint64_t>{}(m));
      }
      const integer_parts i = integer_of(v);
      return combine(i.negative ? 4 : 5, std::hash<std::uint64_t>{}(i.magnitude));
    }
    case value::value_t::string: return combine(6, std::hash<std::string>{}(v.get_ref<const std::string&>()));
    case value::value_t::array: {
      std::size_t h = 7;
      for (const value& item : v) h = combine(h, hash_value(item));
      return h;
    }
    case value::value_t::object: {
      std::size_t h = 8;
      for (auto it = v.begin(); it != v.end(); ++it) {
        h = combine(combine(h, std::hash<std::string>{}(it.key())), hash_value(it.value()));
      }
      return h;
    }
    case value::value_t::boolean: return v.get<bool>() ? 1 : 2;
    default: return 0;
  }
}

// ------------------------------------------------------------------------------------------------
// UTF-8

/// The code point at `s[i]` and its length in bytes; a byte that does not start a well-formed
/// sequence reads as U+FFFD, one byte long.
std::pair<char32_t, std::size_t> decode_utf8(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return {c, 1};
  std::size_t len = 0;
  char32_t min = 0;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    min = 0x10000;
  } else {
    return {0xFFFD, 1};
  }
  if (i + len > s.size()) return {0xFFFD, 1};
  char32_t cp = c & (0xFFu >> (len + 1));
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return {0xFFFD, 1};
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0xFFFD, 1};
  return {cp, len};
}

std::size_t count_code_points(std::string_view s) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); i += decode_utf8(s, i).second) ++n;
  return n;
}

std::wstring widen(std::string_view s) {
  std::wstring out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto [cp, len] = decode_utf8(s, i);
    out.push_back(static_cast<wchar_t>(cp));
    i += len;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Patterns

/// A compiled `pattern`: ECMAScript, searched anywhere in the string, on code points.
struct pattern {
  std::string source;
  /// `[\s\S]*(?:source)[\s\S]*`, matched against the whole string: one pass of libstdc++'s
  /// breadth-first executor, where a search would restart at every position.
  std::wregex whole;
  std::size_t complexity = 0;  ///< estimated automaton size
  std::size_t max_input = 0;   ///< longest string (bytes) it is run against
  bool lookahead = false;      ///< may rescan the rest of the string at every position
};

constexpr std::size_t saturate(std::size_t x) { return std::min(x, max_pattern_complexity + 1); }

/// Roughly how many states `p` compiles to once bounded repetitions are unrolled (saturating just
/// above the limit), and whether it has a lookahead.
std::size_t estimate_complexity(std::wstring_view p, bool& lookahead) {
  struct group {
    std::size_t total = 0;
    std::size_t last = 0;  ///< size of the last atom, which a quantifier repeats
  };
  std::vector<group> stack(1);
  auto atom = [&](std::size_t size) {
    stack.back().total = saturate(stack.back().total + size);
    stack.back().last = size;
  };
  for (std::size_t i = 0; i < p.size(); ++i) {
    const wchar_t c = p[i];
    if (c == L'\\') {
      ++i;
      atom(1);
    } else if (c == L'[') {
      for (++i; i < p.size() && p[i] != L']'; ++i) {
        if (p[i] == L'\\') ++i;
      }
      atom(1);
    } else if (c == L'(') {
      if (i + 2 < p.size() && p[i + 1] == L'?' && (p[i + 2] == L'=' || p[i + 2] == L'!')) lookahead = true;
      stack.emplace_back();
    } else if (c == L')') {
      if (stack.size() > 1) {
        const std::size_t size = stack.back().total + 1;
        stack.pop_back();
        atom(saturate(size));
      }
    } else if (c == L'{') {
      // {n}, {n,} or {n,m} repeats the last atom; anything else is a literal brace
      std::size_t j = i + 1;
      auto read_number = [&](bool& any) {
        std::size_t n = 0;
        for (; j < p.size() && p[j] >= L'0' && p[j] <= L'9'; ++j) {
          n = saturate(n * 10 + static_cast<std::size_t>(p[j] - L'0'));
          any = true;
        }
        return n;
      };
      bool has_lower = false;
      const std::size_t lower = read_number(has_lower);
      std::size_t count = lower;
      if (has_lower && j < p.size() && p[j] == L',') {
        ++j;
        bool has_upper = false;
        const std::size_t upper = read_number(has_upper);
        count = has_upper ? std::max(lower, upper) : lower + 1;
      }
      if (has_lower && j < p.size() && p[j] == L'}') {
        group& g = stack.back();
        const std::size_t extra = saturate(g.last * count);
        g.total = saturate(g.total + extra);
        g.last = saturate(g.last + extra);
        i = j;
      } else {
        atom(1);
      }
    } else if (c == L'*' || c == L'+' || c == L'?') {
      stack.back().total = saturate(stack.back().total + 1);
    } else {
      atom(1);
    }
  }
  std::size_t total = 0;
  for (const group& g : stack) total = saturate(total + g.total);
  return total;
}

/// True if a repetition count or an escape in `p` has more than 9 digits, which libstdc++ would
/// read into a `long` with overflow.
bool has_long_number(std::wstring_view p) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] != L'{' && p[i] != L',' && p[i] != L'\\') continue;
    std::size_t digits = 0;
    while (i + 1 + digits < p.size() && p[i + 1 + digits] >= L'0' && p[i + 1 + digits] <= L'9') ++digits;
    if (digits > 9) return true;
  }
  return false;
}

/// ECMAScript; on libstdc++, the polynomial-time executor (no back-references, no exponential
/// backtracking, stack use bounded by the pattern rather than by the input).
constexpr std::regex_constants::syntax_option_type pattern_flags =
#if defined(__GLIBCXX__)
    std::regex_constants::ECMAScript | std::regex_constants::__polynomial;
#else
    std::regex_constants::ECMAScript;
#endif

/// The problem with `source` as a pattern, or nothing and `out` filled.
std::optional<std::string> compile_pattern(const std::string& source, pattern& out) {
  if (source.size() > max_pattern_bytes) {
    return "pattern longer than " + std::to_string(max_pattern_bytes) + " bytes";
  }
  const std::wstring wide = widen(source);
  if (has_long_number(wide)) return "pattern " + quote(source) + " has a number longer than 9 digits";
  bool lookahead = false;
  const std::size_t complexity = estimate_complexity(wide, lookahead);
  if (complexity > max_pattern_complexity) {
    return "pattern " + quote(source) + " is too complex (its repetitions expand past " +
           std::to_string(max_pattern_complexity) + " states)";
  }
  try {
    // Compiling the bare pattern first rejects it if it is malformed, so that wrapping it cannot
    // change its meaning (an unbalanced ")(" would).
    const std::wregex bare(wide, pattern_flags);
    out.whole = std::wregex(L"[\\s\\S]*(?:" + wide + L")[\\s\\S]*", pattern_flags | std::regex_constants::nosubs);
  } catch (const std::regex_error& e) {
    if (e.code() == std::regex_constants::error_complexity) {
      return "pattern " + quote(source) + " uses a back-reference, which is not supported";
    }
    return "pattern " + quote(source) + " is not a valid ECMAScript regular expression (" + e.what() + ")";
  }
  out.source = source;
  out.complexity = complexity + 4;
  out.lookahead = lookahead;
  out.max_input = lookahead ? max_lookahead_input : json_schema::max_pattern_input;
  return std::nullopt;
}

// ------------------------------------------------------------------------------------------------
// JSON pointers

std::string escape_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (const char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string join(const std::string& pointer, std::string_view token) { return pointer + "/" + escape_token(token); }

std::optional<std::string> percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex(s[i + 1]);
    const int lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

/// The tokens of a JSON pointer ("" has none), or nothing if it is malformed.
std::optional<std::vector<std::string>> split_pointer(std::string_view p) {
  std::vector<std::string> tokens;
  if (p.empty()) return tokens;
  if (p[0] != '/') return std::nullopt;
  std::string token;
  for (std::size_t i = 1; i <= p.size(); ++i) {
    if (i == p.size() || p[i] == '/') {
      tokens.push_back(std::move(token));
      token.clear();
    } else if (p[i] == '~') {
      if (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1')) return std::nullopt;
      token += p[i + 1] == '0' ? '~' : '/';
      ++i;
    } else {
      token += p[i];
    }
  }
  return tokens;
}

const value* resolve(const value& root, const std::vector<std::string>& tokens) {
  const value* current = &root;
  for (const std::string& token : tokens) {
    if (current->is_object()) {
      const auto it = current->find(token);
      if (it == current->end()) return nullptr;
      current = &*it;
    } else if (current->is_array()) {
      if (token.empty() || token.size() > 18 || (token.size() > 1 && token[0] == '0') ||
          !std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return nullptr;
      }
      const std::size_t index = std::stoull(token);
      if (index >= current->size()) return nullptr;
      current = &(*current)[index];
    } else {
      return nullptr;
    }
  }
  return current;
}

// ------------------------------------------------------------------------------------------------
// The compiled form

/// One subschema. Absent keywords are empty optionals, empty lists or `no_node`.
struct node {
  std::string location;          ///< JSON pointer in the schema document
  std::optional<bool> constant;  ///< a boolean schema
  node_id ref = no_node;
  unsigned types = 0;  ///< `type_bit`s; 0 for any
  std::string type_list;
  std::optional<std::vector<value>> enum_values;
  std::optional<value> const_value;
  // numbers
  std::optional<value> minimum, maximum, exclusive_minimum, exclusive_maximum, multiple_of;
  // strings
  std::optional<std::size_t> min_length, max_length;
  std::shared_ptr<const pattern> string_pattern;
  // arrays
  std::vector<node_id> prefix_items;  ///< 2020-12 `prefixItems`, or an array `items` before it
  node_id items = no_node;            ///< applies after the prefix: `items`, or `additionalItems`
  node_id contains = no_node;
  std::optional<std::size_t> min_contains, max_contains, min_items, max_items;
  bool unique_items = false;
  node_id unevaluated_items = no_node;
  // objects
  std::map<std::string, node_id, std::less<>> properties;
  std::vector<std::pair<std::shared_ptr<const pattern>, node_id>> pattern_properties;
  node_id additional_properties = no_node;
  node_id property_names = no_node;
  std::vector<std::string> required;
  std::optional<std::size_t> min_properties, max_properties;
  std::vector<std::pair<std::string, std::vector<std::string>>> dependent_required;
  std::vector<std::pair<std::string, node_id>> dependent_schemas;
  node_id unevaluated_properties = no_node;
  // in-place applicators
  std::vector<node_id> all_of, any_of, one_of;
  node_id negated = no_node;
  node_id condition = no_node;
  node_id then_branch = no_node;
  node_id else_branch = no_node;

  [[nodiscard]] bool tracks_evaluation() const {
    return unevaluated_properties != no_node || unevaluated_items != no_node;
  }

  /// The subschemas applied to the same value as this one (those that can loop).
  void in_place(std::vector<node_id>& out) const {
    if (ref != no_node) out.push_back(ref);
    out.insert(out.end(), all_of.begin(), all_of.end());
    out.insert(out.end(), any_of.begin(), any_of.end());
    out.insert(out.end(), one_of.begin(), one_of.end());
    for (const node_id id : {negated, condition, then_branch, else_branch}) {
      if (id != no_node) out.push_back(id);
    }
    for (const auto& [name, id] : dependent_schemas) out.push_back(id);
  }
};

std::string display(const std::string& pointer) { return "#" + pointer; }

error schema_error(const std::string& pointer, const std::string& what) {
  return make_error(core_errc::invalid_argument, display(pointer) + ": " + what);
}

/// Builds the nodes of one schema document, without recursion: a subschema, whether met inside its
/// parent or named by a `$ref`, gets a node id at once and is queued to be filled later. Nodes are
/// keyed by their JSON pointer, so a `$ref` to a place already seen (as in a recursive schema)
/// reuses its node.
class schema_compiler {
 public:
  explicit schema_compiler(const value& root) : root_(root) {}

  result<std::vector<node>> run() {
    value_size size;
    if (!within_depth(root_, json_schema::max_depth, size)) {
      return schema_error("", "nested more than " + std::to_string(json_schema::max_depth) + " deep");
    }
    if (root_.is_object()) {
      CHOIR_CHECK(read_dialect());
      if (const auto id = root_.find("$id"); id != root_.end() && id->is_string()) {
        const std::string& text = id->get_ref<const std::string&>();
        root_id_ = text.substr(0, text.find('#'));
      }
    }
    (void)compile_at(root_, "");  // node 0
    while (!pending_.empty()) {
      const auto [id, target] = pending_.back();
      pending_.pop_back();
      const std::string location = nodes_[id].location;  // fill() may grow nodes_
      CHOIR_CHECK(fill(id, *target, location));
    }
    CHOIR_CHECK(check_loops());
    return std::move(nodes_);
  }

 private:
  result<void> read_dialect() {
    const auto it = root_.find("$schema");
    if (it == root_.end()) return {};
    if (!it->is_string()) return schema_error("/$schema", "must be a string, got " + type_name(*it));
    std::string_view uri = it->get_ref<const std::string&>();
    const std::string_view original = uri;
    if (uri.ends_with('#')) uri.remove_suffix(1);
    if (uri.starts_with("https://")) {
      uri.remove_prefix(8);
    } else if (uri.starts_with("http://")) {
      uri.remove_prefix(7);
    }
    if (uri == "json-schema.org/draft/2020-12/schema") {
      dialect_ = dialect::draft2020_12;
    } else if (uri == "json-schema.org/draft/2019-09/schema") {
      dialect_ = dialect::draft2019_09;
    } else if (uri == "json-schema.org/draft-07/schema") {
      dialect_ = dialect::draft7;
    } else if (uri == "json-schema.org/draft-06/schema") {
      dialect_ = dialect::draft6;
    } else if (uri == "json-schema.org/draft-04/schema") {
      dialect_ = dialect::draft4;
    } else {
      return schema_error("/$schema", "unsupported $schema " + quote(original) +
                                          " (supported: draft 2020-12, 2019-09, draft-07, draft-06, draft-04)");
    }
    return {};
  }

  node_id allocate(const std::string& pointer) {
    const auto id = static_cast<node_id>(nodes_.size());
    nodes_.emplace_back();
    nodes_.back().location = pointer;
    by_location_.emplace(pointer, id);
    return id;
  }

  /// The node for the subschema `schema` at `pointer`, queued to be filled if it is new.
  node_id compile_at(const value& schema, const std::string& pointer) {
    if (const auto it = by_location_.find(pointer); it != by_location_.end()) return it->second;
    const node_id id = allocate(pointer);
    pending_.emplace_back(id, &schema);
    return id;
  }

  node_id compile_child(const value& schema, const std::string& pointer, std::string_view key) {
    return compile_at(schema, join(pointer, key));
  }

  /// A keyword whose value is a list of schemas (`allOf`, `prefixItems`, …).
  result<std::vector<node_id>> compile_list(const value& list, const std::string& pointer, bool allow_empty) {
    if (!list.is_array()) return schema_error(pointer, "must be an array of schemas, got " + type_name(list));
    if (list.empty() && !allow_empty) return schema_error(pointer, "must not be an empty array");
    std::vector<node_id> ids;
    for (std::size_t i = 0; i < list.size(); ++i) {
      ids.push_back(compile_at(list[i], pointer + "/" + std::to_string(i)));
    }
    return ids;
  }

  /// A non-negative integer keyword (`minLength`, …); 2.0 counts as 2.
  static result<std::optional<std::size_t>> read_count(const value& schema, std::string_view key,
                                                       const std::string& pointer) {
    const auto it = schema.find(key);
    if (it == schema.end()) return std::optional<std::size_t>();
    const value& v = *it;
    if (v.is_number_unsigned()) {
      return std::optional<std::size_t>(static_cast<std::size_t>(
          std::min<std::uint64_t>(v.get<std::uint64_t>(), std::numeric_limits<std::size_t>::max())));
    }
    if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
      return std::optional<std::size_t>(static_cast<std::size_t>(v.get<std::int64_t>()));
    }
    if (v.is_number_float() && is_integral(v) && v.get<double>() >= 0) {
      const double d = v.get<double>();
      return std::optional<std::size_t>(d >= two_to_64 ? std::numeric_limits<std::size_t>::max()
                                                       : static_cast<std::size_t>(d));
    }
    return schema_error(join(pointer, key), "must be a non-negative integer, got " + show(v, 40));
  }

  static result<std::optional<value>> read_number(const value& schema, std::string_view key,
                                                  const std::string& pointer) {
    const auto it = schema.find(key);
    if (it == schema.end()) return std::optional<value>();
    if (!it->is_number()) return schema_error(join(pointer, key), "must be a number, got " + type_name(*it));
    if (it->is_number_float() && !std::isfinite(it->get<double>())) {
      return schema_error(join(pointer, key), "must be a finite number");
    }
    return std::optional<value>(*it);
  }

  static result<std::vector<std::string>> read_names(const value& list, const std::string& pointer) {
    if (!list.is_array()) return schema_error(pointer, "must be an array of strings, got " + type_name(list));
    std::vector<std::string> names;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_string()) {
        return schema_error(pointer + "/" + std::to_string(i), "must be a string, got " + type_name(list[i]));
      }
      names.push_back(list[i].get<std::string>());
    }
    return names;
  }

  static result<void> read_type(const value& type, const std::string& pointer, node& n) {
    std::vector<std::string_view> names;
    auto add = [&](const value& name, const std::string& where) -> result<void> {
      if (!name.is_string()) return schema_error(where, "must be a type name, got " + type_name(name));
      const std::string& text = name.get_ref<const std::string&>();
      for (const auto& [known, bit] : type_names) {
        if (text == known) {
          n.types |= bit;
          names.push_back(known);
          return {};
        }
      }
      return schema_error(where,
                          quote(text) + " is not a JSON type (null, boolean, integer, number, string, array, object)");
    };
    if (type.is_array()) {
      if (type.empty()) return schema_error(pointer, "must not be an empty array");
      for (std::size_t i = 0; i < type.size(); ++i) CHOIR_CHECK(add(type[i], pointer + "/" + std::to_string(i)));
    } else {
      CHOIR_CHECK(add(type, pointer));
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (i > 0) n.type_list += i + 1 == names.size() ? " or " : ", ";
      n.type_list += names[i];
    }
    return {};
  }

  result<std::shared_ptr<const pattern>> read_pattern(const std::string& source, const std::string& pointer) {
    auto compiled = std::make_shared<pattern>();
    if (auto problem = compile_pattern(source, *compiled)) return schema_error(pointer, *problem);
    return std::shared_ptr<const pattern>(std::move(compiled));
  }

  /// Resolves a `$ref` found at `pointer` to the node of its target.
  result<node_id> reference(const value& ref_value, const std::string& pointer) {
    if (!ref_value.is_string()) return schema_error(pointer, "must be a string, got " + type_name(ref_value));
    const std::string& ref = ref_value.get_ref<const std::string&>();
    std::string fragment;
    if (ref.starts_with('#')) {
      fragment = ref.substr(1);
    } else if (!root_id_.empty() && ref.starts_with(root_id_) &&
               (ref.size() == root_id_.size() || ref[root_id_.size()] == '#')) {
      fragment = ref.size() > root_id_.size() ? ref.substr(root_id_.size() + 1) : "";
    } else {
      return schema_error(pointer, "remote $ref not supported: " + quote(ref));
    }
    const auto decoded = percent_decode(fragment);
    if (!decoded) return schema_error(pointer, "malformed percent-encoding in $ref " + quote(ref));
    if (!decoded->empty() && (*decoded)[0] != '/') {
      return schema_error(
          pointer, "$ref to an anchor (" + quote(ref) + ") not supported; use a JSON pointer such as \"#/$defs/name\"");
    }
    const auto tokens = split_pointer(*decoded);
    if (!tokens) return schema_error(pointer, "malformed JSON pointer in $ref " + quote(ref));
    std::string canonical;
    for (const std::string& token : *tokens) canonical = join(canonical, token);
    if (const auto it = by_location_.find(canonical); it != by_location_.end()) return it->second;
    const value* target = resolve(root_, *tokens);
    if (target == nullptr) return schema_error(pointer, "$ref target " + quote(ref) + " does not exist");
    return compile_at(*target, canonical);
  }

  result<void> fill(node_id id, const value& schema, const std::string& pointer) {
    node n;
    n.location = pointer;
    if (schema.is_boolean()) {
      n.constant = schema.get<bool>();
      nodes_[id] = std::move(n);
      return {};
    }
    if (!schema.is_object()) {
      return schema_error(pointer, "a schema must be an object or a boolean, got " + type_name(schema));
    }
    auto find = [&](std::string_view key) -> const value* {
      const auto it = schema.find(key);
      return it == schema.end() ? nullptr : &*it;
    };
    const bool legacy_items = dialect_ != dialect::draft2020_12;

    for (const std::string_view key : {"$dynamicRef", "$recursiveRef"}) {
      if (find(key)) return schema_error(join(pointer, key), std::string(key) + " is not supported");
    }
    if (const value* ref = find("$ref")) {
      CHOIR_TRY(n.ref, reference(*ref, join(pointer, "$ref")));
      if (dialect_ <= dialect::draft7) {  // where $ref replaces the keywords beside it
        nodes_[id] = std::move(n);
        return {};
      }
    }
    if (const value* embedded = find("$id"); embedded && !pointer.empty()) {
      if (!embedded->is_string()) return schema_error(join(pointer, "$id"), "must be a string");
      if (!embedded->get_ref<const std::string&>().starts_with('#')) {
        return schema_error(join(pointer, "$id"),
                            "a schema resource embedded in another ($id in a subschema) is not supported");
      }
    }
    if (const value* type = find("type")) CHOIR_CHECK(read_type(*type, join(pointer, "type"), n));
    if (const value* values = find("enum")) {
      if (!values->is_array()) return schema_error(join(pointer, "enum"), "must be an array");
      n.enum_values = values->get<std::vector<value>>();
    }
    if (const value* constant = find("const")) n.const_value = *constant;

    // numbers
    CHOIR_TRY(n.minimum, read_number(schema, "minimum", pointer));
    CHOIR_TRY(n.maximum, read_number(schema, "maximum", pointer));
    for (const bool lower : {true, false}) {
      const std::string_view key = lower ? "exclusiveMinimum" : "exclusiveMaximum";
      const value* bound = find(key);
      if (!bound) continue;
      std::optional<value>& inclusive = lower ? n.minimum : n.maximum;
      std::optional<value>& exclusive = lower ? n.exclusive_minimum : n.exclusive_maximum;
      if (dialect_ == dialect::draft4) {
        if (!bound->is_boolean()) return schema_error(join(pointer, key), "must be a boolean in draft-04");
        if (bound->get<bool>() && inclusive) {
          exclusive = std::exchange(inclusive, std::nullopt);
        }
      } else if (bound->is_boolean()) {
        return schema_error(join(pointer, key),
                            "must be a number (the boolean form is draft-04's; declare "
                            "\"$schema\": \"http://json-schema.org/draft-04/schema#\" to use it)");
      } else {
        CHOIR_TRY(exclusive, read_number(schema, key, pointer));
      }
    }
    CHOIR_TRY(n.multiple_of, read_number(schema, "multipleOf", pointer));
    if (n.multiple_of && compare_numbers(*n.multiple_of, value(0)) <= 0) {
      return schema_error(join(pointer, "multipleOf"), "must be greater than 0");
    }

    // strings
    CHOIR_TRY(n.min_length, read_count(schema, "minLength", pointer));
    CHOIR_TRY(n.max_length, read_count(schema, "maxLength", pointer));
    if (const value* source = find("pattern")) {
      if (!source->is_string()) return schema_error(join(pointer, "pattern"), "must be a string");
      CHOIR_TRY(n.string_pattern, read_pattern(source->get<std::string>(), join(pointer, "pattern")));
    }

    // arrays
    if (const value* prefix = find("prefixItems")) {
      if (legacy_items) {
        return schema_error(join(pointer, "prefixItems"),
                            "prefixItems needs draft 2020-12, but this schema declares an older $schema "
                            "(use an array \"items\" and \"additionalItems\")");
      }
      CHOIR_TRY(n.prefix_items, compile_list(*prefix, join(pointer, "prefixItems"), true));
    }
    if (const value* items = find("items")) {
      if (items->is_array()) {
        if (!legacy_items) {
          return schema_error(join(pointer, "items"),
                              "must be a schema in draft 2020-12 (use \"prefixItems\" for a tuple, or declare "
                              "\"$schema\": \"http://json-schema.org/draft-07/schema#\")");
        }
        CHOIR_TRY(n.prefix_items, compile_list(*items, join(pointer, "items"), true));
        if (const value* additional = find("additionalItems")) {
          n.items = compile_child(*additional, pointer, "additionalItems");
        }
      } else {
        n.items = compile_child(*items, pointer, "items");
      }
    }
    if (find("additionalItems") && !legacy_items) {
      return schema_error(join(pointer, "additionalItems"),
                          "additionalItems is not a draft 2020-12 keyword (use \"prefixItems\" and \"items\", or "
                          "declare \"$schema\": \"http://json-schema.org/draft-07/schema#\")");
    }
    if (const value* contains = find("contains")) {
      n.contains = compile_child(*contains, pointer, "contains");
    }
    CHOIR_TRY(n.min_contains, read_count(schema, "minContains", pointer));
    CHOIR_TRY(n.max_contains, read_count(schema, "maxContains", pointer));
    CHOIR_TRY(n.min_items, read_count(schema, "minItems", pointer));
    CHOIR_TRY(n.max_items, read_count(schema, "maxItems", pointer));
    if (const value* unique = find("uniqueItems")) {
      if (!unique->is_boolean()) return schema_error(join(pointer, "uniqueItems"), "must be a boolean");
      n.unique_items = unique->get<bool>();
    }
    if (const value* rest = find("unevaluatedItems")) {
      n.unevaluated_items = compile_child(*rest, pointer, "unevaluatedItems");
    }

    // objects
    if (const value* properties = find("properties")) {
      const std::string where = join(pointer, "properties");
      if (!properties->is_object()) return schema_error(where, "must be an object of schemas");
      for (auto it = properties->begin(); it != properties->end(); ++it) {
        const node_id child = compile_child(it.value(), where, it.key());
        n.properties.emplace(it.key(), child);
      }
    }
    if (const value* patterns = find("patternProperties")) {
      const std::string where = join(pointer, "patternProperties");
      if (!patterns->is_object()) return schema_error(where, "must be an object of schemas");
      for (auto it = patterns->begin(); it != patterns->end(); ++it) {
        CHOIR_TRY(auto matcher, read_pattern(it.key(), join(where, it.key())));
        const node_id child = compile_child(it.value(), where, it.key());
        n.pattern_properties.emplace_back(std::move(matcher), child);
      }
    }
    if (const value* additional = find("additionalProperties")) {
      n.additional_properties = compile_child(*additional, pointer, "additionalProperties");
    }
    if (const value* names = find("propertyNames")) {
      n.property_names = compile_child(*names, pointer, "propertyNames");
    }
    if (const value* required = find("required")) {
      CHOIR_TRY(n.required, read_names(*required, join(pointer, "required")));
    }
    CHOIR_TRY(n.min_properties, read_count(schema, "minProperties", pointer));
    CHOIR_TRY(n.max_properties, read_count(schema, "maxProperties", pointer));
    if (const value* dependent = find("dependentRequired")) {
      const std::string where = join(pointer, "dependentRequired");
      if (!dependent->is_object()) return schema_error(where, "must be an object of string arrays");
      for (auto it = dependent->begin(); it != dependent->end(); ++it) {
        CHOIR_TRY(auto names, read_names(it.value(), join(where, it.key())));
        n.dependent_required.emplace_back(it.key(), std::move(names));
      }
    }
    if (const value* dependent = find("dependentSchemas")) {
      const std::string where = join(pointer, "dependentSchemas");
      if (!dependent->is_object()) return schema_error(where, "must be an object of schemas");
      for (auto it = dependent->begin(); it != dependent->end(); ++it) {
        const node_id child = compile_child(it.value(), where, it.key());
        n.dependent_schemas.emplace_back(it.key(), child);
      }
    }
    if (const value* dependencies = find("dependencies")) {  // draft-07's form of both
      const std::string where = join(pointer, "dependencies");
      if (!dependencies->is_object()) return schema_error(where, "must be an object");
      for (auto it = dependencies->begin(); it != dependencies->end(); ++it) {
        if (it.value().is_array()) {
          CHOIR_TRY(auto names, read_names(it.value(), join(where, it.key())));
          n.dependent_required.emplace_back(it.key(), std::move(names));
        } else {
          const node_id child = compile_child(it.value(), where, it.key());
          n.dependent_schemas.emplace_back(it.key(), child);
        }
      }
    }
    if (const value* rest = find("unevaluatedProperties")) {
      n.unevaluated_properties = compile_child(*rest, pointer, "unevaluatedProperties");
    }

    // in-place applicators
    if (const value* all = find("allOf")) {
      CHOIR_TRY(n.all_of, compile_list(*all, join(pointer, "allOf"), false));
    }
    if (const value* any = find("anyOf")) {
      CHOIR_TRY(n.any_of, compile_list(*any, join(pointer, "anyOf"), false));
    }
    if (const value* one = find("oneOf")) {
      CHOIR_TRY(n.one_of, compile_list(*one, join(pointer, "oneOf"), false));
    }
    if (const value* negated = find("not")) {
      n.negated = compile_child(*negated, pointer, "not");
    }
    if (const value* condition = find("if")) {
      n.condition = compile_child(*condition, pointer, "if");
      if (const value* then = find("then")) {
        n.then_branch = compile_child(*then, pointer, "then");
      }
      if (const value* otherwise = find("else")) {
        n.else_branch = compile_child(*otherwise, pointer, "else");
      }
    }

    // definitions are compiled even when nothing refers to them, so that their mistakes show
    for (const std::string_view key : {"$defs", "definitions"}) {
      const value* defs = find(key);
      if (!defs) continue;
      const std::string where = join(pointer, key);
      if (!defs->is_object()) return schema_error(where, "must be an object of schemas");
      for (auto it = defs->begin(); it != defs->end(); ++it) (void)compile_child(it.value(), where, it.key());
    }
    nodes_[id] = std::move(n);
    return {};
  }

  /// Fails if subschemas apply one another to the same value in a loop (`{"$ref": "#"}`), which
  /// would recurse forever instead of reaching a keyword that checks anything.
  result<void> check_loops() const {
    std::vector<std::uint8_t> state(nodes_.size(), 0);  // 0 unseen, 1 on the path, 2 done
    struct frame {
      node_id id;
      std::vector<node_id> next;
      std::size_t at = 0;
    };
    auto open = [&](node_id id) {
      frame f{id, {}};
      nodes_[id].in_place(f.next);
      state[id] = 1;
      return f;
    };
    for (node_id start = 0; start < nodes_.size(); ++start) {
      if (state[start] != 0) continue;
      std::vector<frame> path{open(start)};
      while (!path.empty()) {
        if (path.back().at == path.back().next.size()) {
          state[path.back().id] = 2;
          path.pop_back();
          continue;
        }
        const node_id to = path.back().next[path.back().at++];
        if (state[to] == 0) {
          path.push_back(open(to));
        } else if (state[to] == 1) {
          std::string chain;
          std::size_t first = 0;
          while (path[first].id != to) ++first;
          const std::size_t shown = std::min<std::size_t>(path.size() - first, 8);
          for (std::size_t i = first; i < first + shown; ++i) chain += display(nodes_[path[i].id].location) + " -> ";
          if (first + shown < path.size()) chain += "… -> ";
          chain += display(nodes_[to].location);
          return schema_error(nodes_[to].location,
                              "$ref loop: " + chain + " applies the same schemas to the same value forever");
        }
      }
    }
    return {};
  }

  const value& root_;
  dialect dialect_ = dialect::draft2020_12;
  std::string root_id_;
  std::vector<node> nodes_;
  std::unordered_map<std::string, node_id> by_location_;
  std::vector<std::pair<node_id, const value*>> pending_;
};

// ------------------------------------------------------------------------------------------------
// Evaluation

/// What the subschemas applied to one value have looked at, for `unevaluatedProperties` and
/// `unevaluatedItems`. Properties are numbered in the object's iteration order.
struct annotations {
  bool all_properties = false;
  std::vector<bool> properties;
  bool all_items = false;
  std::size_t items_prefix = 0;
  std::vector<bool> items;

  void mark_property(std::size_t i, std::size_t count) {
    if (properties.size() < count) properties.resize(count);
    properties[i] = true;
  }
  void mark_item(std::size_t i, std::size_t count) {
    if (items.size() < count) items.resize(count);
    items[i] = true;
  }
  void merge(const annotations& other) {
    all_properties = all_properties || other.all_properties;
    if (properties.size() < other.properties.size()) properties.resize(other.properties.size());
    for (std::size_t i = 0; i < other.properties.size(); ++i) {
      if (other.properties[i]) properties[i] = true;
    }
    all_items = all_items || other.all_items;
    items_prefix = std::max(items_prefix, other.items_prefix);
    if (items.size() < other.items.size()) items.resize(other.items.size());
    for (std::size_t i = 0; i < other.items.size(); ++i) {
      if (other.items[i]) items[i] = true;
    }
  }
};

/// Where violations go. Without `out` only the verdict matters and evaluation stops at the first
/// failure; with it, evaluation goes on until `cap` violations are recorded.
struct sink {
  std::vector<schema_violation>* out = nullptr;
  std::size_t cap = 0;
  bool explain = false;  ///< a failed anyOf/oneOf quotes why each alternative failed

  [[nodiscard]] bool done() const { return out == nullptr || out->size() >= cap; }
};

enum class match_outcome { matched, no_match, too_long, failed, aborted };

/// Appends one token to a JSON pointer for as long as it lives.
class pointer_scope {
 public:
  [[gnu::noinline]] pointer_scope(std::string& pointer, std::string_view key)
      : pointer_(pointer), size_(pointer.size()) {
    pointer_ += '/';
    for (const char c : key) {
      if (c == '~') {
        pointer_ += "~0";
      } else if (c == '/') {
        pointer_ += "~1";
      } else {
        pointer_ += c;
      }
    }
  }
  [[gnu::noinline]] pointer_scope(std::string& pointer, std::size_t index) : pointer_(pointer), size_(pointer.size()) {
    pointer_ += '/';
    pointer_ += std::to_string(index);
  }
  ~pointer_scope() { pointer_.resize(size_); }
  pointer_scope(const pointer_scope&) = delete;
  pointer_scope& operator=(const pointer_scope&) = delete;

 private:
  std::string& pointer_;
  std::size_t size_;
};

/// One validation: the instance pointer being checked, the remaining budget, and why it stopped
/// early if it did. Not shared between threads.
///
/// Evaluation recurses once per subschema applied, so the functions on that path keep small
/// frames: messages are built, and patterns run, in separate functions that return before the
/// next level starts.
class evaluator {
 public:
  evaluator(const std::vector<node>& nodes, std::size_t budget) : nodes_(nodes), budget_left_(budget) {}

  [[nodiscard]] const std::string& abort_reason() const { return abort_reason_; }

  /// Applies node `id` to `v`; true if `v` satisfies it. Records annotations in `ann` if given
  /// and `v` is valid.
  bool eval(node_id id, const value& v, sink& s, annotations* ann) {
    if (!abort_reason_.empty() || !charge(step_cost)) return false;
    if (depth_ >= max_evaluation_depth) {
      stop_too_deep();
      return false;
    }
    ++depth_;
    const bool ok = eval_node(nodes_[id], v, s, ann);
    --depth_;
    return ok;
  }

 private:
  bool charge(std::size_t units) {
    if (budget_left_ >= units) {
      budget_left_ -= units;
      return true;
    }
    if (abort_reason_.empty()) abort_reason_ = "validation stopped: the schema takes too many steps on this value";
    return false;
  }

  [[gnu::noinline]] void stop_too_deep() {
    abort_reason_ = "validation stopped: the schema applies subschemas more than " +
                    std::to_string(max_evaluation_depth) + " deep for this value";
  }

  [[gnu::noinline]] void report(sink& s, std::string message) {
    if (s.out != nullptr && s.out->size() < s.cap) s.out->push_back({pointer_, std::move(message)});
  }

  [[nodiscard]] bool is_false(node_id id) const { return nodes_[id].constant == false; }

  [[gnu::noinline]] bool eval_node(const node& n, const value& v, sink& s, annotations* ann) {
    if (n.constant) return *n.constant || report_not_allowed(s, "no value is allowed here");
    if (ann == nullptr && !n.tracks_evaluation()) return eval_keywords(n, v, s, nullptr);
    return eval_tracked(n, v, s, ann);
  }

  /// `eval_node` for a node whose annotations matter (to itself or to the caller's `ann`).
  [[gnu::noinline]] bool eval_tracked(const node& n, const value& v, sink& s, annotations* ann) {
    annotations local;
    bool ok = eval_keywords(n, v, s, &local);
    if ((ok || !s.done()) && n.tracks_evaluation() && !eval_unevaluated(n, v, s, local)) ok = false;
    if (ok && ann != nullptr) ann->merge(local);
    return ok;
  }

  [[gnu::noinline]] bool eval_keywords(const node& n, const value& v, sink& s, annotations* ann) {
    bool ok = true;
    if (n.ref != no_node && !eval(n.ref, v, s, ann)) {
      ok = false;
      if (s.done()) return false;
    }
    if (!check_value(n, v, s)) {
      ok = false;
      if (s.done()) return false;
    }
    if (v.is_array() && !eval_array(n, v, s, ann)) {
      ok = false;
      if (s.done()) return false;
    }
    if (v.is_object() && !eval_object(n, v, s, ann)) {
      ok = false;
      if (s.done()) return false;
    }
    return eval_in_place(n, v, s, ann) && ok;
  }

  // -- keywords that check the value itself, without subschemas

  [[gnu::noinline]] bool check_value(const node& n, const value& v, sink& s) {
    bool ok = true;
    auto failed = [&](std::string message) {
      report(s, std::move(message));
      ok = false;
      return s.done();
    };
    if (n.types != 0 && (type_bits(v) & n.types) == 0) {
      if (failed("expected " + n.type_list + ", got " + type_name(v))) return false;
    }
    if (n.enum_values) {
      if (!charge(n.enum_values->size())) return false;
      if (std::none_of(n.enum_values->begin(), n.enum_values->end(),
                       [&](const value& e) { return same_value(v, e); }) &&
          failed("must be one of " + show(value(*n.enum_values)))) {
        return false;
      }
    }
    if (n.const_value && !same_value(v, *n.const_value)) {
      if (failed("must equal " + show(*n.const_value))) return false;
    }
    if (v.is_number()) {
      auto out_of = [&](const std::optional<value>& bound, auto accept, std::string_view relation) {
        return bound && !accept(compare_numbers(v, *bound)) &&
               failed("must be " + std::string(relation) + " " + dump_json(*bound));
      };
      if (out_of(
              n.minimum, [](int c) { return c == 0 || c == 1; }, ">="))
        return false;
      if (out_of(
              n.exclusive_minimum, [](int c) { return c == 1; }, ">"))
        return false;
      if (out_of(
              n.maximum, [](int c) { return c == 0 || c == -1; }, "<="))
        return false;
      if (out_of(
              n.exclusive_maximum, [](int c) { return c == -1; }, "<"))
        return false;
      if (n.multiple_of && !is_multiple_of(v, *n.multiple_of) &&
          failed("must be a multiple of " + dump_json(*n.multiple_of))) {
        return false;
      }
    }
    if (v.is_string()) {
      const std::string& text = v.get_ref<const std::string&>();
      if (n.min_length || n.max_length) {
        const std::size_t length = count_code_points(text);
        if (n.min_length && length < *n.min_length &&
            failed("must be at least " + plural(*n.min_length, "character", "characters") + " long (is " +
                   std::to_string(length) + ")")) {
          return false;
        }
        if (n.max_length && length > *n.max_length &&
            failed("must be at most " + plural(*n.max_length, "character", "characters") + " long (is " +
                   std::to_string(length) + ")")) {
          return false;
        }
      }
      if (n.string_pattern) {
        const match_outcome outcome = match(*n.string_pattern, text);
        if (outcome == match_outcome::aborted) return false;
        if (outcome == match_outcome::no_match) {
          failed("does not match pattern " + quote(n.string_pattern->source));
        } else if (outcome != match_outcome::matched) {
          failed(unmatchable(*n.string_pattern, outcome, "string"));
        }
      }
    }
    return ok;
  }

  [[gnu::noinline]] match_outcome match(const pattern& p, const std::string& text) {
    if (text.size() > p.max_input) return match_outcome::too_long;
    std::size_t cost = (text.size() + 1) * p.complexity;
    if (p.lookahead) cost *= 1 + text.size() / 8;
    if (!charge(cost)) return match_outcome::aborted;
    try {
      return std::regex_match(widen(text), p.whole) ? match_outcome::matched : match_outcome::no_match;
    } catch (const std::regex_error&) {
      return match_outcome::failed;
    }
  }

  static std::string unmatchable(const pattern& p, match_outcome outcome, std::string_view what) {
    if (outcome == match_outcome::too_long) {
      return std::string(what) + " too long to match pattern " + quote(p.source) + " (more than " +
             std::to_string(p.max_input) + " bytes)";
    }
    return "pattern " + quote(p.source) + " could not be evaluated on this " + std::string(what);
  }

  [[gnu::noinline]] bool check_array(const node& n, const value& array, sink& s) {
    const std::size_t size = array.size();
    bool ok = true;
    auto failed = [&](std::string message) {
      report(s, std::move(message));
      ok = false;
      return s.done();
    };
    if (n.min_items && size < *n.min_items &&
        failed("must have at least " + plural(*n.min_items, "item", "items") + " (has " + std::to_string(size) + ")")) {
      return false;
    }
    if (n.max_items && size > *n.max_items &&
        failed("must have at most " + plural(*n.max_items, "item", "items") + " (has " + std::to_string(size) + ")")) {
      return false;
    }
    if (n.unique_items && size > 1) {
      if (!charge(size)) return false;
      std::unordered_multimap<std::size_t, std::size_t> seen;
      for (std::size_t i = 0; i < size; ++i) {
        const std::size_t h = hash_value(array[i]);
        const auto [first, last] = seen.equal_range(h);
        const auto duplicate =
            std::find_if(first, last, [&](const auto& entry) { return same_value(array[entry.second], array[i]); });
        if (duplicate != last) {
          failed("items " + std::to_string(duplicate->second) + " and " + std::to_string(i) +
                 " are equal (uniqueItems)");
          break;
        }
        seen.emplace(h, i);
      }
    }
    return ok;
  }

  [[gnu::noinline]] bool check_object(const node& n, const value& object, sink& s) {
    const std::size_t size = object.size();
    bool ok = true;
    auto failed = [&](std::string message) {
      report(s, std::move(message));
      ok = false;
      return s.done();
    };
    if (n.min_properties && size < *n.min_properties &&
        failed("must have at least " + plural(*n.min_properties, "property", "properties") + " (has " +
               std::to_string(size) + ")")) {
      return false;
    }
    if (n.max_properties && size > *n.max_properties &&
        failed("must have at most " + plural(*n.max_properties, "property", "properties") + " (has " +
               std::to_string(size) + ")")) {
      return false;
    }
    if (!n.required.empty() && !charge(n.required.size())) return false;
    for (const std::string& name : n.required) {
      if (!object.contains(name) && failed("missing required property " + quote(name))) return false;
    }
    for (const auto& [name, names] : n.dependent_required) {
      if (!object.contains(name)) continue;
      for (const std::string& needed : names) {
        if (!object.contains(needed) &&
            failed("property " + quote(needed) + " is required when " + quote(name) + " is present")) {
          return false;
        }
      }
    }
    return ok;
  }

  // -- keywords that apply subschemas (the recursive path)

  [[gnu::noinline]] bool eval_array(const node& n, const value& array, sink& s, annotations* ann) {
    bool ok = check_array(n, array, s);
    if (!ok && s.done()) return false;
    const std::size_t size = array.size();
    const std::size_t prefix = std::min(n.prefix_items.size(), size);
    for (std::size_t i = 0; i < prefix; ++i) {
      const pointer_scope scope(pointer_, i);
      if (!eval(n.prefix_items[i], array[i], s, nullptr)) {
        ok = false;
        if (s.done()) return false;
      }
    }
    if (ann != nullptr) ann->items_prefix = std::max(ann->items_prefix, prefix);
    if (n.items != no_node) {
      for (std::size_t i = n.prefix_items.size(); i < size; ++i) {
        const pointer_scope scope(pointer_, i);
        const bool item_ok =
            is_false(n.items) ? report_extra_item(s, n.prefix_items.size()) : eval(n.items, array[i], s, nullptr);
        if (!item_ok) {
          ok = false;
          if (s.done()) return false;
        }
      }
      if (ann != nullptr) ann->all_items = true;
    }
    if (n.contains != no_node && !eval_contains(n, array, s, ann)) ok = false;
    return ok;
  }

  [[gnu::noinline]] bool report_extra_item(sink& s, std::size_t allowed) {
    report(s, allowed == 0 ? "item not allowed (the array must be empty)"
                           : "item not allowed (the array may have at most " + plural(allowed, "item", "items") + ")");
    return false;
  }

  [[gnu::noinline]] bool eval_contains(const node& n, const value& array, sink& s, annotations* ann) {
    const std::size_t size = array.size();
    const std::size_t at_least = n.min_contains.value_or(1);
    std::size_t matches = 0;
    for (std::size_t i = 0; i < size; ++i) {
      sink quiet;
      const pointer_scope scope(pointer_, i);
      if (eval(n.contains, array[i], quiet, nullptr)) {
        ++matches;
        if (ann != nullptr) ann->mark_item(i, size);
      }
      if (!abort_reason_.empty()) return false;
      if (ann == nullptr && !n.max_contains && matches >= at_least) break;
    }
    return report_contains(n, matches, s);
  }

  [[gnu::noinline]] bool report_contains(const node& n, std::size_t matches, sink& s) {
    const std::size_t at_least = n.min_contains.value_or(1);
    if (matches < at_least) {
      report(s, at_least == 1 ? "must contain an item that matches the \"contains\" schema"
                              : "must contain at least " + plural(at_least, "item", "items") +
                                    " that match the \"contains\" schema (has " + std::to_string(matches) + ")");
      return false;
    }
    if (n.max_contains && matches > *n.max_contains) {
      report(s, "must contain at most " + plural(*n.max_contains, "item", "items") +
                    " that match the \"contains\" schema (has " + std::to_string(matches) + ")");
      return false;
    }
    return true;
  }

  [[gnu::noinline]] bool eval_object(const node& n, const value& object, sink& s, annotations* ann) {
    bool ok = check_object(n, object, s);
    if (!ok && s.done()) return false;
    const std::size_t size = object.size();
    const bool per_member = !n.properties.empty() || !n.pattern_properties.empty() ||
                            n.additional_properties != no_node || n.property_names != no_node;
    if (per_member) {
      if (!charge(size)) return false;
      std::size_t index = 0;
      for (auto it = object.begin(); it != object.end(); ++it, ++index) {
        const pointer_scope scope(pointer_, it.key());
        bool evaluated = false;
        if (!eval_member(n, it.key(), it.value(), s, evaluated)) {
          ok = false;
          if (s.done()) return false;
        }
        if (ann != nullptr && evaluated) ann->mark_property(index, size);
      }
      if (ann != nullptr && n.additional_properties != no_node) ann->all_properties = true;
    }
    for (const auto& [name, child] : n.dependent_schemas) {
      if (object.contains(name) && !eval(child, object, s, ann)) {
        ok = false;
        if (s.done()) return false;
      }
    }
    return ok;
  }

  /// `properties`, `patternProperties`, `additionalProperties` and `propertyNames` for one member.
  [[gnu::noinline]] bool eval_member(const node& n, const std::string& key, const value& member, sink& s,
                                     bool& evaluated) {
    bool ok = true;
    if (const auto p = n.properties.find(key); p != n.properties.end()) {
      evaluated = true;
      if (!eval(p->second, member, s, nullptr)) {
        ok = false;
        if (s.done()) return false;
      }
    }
    for (const auto& [matcher, child] : n.pattern_properties) {
      const match_outcome outcome = match(*matcher, key);
      if (outcome == match_outcome::aborted) return false;
      if (outcome == match_outcome::no_match) continue;
      bool member_ok = false;
      if (outcome == match_outcome::matched) {
        evaluated = true;
        member_ok = eval(child, member, s, nullptr);
      } else {
        report(s, unmatchable(*matcher, outcome, "property name"));
      }
      if (!member_ok) {
        ok = false;
        if (s.done()) return false;
      }
    }
    if (!evaluated && n.additional_properties != no_node) {
      evaluated = true;
      const bool member_ok = is_false(n.additional_properties) ? report_not_allowed(s, "property not allowed")
                                                               : eval(n.additional_properties, member, s, nullptr);
      if (!member_ok) {
        ok = false;
        if (s.done()) return false;
      }
    }
    if (n.property_names != no_node && !check_name(n.property_names, key, s)) ok = false;
    return ok;
  }

  [[gnu::noinline]] bool report_not_allowed(sink& s, const char* message) {
    report(s, message);
    return false;
  }

  /// Applies `propertyNames` to `key`, reporting its first violation at the property.
  [[gnu::noinline]] bool check_name(node_id id, const std::string& key, sink& s) {
    const value name(key);
    if (s.out == nullptr) {
      sink quiet;
      return eval(id, name, quiet, nullptr);
    }
    std::vector<schema_violation> found;
    sink inner{&found, 1, false};
    if (eval(id, name, inner, nullptr)) return true;
    report(s,
           "invalid property name: " + (found.empty() ? std::string("rejected by propertyNames") : found[0].message));
    return false;
  }

  [[gnu::noinline]] bool eval_in_place(const node& n, const value& v, sink& s, annotations* ann) {
    bool ok = true;
    for (const node_id id : n.all_of) {
      if (!eval(id, v, s, ann)) {
        ok = false;
        if (s.done()) return false;
      }
    }
    if (!n.any_of.empty() && !eval_any_of(n, v, s, ann)) {
      ok = false;
      if (s.done()) return false;
    }
    if (!n.one_of.empty() && !eval_one_of(n, v, s, ann)) {
      ok = false;
      if (s.done()) return false;
    }
    if (n.negated != no_node) {
      sink quiet;
      const bool matched = eval(n.negated, v, quiet, nullptr);
      if (!abort_reason_.empty()) return false;
      if (matched && !report_not_allowed(s, "must not match the \"not\" schema")) {
        ok = false;
        if (s.done()) return false;
      }
    }
    if (n.condition != no_node) {
      sink quiet;
      const bool holds = eval(n.condition, v, quiet, ann);  // its annotations count only if it holds
      if (!abort_reason_.empty()) return false;
      const node_id branch = holds ? n.then_branch : n.else_branch;
      if (branch != no_node && !eval(branch, v, s, ann)) ok = false;
    }
    return ok;
  }

  [[gnu::noinline]] bool eval_any_of(const node& n, const value& v, sink& s, annotations* ann) {
    bool any = false;
    for (const node_id id : n.any_of) {
      sink quiet;
      if (eval(id, v, quiet, ann)) {
        any = true;
        if (ann == nullptr) break;  // the others matter only for their annotations
      }
    }
    if (!abort_reason_.empty()) return false;
    return any || report_no_alternative("anyOf", n.any_of, v, s);
  }

  [[gnu::noinline]] bool eval_one_of(const node& n, const value& v, sink& s, annotations* ann) {
    std::size_t matches = 0;
    std::size_t first = 0;
    std::size_t second = 0;
    for (std::size_t i = 0; i < n.one_of.size() && matches < 2; ++i) {
      sink quiet;
      if (eval(n.one_of[i], v, quiet, nullptr)) {
        (matches == 0 ? first : second) = i;
        ++matches;
      }
    }
    if (!abort_reason_.empty()) return false;
    if (matches == 0) return report_no_alternative("oneOf", n.one_of, v, s);
    if (matches > 1) return report_many_alternatives(first, second, s);
    if (ann != nullptr) {  // evaluated again, now keeping what it annotates
      sink quiet;
      (void)eval(n.one_of[first], v, quiet, ann);
    }
    return true;
  }

  [[gnu::noinline]] bool report_many_alternatives(std::size_t first, std::size_t second, sink& s) {
    report(s, "matches more than one oneOf alternative ([" + std::to_string(first) + "] and [" +
                  std::to_string(second) + "])");
    return false;
  }

  /// Reports that none of `alternatives` matches, quoting the first violation of each when `s`
  /// asks for explanations (not nested: the alternatives are evaluated without them).
  [[gnu::noinline]] bool report_no_alternative(std::string_view keyword, const std::vector<node_id>& alternatives,
                                               const value& v, sink& s) {
    std::string message = "matches none of the " + std::string(keyword) + " alternatives";
    if (s.explain && s.out != nullptr && !s.done()) {
      message += " (";
      const std::size_t shown = std::min(alternatives.size(), explained_alternatives);
      for (std::size_t i = 0; i < shown; ++i) {
        std::vector<schema_violation> found;
        sink first{&found, 1, false};
        (void)eval(alternatives[i], v, first, nullptr);
        if (i > 0) message += "; ";
        message += "[" + std::to_string(i) + "] ";
        if (found.empty()) {
          message += "invalid";
        } else {
          if (found[0].pointer != pointer_) message += found[0].pointer + ": ";
          message += found[0].message;
        }
      }
      if (shown < alternatives.size()) message += "; …";
      message += ")";
    }
    report(s, std::move(message));
    return false;
  }

  [[gnu::noinline]] bool eval_unevaluated(const node& n, const value& v, sink& s, annotations& seen) {
    bool ok = true;
    if (n.unevaluated_properties != no_node && v.is_object() && !seen.all_properties) {
      std::size_t index = 0;
      for (auto it = v.begin(); it != v.end(); ++it, ++index) {
        if (index < seen.properties.size() && seen.properties[index]) continue;
        const pointer_scope scope(pointer_, it.key());
        const bool member_ok = is_false(n.unevaluated_properties)
                                   ? report_not_allowed(s, "property not allowed (unevaluatedProperties)")
                                   : eval(n.unevaluated_properties, it.value(), s, nullptr);
        if (!member_ok) {
          ok = false;
          if (s.done()) return false;
        }
      }
      seen.all_properties = true;
    }
    if (n.unevaluated_items != no_node && v.is_array() && !seen.all_items) {
      for (std::size_t i = seen.items_prefix; i < v.size(); ++i) {
        if (i < seen.items.size() && seen.items[i]) continue;
        const pointer_scope scope(pointer_, i);
        const bool item_ok = is_false(n.unevaluated_items)
                                 ? report_not_allowed(s, "item not allowed (unevaluatedItems)")
                                 : eval(n.unevaluated_items, v[i], s, nullptr);
        if (!item_ok) {
          ok = false;
          if (s.done()) return false;
        }
      }
      seen.all_items = true;
    }
    return ok;
  }

  const std::vector<node>& nodes_;
  std::string pointer_;
  std::size_t depth_ = 0;
  std::size_t budget_left_;
  std::string abort_reason_;
};

std::size_t budget_for(const value_size& size) {
  return base_budget + budget_per_value * size.values + budget_per_string_byte * size.string_bytes;
}

std::string too_deep_message() { return "nested more than " + std::to_string(json_schema::max_depth) + " deep"; }

}  // namespace

struct json_schema::compiled {
  std::vector<node> nodes;  ///< nodes[0] is the root
};

result<json_schema> json_schema::compile(const value& schema) {
  CHOIR_TRY(auto nodes, schema_compiler(schema).run());
  return json_schema(std::make_shared<const compiled>(compiled{std::move(nodes)}));
}

std::vector<schema_violation> json_schema::validate(const value& instance) const {
  value_size size;
  if (!within_depth(instance, max_depth, size)) return {{"", too_deep_message()}};
  std::vector<schema_violation> violations;
  evaluator e(impl_->nodes, budget_for(size));
  sink s{&violations, max_violations, true};
  const bool ok = e.eval(0, instance, s, nullptr);
  if (!e.abort_reason().empty()) return {{"", e.abort_reason()}};
  if (!ok && violations.empty()) violations.push_back({"", "invalid"});
  return violations;
}

bool json_schema::accepts(const value& instance) const {
  value_size size;
  if (!within_depth(instance, max_depth, size)) return false;
  evaluator e(impl_->nodes, budget_for(size));
  sink quiet;
  return e.eval(0, instance, quiet, nullptr) && e.abort_reason().empty();
}

std::string describe(const std::vector<schema_violation>& violations) {
  constexpr std::size_t shown = 5;
  std::string out;
  for (std::size_t i = 0; i < violations.size() && i < shown; ++i) {
    if (i > 0) out += "; ";
    out += violations[i].pointer.empty() ? "(root)" : violations[i].pointer;
    out += ": ";
    out += violations[i].message;
  }
  if (violations.size() > shown) out += "; (and " + std::to_string(violations.size() - shown) + " more)";
  return out;
}

}  // namespace choir
