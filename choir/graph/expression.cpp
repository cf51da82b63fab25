#include "choir/graph/expression.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace choir::graph {

namespace detail {

/// What a node of the compiled tree does.
enum class node_kind : std::uint8_t {
  literal,      ///< a constant (`literal`); literal lists are folded into one constant
  name,         ///< a root name looked up in the scope (`name`)
  list,         ///< a list literal with at least one non-constant element (`children`)
  path,         ///< `children[0]` followed by `.field` and `[index]` steps (`steps`)
  negate,       ///< unary `-children[0]`
  logical_not,  ///< `not children[0]`
  logical_and,  ///< `children[0] and children[1] and …` (short-circuit)
  logical_or,   ///< `children[0] or children[1] or …` (short-circuit)
  compare,      ///< `children[0] <compare> children[1]`
  arith,        ///< `children[0] ops[0] children[1] ops[1] children[2] …`, left to right
  call,         ///< the builtin `fn` applied to `children`
};

enum class compare_op : std::uint8_t { eq, ne, lt, le, gt, ge, in, not_in };
enum class arith_op : std::uint8_t { add, sub, mul, div, mod };
enum class builtin_id : std::uint8_t {
  size,
  lower,
  upper,
  trim,
  contains,
  starts_with,
  ends_with,
  to_int,
  to_float,
  to_str,
  exists,
  fallback,
  type,
  min,
  max,
  abs,
};

/// One `.field` or `[index]` step of a path.
struct path_step {
  bool is_field = true;
  std::string field;      ///< the member name of a `.field` step
  std::size_t index = 0;  ///< for an `[index]` step: the child of the node that computes the index
  std::string text;       ///< the source of the path up to and including this step (for messages)
};

/// A node of a compiled expression. Only the members its `kind` uses are set.
struct expr_node {
  node_kind kind = node_kind::literal;
  compare_op compare = compare_op::eq;
  builtin_id fn = builtin_id::size;
  std::string text;  ///< the source fragment this node was compiled from (for messages)
  value literal;
  std::string name;
  std::vector<std::unique_ptr<expr_node>> children;
  std::vector<arith_op> ops;
  std::vector<std::string> op_texts;  ///< for `arith`: the source up to the right operand of ops[i]
  std::vector<path_step> steps;
};

}  // namespace detail

namespace {

using detail::arith_op;
using detail::builtin_id;
using detail::compare_op;
using detail::expr_node;
using detail::node_kind;
using detail::path_step;
using node_ptr = std::unique_ptr<expr_node>;

constexpr std::size_t k_max_length = 4096;
constexpr int k_max_depth = 64;
constexpr std::uint64_t k_int_min_magnitude = std::uint64_t{1} << 63;
constexpr std::int64_t k_int_max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t k_int_min = std::numeric_limits<std::int64_t>::min();

// ------------------------------------------------------------------------------------------------
// Builtin functions

struct builtin_info {
  std::string_view name;
  builtin_id id;
  std::size_t arity;
};

constexpr std::array<builtin_info, 16> k_builtins = {{
    {"size", builtin_id::size, 1},
    {"lower", builtin_id::lower, 1},
    {"upper", builtin_id::upper, 1},
    {"trim", builtin_id::trim, 1},
    {"contains", builtin_id::contains, 2},
    {"starts_with", builtin_id::starts_with, 2},
    {"ends_with", builtin_id::ends_with, 2},
    {"int", builtin_id::to_int, 1},
    {"float", builtin_id::to_float, 1},
    {"str", builtin_id::to_str, 1},
    {"exists", builtin_id::exists, 1},
    {"default", builtin_id::fallback, 2},
    {"type", builtin_id::type, 1},
    {"min", builtin_id::min, 2},
    {"max", builtin_id::max, 2},
    {"abs", builtin_id::abs, 1},
}};

const builtin_info* find_builtin(std::string_view name) {
  for (const builtin_info& b : k_builtins) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

// ------------------------------------------------------------------------------------------------
// Text helpers

/// The length of the valid UTF-8 sequence starting at `s[i]`, or 0 if the bytes there are not one.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x100U;
  };
  auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    const unsigned b = byte(k);
    return b >= lo && b <= hi;
  };
  const unsigned b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 == 0xE0) return cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0;
  if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (b0 == 0xF0) return cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string hex_byte(unsigned char b) {
  constexpr std::string_view digits = "0123456789ABCDEF";
  std::string out = "0x";
  out += digits[b >> 4];
  out += digits[b & 0xF];
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

error syntax_error(std::size_t offset, std::string_view what) {
  return make_error(graph_errc::expression_syntax, "column " + std::to_string(offset + 1) + ": " + std::string(what));
}

// ------------------------------------------------------------------------------------------------
// Lexer

enum class tok : std::uint8_t {
  end,
  integer,
  floating,
  string,
  identifier,
  kw_and,
  kw_or,
  kw_not,
  kw_in,
  kw_true,
  kw_false,
  kw_null,
  lparen,
  rparen,
  lbracket,
  rbracket,
  comma,
  dot,
  plus,
  minus,
  star,
  slash,
  percent,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
};

struct token {
  tok kind = tok::end;
  std::size_t begin = 0;      ///< byte offset of the first byte
  std::size_t end = 0;        ///< byte offset one past the last byte
  std::uint64_t integer = 0;  ///< magnitude of an integer literal (at most 2^63)
  double floating = 0;        ///< value of a float literal
  std::string text;           ///< identifier or keyword spelling; decoded string literal
};

bool is_keyword(tok k) { return k >= tok::kw_and && k <= tok::kw_null; }

class lexer {
 public:
  explicit lexer(std::string_view source) : src_(source) {}

  result<std::vector<token>> run() {
    std::vector<token> out;
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) {
        token t;
        t.begin = t.end = src_.size();
        out.push_back(std::move(t));
        return out;
      }
      CHOIR_TRY(token t, next());
      out.push_back(std::move(t));
    }
  }

 private:
  result<token> simple(tok kind, std::size_t length) {
    token t;
    t.kind = kind;
    t.begin = pos_;
    pos_ += length;
    t.end = pos_;
    return t;
  }

  [[nodiscard]] char at(std::size_t i) const { return i < src_.size() ? src_[i] : '\0'; }

  result<token> next() {
    const char c = src_[pos_];
    if (is_digit(c)) return number();
    if (is_ident_start(c)) return identifier();
    if (c == '"' || c == '\'') return string_literal();
    switch (c) {
      case '(': return simple(tok::lparen, 1);
      case ')': return simple(tok::rparen, 1);
      case '[': return simple(tok::lbracket, 1);
      case ']': return simple(tok::rbracket, 1);
      case ',': return simple(tok::comma, 1);
      case '.': return simple(tok::dot, 1);
      case '+': return simple(tok::plus, 1);
      case '-': return simple(tok::minus, 1);
      case '*': return simple(tok::star, 1);
      case '/': return simple(tok::slash, 1);
      case '%': return simple(tok::percent, 1);
      case '=':
        if (at(pos_ + 1) == '=') return simple(tok::eq, 2);
        return syntax_error(pos_, "unexpected '='; use '==' to compare");
      case '!':
        if (at(pos_ + 1) == '=') return simple(tok::ne, 2);
        return syntax_error(pos_, "unexpected '!'; use 'not'");
      case '<':
        if (at(pos_ + 1) == '=') return simple(tok::le, 2);
        return simple(tok::lt, 1);
      case '>':
        if (at(pos_ + 1) == '=') return simple(tok::ge, 2);
        return simple(tok::gt, 1);
      case '&': return syntax_error(pos_, "unexpected '&'; use 'and'");
      case '|': return syntax_error(pos_, "unexpected '|'; use 'or'");
      default: break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      const std::size_t n = utf8_length(src_, pos_);
      if (n == 0) return syntax_error(pos_, "invalid UTF-8 byte " + hex_byte(u));
      return syntax_error(pos_, "unexpected character '" + std::string(src_.substr(pos_, n)) + "'");
    }
    if (u < 0x20 || u == 0x7F) return syntax_error(pos_, "unexpected control character " + hex_byte(u));
    return syntax_error(pos_, std::string("unexpected character '") + c + "'");
  }

  result<token> number() {
    token t;
    t.begin = pos_;
    bool overflow = false;
    std::uint64_t magnitude = 0;
    while (pos_ < src_.size() && is_digit(src_[pos_])) {
      const auto d = static_cast<std::uint64_t>(src_[pos_] - '0');
      if (magnitude > (k_int_min_magnitude - d) / 10) overflow = true;
      if (!overflow) magnitude = magnitude * 10 + d;
      ++pos_;
    }
    bool is_float = false;
    if (at(pos_) == '.' && is_digit(at(pos_ + 1))) {
      is_float = true;
      ++pos_;
      while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
    }
    if (at(pos_) == 'e' || at(pos_) == 'E') {
      std::size_t k = pos_ + 1;
      if (at(k) == '+' || at(k) == '-') ++k;
      if (is_digit(at(k))) {
        is_float = true;
        pos_ = k;
        while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
      }
    }
    if (is_ident_char(at(pos_)) || (at(pos_) == '.' && is_digit(at(pos_ + 1)))) {
      while (is_ident_char(at(pos_)) || at(pos_) == '.') ++pos_;
      return syntax_error(t.begin, "malformed number '" + std::string(src_.substr(t.begin, pos_ - t.begin)) + "'");
    }
    t.end = pos_;
    const std::string_view text = src_.substr(t.begin, t.end - t.begin);
    if (!is_float) {
      if (overflow) return syntax_error(t.begin, "integer literal " + std::string(text) + " is out of range");
      t.kind = tok::integer;
      t.integer = magnitude;
      return t;
    }
    double d = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
    if (ec == std::errc::result_out_of_range) {
      // Underflow (1e-400) rounds to zero; overflow (1e400) is an error.
      const std::size_t e = text.find_first_of("eE");
      if (e == std::string_view::npos || at(t.begin + e + 1) != '-') {
        return syntax_error(t.begin, "float literal " + std::string(text) + " is out of range");
      }
      d = 0;
    } else if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(d)) {
      return syntax_error(t.begin, "malformed number '" + std::string(text) + "'");
    }
    t.kind = tok::floating;
    t.floating = d;
    return t;
  }

  result<token> identifier() {
    token t;
    t.begin = pos_;
    while (pos_ < src_.size() && is_ident_char(src_[pos_])) ++pos_;
    t.end = pos_;
    t.text = std::string(src_.substr(t.begin, t.end - t.begin));
    static constexpr std::array<std::pair<std::string_view, tok>, 7> keywords = {{
        {"and", tok::kw_and},
        {"or", tok::kw_or},
        {"not", tok::kw_not},
        {"in", tok::kw_in},
        {"true", tok::kw_true},
        {"false", tok::kw_false},
        {"null", tok::kw_null},
    }};
    t.kind = tok::identifier;
    for (const auto& [word, kind] : keywords) {
      if (t.text == word) t.kind = kind;
    }
    return t;
  }

  result<std::uint32_t> hex4(std::size_t escape_begin) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = at(pos_);
      std::uint32_t d = 0;
      if (c >= '0' && c <= '9') {
        d = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return syntax_error(escape_begin, "\\u needs four hex digits");
      }
      v = v * 16 + d;
      ++pos_;
    }
    return v;
  }

  result<token> string_literal() {
    token t;
    t.begin = pos_;
    const char quote = src_[pos_++];
    while (true) {
      if (pos_ >= src_.size()) return syntax_error(t.begin, "unterminated string");
      const char c = src_[pos_];
      if (c == quote) {
        ++pos_;
        break;
      }
      if (c != '\\') {
        const std::size_t n = utf8_length(src_, pos_);
        if (n == 0) {
          return syntax_error(pos_, "invalid UTF-8 byte " + hex_byte(static_cast<unsigned char>(c)) + " in string");
        }
        t.text.append(src_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      const std::size_t escape_begin = pos_;
      if (pos_ + 1 >= src_.size()) return syntax_error(t.begin, "unterminated string");
      const char e = src_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case '\\': t.text += '\\'; break;
        case '\'': t.text += '\''; break;
        case '"': t.text += '"'; break;
        case 'n': t.text += '\n'; break;
        case 't': t.text += '\t'; break;
        case 'r': t.text += '\r'; break;
        case 'u': {
          CHOIR_TRY(std::uint32_t cp, hex4(escape_begin));
          if (cp >= 0xDC00 && cp <= 0xDFFF) return syntax_error(escape_begin, "unpaired surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (at(pos_) != '\\' || at(pos_ + 1) != 'u') {
              return syntax_error(escape_begin, "unpaired surrogate in \\u escape");
            }
            const std::size_t low_begin = pos_;
            pos_ += 2;
            CHOIR_TRY(std::uint32_t low, hex4(low_begin));
            if (low < 0xDC00 || low > 0xDFFF) return syntax_error(escape_begin, "unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(t.text, cp);
          break;
        }
        default: {
          const auto u = static_cast<unsigned char>(e);
          if (u >= 0x20 && u < 0x7F) {
            return syntax_error(escape_begin, std::string("unknown escape '\\") + e + "'");
          }
          return syntax_error(escape_begin, "unknown escape sequence");
        }
      }
    }
    t.end = pos_;
    t.kind = tok::string;
    return t;
  }

  std::string_view src_;
  std::size_t pos_ = 0;
};

// ------------------------------------------------------------------------------------------------
// Parser

node_ptr make_node(node_kind kind) {
  auto n = std::make_unique<expr_node>();
  n->kind = kind;
  return n;
}

/// True if `n` is a name or a path rooted at a name (what `exists` and `default` accept).
bool is_name_path(const expr_node& n) {
  return n.kind == node_kind::name || (n.kind == node_kind::path && n.children[0]->kind == node_kind::name);
}

class parser {
 public:
  parser(std::string_view source, std::vector<token> tokens) : src_(source), tokens_(std::move(tokens)) {}

  result<node_ptr> parse() {
    CHOIR_TRY(node_ptr root, parse_or());
    if (peek().kind != tok::end) return expected(peek(), "an operator or the end of the expression");
    return root;
  }

  [[nodiscard]] std::vector<std::string> names() const { return {names_.begin(), names_.end()}; }

 private:
  /// Decrements the nesting depth when a nested construct has been parsed.
  class depth_guard {
   public:
    explicit depth_guard(int& depth) : depth_(depth) {}
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;
    ~depth_guard() { --depth_; }

   private:
    int& depth_;
  };

  [[nodiscard]] const token& peek(std::size_t k = 0) const { return tokens_[std::min(pos_ + k, tokens_.size() - 1)]; }
  const token& take() {
    const token& t = tokens_[pos_];
    last_end_ = t.end;
    if (t.kind != tok::end) ++pos_;
    return t;
  }
  [[nodiscard]] std::string text_from(std::size_t begin) const {
    return std::string(src_.substr(begin, last_end_ > begin ? last_end_ - begin : 0));
  }

  [[nodiscard]] std::string describe(const token& t) const {
    if (t.kind == tok::end) return "end of expression";
    std::string_view s = src_.substr(t.begin, t.end - t.begin);
    if (s.size() > 32) {
      std::size_t cut = 29;
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
      return "'" + std::string(s.substr(0, cut)) + "...'";
    }
    return "'" + std::string(s) + "'";
  }

  [[nodiscard]] error expected(const token& t, std::string_view what) const {
    return syntax_error(t.begin, "expected " + std::string(what) + " but found " + describe(t));
  }

  result<void> enter(const token& t) {
    if (depth_ >= k_max_depth) {
      return syntax_error(t.begin, "nested too deeply (more than " + std::to_string(k_max_depth) + " levels)");
    }
    ++depth_;
    return {};
  }

  result<node_ptr> parse_or() { return parse_logical(tok::kw_or, node_kind::logical_or); }

  result<node_ptr> parse_logical(tok op, node_kind kind) {
    const std::size_t begin = peek().begin;
    CHOIR_TRY(node_ptr first, op == tok::kw_or ? parse_logical(tok::kw_and, node_kind::logical_and) : parse_not());
    if (peek().kind != op) return first;
    node_ptr n = make_node(kind);
    n->children.push_back(std::move(first));
    while (peek().kind == op) {
      take();
      CHOIR_TRY(node_ptr next, op == tok::kw_or ? parse_logical(tok::kw_and, node_kind::logical_and) : parse_not());
      n->children.push_back(std::move(next));
    }
    n->text = text_from(begin);
    return n;
  }

  result<node_ptr> parse_not() {
    if (peek().kind != tok::kw_not) return parse_comparison();
    const std::size_t begin = peek().begin;
    CHOIR_CHECK(enter(take()));
    const depth_guard guard(depth_);
    CHOIR_TRY(node_ptr operand, parse_not());
    node_ptr n = make_node(node_kind::logical_not);
    n->children.push_back(std::move(operand));
    n->text = text_from(begin);
    return n;
  }

  [[nodiscard]] bool at_comparison() const {
    const tok k = peek().kind;
    return (k >= tok::eq && k <= tok::ge) || k == tok::kw_in || k == tok::kw_not;
  }

  result<std::optional<compare_op>> comparison_operator() {
    switch (peek().kind) {
      case tok::eq: take(); return std::optional(compare_op::eq);
      case tok::ne: take(); return std::optional(compare_op::ne);
      case tok::lt: take(); return std::optional(compare_op::lt);
      case tok::le: take(); return std::optional(compare_op::le);
      case tok::gt: take(); return std::optional(compare_op::gt);
      case tok::ge: take(); return std::optional(compare_op::ge);
      case tok::kw_in: take(); return std::optional(compare_op::in);
      case tok::kw_not:
        if (peek(1).kind != tok::kw_in) return expected(peek(1), "'in' after 'not'");
        take();
        take();
        return std::optional(compare_op::not_in);
      default: return std::optional<compare_op>();
    }
  }

  result<node_ptr> parse_comparison() {
    const std::size_t begin = peek().begin;
    CHOIR_TRY(node_ptr lhs, parse_arith(true));
    CHOIR_TRY(std::optional<compare_op> op, comparison_operator());
    if (!op) return lhs;
    CHOIR_TRY(node_ptr rhs, parse_arith(true));
    if (at_comparison()) {
      return syntax_error(peek().begin, "comparisons cannot be chained; join them with 'and'");
    }
    node_ptr n = make_node(node_kind::compare);
    n->compare = *op;
    n->children.push_back(std::move(lhs));
    n->children.push_back(std::move(rhs));
    n->text = text_from(begin);
    return n;
  }

  /// `additive`: terms joined by `+ -`; otherwise factors joined by `* / %`.
  result<node_ptr> parse_arith(bool additive) {
    auto op_of = [additive](tok k) -> std::optional<arith_op> {
      if (additive) {
        if (k == tok::plus) return arith_op::add;
        if (k == tok::minus) return arith_op::sub;
      } else {
        if (k == tok::star) return arith_op::mul;
        if (k == tok::slash) return arith_op::div;
        if (k == tok::percent) return arith_op::mod;
      }
      return std::nullopt;
    };
    const std::size_t begin = peek().begin;
    CHOIR_TRY(node_ptr first, additive ? parse_arith(false) : parse_unary());
    if (!op_of(peek().kind)) return first;
    node_ptr n = make_node(node_kind::arith);
    n->children.push_back(std::move(first));
    while (const std::optional<arith_op> op = op_of(peek().kind)) {
      take();
      CHOIR_TRY(node_ptr next, additive ? parse_arith(false) : parse_unary());
      n->children.push_back(std::move(next));
      n->ops.push_back(*op);
      n->op_texts.push_back(text_from(begin));
    }
    n->text = text_from(begin);
    return n;
  }

  [[nodiscard]] static bool is_postfix(tok k) { return k == tok::dot || k == tok::lbracket; }

  result<node_ptr> parse_unary() {
    if (peek().kind != tok::minus) return parse_postfix();
    const std::size_t begin = peek().begin;
    CHOIR_CHECK(enter(take()));
    const depth_guard guard(depth_);
    if (peek().kind == tok::integer && peek().integer == k_int_min_magnitude && !is_postfix(peek(1).kind)) {
      take();
      node_ptr n = make_node(node_kind::literal);
      n->literal = value(k_int_min);
      n->text = text_from(begin);
      return n;
    }
    CHOIR_TRY(node_ptr operand, parse_unary());
    if (operand->kind == node_kind::literal && operand->literal.is_number_integer() &&
        operand->literal.get<std::int64_t>() != k_int_min) {
      operand->literal = value(-operand->literal.get<std::int64_t>());
      operand->text = text_from(begin);
      return operand;
    }
    if (operand->kind == node_kind::literal && operand->literal.is_number_float()) {
      operand->literal = value(-operand->literal.get<double>());
      operand->text = text_from(begin);
      return operand;
    }
    node_ptr n = make_node(node_kind::negate);
    n->children.push_back(std::move(operand));
    n->text = text_from(begin);
    return n;
  }

  result<node_ptr> parse_postfix() {
    const std::size_t begin = peek().begin;
    CHOIR_TRY(node_ptr base, parse_primary());
    if (!is_postfix(peek().kind)) {
      if (peek().kind == tok::lparen) return syntax_error(peek().begin, "only a function can be called, like size(x)");
      return base;
    }
    node_ptr n = make_node(node_kind::path);
    n->children.push_back(std::move(base));
    while (is_postfix(peek().kind)) {
      const token& t = take();
      path_step step;
      if (t.kind == tok::dot) {
        const token& field = peek();
        if (field.kind != tok::identifier && !is_keyword(field.kind)) return expected(field, "a member name after '.'");
        take();
        step.field = field.text;
      } else {
        CHOIR_CHECK(enter(t));
        const depth_guard guard(depth_);
        CHOIR_TRY(node_ptr index, parse_or());
        if (peek().kind != tok::rbracket) return expected(peek(), "']'");
        take();
        step.is_field = false;
        step.index = n->children.size();
        n->children.push_back(std::move(index));
      }
      step.text = text_from(begin);
      n->steps.push_back(std::move(step));
    }
    if (peek().kind == tok::lparen) return syntax_error(peek().begin, "only a function can be called, like size(x)");
    n->text = text_from(begin);
    return n;
  }

  node_ptr literal(value v) {
    node_ptr n = make_node(node_kind::literal);
    n->literal = std::move(v);
    const token& t = take();
    n->text = std::string(src_.substr(t.begin, t.end - t.begin));
    return n;
  }

  result<node_ptr> parse_primary() {
    const token& t = peek();
    switch (t.kind) {
      case tok::integer:
        if (t.integer > static_cast<std::uint64_t>(k_int_max)) {
          return syntax_error(
              t.begin, "integer literal " + std::string(src_.substr(t.begin, t.end - t.begin)) + " is out of range");
        }
        return literal(value(static_cast<std::int64_t>(t.integer)));
      case tok::floating: return literal(value(t.floating));
      case tok::string: return literal(value(t.text));
      case tok::kw_true: return literal(value(true));
      case tok::kw_false: return literal(value(false));
      case tok::kw_null: return literal(value(nullptr));
      case tok::identifier: {
        if (peek(1).kind == tok::lparen) return parse_call();
        node_ptr n = make_node(node_kind::name);
        n->name = t.text;
        n->text = t.text;
        names_.insert(t.text);
        take();
        return n;
      }
      case tok::lparen: {
        CHOIR_CHECK(enter(take()));
        const depth_guard guard(depth_);
        CHOIR_TRY(node_ptr inner, parse_or());
        if (peek().kind != tok::rparen) return expected(peek(), "')'");
        take();
        return inner;
      }
      case tok::lbracket: return parse_list();
      default: return expected(t, "an expression");
    }
  }

  result<node_ptr> parse_list() {
    const std::size_t begin = peek().begin;
    CHOIR_CHECK(enter(take()));
    const depth_guard guard(depth_);
    node_ptr n = make_node(node_kind::list);
    while (peek().kind != tok::rbracket) {
      CHOIR_TRY(node_ptr item, parse_or());
      n->children.push_back(std::move(item));
      if (peek().kind == tok::comma) {
        take();
        continue;
      }
      if (peek().kind != tok::rbracket) return expected(peek(), "',' or ']'");
    }
    take();
    n->text = text_from(begin);
    const bool constant = std::all_of(n->children.begin(), n->children.end(),
                                      [](const node_ptr& c) { return c->kind == node_kind::literal; });
    if (constant) {
      value items = value::array();
      for (node_ptr& c : n->children) items.push_back(std::move(c->literal));
      n->children.clear();
      n->kind = node_kind::literal;
      n->literal = std::move(items);
    }
    return n;
  }

  result<node_ptr> parse_call() {
    const std::size_t begin = peek().begin;
    const token& name = take();
    const builtin_info* info = find_builtin(name.text);
    if (info == nullptr) return syntax_error(name.begin, "unknown function '" + name.text + "'");
    CHOIR_CHECK(enter(take()));
    const depth_guard guard(depth_);
    node_ptr n = make_node(node_kind::call);
    n->fn = info->id;
    n->name = name.text;
    std::vector<std::size_t> arg_begins;
    if (peek().kind != tok::rparen) {
      while (true) {
        arg_begins.push_back(peek().begin);
        CHOIR_TRY(node_ptr arg, parse_or());
        n->children.push_back(std::move(arg));
        if (peek().kind == tok::comma) {
          take();
          continue;
        }
        if (peek().kind == tok::rparen) break;
        return expected(peek(), "',' or ')'");
      }
    }
    take();
    n->text = text_from(begin);
    if (n->children.size() != info->arity) {
      return syntax_error(name.begin, std::string(info->name) + "() takes " + std::to_string(info->arity) +
                                          (info->arity == 1 ? " argument" : " arguments") + ", got " +
                                          std::to_string(n->children.size()));
    }
    if ((info->id == builtin_id::exists || info->id == builtin_id::fallback) && !is_name_path(*n->children[0])) {
      return syntax_error(
          arg_begins[0], std::string(info->name) + "() needs a name or a path such as user.name as its first argument");
    }
    return n;
  }

  std::string_view src_;
  std::vector<token> tokens_;
  std::size_t pos_ = 0;
  std::size_t last_end_ = 0;
  int depth_ = 0;
  std::set<std::string> names_;
};

// ------------------------------------------------------------------------------------------------
// Values

/// The types of the language. Integers beyond the int64 range (possible only in state values)
/// count as floats.
enum class vkind : std::uint8_t { null, boolean, integer, floating, string, list, object, binary };

vkind kind_of(const value& v) {
  switch (v.type()) {
    case value::value_t::null:
    case value::value_t::discarded: return vkind::null;
    case value::value_t::boolean: return vkind::boolean;
    case value::value_t::number_integer: return vkind::integer;
    case value::value_t::number_unsigned:
      return v.get_ref<const value::number_unsigned_t&>() <= static_cast<std::uint64_t>(k_int_max) ? vkind::integer
                                                                                                   : vkind::floating;
    case value::value_t::number_float: return vkind::floating;
    case value::value_t::string: return vkind::string;
    case value::value_t::array: return vkind::list;
    case value::value_t::object: return vkind::object;
    case value::value_t::binary: return vkind::binary;
  }
  return vkind::null;
}

std::string_view kind_name(vkind k) {
  switch (k) {
    case vkind::null: return "null";
    case vkind::boolean: return "bool";
    case vkind::integer: return "int";
    case vkind::floating: return "float";
    case vkind::string: return "string";
    case vkind::list: return "list";
    case vkind::object: return "object";
    case vkind::binary: return "binary";
  }
  return "null";
}

/// The kind with an article, for messages: "an int", "a string", "null".
std::string a_kind(vkind k) {
  switch (k) {
    case vkind::null: return "null";
    case vkind::integer: return "an int";
    case vkind::object: return "an object";
    default: return "a " + std::string(kind_name(k));
  }
}

bool is_number(vkind k) { return k == vkind::integer || k == vkind::floating; }

struct number {
  bool is_int = true;
  std::int64_t i = 0;
  double d = 0;
  [[nodiscard]] double as_double() const { return is_int ? static_cast<double>(i) : d; }
};

/// The number `v` holds; `kind_of(v)` must be `integer` or `floating`.
number to_number(const value& v) {
  number n;
  switch (v.type()) {
    case value::value_t::number_integer: n.i = v.get_ref<const value::number_integer_t&>(); break;
    case value::value_t::number_unsigned: {
      const std::uint64_t u = v.get_ref<const value::number_unsigned_t&>();
      if (u <= static_cast<std::uint64_t>(k_int_max)) {
        n.i = static_cast<std::int64_t>(u);
      } else {
        n.is_int = false;
        n.d = static_cast<double>(u);
      }
      break;
    }
    case value::value_t::number_float:
      n.is_int = false;
      n.d = v.get_ref<const value::number_float_t&>();
      break;
    default: break;
  }
  return n;
}

enum class order : std::uint8_t { less, equal, greater, unordered };

order flip(order o) {
  if (o == order::less) return order::greater;
  if (o == order::greater) return order::less;
  return o;
}

/// Compares an integer with a double exactly (no rounding of the integer).
order compare_int_double(std::int64_t i, double d) {
  if (std::isnan(d)) return order::unordered;
  if (d >= 9223372036854775808.0) return order::less;
  if (d < -9223372036854775808.0) return order::greater;
  const double t = std::trunc(d);
  const auto ti = static_cast<std::int64_t>(t);
  if (i < ti) return order::less;
  if (i > ti) return order::greater;
  const double frac = d - t;
  if (frac > 0) return order::less;
  if (frac < 0) return order::greater;
  return order::equal;
}

order compare_numbers(const number& a, const number& b) {
  if (a.is_int && b.is_int) return a.i < b.i ? order::less : a.i > b.i ? order::greater : order::equal;
  if (a.is_int) return compare_int_double(a.i, b.d);
  if (b.is_int) return flip(compare_int_double(b.i, a.d));
  if (std::isnan(a.d) || std::isnan(b.d)) return order::unordered;
  return a.d < b.d ? order::less : a.d > b.d ? order::greater : order::equal;
}

const std::string& str_of(const value& v) { return v.get_ref<const value::string_t&>(); }
bool bool_of(const value& v) { return v.get_ref<const value::boolean_t&>(); }

/// Deep equality of JSON values, comparing numbers by value (1 == 1.0).
bool deep_equal(const value& a, const value& b) {
  const vkind ka = kind_of(a);
  const vkind kb = kind_of(b);
  if (is_number(ka) && is_number(kb)) return compare_numbers(to_number(a), to_number(b)) == order::equal;
  if (ka != kb) return false;
  switch (ka) {
    case vkind::null: return true;
    case vkind::boolean: return bool_of(a) == bool_of(b);
    case vkind::string: return str_of(a) == str_of(b);
    case vkind::list: {
      if (a.size() != b.size()) return false;
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!deep_equal(a[i], b[i])) return false;
      }
      return true;
    }
    case vkind::object: {
      if (a.size() != b.size()) return false;
      for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
        if (ia.key() != ib.key() || !deep_equal(ia.value(), ib.value())) return false;
      }
      return true;
    }
    case vkind::binary: return a == b;
    default: return false;
  }
}

/// An intermediate value. Bools and numbers the evaluation computes are held inline, so comparing
/// and combining them never builds a JSON value. Other values are borrowed from the scope or the
/// compiled tree (no copy), bound to a persistent list of the scope (indexed without materializing
/// it), or owned (strings, lists and objects the evaluation built).
class operand {
 public:
  operand() = default;

  static operand borrowed(const value& v) {
    operand o;
    o.form_ = form::borrowed;
    o.ptr_ = &v;
    return o;
  }
  static operand bound(value_ref r) {
    operand o;
    o.form_ = form::borrowed;
    o.ptr_ = r.json;
    o.list_ = r.list;
    return o;
  }
  static operand owned(value v) {
    operand o;
    o.form_ = form::owned;
    o.owned_ = std::make_unique<value>(std::move(v));
    return o;
  }
  static operand of_bool(bool b) {
    operand o;
    o.form_ = form::boolean;
    o.b_ = b;
    return o;
  }
  static operand of_int(std::int64_t i) {
    operand o;
    o.form_ = form::integer;
    o.i_ = i;
    return o;
  }
  static operand of_double(double d) {
    operand o;
    o.form_ = form::floating;
    o.d_ = d;
    return o;
  }

  [[nodiscard]] vkind kind() const {
    switch (form_) {
      case form::null: return vkind::null;
      case form::boolean: return vkind::boolean;
      case form::integer: return vkind::integer;
      case form::floating: return vkind::floating;
      case form::borrowed:
      case form::owned: return list_ != nullptr ? vkind::list : kind_of(cjson());
    }
    return vkind::null;
  }

  /// The number; `kind()` must be `integer` or `floating`.
  [[nodiscard]] number num() const {
    if (form_ == form::integer) return number{true, i_, 0};
    if (form_ == form::floating) return number{false, 0, d_};
    return to_number(cjson());
  }
  /// The bool; `kind()` must be `boolean`.
  [[nodiscard]] bool truth() const { return form_ == form::boolean ? b_ : bool_of(cjson()); }

  /// The JSON value of a string, list or object that is not `list_only()`.
  [[nodiscard]] const value& cjson() const { return ptr_ != nullptr ? *ptr_ : *owned_; }

  /// The JSON value of any operand, built if needed (a bool, a number, a persistent list).
  const value& json() {
    switch (form_) {
      case form::null: *this = owned(value()); break;
      case form::boolean: *this = owned(value(b_)); break;
      case form::integer: *this = owned(value(i_)); break;
      case form::floating: *this = owned(value(d_)); break;
      case form::borrowed:
        if (list_only()) owned_ = std::make_unique<value>(list_->to_json());
        break;
      case form::owned: break;
    }
    return cjson();
  }

  /// For `kind() == list`.
  [[nodiscard]] std::size_t list_size() const { return list_ != nullptr ? list_->size() : cjson().size(); }
  [[nodiscard]] const value& list_at(std::size_t i) const { return list_ != nullptr ? (*list_)[i] : cjson()[i]; }

  /// Replaces this operand by `part`, a member of its value or an element of its list.
  void narrow(const value& part) {
    if (form_ == form::borrowed) {
      *this = borrowed(part);
    } else {
      value copy = part;
      *owned_ = std::move(copy);
    }
  }

  /// The value, copied out of the scope if borrowed.
  value take() && {
    switch (form_) {
      case form::null: return value();
      case form::boolean: return value(b_);
      case form::integer: return value(i_);
      case form::floating: return value(d_);
      case form::borrowed:
        if (list_only()) return list_->to_json();
        return cjson();
      case form::owned: break;
    }
    return std::move(*owned_);
  }

 private:
  enum class form : std::uint8_t { null, boolean, integer, floating, borrowed, owned };

  /// A persistent list of the scope that has not been turned into JSON.
  [[nodiscard]] bool list_only() const { return list_ != nullptr && ptr_ == nullptr && owned_ == nullptr; }

  form form_ = form::null;
  union {
    bool b_;
    std::int64_t i_ = 0;
    double d_;
  };
  const value* ptr_ = nullptr;
  const persistent_list* list_ = nullptr;
  std::unique_ptr<value> owned_;  ///< on the heap: moving an operand stays a few word copies
};

/// Deep equality of two operands, reading persistent lists element by element.
bool operand_equal(const operand& a, const operand& b) {
  const vkind ka = a.kind();
  const vkind kb = b.kind();
  if (is_number(ka) && is_number(kb)) return compare_numbers(a.num(), b.num()) == order::equal;
  if (ka != kb) return false;
  switch (ka) {
    case vkind::null: return true;
    case vkind::boolean: return a.truth() == b.truth();
    case vkind::list: {
      const std::size_t n = a.list_size();
      if (n != b.list_size()) return false;
      for (std::size_t i = 0; i < n; ++i) {
        if (!deep_equal(a.list_at(i), b.list_at(i))) return false;
      }
      return true;
    }
    default: return deep_equal(a.cjson(), b.cjson());
  }
}

/// `needle == element`, where `element` is a JSON value.
bool operand_equals_value(const operand& needle, const value& element) {
  const vkind nk = needle.kind();
  const vkind ek = kind_of(element);
  if (is_number(nk) && is_number(ek)) return compare_numbers(needle.num(), to_number(element)) == order::equal;
  if (nk != ek) return false;
  switch (nk) {
    case vkind::null: return true;
    case vkind::boolean: return needle.truth() == bool_of(element);
    case vkind::list: {
      if (element.size() != needle.list_size()) return false;
      for (std::size_t i = 0; i < element.size(); ++i) {
        if (!deep_equal(needle.list_at(i), element[i])) return false;
      }
      return true;
    }
    default: return deep_equal(needle.cjson(), element);
  }
}

// ------------------------------------------------------------------------------------------------
// Evaluation

using eval_result = result<operand>;

error type_error(std::string_view fragment, std::string_view what) {
  return make_error(graph_errc::expression_type, std::string(fragment) + ": " + std::string(what));
}
error eval_error(std::string_view fragment, std::string_view what) {
  return make_error(graph_errc::expression_eval, std::string(fragment) + ": " + std::string(what));
}
error unknown_key(std::string_view name) {
  return make_error(graph_errc::expression_unknown_key, "unknown key '" + std::string(name) + "'");
}

operand boolean(bool b) { return operand::of_bool(b); }
operand integer(std::int64_t i) { return operand::of_int(i); }

eval_result float_result(double d, std::string_view fragment) {
  if (!std::isfinite(d)) return eval_error(fragment, "the result is not a finite number");
  return operand::of_double(d);
}

eval_result eval(const expr_node& n, const expr_scope& scope);

/// Evaluates `n` into `out` if it is a literal or a bound name, the common leaves, without building
/// a `result`. Returns false for anything else (including an unbound name): call `eval` then.
bool eval_leaf(const expr_node& n, const expr_scope& scope, operand& out) {
  if (n.kind == node_kind::literal) {
    out = operand::borrowed(n.literal);
    return true;
  }
  if (n.kind == node_kind::name) {
    const value_ref ref = scope.find(n.name);
    if (!ref) return false;
    out = operand::bound(ref);
    return true;
  }
  return false;
}

/// Resolves a name or path into `cur`. Returns false (only when `soft`) if the root is unbound or
/// a step does not resolve; with `soft` false those cases are errors.
result<bool> walk_path(const expr_node& n, const expr_scope& scope, bool soft, operand& cur) {
  const expr_node& base = n.kind == node_kind::path ? *n.children[0] : n;
  if (base.kind == node_kind::name) {
    const value_ref ref = scope.find(base.name);
    if (!ref) {
      if (soft) return false;
      return unknown_key(base.name);
    }
    cur = operand::bound(ref);
  } else {
    CHOIR_TRY(operand b, eval(base, scope));
    cur = std::move(b);
  }
  if (n.kind != node_kind::path) return true;

  for (const path_step& step : n.steps) {
    if (step.is_field) {
      const vkind k = cur.kind();
      if (k != vkind::object) {
        if (soft) return false;
        return type_error(step.text, "cannot read member '" + step.field + "' of " + a_kind(k));
      }
      const value& object = cur.cjson();
      const auto it = object.find(step.field);
      if (it == object.end()) {
        if (soft) return false;
        return eval_error(step.text, "no member '" + step.field + "'");
      }
      cur.narrow(*it);
      continue;
    }
    operand index;
    if (!eval_leaf(*n.children[step.index], scope, index)) {
      CHOIR_TRY(operand value_of_index, eval(*n.children[step.index], scope));
      index = std::move(value_of_index);
    }
    const vkind ik = index.kind();
    const vkind k = cur.kind();
    if (ik == vkind::integer) {
      const std::int64_t i = index.num().i;
      if (k != vkind::list && k != vkind::string) {
        if (soft) return false;
        return type_error(step.text, "cannot index " + a_kind(k) + " with an int");
      }
      const std::size_t size = k == vkind::list ? cur.list_size() : str_of(cur.cjson()).size();
      const auto ssize = static_cast<std::int64_t>(size);
      const std::int64_t pos = i < 0 ? i + ssize : i;
      if (pos < 0 || pos >= ssize) {
        if (soft) return false;
        return eval_error(step.text, "index " + std::to_string(i) + " is out of range for " +
                                         (k == vkind::list ? "a list of " + std::to_string(size) + " elements"
                                                           : "a string of " + std::to_string(size) + " bytes"));
      }
      if (k == vkind::list) {
        cur.narrow(cur.list_at(static_cast<std::size_t>(pos)));
      } else {
        cur = operand::owned(value(std::string(1, str_of(cur.cjson())[static_cast<std::size_t>(pos)])));
      }
    } else if (ik == vkind::string) {
      if (k != vkind::object) {
        if (soft) return false;
        return type_error(step.text, "cannot index " + a_kind(k) + " with a string");
      }
      const std::string& key = str_of(index.cjson());
      const value& object = cur.cjson();
      const auto it = object.find(key);
      if (it == object.end()) {
        if (soft) return false;
        return eval_error(step.text, "no member '" + key + "'");
      }
      cur.narrow(*it);
    } else {
      return type_error(step.text, "an index must be an int or a string, got " + a_kind(ik));
    }
  }
  return true;
}

eval_result eval_path(const expr_node& n, const expr_scope& scope) {
  operand out;
  CHOIR_TRY(bool found, walk_path(n, scope, false, out));
  (void)found;
  return out;
}

eval_result eval_list(const expr_node& n, const expr_scope& scope) {
  value items = value::array();
  items.get_ref<value::array_t&>().reserve(n.children.size());
  for (const node_ptr& c : n.children) {
    CHOIR_TRY(operand item, eval(*c, scope));
    items.push_back(std::move(item).take());
  }
  return operand::owned(std::move(items));
}

eval_result eval_negate(const expr_node& n, const expr_scope& scope) {
  CHOIR_TRY(operand a, eval(*n.children[0], scope));
  const vkind k = a.kind();
  if (!is_number(k)) return type_error(n.text, "unary '-' needs a number, got " + a_kind(k));
  const number x = a.num();
  if (x.is_int) {
    if (x.i == k_int_min) return eval_error(n.text, "integer overflow");
    return integer(-x.i);
  }
  return float_result(-x.d, n.text);
}

result<bool> eval_condition(const expr_node& n, const expr_scope& scope, std::string_view op);

std::string_view compare_symbol(compare_op op) {
  switch (op) {
    case compare_op::eq: return "==";
    case compare_op::ne: return "!=";
    case compare_op::lt: return "<";
    case compare_op::le: return "<=";
    case compare_op::gt: return ">";
    case compare_op::ge: return ">=";
    case compare_op::in: return "in";
    case compare_op::not_in: return "not in";
  }
  return "";
}

result<bool> contained(const operand& needle, const operand& haystack, const expr_node& n) {
  const vkind hk = haystack.kind();
  const vkind nk = needle.kind();
  switch (hk) {
    case vkind::list: {
      const std::size_t size = haystack.list_size();
      for (std::size_t i = 0; i < size; ++i) {
        if (operand_equals_value(needle, haystack.list_at(i))) return true;
      }
      return false;
    }
    case vkind::string:
      if (nk != vkind::string) {
        return type_error(n.text, "'" + std::string(compare_symbol(n.compare)) +
                                      "' needs a string on the left when the right is a string, got " + a_kind(nk));
      }
      return str_of(haystack.cjson()).find(str_of(needle.cjson())) != std::string::npos;
    case vkind::object:
      if (nk != vkind::string) {
        return type_error(n.text, "'" + std::string(compare_symbol(n.compare)) +
                                      "' needs a string on the left when the right is an object, got " + a_kind(nk));
      }
      return haystack.cjson().contains(str_of(needle.cjson()));
    default:
      return type_error(n.text, "'" + std::string(compare_symbol(n.compare)) +
                                    "' needs a list, a string or an object on the right, got " + a_kind(hk));
  }
}

/// Evaluates a comparison node to its bool.
result<bool> compare_bool(const expr_node& n, const expr_scope& scope) {
  operand a;
  if (!eval_leaf(*n.children[0], scope, a)) {
    CHOIR_TRY(operand value_of_a, eval(*n.children[0], scope));
    a = std::move(value_of_a);
  }
  operand b;
  if (!eval_leaf(*n.children[1], scope, b)) {
    CHOIR_TRY(operand value_of_b, eval(*n.children[1], scope));
    b = std::move(value_of_b);
  }
  switch (n.compare) {
    case compare_op::eq: return operand_equal(a, b);
    case compare_op::ne: return !operand_equal(a, b);
    case compare_op::in: return contained(a, b, n);
    case compare_op::not_in: {
      CHOIR_TRY(bool found, contained(a, b, n));
      return !found;
    }
    default: break;
  }
  const vkind ka = a.kind();
  const vkind kb = b.kind();
  order o = order::unordered;
  if (is_number(ka) && is_number(kb)) {
    o = compare_numbers(a.num(), b.num());
  } else if (ka == vkind::string && kb == vkind::string) {
    const int c = str_of(a.cjson()).compare(str_of(b.cjson()));
    o = c < 0 ? order::less : c > 0 ? order::greater : order::equal;
  } else {
    return type_error(n.text, "'" + std::string(compare_symbol(n.compare)) +
                                  "' needs two numbers or two strings, got " + a_kind(ka) + " and " + a_kind(kb));
  }
  switch (n.compare) {
    case compare_op::lt: return o == order::less;
    case compare_op::le: return o == order::less || o == order::equal;
    case compare_op::gt: return o == order::greater;
    case compare_op::ge: return o == order::greater || o == order::equal;
    default: return false;
  }
}

/// Evaluates `n`, which must yield a bool (the operand of `op`). Comparisons and logic take a path
/// that never builds an operand for their result.
result<bool> eval_condition(const expr_node& n, const expr_scope& scope, std::string_view op) {
  switch (n.kind) {
    case node_kind::compare: return compare_bool(n, scope);
    case node_kind::logical_not: {
      CHOIR_TRY(bool b, eval_condition(*n.children[0], scope, "not"));
      return !b;
    }
    case node_kind::logical_and:
    case node_kind::logical_or: {
      const bool is_and = n.kind == node_kind::logical_and;
      for (const node_ptr& c : n.children) {
        CHOIR_TRY(bool b, eval_condition(*c, scope, is_and ? "and" : "or"));
        if (b != is_and) return b;
      }
      return is_and;
    }
    default: break;
  }
  operand a;
  if (!eval_leaf(n, scope, a)) {
    CHOIR_TRY(operand value_of_a, eval(n, scope));
    a = std::move(value_of_a);
  }
  const vkind k = a.kind();
  if (k != vkind::boolean) return type_error(n.text, "'" + std::string(op) + "' needs a bool, got " + a_kind(k));
  return a.truth();
}

std::string_view arith_symbol(arith_op op) {
  switch (op) {
    case arith_op::add: return "+";
    case arith_op::sub: return "-";
    case arith_op::mul: return "*";
    case arith_op::div: return "/";
    case arith_op::mod: return "%";
  }
  return "";
}

eval_result apply_numbers(arith_op op, const number& x, const number& y, std::string_view fragment) {
  if (x.is_int && y.is_int) {
    std::int64_t r = 0;
    switch (op) {
      case arith_op::add:
        if (__builtin_add_overflow(x.i, y.i, &r)) return eval_error(fragment, "integer overflow");
        return integer(r);
      case arith_op::sub:
        if (__builtin_sub_overflow(x.i, y.i, &r)) return eval_error(fragment, "integer overflow");
        return integer(r);
      case arith_op::mul:
        if (__builtin_mul_overflow(x.i, y.i, &r)) return eval_error(fragment, "integer overflow");
        return integer(r);
      case arith_op::div:
        if (y.i == 0) return eval_error(fragment, "division by zero");
        if (x.i == k_int_min && y.i == -1) return eval_error(fragment, "integer overflow");
        return integer(x.i / y.i);
      case arith_op::mod:
        if (y.i == 0) return eval_error(fragment, "division by zero");
        if (y.i == -1) return integer(0);
        return integer(x.i % y.i);
    }
  }
  const double a = x.as_double();
  const double b = y.as_double();
  switch (op) {
    case arith_op::add: return float_result(a + b, fragment);
    case arith_op::sub: return float_result(a - b, fragment);
    case arith_op::mul: return float_result(a * b, fragment);
    case arith_op::div:
      if (b == 0) return eval_error(fragment, "division by zero");
      return float_result(a / b, fragment);
    case arith_op::mod: break;
  }
  return type_error(fragment, "'%' needs two ints, got " + a_kind(x.is_int ? vkind::integer : vkind::floating) +
                                  " and " + a_kind(y.is_int ? vkind::integer : vkind::floating));
}

eval_result apply_arith(arith_op op, operand& a, operand& b, std::string_view fragment) {
  const vkind ka = a.kind();
  const vkind kb = b.kind();
  if (is_number(ka) && is_number(kb)) return apply_numbers(op, a.num(), b.num(), fragment);
  if (op == arith_op::add) {
    if (ka == vkind::string && kb == vkind::string) {
      const std::string& x = str_of(a.cjson());
      const std::string& y = str_of(b.cjson());
      std::string joined;
      joined.reserve(x.size() + y.size());
      joined.append(x).append(y);
      return operand::owned(value(std::move(joined)));
    }
    if (ka == vkind::list && kb == vkind::list) {
      value joined = value::array();
      auto& items = joined.get_ref<value::array_t&>();
      items.reserve(a.list_size() + b.list_size());
      for (std::size_t i = 0; i < a.list_size(); ++i) items.push_back(a.list_at(i));
      for (std::size_t i = 0; i < b.list_size(); ++i) items.push_back(b.list_at(i));
      return operand::owned(std::move(joined));
    }
    return type_error(fragment,
                      "'+' needs two numbers, two strings or two lists, got " + a_kind(ka) + " and " + a_kind(kb));
  }
  if (op == arith_op::mod) return type_error(fragment, "'%' needs two ints, got " + a_kind(ka) + " and " + a_kind(kb));
  return type_error(
      fragment, "'" + std::string(arith_symbol(op)) + "' needs two numbers, got " + a_kind(ka) + " and " + a_kind(kb));
}

eval_result eval_arith(const expr_node& n, const expr_scope& scope) {
  operand acc;
  if (!eval_leaf(*n.children[0], scope, acc)) {
    CHOIR_TRY(operand value_of_acc, eval(*n.children[0], scope));
    acc = std::move(value_of_acc);
  }
  for (std::size_t i = 0; i < n.ops.size(); ++i) {
    operand rhs;
    if (!eval_leaf(*n.children[i + 1], scope, rhs)) {
      CHOIR_TRY(operand value_of_rhs, eval(*n.children[i + 1], scope));
      rhs = std::move(value_of_rhs);
    }
    CHOIR_TRY(operand next, apply_arith(n.ops[i], acc, rhs, n.op_texts[i]));
    acc = std::move(next);
  }
  return acc;
}

// --- builtins -----------------------------------------------------------------------------------

using args_t = std::array<operand, 2>;

error arg_type_error(const expr_node& n, std::string_view needs, vkind got) {
  return type_error(n.text, n.name + "() needs " + std::string(needs) + ", got " + a_kind(got));
}

/// The string argument `i`, or a type error.
result<const std::string*> string_arg(const args_t& args, std::size_t i, const expr_node& n) {
  const vkind k = args[i].kind();
  if (k != vkind::string) {
    return arg_type_error(n, n.children.size() == 1 ? "a string" : "two strings", k);
  }
  return &str_of(args[i].cjson());
}

std::string quote(std::string_view s) {
  std::string out = "'";
  out += s.size() > 40 ? std::string(s.substr(0, 40)) + "..." : std::string(s);
  out += "'";
  return out;
}

eval_result builtin_size(args_t& args, const expr_node& n) {
  const vkind k = args[0].kind();
  switch (k) {
    case vkind::list: return integer(static_cast<std::int64_t>(args[0].list_size()));
    case vkind::string: return integer(static_cast<std::int64_t>(str_of(args[0].cjson()).size()));
    case vkind::object: return integer(static_cast<std::int64_t>(args[0].cjson().size()));
    default: return arg_type_error(n, "a list, a string or an object", k);
  }
}

eval_result builtin_case(args_t& args, const expr_node& n, bool upper) {
  CHOIR_TRY(const std::string* s, string_arg(args, 0, n));
  std::string out = *s;
  for (char& c : out) {
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return operand::owned(value(std::move(out)));
}

eval_result builtin_trim(args_t& args, const expr_node& n) {
  CHOIR_TRY(const std::string* s, string_arg(args, 0, n));
  std::size_t b = 0;
  std::size_t e = s->size();
  while (b < e && is_space((*s)[b])) ++b;
  while (e > b && is_space((*s)[e - 1])) --e;
  return operand::owned(value(s->substr(b, e - b)));
}

eval_result builtin_match(args_t& args, const expr_node& n) {
  CHOIR_TRY(const std::string* s, string_arg(args, 0, n));
  CHOIR_TRY(const std::string* p, string_arg(args, 1, n));
  switch (n.fn) {
    case builtin_id::contains: return boolean(s->find(*p) != std::string::npos);
    case builtin_id::starts_with: return boolean(std::string_view(*s).starts_with(*p));
    default: return boolean(std::string_view(*s).ends_with(*p));
  }
}

/// A double truncated to an int64, or an error if it does not fit.
eval_result truncate_to_int(double d, const expr_node& n) {
  if (!std::isfinite(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
    return eval_error(n.text, "the value is out of range for an int");
  }
  return integer(static_cast<std::int64_t>(std::trunc(d)));
}

/// Parses a whole string as a double (decimal or exponent notation, finite).
std::optional<double> parse_double(const std::string& s) {
  double d = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(d)) return std::nullopt;
  return d;
}

eval_result builtin_int(args_t& args, const expr_node& n) {
  const vkind k = args[0].kind();
  if (k == vkind::integer) return integer(args[0].num().i);
  if (k == vkind::floating) return truncate_to_int(args[0].num().d, n);
  if (k != vkind::string) return arg_type_error(n, "a number or a numeric string", k);
  const std::string& s = str_of(args[0].cjson());
  std::int64_t i = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec == std::errc() && ptr == s.data() + s.size()) return integer(i);
  if (ec == std::errc::result_out_of_range && ptr == s.data() + s.size()) {
    return eval_error(n.text, quote(s) + " is out of range for an int");
  }
  if (const std::optional<double> d = parse_double(s)) return truncate_to_int(*d, n);
  return eval_error(n.text, quote(s) + " is not a number");
}

eval_result builtin_float(args_t& args, const expr_node& n) {
  const vkind k = args[0].kind();
  if (is_number(k)) return float_result(args[0].num().as_double(), n.text);
  if (k != vkind::string) return arg_type_error(n, "a number or a numeric string", k);
  const std::string& s = str_of(args[0].cjson());
  if (const std::optional<double> d = parse_double(s)) return operand::of_double(*d);
  return eval_error(n.text, quote(s) + " is not a number");
}

eval_result builtin_str(args_t& args) {
  if (args[0].kind() == vkind::string) return std::move(args[0]);
  return operand::owned(value(args[0].json().dump(-1, ' ', false, value::error_handler_t::replace)));
}

eval_result builtin_type(const args_t& args) {
  static const std::array<value, 8> names = {
      value("null"),   value("bool"), value("int"),    value("float"),
      value("string"), value("list"), value("object"), value("binary"),
  };
  return operand::borrowed(names[static_cast<std::size_t>(args[0].kind())]);
}

eval_result builtin_min_max(args_t& args, const expr_node& n) {
  const vkind ka = args[0].kind();
  const vkind kb = args[1].kind();
  if (!is_number(ka) || !is_number(kb)) {
    return type_error(n.text, n.name + "() needs two numbers, got " + a_kind(ka) + " and " + a_kind(kb));
  }
  const order o = compare_numbers(args[0].num(), args[1].num());
  const bool take_second = n.fn == builtin_id::min ? o == order::greater : o == order::less;
  return std::move(args[take_second ? 1 : 0]);
}

eval_result builtin_abs(args_t& args, const expr_node& n) {
  const vkind k = args[0].kind();
  if (!is_number(k)) return arg_type_error(n, "a number", k);
  const number x = args[0].num();
  if (x.is_int) {
    if (x.i == k_int_min) return eval_error(n.text, "integer overflow");
    return integer(x.i < 0 ? -x.i : x.i);
  }
  return float_result(std::fabs(x.d), n.text);
}

eval_result eval_call(const expr_node& n, const expr_scope& scope) {
  if (n.fn == builtin_id::exists) {
    operand out;
    CHOIR_TRY(bool found, walk_path(*n.children[0], scope, true, out));
    return boolean(found);
  }
  if (n.fn == builtin_id::fallback) {
    operand out;
    CHOIR_TRY(bool found, walk_path(*n.children[0], scope, true, out));
    if (found) return out;
    return eval(*n.children[1], scope);
  }
  args_t args;
  if (n.children.size() > args.size()) return eval_error(n.text, "too many arguments");
  for (std::size_t i = 0; i < n.children.size(); ++i) {
    if (!eval_leaf(*n.children[i], scope, args[i])) {
      CHOIR_TRY(operand a, eval(*n.children[i], scope));
      args[i] = std::move(a);
    }
  }
  switch (n.fn) {
    case builtin_id::size: return builtin_size(args, n);
    case builtin_id::lower: return builtin_case(args, n, false);
    case builtin_id::upper: return builtin_case(args, n, true);
    case builtin_id::trim: return builtin_trim(args, n);
    case builtin_id::contains:
    case builtin_id::starts_with:
    case builtin_id::ends_with: return builtin_match(args, n);
    case builtin_id::to_int: return builtin_int(args, n);
    case builtin_id::to_float: return builtin_float(args, n);
    case builtin_id::to_str: return builtin_str(args);
    case builtin_id::type: return builtin_type(args);
    case builtin_id::min:
    case builtin_id::max: return builtin_min_max(args, n);
    case builtin_id::abs: return builtin_abs(args, n);
    case builtin_id::exists:
    case builtin_id::fallback: break;
  }
  return eval_error(n.text, "unknown function");
}

eval_result eval(const expr_node& n, const expr_scope& scope) {
  switch (n.kind) {
    case node_kind::literal: return operand::borrowed(n.literal);
    case node_kind::name: {
      const value_ref ref = scope.find(n.name);
      if (!ref) return unknown_key(n.name);
      return operand::bound(ref);
    }
    case node_kind::list: return eval_list(n, scope);
    case node_kind::path: return eval_path(n, scope);
    case node_kind::negate: return eval_negate(n, scope);
    case node_kind::logical_not:
    case node_kind::logical_and:
    case node_kind::logical_or:
    case node_kind::compare: {
      CHOIR_TRY(bool b, eval_condition(n, scope, ""));
      return boolean(b);
    }
    case node_kind::arith: return eval_arith(n, scope);
    case node_kind::call: return eval_call(n, scope);
  }
  return eval_error(n.text, "unknown node");
}

}  // namespace

result<expression> expression::compile(std::string_view source) {
  if (source.size() > k_max_length) {
    return make_error(graph_errc::expression_syntax,
                      "expression longer than " + std::to_string(k_max_length) + " bytes");
  }
  try {
    CHOIR_TRY(std::vector<token> tokens, lexer(source).run());
    parser p(source, std::move(tokens));
    CHOIR_TRY(node_ptr root, p.parse());
    expression compiled;
    compiled.source_ = std::string(source);
    compiled.names_ = p.names();
    compiled.root_ = std::move(root);
    return compiled;
  } catch (const std::exception& e) {
    return make_error(graph_errc::expression_syntax, "cannot compile expression: " + std::string(e.what()));
  }
}

result<value> expression::evaluate(const expr_scope& scope) const {
  if (!root_) return make_error(graph_errc::expression_eval, "the expression was not compiled");
  try {
    CHOIR_TRY(operand out, eval(*root_, scope));
    return std::move(out).take();
  } catch (const std::exception& e) {
    return make_error(graph_errc::expression_eval, source_ + ": " + e.what());
  }
}

result<bool> expression::test(const expr_scope& scope) const {
  if (!root_) return make_error(graph_errc::expression_eval, "the expression was not compiled");
  try {
    switch (root_->kind) {
      case node_kind::compare:
      case node_kind::logical_not:
      case node_kind::logical_and:
      case node_kind::logical_or: return eval_condition(*root_, scope, "");
      default: break;
    }
    CHOIR_TRY(operand out, eval(*root_, scope));
    const vkind k = out.kind();
    if (k != vkind::boolean) return type_error(source_, "a condition must be a bool, got " + a_kind(k));
    return out.truth();
  } catch (const std::exception& e) {
    return make_error(graph_errc::expression_eval, source_ + ": " + e.what());
  }
}

}  // namespace choir::graph
