#include "choir/graph/state.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "choir/graph/errors.hpp"

namespace choir::graph {
namespace {

state make(const value& v) { return *state::from_json(v); }

TEST(State, FromJsonRequiresAnObject) {
  EXPECT_TRUE(state::from_json(value::object()).ok());
  auto bad = state::from_json(value::array());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.err().code, graph_errc::invalid_state);
  EXPECT_EQ(bad.err().message, "state must be a JSON object, not array");
}

TEST(State, UpdateReturnsANewStateAndLeavesTheOldOneUnchanged) {
  const state a = make({{"count", 1}});
  const state b = a.update("count", 2);
  EXPECT_EQ(a.get("count"), 1);
  EXPECT_EQ(b.get("count"), 2);
}

TEST(State, UnchangedKeysAreSharedNotCopied) {
  const state a = make({{"big", value::object({{"text", std::string(10000, 'x')}})}, {"count", 0}});
  const state b = a.update("count", 1);
  EXPECT_TRUE(a.shares_key_with(b, "big"));
  EXPECT_FALSE(a.shares_key_with(b, "count"));
}

TEST(State, GetOfAnAbsentKeyIsNull) {
  const state s;
  EXPECT_TRUE(s.get("missing").is_null());
  EXPECT_EQ(s.get_if("missing"), nullptr);
  EXPECT_FALSE(s.find("missing"));
  EXPECT_FALSE(s.contains("missing"));
}

TEST(State, AppendCreatesTheListWhenAbsent) {
  const state s = *state().append("history", "hi");
  EXPECT_EQ(s.get("history"), value::array({"hi"}));
}

TEST(State, AppendDoesNotCopyTheWholeList) {
  state s;
  for (int i = 0; i < 1000; ++i) s = *s.append("history", i);
  const state next = *s.append("history", 1000);
  const value_ref before = s.find("history");
  const value_ref after = next.find("history");
  ASSERT_NE(before.list, nullptr);
  ASSERT_NE(after.list, nullptr);
  EXPECT_TRUE(after.list->shares_storage_with(*before.list));
  EXPECT_EQ(before.list->size(), 1000u);  // the older version does not see the new element
  EXPECT_EQ(after.list->size(), 1001u);
  EXPECT_EQ((*after.list)[1000], 1000);
  EXPECT_EQ((*after.list)[999], 999);
}

TEST(State, AppendingToAnOlderVersionForksTheListCorrectly) {
  const state base = *(*state().append("l", 1)).append("l", 2);
  const state left = *base.append("l", "left");
  const state right = *base.append("l", "right");  // the slot after 2 is taken: must copy
  EXPECT_EQ(left.get("l"), value::array({1, 2, "left"}));
  EXPECT_EQ(right.get("l"), value::array({1, 2, "right"}));
  EXPECT_EQ(base.get("l"), value::array({1, 2}));
}

TEST(State, ForkingAtAChunkBoundaryKeepsBothBranchesIntact) {
  state base;
  for (int i = 0; i < 64; ++i) base = *base.append("l", i);  // exactly two full chunks
  const state a = *base.append("l", "a");
  const state b = *base.append("l", "b");
  EXPECT_EQ(a.get("l").size(), 65u);
  EXPECT_EQ(a.get("l")[64], "a");
  EXPECT_EQ(b.get("l")[64], "b");
  EXPECT_EQ(b.get("l")[63], 63);
}

TEST(State, AppendToANonListFailsNamingTheKey) {
  const state s = make({{"count", 3}});
  auto r = s.append("count", 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, graph_errc::type_mismatch);
  EXPECT_EQ(r.err().message, "cannot append to 'count': it holds number, not a list");
}

TEST(State, ExtendAppendsEveryItem) {
  const state s = *make({{"l", {1}}}).extend("l", {2, 3});
  EXPECT_EQ(s.get("l"), value::array({1, 2, 3}));
  EXPECT_EQ(make({{"l", {1}}}).extend("l", 5).err().code, graph_errc::type_mismatch);
}

TEST(State, IncrementAddsToIntegersAndTreatsAbsentAsZero) {
  EXPECT_EQ(state().increment("n", 5)->get("n"), 5);
  EXPECT_EQ(make({{"n", 2}}).increment("n", -3)->get("n"), -1);
  EXPECT_EQ(make({{"n", "x"}}).increment("n", 1).err().code, graph_errc::type_mismatch);
  EXPECT_EQ(make({{"n", INT64_MAX}}).increment("n", 1).err().message, "incrementing 'n' overflows");
}

TEST(State, WipeRemovesKeysAndSubsetKeepsThem) {
  const state s = make({{"a", 1}, {"b", 2}, {"c", 3}});
  EXPECT_EQ(s.wipe({"a", "zz"}).keys(), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(s.subset({"a", "c", "zz"}).keys(), (std::vector<std::string>{"a", "c"}));
}

TEST(State, MergeLetsTheOtherStateWin) {
  const state s = make({{"a", 1}, {"b", 2}}).merge(make({{"b", 20}, {"c", 30}}));
  EXPECT_EQ(s.to_json(), (value{{"a", 1}, {"b", 20}, {"c", 30}}));
}

TEST(State, ApplyRunsEveryOpInOrderAllOrNothing) {
  state_delta d;
  d.set("a", 1).append("l", "x").increment("n", 2).remove("gone");
  const state s = *make({{"gone", true}, {"n", 1}}).apply(d);
  EXPECT_EQ(s.to_json(), (value{{"a", 1}, {"l", {"x"}}, {"n", 3}}));

  state_delta bad;
  bad.set("a", 2).append("a", 3);  // `a` is a number by then
  const state before = make({{"a", 0}});
  auto r = before.apply(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(before.get("a"), 0);
}

TEST(State, ADeltasTextIsItsJsonDumped) {
  state_delta d;
  d.set("count", 3).append("history", value{{"role", "user"}, {"text", "caf\xC3\xA9 \"q\" \x01"}});
  d.extend("l", value{1.5, "x", nullptr}).increment("n", -2).remove("gone").set("bad \xFF key", 0.1);
  EXPECT_EQ(d.to_json_text(), dump_json(d.to_json()));
  EXPECT_EQ(state_delta().to_json_text(), "[]");
}

TEST(State, DeltaRoundTripsThroughJson) {
  state_delta d;
  d.set("a", {{"x", 1}}).append("l", 2).extend("l", {3, 4}).increment("n", -1).remove("z");
  auto back = state_delta::from_json(d.to_json());
  ASSERT_TRUE(back.ok()) << back.err().message;
  EXPECT_EQ(back->to_json(), d.to_json());
}

TEST(State, MalformedDeltasAreRejectedNamingTheOp) {
  EXPECT_EQ(state_delta::from_json(5).err().code, graph_errc::invalid_state);
  EXPECT_EQ(state_delta::from_json(value::array({{{"op", "set"}}})).err().message,
            "delta op 0: needs a string 'op' and a string 'key'");
  EXPECT_EQ(state_delta::from_json(value::array({{{"op", "frob"}, {"key", "k"}}})).err().message,
            "delta op 0: unknown op 'frob'");
  EXPECT_EQ(state_delta::from_json(value::array({{{"op", "increment"}, {"key", "k"}, {"value", "x"}}})).err().message,
            "delta op 0: increment needs an integer 'value'");
  EXPECT_EQ(state_delta::from_json(value::array({{{"op", "set"}, {"key", "k"}}})).err().message,
            "delta op 0: op 'set' needs a 'value'");
}

TEST(State, ArraysBecomePersistentListsAndReadBackAsJson) {
  const state s = make({{"l", {1, 2, 3}}});
  const value_ref ref = s.find("l");
  ASSERT_NE(ref.list, nullptr);
  EXPECT_EQ(ref.list->size(), 3u);
  EXPECT_EQ(*s.get_if("l"), value::array({1, 2, 3}));
}

TEST(State, EqualityComparesContents) {
  EXPECT_EQ(make({{"a", 1}, {"l", {1, 2}}}), make({{"l", {1, 2}}, {"a", 1}}));
  EXPECT_FALSE(make({{"a", 1}}) == make({{"a", 2}}));
  EXPECT_FALSE(make({{"l", {1}}}) == make({{"l", 1}}));
}

TEST(State, ConcurrentAppendsToOneVersionEachSeeTheirOwnElement) {
  state base;
  for (int i = 0; i < 5; ++i) base = *base.append("l", i);
  std::vector<state> results(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] { results[static_cast<std::size_t>(t)] = *base.append("l", 100 + t); });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) {
    const value l = results[static_cast<std::size_t>(t)].get("l");
    ASSERT_EQ(l.size(), 6u);
    EXPECT_EQ(l[5], 100 + t);
    EXPECT_EQ(l[4], 4);
  }
}

}  // namespace
}  // namespace choir::graph
