#include "choir/graph/condition.hpp"

#include <gtest/gtest.h>

#include "choir/graph/errors.hpp"

namespace choir::graph {
namespace {

state make(const value& v) { return *state::from_json(v); }

TEST(Condition, DefaultIsAlwaysTrue) {
  EXPECT_TRUE(*condition::always().evaluate(state()));
  EXPECT_TRUE(condition::always().is_default());
  EXPECT_EQ(condition::always().describe(), "default");
}

TEST(Condition, WhenComparesEveryKeyForEquality) {
  const auto c = condition::when({{"mode", "CALM"}, {"ok", true}});
  EXPECT_TRUE(*c.evaluate(make({{"mode", "CALM"}, {"ok", true}})));
  EXPECT_FALSE(*c.evaluate(make({{"mode", "CALM"}, {"ok", false}})));
  EXPECT_EQ(c.keys(), (std::vector<std::string>{"mode", "ok"}));
}

TEST(Condition, WhenFailsOnAnAbsentKey) {
  auto r = condition::when({{"mode", "CALM"}}).evaluate(state());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, graph_errc::expression_unknown_key);
}

TEST(Condition, ExprIsCompiledOnceAndEvaluatedAgainstState) {
  const auto c = condition::expr("count < 3");
  EXPECT_FALSE(c.compile_error().has_value());
  EXPECT_TRUE(*c.evaluate(make({{"count", 2}})));
  EXPECT_FALSE(*c.evaluate(make({{"count", 3}})));
  EXPECT_EQ(c.keys(), std::vector<std::string>{"count"});
  EXPECT_EQ(c.describe(), "count < 3");
}

TEST(Condition, ExprKeepsItsSyntaxError) {
  const auto c = condition::expr("count <");
  ASSERT_TRUE(c.compile_error().has_value());
  EXPECT_EQ(c.compile_error()->code, graph_errc::expression_syntax);
  EXPECT_FALSE(c.evaluate(make({{"count", 1}})).ok());
}

TEST(Condition, CombinatorsNegateConjoinAndDisjoin) {
  const auto small = condition::expr("n < 5");
  const auto even = condition::expr("n % 2 == 0");
  const state four = make({{"n", 4}});
  const state seven = make({{"n", 7}});
  EXPECT_TRUE(*(small && even).evaluate(four));
  EXPECT_FALSE(*(small && even).evaluate(seven));
  EXPECT_TRUE(*(small || even).evaluate(four));
  EXPECT_FALSE(*(small || even).evaluate(seven));
  EXPECT_TRUE(*(!small).evaluate(seven));
  EXPECT_EQ((!small && even).describe(), "not (n < 5) and (n % 2 == 0)");
}

TEST(Condition, PredicatesCheckTheirKeysExist) {
  const auto c = condition::predicate([](const state& s) { return s.get("x") == 1; }, {"x"}, "x is one");
  EXPECT_TRUE(*c.evaluate(make({{"x", 1}})));
  EXPECT_EQ(c.evaluate(state()).err().code, graph_errc::expression_unknown_key);
  EXPECT_EQ(c.describe(), "x is one");
}

TEST(Condition, CompileErrorsInsideCombinationsAreFound) {
  const auto c = condition::expr("ok") && !condition::expr("((");
  ASSERT_TRUE(c.compile_error().has_value());
}

}  // namespace
}  // namespace choir::graph
