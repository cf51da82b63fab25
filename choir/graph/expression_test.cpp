#include "choir/graph/expression.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace choir::graph {
namespace {

/// The state most tests evaluate against.
state sample_state() {
  auto s = state::from_json(value::parse(R"({
    "count": 3,
    "limit": 10,
    "ratio": 0.5,
    "name": "Ada",
    "done": false,
    "nothing": null,
    "big": 9223372036854775807,
    "small": -9223372036854775808,
    "history": [
      {"role": "user", "text": "hi"},
      {"role": "assistant", "text": "hello"},
      {"role": "user", "text": "bye"}
    ],
    "tags": ["x", "y"],
    "user": {"name": "Ada", "age": 36, "tags": ["a", "b"], "in": 1}
  })"));
  EXPECT_TRUE(s.ok());
  return *s;
}

const state& fixture() {
  static const state s = sample_state();
  return s;
}

result<value> eval(std::string_view source, const state& s = fixture()) {
  auto compiled = expression::compile(source);
  if (!compiled.ok()) return std::move(compiled).err();
  return compiled->evaluate(state_scope(s));
}

/// The value of `source`, failing the test if it does not evaluate.
value value_of(std::string_view source, const state& s = fixture()) {
  auto r = eval(source, s);
  EXPECT_TRUE(r.ok()) << source << ": " << (r.ok() ? "" : r.err().message);
  return r.ok() ? *r : value();
}

/// The error of evaluating `source`, failing the test if it succeeds.
error error_of(std::string_view source, const state& s = fixture()) {
  auto r = eval(source, s);
  EXPECT_FALSE(r.ok()) << source << " evaluated to " << (r.ok() ? r->dump() : "");
  return r.ok() ? error{} : r.err();
}

/// The error of compiling `source`, failing the test if it compiles.
error compile_error(std::string_view source) {
  auto r = expression::compile(source);
  EXPECT_FALSE(r.ok()) << source << " compiled";
  return r.ok() ? error{} : r.err();
}

/// A scope that binds names to persistent lists only (no materialized JSON), as a state does
/// before anything asks for the whole list.
class list_only_scope final : public expr_scope {
 public:
  explicit list_only_scope(value items) : list_(persistent_list::from_json(items)) {}
  [[nodiscard]] value_ref find(std::string_view name) const override {
    if (name == "items") return value_ref{nullptr, &list_};
    return {};
  }

 private:
  persistent_list list_;
};

/// A scope that binds `items` to a plain JSON array (no persistent list).
class json_scope final : public expr_scope {
 public:
  explicit json_scope(value items) : items_(std::move(items)) {}
  [[nodiscard]] value_ref find(std::string_view name) const override {
    if (name == "items") return value_ref{&items_, nullptr};
    return {};
  }

 private:
  value items_;
};

// --- literals ---------------------------------------------------------------------------------

TEST(Expression, EvaluatesIntegerLiterals) {
  EXPECT_EQ(value_of("42"), 42);
  EXPECT_TRUE(value_of("42").is_number_integer());
}

TEST(Expression, EvaluatesFloatLiterals) {
  EXPECT_EQ(value_of("1.5"), 1.5);
  EXPECT_EQ(value_of("2e3"), 2000.0);
  EXPECT_EQ(value_of("1.5e-3"), 0.0015);
  EXPECT_EQ(value_of("25E+1"), 250.0);
  EXPECT_TRUE(value_of("2e3").is_number_float());
}

TEST(Expression, EvaluatesTheSmallestInt64Literal) {
  EXPECT_EQ(value_of("-9223372036854775808"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(value_of("9223372036854775807"), std::numeric_limits<std::int64_t>::max());
}

TEST(Expression, RejectsIntegerLiteralsBeyondInt64) {
  EXPECT_EQ(compile_error("1 + 9223372036854775808").message,
            "column 5: integer literal 9223372036854775808 is out of range");
  EXPECT_EQ(compile_error("99999999999999999999999").message,
            "column 1: integer literal 99999999999999999999999 is out of range");
}

TEST(Expression, RejectsFloatLiteralsThatOverflow) {
  EXPECT_EQ(compile_error("1e400").message, "column 1: float literal 1e400 is out of range");
  EXPECT_EQ(value_of("1e-400"), 0.0);
}

TEST(Expression, RejectsMalformedNumbers) {
  EXPECT_EQ(compile_error("12abc").message, "column 1: malformed number '12abc'");
  EXPECT_EQ(compile_error("x + 1e").message, "column 5: malformed number '1e'");
  EXPECT_EQ(compile_error("1.2.3").message, "column 1: malformed number '1.2.3'");
}

TEST(Expression, EvaluatesStringsInEitherQuote) {
  EXPECT_EQ(value_of("'single'"), "single");
  EXPECT_EQ(value_of("\"double\""), "double");
  EXPECT_EQ(value_of("'say \"hi\"'"), "say \"hi\"");
}

TEST(Expression, DecodesStringEscapes) {
  EXPECT_EQ(value_of(R"("a\\b\'c\"d\ne\tf\rg")"), "a\\b'c\"d\ne\tf\rg");
  EXPECT_EQ(value_of(R"('\u00e9\u20AC')"), "\xC3\xA9\xE2\x82\xAC");
}

TEST(Expression, DecodesSurrogatePairEscapes) { EXPECT_EQ(value_of(R"("\ud83d\ude00")"), "\xF0\x9F\x98\x80"); }

TEST(Expression, RejectsUnknownEscapes) {
  const error e = compile_error(R"(name == "a\qb")");
  EXPECT_EQ(e.code, graph_errc::expression_syntax);
  EXPECT_EQ(e.message, "column 11: unknown escape '\\q'");
}

TEST(Expression, RejectsMalformedUnicodeEscapes) {
  EXPECT_EQ(compile_error(R"("\u12")").message, "column 2: \\u needs four hex digits");
  EXPECT_EQ(compile_error(R"("\ud83d")").message, "column 2: unpaired surrogate in \\u escape");
  EXPECT_EQ(compile_error(R"("\ude00")").message, "column 2: unpaired surrogate in \\u escape");
  EXPECT_EQ(compile_error(R"("\ud83d\u0041")").message, "column 2: unpaired surrogate in \\u escape");
}

TEST(Expression, RejectsUnterminatedStrings) {
  EXPECT_EQ(compile_error("name == 'Ada").message, "column 9: unterminated string");
  EXPECT_EQ(compile_error("'abc\\").message, "column 1: unterminated string");
}

TEST(Expression, KeepsUtf8InsideStrings) { EXPECT_EQ(value_of("'caf\xC3\xA9'"), "caf\xC3\xA9"); }

TEST(Expression, RejectsInvalidUtf8InsideStrings) {
  EXPECT_EQ(compile_error("'ab\xFF'").message, "column 4: invalid UTF-8 byte 0xFF in string");
  EXPECT_EQ(compile_error("'\xC3('").message, "column 2: invalid UTF-8 byte 0xC3 in string");
}

TEST(Expression, RejectsNonAsciiCharactersOutsideStrings) {
  EXPECT_EQ(compile_error("count == \xC3\xA9").message, "column 10: unexpected character '\xC3\xA9'");
}

TEST(Expression, RejectsInvalidUtf8BytesOutsideStringsWithTheirColumn) {
  const error e = compile_error("count < \xFF");
  EXPECT_EQ(e.code, graph_errc::expression_syntax);
  EXPECT_EQ(e.message, "column 9: invalid UTF-8 byte 0xFF");
}

TEST(Expression, RejectsControlAndStrayCharacters) {
  EXPECT_EQ(compile_error(std::string_view("1 +\0 2", 6)).message, "column 4: unexpected control character 0x00");
  EXPECT_EQ(compile_error("count @ 2").message, "column 7: unexpected character '@'");
}

TEST(Expression, EvaluatesBooleansAndNull) {
  EXPECT_EQ(value_of("true"), true);
  EXPECT_EQ(value_of("false"), false);
  EXPECT_TRUE(value_of("null").is_null());
}

TEST(Expression, BuildsListLiterals) {
  EXPECT_EQ(value_of("[1, 'a', count, [true, null]]"), value::parse(R"([1, "a", 3, [true, null]])"));
  EXPECT_EQ(value_of("[]"), value::array());
}

TEST(Expression, AllowsATrailingCommaInListLiterals) { EXPECT_EQ(value_of("[1, 2,]"), value::parse("[1, 2]")); }

// --- names and paths --------------------------------------------------------------------------

TEST(Expression, ReadsRootNames) {
  EXPECT_EQ(value_of("count"), 3);
  EXPECT_EQ(value_of("name"), "Ada");
  EXPECT_TRUE(value_of("nothing").is_null());
}

TEST(Expression, ReportsUnknownKeys) {
  const error e = error_of("missing + 1");
  EXPECT_EQ(e.code, graph_errc::expression_unknown_key);
  EXPECT_EQ(e.message, "unknown key 'missing'");
  EXPECT_EQ(error_of("missing.name").message, "unknown key 'missing'");
}

TEST(Expression, ReadsObjectMembers) {
  EXPECT_EQ(value_of("user.name"), "Ada");
  EXPECT_EQ(value_of("user.age + 1"), 37);
}

TEST(Expression, ReadsMembersAndIndexesInAnyOrder) {
  EXPECT_EQ(value_of("user.tags[1]"), "b");
  EXPECT_EQ(value_of("history[1].text"), "hello");
  EXPECT_EQ(value_of("user['tags'][0]"), "a");
}

TEST(Expression, ReportsAMissingMemberWithItsPath) {
  const error e = error_of("user.email == 'x'");
  EXPECT_EQ(e.code, graph_errc::expression_eval);
  EXPECT_EQ(e.message, "user.email: no member 'email'");
  EXPECT_EQ(error_of("user['email']").message, "user['email']: no member 'email'");
}

TEST(Expression, IndexesObjectsWithStrings) {
  EXPECT_EQ(value_of("user[\"name\"]"), "Ada");
  EXPECT_EQ(value_of("user['na' + 'me']"), "Ada");
}

TEST(Expression, AllowsKeywordsAsMemberNames) { EXPECT_EQ(value_of("user.in"), 1); }

TEST(Expression, CountsNegativeIndexesFromTheEnd) {
  EXPECT_EQ(value_of("history[-1].text"), "bye");
  EXPECT_EQ(value_of("history[-3].text"), "hi");
  EXPECT_EQ(value_of("tags[-1]"), "y");
}

TEST(Expression, ReportsIndexesOutOfRange) {
  const error e = error_of("history[3]");
  EXPECT_EQ(e.code, graph_errc::expression_eval);
  EXPECT_EQ(e.message, "history[3]: index 3 is out of range for a list of 3 elements");
  EXPECT_EQ(error_of("history[-4].role").message, "history[-4]: index -4 is out of range for a list of 3 elements");
  EXPECT_EQ(error_of("name[3]").message, "name[3]: index 3 is out of range for a string of 3 bytes");
  EXPECT_EQ(error_of("[][0]").message, "[][0]: index 0 is out of range for a list of 0 elements");
}

TEST(Expression, IndexesStringsByByte) {
  EXPECT_EQ(value_of("name[0]"), "A");
  EXPECT_EQ(value_of("name[-1]"), "a");
  EXPECT_EQ(value_of("'abc'[1]"), "b");
}

TEST(Expression, RejectsMemberAccessOnNonObjects) {
  const error e = error_of("count.x");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "count.x: cannot read member 'x' of an int");
  EXPECT_EQ(error_of("history.role").message, "history.role: cannot read member 'role' of a list");
}

TEST(Expression, RejectsIndexesOfTheWrongType) {
  EXPECT_EQ(error_of("history['a']").message, "history['a']: cannot index a list with a string");
  EXPECT_EQ(error_of("user[0]").message, "user[0]: cannot index an object with an int");
  EXPECT_EQ(error_of("count[0]").message, "count[0]: cannot index an int with an int");
  EXPECT_EQ(error_of("history[1.0]").message, "history[1.0]: an index must be an int or a string, got a float");
  EXPECT_EQ(error_of("history[true]").code, graph_errc::expression_type);
}

TEST(Expression, IndexesComputedValues) {
  EXPECT_EQ(value_of("[10, 20, 30][1]"), 20);
  EXPECT_EQ(value_of("[count, limit][-1]"), 10);
  EXPECT_EQ(value_of("[user][0].name"), "Ada");
  EXPECT_EQ(value_of("(user).tags[0]"), "a");
  EXPECT_EQ(value_of("upper(name)[0]"), "A");
}

TEST(Expression, RequiresAMemberNameAfterADot) {
  EXPECT_EQ(compile_error("user.").message, "column 6: expected a member name after '.' but found end of expression");
  EXPECT_EQ(compile_error("user.1").message, "column 6: expected a member name after '.' but found '1'");
}

TEST(Expression, RequiresAClosingBracketAfterAnIndex) {
  EXPECT_EQ(compile_error("history[0").message, "column 10: expected ']' but found end of expression");
}

// --- comparisons ------------------------------------------------------------------------------

TEST(Expression, ComparesIntegersAndFloats) {
  EXPECT_EQ(value_of("1 == 1.0"), true);
  EXPECT_EQ(value_of("ratio < 1"), true);
  EXPECT_EQ(value_of("count >= 3"), true);
  EXPECT_EQ(value_of("count > 3"), false);
  EXPECT_EQ(value_of("count <= 2.5"), false);
  EXPECT_EQ(value_of("count != 3.0"), false);
}

TEST(Expression, ComparesLargeIntegersWithFloatsExactly) {
  EXPECT_EQ(value_of("9007199254740993 > 9007199254740992.0"), true);
  EXPECT_EQ(value_of("9007199254740993 == 9007199254740992.0"), false);
  EXPECT_EQ(value_of("big < 9223372036854775808.0"), true);
  EXPECT_EQ(value_of("small == -9223372036854775808.0"), true);
}

TEST(Expression, ComparesStringsByBytes) {
  EXPECT_EQ(value_of("'a' < 'b'"), true);
  EXPECT_EQ(value_of("'B' < 'a'"), true);
  EXPECT_EQ(value_of("'ab' < 'abc'"), true);
  EXPECT_EQ(value_of("'\xC3\xA9' > 'z'"), true);
  EXPECT_EQ(value_of("name >= 'Ada'"), true);
}

TEST(Expression, ComparesListsAndObjectsDeeply) {
  EXPECT_EQ(value_of("user.tags == ['a', 'b']"), true);
  EXPECT_EQ(value_of("[1, [2, 3.0]] == [1.0, [2, 3]]"), true);
  EXPECT_EQ(value_of("history[0] == history[2]"), false);
  EXPECT_EQ(value_of("history[0] == history[-3]"), true);
  EXPECT_EQ(value_of("tags == ['x', 'y']"), true);
  EXPECT_EQ(value_of("tags != ['x']"), true);
}

TEST(Expression, TreatsValuesOfDifferentTypesAsUnequal) {
  EXPECT_EQ(value_of("1 == '1'"), false);
  EXPECT_EQ(value_of("1 == true"), false);
  EXPECT_EQ(value_of("0 == null"), false);
  EXPECT_EQ(value_of("nothing == null"), true);
  EXPECT_EQ(value_of("'x' != 1"), true);
}

TEST(Expression, RejectsOrderingValuesOfDifferentTypes) {
  const error e = error_of("count < 'a'");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "count < 'a': '<' needs two numbers or two strings, got an int and a string");
  EXPECT_EQ(error_of("tags >= tags").message,
            "tags >= tags: '>=' needs two numbers or two strings, got a list and a list");
  EXPECT_EQ(error_of("null > 1").code, graph_errc::expression_type);
  EXPECT_EQ(error_of("true <= false").code, graph_errc::expression_type);
}

TEST(Expression, RejectsChainedComparisons) {
  const error e = compile_error("1 < count < 5");
  EXPECT_EQ(e.code, graph_errc::expression_syntax);
  EXPECT_EQ(e.message, "column 11: comparisons cannot be chained; join them with 'and'");
  EXPECT_EQ(compile_error("a == b in c").message, "column 8: comparisons cannot be chained; join them with 'and'");
}

TEST(Expression, TestsMembershipInLists) {
  EXPECT_EQ(value_of("'x' in tags"), true);
  EXPECT_EQ(value_of("'z' in tags"), false);
  EXPECT_EQ(value_of("1 in [1.0, 2]"), true);
  EXPECT_EQ(value_of("['a', 'b'] in [user.tags]"), true);
}

TEST(Expression, TestsSubstringsWithIn) {
  EXPECT_EQ(value_of("'da' in name"), true);
  EXPECT_EQ(value_of("'' in name"), true);
  EXPECT_EQ(value_of("'ad' in name"), false);
}

TEST(Expression, TestsObjectMembersWithIn) {
  EXPECT_EQ(value_of("'age' in user"), true);
  EXPECT_EQ(value_of("'email' in user"), false);
}

TEST(Expression, NegatesMembershipWithNotIn) {
  EXPECT_EQ(value_of("'z' not in tags"), true);
  EXPECT_EQ(value_of("'x' not in tags"), false);
  EXPECT_EQ(value_of("'email' not in user"), true);
  EXPECT_EQ(value_of("'Ad' not in name"), false);
}

TEST(Expression, RejectsMembershipInValuesThatHoldNothing) {
  const error e = error_of("1 in count");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "1 in count: 'in' needs a list, a string or an object on the right, got an int");
  EXPECT_EQ(error_of("1 in name").message,
            "1 in name: 'in' needs a string on the left when the right is a string, got an int");
  EXPECT_EQ(error_of("1 not in user").message,
            "1 not in user: 'not in' needs a string on the left when the right is an object, got an int");
}

TEST(Expression, RequiresInAfterNotInComparisons) {
  EXPECT_EQ(compile_error("'a' not tags").message, "column 9: expected 'in' after 'not' but found 'tags'");
}

// --- arithmetic -------------------------------------------------------------------------------

TEST(Expression, AddsSubtractsAndMultipliesIntegers) {
  EXPECT_EQ(value_of("count + limit"), 13);
  EXPECT_EQ(value_of("count - limit"), -7);
  EXPECT_EQ(value_of("count * limit"), 30);
  EXPECT_TRUE(value_of("count * limit").is_number_integer());
}

TEST(Expression, MixesIntegersAndFloatsIntoFloats) {
  EXPECT_EQ(value_of("count + ratio"), 3.5);
  EXPECT_EQ(value_of("type(2 * 1.0)"), "float");
  EXPECT_EQ(value_of("1.5 - 1"), 0.5);
}

TEST(Expression, DividesIntegersTruncatingTowardZero) {
  EXPECT_EQ(value_of("7 / 2"), 3);
  EXPECT_EQ(value_of("-7 / 2"), -3);
  EXPECT_EQ(value_of("7 / -2"), -3);
  EXPECT_TRUE(value_of("7 / 2").is_number_integer());
}

TEST(Expression, DividesFloatsExactly) {
  EXPECT_EQ(value_of("7 / 2.0"), 3.5);
  EXPECT_EQ(value_of("ratio / 2"), 0.25);
}

TEST(Expression, TakesRemaindersWithTheSignOfTheDividend) {
  EXPECT_EQ(value_of("7 % 3"), 1);
  EXPECT_EQ(value_of("-7 % 3"), -1);
  EXPECT_EQ(value_of("7 % -3"), 1);
  EXPECT_EQ(value_of("small % -1"), 0);
}

TEST(Expression, RejectsRemaindersOfFloats) {
  const error e = error_of("7.5 % 2");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "7.5 % 2: '%' needs two ints, got a float and an int");
}

TEST(Expression, ReportsDivisionByZero) {
  const error e = error_of("count / (limit - 10)");
  EXPECT_EQ(e.code, graph_errc::expression_eval);
  EXPECT_EQ(e.message, "count / (limit - 10): division by zero");
  EXPECT_EQ(error_of("1.5 / 0").message, "1.5 / 0: division by zero");
  EXPECT_EQ(error_of("1 / 0.0").code, graph_errc::expression_eval);
  EXPECT_EQ(error_of("1 % 0").message, "1 % 0: division by zero");
}

TEST(Expression, ReportsIntegerOverflow) {
  const error e = error_of("big + 1");
  EXPECT_EQ(e.code, graph_errc::expression_eval);
  EXPECT_EQ(e.message, "big + 1: integer overflow");
  EXPECT_EQ(error_of("small - 1").message, "small - 1: integer overflow");
  EXPECT_EQ(error_of("big * 2").message, "big * 2: integer overflow");
  EXPECT_EQ(error_of("small / -1").message, "small / -1: integer overflow");
  EXPECT_EQ(error_of("-small").message, "-small: integer overflow");
}

TEST(Expression, ReportsOverflowInTheMiddleOfAChain) {
  EXPECT_EQ(error_of("1 + big - 5").message, "1 + big: integer overflow");
  EXPECT_EQ(value_of("big - 5 + 1"), std::numeric_limits<std::int64_t>::max() - 4);
}

TEST(Expression, ReportsFloatResultsThatAreNotFinite) {
  const error e = error_of("1e308 * 10");
  EXPECT_EQ(e.code, graph_errc::expression_eval);
  EXPECT_EQ(e.message, "1e308 * 10: the result is not a finite number");
}

TEST(Expression, ConcatenatesStrings) { EXPECT_EQ(value_of("'Hi, ' + name + '!'"), "Hi, Ada!"); }

TEST(Expression, ConcatenatesLists) {
  EXPECT_EQ(value_of("tags + ['z']"), value::parse(R"(["x", "y", "z"])"));
  EXPECT_EQ(value_of("size(history + history)"), 6);
}

TEST(Expression, RejectsAddingMismatchedTypes) {
  const error e = error_of("count + name");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "count + name: '+' needs two numbers, two strings or two lists, got an int and a string");
  EXPECT_EQ(error_of("name - 'a'").message, "name - 'a': '-' needs two numbers, got a string and a string");
  EXPECT_EQ(error_of("tags * 2").message, "tags * 2: '*' needs two numbers, got a list and an int");
  EXPECT_EQ(error_of("true + 1").code, graph_errc::expression_type);
}

TEST(Expression, NegatesNumbers) {
  EXPECT_EQ(value_of("-count"), -3);
  EXPECT_EQ(value_of("- -2"), 2);
  EXPECT_EQ(value_of("-ratio"), -0.5);
  EXPECT_EQ(value_of("-(count + 1)"), -4);
}

TEST(Expression, RejectsNegatingNonNumbers) {
  const error e = error_of("-name");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "-name: unary '-' needs a number, got a string");
}

TEST(Expression, AppliesOperatorPrecedence) {
  EXPECT_EQ(value_of("1 + 2 * 3"), 7);
  EXPECT_EQ(value_of("(1 + 2) * 3"), 9);
  EXPECT_EQ(value_of("-2 * 3 + 10 % 4"), -4);
  EXPECT_EQ(value_of("1 + 2 == 3"), true);
  EXPECT_EQ(value_of("true or false and false"), true);
  EXPECT_EQ(value_of("(true or false) and false"), false);
}

TEST(Expression, AssociatesArithmeticToTheLeft) {
  EXPECT_EQ(value_of("10 - 3 - 2"), 5);
  EXPECT_EQ(value_of("100 / 10 / 5"), 2);
  EXPECT_EQ(value_of("2 * 7 % 4"), 2);
}

// --- logic ------------------------------------------------------------------------------------

TEST(Expression, CombinesBooleansWithAndOrNot) {
  EXPECT_EQ(value_of("count < limit and not done"), true);
  EXPECT_EQ(value_of("done or count > 5"), false);
  EXPECT_EQ(value_of("not done"), true);
  EXPECT_EQ(value_of("not not done"), false);
}

TEST(Expression, BindsNotLooserThanComparisons) {
  EXPECT_EQ(value_of("not count == 4"), true);
  EXPECT_EQ(value_of("not 'z' in tags"), true);
}

TEST(Expression, ShortCircuitsAndAndOr) {
  EXPECT_EQ(value_of("false and missing"), false);
  EXPECT_EQ(value_of("true or 1 / 0 == 1"), true);
  EXPECT_EQ(value_of("exists(user.email) and user.email == 'x'"), false);
}

TEST(Expression, RequiresBooleansForAndOrNot) {
  const error e = error_of("count and true");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "count: 'and' needs a bool, got an int");
  EXPECT_EQ(error_of("true and name").message, "name: 'and' needs a bool, got a string");
  EXPECT_EQ(error_of("false or nothing").message, "nothing: 'or' needs a bool, got null");
  EXPECT_EQ(error_of("not tags").message, "tags: 'not' needs a bool, got a list");
}

// --- functions --------------------------------------------------------------------------------

TEST(Expression, SizeCountsElementsBytesAndMembers) {
  EXPECT_EQ(value_of("size(history)"), 3);
  EXPECT_EQ(value_of("size(user.tags)"), 2);
  EXPECT_EQ(value_of("size('caf\xC3\xA9')"), 5);
  EXPECT_EQ(value_of("size(user)"), 4);
  EXPECT_EQ(value_of("size([])"), 0);
}

TEST(Expression, SizeRejectsScalars) {
  const error e = error_of("size(count)");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "size(count): size() needs a list, a string or an object, got an int");
}

TEST(Expression, LowerAndUpperChangeAsciiLettersOnly) {
  EXPECT_EQ(value_of("lower('HeLLo 1')"), "hello 1");
  EXPECT_EQ(value_of("upper(name)"), "ADA");
  EXPECT_EQ(value_of("lower('\xC3\x80"
                     "B')"),
            "\xC3\x80"
            "b");
}

TEST(Expression, TrimRemovesSurroundingWhitespace) {
  EXPECT_EQ(value_of("trim('  a b \\t\\n')"), "a b");
  EXPECT_EQ(value_of("trim('   ')"), "");
}

TEST(Expression, MatchesSubstringsPrefixesAndSuffixes) {
  EXPECT_EQ(value_of("contains(name, 'd')"), true);
  EXPECT_EQ(value_of("contains(name, 'x')"), false);
  EXPECT_EQ(value_of("starts_with(name, 'Ad')"), true);
  EXPECT_EQ(value_of("starts_with(name, 'da')"), false);
  EXPECT_EQ(value_of("ends_with(name, 'da')"), true);
  EXPECT_EQ(value_of("ends_with(name, 'Ad')"), false);
}

TEST(Expression, StringFunctionsRejectNonStrings) {
  const error e = error_of("lower(count)");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "lower(count): lower() needs a string, got an int");
  EXPECT_EQ(error_of("contains(tags, 'x')").message, "contains(tags, 'x'): contains() needs two strings, got a list");
  EXPECT_EQ(error_of("starts_with(name, 1)").code, graph_errc::expression_type);
  EXPECT_EQ(error_of("trim(null)").code, graph_errc::expression_type);
}

TEST(Expression, IntConvertsNumbersAndNumericStrings) {
  EXPECT_EQ(value_of("int(3.9)"), 3);
  EXPECT_EQ(value_of("int(-3.9)"), -3);
  EXPECT_EQ(value_of("int(count)"), 3);
  EXPECT_EQ(value_of("int('42')"), 42);
  EXPECT_EQ(value_of("int('-7')"), -7);
  EXPECT_EQ(value_of("int('2.5')"), 2);
  EXPECT_TRUE(value_of("int(3.9)").is_number_integer());
}

TEST(Expression, IntRejectsWhatIsNotANumber) {
  const error e = error_of("int('abc')");
  EXPECT_EQ(e.code, graph_errc::expression_eval);
  EXPECT_EQ(e.message, "int('abc'): 'abc' is not a number");
  EXPECT_EQ(error_of("int(' 4')").code, graph_errc::expression_eval);
  EXPECT_EQ(error_of("int(1e30)").message, "int(1e30): the value is out of range for an int");
  EXPECT_EQ(error_of("int('99999999999999999999')").message,
            "int('99999999999999999999'): '99999999999999999999' is out of range for an int");
  EXPECT_EQ(error_of("int(true)").message, "int(true): int() needs a number or a numeric string, got a bool");
}

TEST(Expression, FloatConvertsNumbersAndNumericStrings) {
  EXPECT_EQ(value_of("float(count)"), 3.0);
  EXPECT_TRUE(value_of("float(count)").is_number_float());
  EXPECT_EQ(value_of("float('2.5')"), 2.5);
  EXPECT_EQ(value_of("float('1e3')"), 1000.0);
  EXPECT_EQ(error_of("float('nan')").message, "float('nan'): 'nan' is not a number");
  EXPECT_EQ(error_of("float(tags)").code, graph_errc::expression_type);
}

TEST(Expression, StrLeavesStringsAndWritesOtherValuesAsJson) {
  EXPECT_EQ(value_of("str(name)"), "Ada");
  EXPECT_EQ(value_of("str(count)"), "3");
  EXPECT_EQ(value_of("str(ratio)"), "0.5");
  EXPECT_EQ(value_of("str(null)"), "null");
  EXPECT_EQ(value_of("str([1, 'a'])"), "[1,\"a\"]");
  EXPECT_EQ(value_of("str(tags)"), "[\"x\",\"y\"]");
  EXPECT_EQ(value_of("'n=' + str(count)"), "n=3");
}

TEST(Expression, StrReplacesInvalidUtf8InsteadOfFailing) {
  const state s = state().update("bad", value::array({std::string("a\xFF")}));
  EXPECT_EQ(value_of("str(bad)", s), "[\"a\xEF\xBF\xBD\"]");
}

TEST(Expression, TypeNamesEveryKindOfValue) {
  EXPECT_EQ(value_of("type(nothing)"), "null");
  EXPECT_EQ(value_of("type(done)"), "bool");
  EXPECT_EQ(value_of("type(count)"), "int");
  EXPECT_EQ(value_of("type(ratio)"), "float");
  EXPECT_EQ(value_of("type(name)"), "string");
  EXPECT_EQ(value_of("type(history)"), "list");
  EXPECT_EQ(value_of("type(user)"), "object");
}

TEST(Expression, MinAndMaxPickANumber) {
  EXPECT_EQ(value_of("min(count, limit)"), 3);
  EXPECT_EQ(value_of("max(count, limit)"), 10);
  EXPECT_EQ(value_of("min(count, ratio)"), 0.5);
  EXPECT_EQ(value_of("max(-1, -1.5)"), -1);
}

TEST(Expression, MinAndMaxRejectNonNumbers) {
  const error e = error_of("min(count, name)");
  EXPECT_EQ(e.code, graph_errc::expression_type);
  EXPECT_EQ(e.message, "min(count, name): min() needs two numbers, got an int and a string");
}

TEST(Expression, AbsReturnsTheMagnitude) {
  EXPECT_EQ(value_of("abs(-3)"), 3);
  EXPECT_EQ(value_of("abs(count)"), 3);
  EXPECT_EQ(value_of("abs(-2.5)"), 2.5);
  EXPECT_EQ(error_of("abs(small)").message, "abs(small): integer overflow");
  EXPECT_EQ(error_of("abs('x')").code, graph_errc::expression_type);
}

TEST(Expression, ExistsIsTrueOnlyWhenEveryStepResolves) {
  EXPECT_EQ(value_of("exists(count)"), true);
  EXPECT_EQ(value_of("exists(missing)"), false);
  EXPECT_EQ(value_of("exists(user.name)"), true);
  EXPECT_EQ(value_of("exists(user.email)"), false);
  EXPECT_EQ(value_of("exists(history[-1].role)"), true);
  EXPECT_EQ(value_of("exists(history[3].role)"), false);
  EXPECT_EQ(value_of("exists(missing.deep[0])"), false);
  EXPECT_EQ(value_of("exists(count.x)"), false);
  EXPECT_EQ(value_of("exists(history['x'])"), false);
}

TEST(Expression, ExistsStillReportsErrorsInsideIndexes) {
  EXPECT_EQ(error_of("exists(history[missing])").code, graph_errc::expression_unknown_key);
  EXPECT_EQ(error_of("exists(history[1 / 0])").code, graph_errc::expression_eval);
  EXPECT_EQ(error_of("exists(history[true])").code, graph_errc::expression_type);
}

TEST(Expression, ExistsAndDefaultNeedAPath) {
  const error e = compile_error("exists(1)");
  EXPECT_EQ(e.code, graph_errc::expression_syntax);
  EXPECT_EQ(e.message, "column 8: exists() needs a name or a path such as user.name as its first argument");
  EXPECT_EQ(compile_error("default(size(tags), 0)").message,
            "column 9: default() needs a name or a path such as user.name as its first argument");
}

TEST(Expression, DefaultReturnsThePathOrTheFallback) {
  EXPECT_EQ(value_of("default(count, 0)"), 3);
  EXPECT_EQ(value_of("default(missing, 0)"), 0);
  EXPECT_EQ(value_of("default(user.email, 'none')"), "none");
  EXPECT_EQ(value_of("default(history[-1].role, '')"), "user");
  EXPECT_EQ(value_of("default(history[7].role, 'none')"), "none");
}

TEST(Expression, DefaultEvaluatesTheFallbackOnlyWhenNeeded) {
  EXPECT_EQ(value_of("default(count, 1 / 0)"), 3);
  EXPECT_EQ(error_of("default(missing, 1 / 0)").code, graph_errc::expression_eval);
}

TEST(Expression, RejectsUnknownFunctionsWhenCompiling) {
  const error e = compile_error("count + len(tags)");
  EXPECT_EQ(e.code, graph_errc::expression_syntax);
  EXPECT_EQ(e.message, "column 9: unknown function 'len'");
}

TEST(Expression, RejectsTheWrongNumberOfArgumentsWhenCompiling) {
  EXPECT_EQ(compile_error("size(tags, 1)").message, "column 1: size() takes 1 argument, got 2");
  EXPECT_EQ(compile_error("1 + min(1)").message, "column 5: min() takes 2 arguments, got 1");
  EXPECT_EQ(compile_error("abs()").message, "column 1: abs() takes 1 argument, got 0");
}

TEST(Expression, CallsOnlyFunctionNames) {
  EXPECT_EQ(compile_error("user.name(1)").message, "column 10: only a function can be called, like size(x)");
  EXPECT_EQ(compile_error("(size)(tags)").message, "column 7: only a function can be called, like size(x)");
}

TEST(Expression, ReportsAMissingCommaOrParenthesisInACall) {
  EXPECT_EQ(compile_error("min(1 2)").message, "column 7: expected ',' or ')' but found '2'");
  EXPECT_EQ(compile_error("size(tags").message, "column 10: expected ',' or ')' but found end of expression");
}

// --- lists in state ---------------------------------------------------------------------------

TEST(Expression, ReadsPersistentListsWithoutTheirJson) {
  const list_only_scope scope(value::parse(R"([{"role": "user"}, {"role": "tool"}, 7])"));
  auto eval_in = [&](std::string_view source) {
    auto e = expression::compile(source);
    EXPECT_TRUE(e.ok());
    auto r = e->evaluate(scope);
    EXPECT_TRUE(r.ok()) << source << ": " << (r.ok() ? "" : r.err().message);
    return r.ok() ? *r : value();
  };
  EXPECT_EQ(eval_in("size(items)"), 3);
  EXPECT_EQ(eval_in("items[0].role"), "user");
  EXPECT_EQ(eval_in("items[-2].role"), "tool");
  EXPECT_EQ(eval_in("7 in items"), true);
  EXPECT_EQ(eval_in("7.5 in items"), false);
  EXPECT_EQ(eval_in("type(items)"), "list");
  EXPECT_EQ(eval_in("items == items"), true);
  EXPECT_EQ(eval_in("exists(items[2])"), true);
  EXPECT_EQ(eval_in("items"), value::parse(R"([{"role": "user"}, {"role": "tool"}, 7])"));
  EXPECT_EQ(eval_in("str(items[2])"), "7");
  EXPECT_EQ(eval_in("size(str(items))"), 35);
  EXPECT_EQ(eval_in("size(items + [1])"), 4);
  EXPECT_EQ(eval_in("[items] == [items]"), true);
  EXPECT_EQ(eval_in("items in [1, items]"), true);
}

TEST(Expression, ReadsPlainJsonArraysLikeLists) {
  const json_scope scope(value::parse(R"(["a", "b"])"));
  auto e = expression::compile("size(items) == 2 and items[-1] == 'b' and 'a' in items");
  ASSERT_TRUE(e.ok());
  auto r = e->test(scope);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_TRUE(*r);
}

TEST(Expression, SeesItemsAppendedToAStateList) {
  auto s = fixture().append("history", value::parse(R"({"role": "tool", "text": "ok"})"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(value_of("size(history)", *s), 4);
  EXPECT_EQ(value_of("history[-1].role", *s), "tool");
  EXPECT_EQ(value_of("history[-1].role", fixture()), "user");
}

// --- names, source, test ----------------------------------------------------------------------

TEST(Expression, ListsRootNamesSortedAndUnique) {
  auto e = expression::compile("b.x + a[c] + b + size(d) > 0 and count < limit");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->names(), (std::vector<std::string>{"a", "b", "c", "count", "d", "limit"}));
}

TEST(Expression, ListsNamesReadInsideExistsAndDefault) {
  auto e = expression::compile("exists(user.name) or default(fallback[i], 0) == 1");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->names(), (std::vector<std::string>{"fallback", "i", "user"}));
}

TEST(Expression, ListsNoNamesForFunctionsMembersOrLiterals) {
  auto e = expression::compile("size('user') + abs(-1) == [1][0] and 'x' in ['x']");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->names().empty());
  auto m = expression::compile("user.name.first");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->names(), (std::vector<std::string>{"user"}));
}

TEST(Expression, KeepsItsSource) {
  auto e = expression::compile("  count < limit ");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->source(), "  count < limit ");
}

TEST(Expression, TestReturnsTheBooleanResult) {
  auto e = expression::compile("count < limit");
  ASSERT_TRUE(e.ok());
  auto r = e->test(state_scope(fixture()));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
}

TEST(Expression, TestRejectsResultsThatAreNotBooleans) {
  auto e = expression::compile("count + 1");
  ASSERT_TRUE(e.ok());
  auto r = e->test(state_scope(fixture()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, graph_errc::expression_type);
  EXPECT_EQ(r.err().message, "count + 1: a condition must be a bool, got an int");
}

TEST(Expression, TestReportsEvaluationErrors) {
  auto e = expression::compile("missing > 1");
  ASSERT_TRUE(e.ok());
  auto r = e->test(state_scope(fixture()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, graph_errc::expression_unknown_key);
}

TEST(Expression, EvaluatesTheSameCompiledExpressionAgainstManyStates) {
  auto e = expression::compile("count * 2");
  ASSERT_TRUE(e.ok());
  for (std::int64_t i = 0; i < 5; ++i) {
    const state s = state().update("count", value(i));
    auto r = e->evaluate(state_scope(s));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 2 * i);
  }
}

TEST(Expression, EvaluatesFromManyThreadsAtOnce) {
  auto e = expression::compile("size(history) == 3 and history[-1].role == 'user' and str(tags) == '[\"x\",\"y\"]'");
  ASSERT_TRUE(e.ok());
  std::vector<std::thread> threads;
  std::vector<int> passes(4, 0);
  for (std::size_t t = 0; t < passes.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        auto r = e->test(state_scope(fixture()));
        if (r.ok() && *r) ++passes[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(passes, std::vector<int>(4, 500));
}

TEST(Expression, ReportsThatADefaultConstructedExpressionWasNotCompiled) {
  const expression e;
  EXPECT_EQ(e.evaluate(state_scope(fixture())).err().code, graph_errc::expression_eval);
  EXPECT_EQ(e.test(state_scope(fixture())).err().code, graph_errc::expression_eval);
}

// --- syntax errors ----------------------------------------------------------------------------

TEST(Expression, ReportsTheColumnOfAMissingParenthesis) {
  const error e = compile_error("(1 + 2");
  EXPECT_EQ(e.code, graph_errc::expression_syntax);
  EXPECT_EQ(e.message, "column 7: expected ')' but found end of expression");
}

TEST(Expression, ReportsAnEmptyExpression) {
  EXPECT_EQ(compile_error("").message, "column 1: expected an expression but found end of expression");
  EXPECT_EQ(compile_error("   ").message, "column 4: expected an expression but found end of expression");
}

TEST(Expression, ReportsTokensAfterACompleteExpression) {
  EXPECT_EQ(compile_error("count limit").message,
            "column 7: expected an operator or the end of the expression but found 'limit'");
  EXPECT_EQ(compile_error("1)").message, "column 2: expected an operator or the end of the expression but found ')'");
}

TEST(Expression, ReportsAMissingOperand) {
  EXPECT_EQ(compile_error("count <").message, "column 8: expected an expression but found end of expression");
  EXPECT_EQ(compile_error("1 + * 2").message, "column 5: expected an expression but found '*'");
  EXPECT_EQ(compile_error("count == not done").message, "column 10: expected an expression but found 'not'");
}

TEST(Expression, SuggestsTheOperatorsOfTheLanguage) {
  EXPECT_EQ(compile_error("count = 1").message, "column 7: unexpected '='; use '==' to compare");
  EXPECT_EQ(compile_error("!done").message, "column 1: unexpected '!'; use 'not'");
  EXPECT_EQ(compile_error("a && b").message, "column 3: unexpected '&'; use 'and'");
  EXPECT_EQ(compile_error("a || b").message, "column 3: unexpected '|'; use 'or'");
}

TEST(Expression, QuotesLongTokensShortened) {
  const std::string source = "1 '" + std::string(50, 'x') + "'";
  EXPECT_EQ(compile_error(source).message, "column 3: expected an operator or the end of the expression but found '" +
                                               std::string("'") + std::string(28, 'x') + "...'");
}

// --- limits -----------------------------------------------------------------------------------

TEST(Expression, RejectsSourcesLongerThan4096Bytes) {
  const std::string ok = "'" + std::string(4094, 'a') + "'";
  EXPECT_TRUE(expression::compile(ok).ok());
  const error e = compile_error(ok + " ");
  EXPECT_EQ(e.code, graph_errc::expression_syntax);
  EXPECT_EQ(e.message, "expression longer than 4096 bytes");
}

TEST(Expression, AcceptsNestingUpTo64Levels) {
  const std::string parens = std::string(64, '(') + "1" + std::string(64, ')');
  EXPECT_EQ(value_of(parens), 1);
  const std::string lists = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(expression::compile(lists).ok());
  std::string nots;
  for (int i = 0; i < 64; ++i) nots += "not ";
  EXPECT_EQ(value_of(nots + "true"), true);
}

TEST(Expression, RejectsNestingDeeperThan64Levels) {
  const error e = compile_error(std::string(65, '(') + "1" + std::string(65, ')'));
  EXPECT_EQ(e.code, graph_errc::expression_syntax);
  EXPECT_EQ(e.message, "column 65: nested too deeply (more than 64 levels)");
  EXPECT_EQ(compile_error(std::string(65, '-') + "1").message, "column 65: nested too deeply (more than 64 levels)");
  EXPECT_EQ(compile_error(std::string(100, '[')).message, "column 65: nested too deeply (more than 64 levels)");
  EXPECT_EQ(compile_error(std::string(2000, '(')).message, "column 65: nested too deeply (more than 64 levels)");
}

TEST(Expression, DoesNotCountLongFlatChainsAsNesting) {
  std::string sum = "0";
  std::string conjunction = "true";
  for (int i = 0; i < 400; ++i) {
    sum += " + 1";
    conjunction += " and true";
  }
  EXPECT_EQ(value_of(sum), 400);
  EXPECT_EQ(value_of(conjunction), true);
}

TEST(Expression, EvaluatesLongPathsIteratively) {
  state s = state().update("x", value::parse("[[[[[[[[[[1]]]]]]]]]]"));
  std::string path = "x";
  for (int i = 0; i < 10; ++i) path += "[0]";
  EXPECT_EQ(value_of(path, s), 1);
  EXPECT_EQ(error_of(path + "[0]", s).message, path + "[0]: cannot index an int with an int");
}

}  // namespace
}  // namespace choir::graph
