#include "choir/graph/action.hpp"

#include <gtest/gtest.h>

namespace choir::graph {
namespace {

class null_sink final : public stream_sink {
 public:
  void item(const value&) override {}
};

TEST(Action, StateViewShowsOnlyDeclaredReads) {
  const state s = *state::from_json({{"a", 1}, {"secret", 2}});
  action_spec spec;
  spec.name = "peek";
  spec.reads = {"a"};
  const value inputs = value::object();
  const state_view view(s, spec, inputs);
  EXPECT_EQ(view.at("a"), 1);
  try {
    (void)view.at("secret");
    FAIL() << "reading an undeclared key must throw";
  } catch (const access_error& e) {
    EXPECT_EQ(e.code(), graph_errc::undeclared_read);
    EXPECT_STREQ(e.what(), "action 'peek' read 'secret', which it does not declare in reads");
  }
}

TEST(Action, StateViewGivesListsWithoutMaterializingThem) {
  const state s = *state::from_json({{"l", {1, 2}}, {"n", 1}});
  action_spec spec;
  spec.name = "x";
  spec.reads = {"l", "n", "absent"};
  const value inputs = value::object();
  const state_view view(s, spec, inputs);
  EXPECT_EQ(view.list("l").size(), 2u);
  EXPECT_TRUE(view.list("absent").empty());
  EXPECT_THROW((void)view.list("n"), access_error);
  EXPECT_EQ(view.get<int>("absent", 7), 7);
}

TEST(Action, InputsAreVisibleOnlyWhenDeclared) {
  action_spec spec;
  spec.name = "x";
  spec.inputs = {{"n", true, value()}};
  const value inputs = {{"n", 4}, {"other", 1}};
  const state_view view(state(), spec, inputs);
  EXPECT_EQ(view.input("n"), 4);
  EXPECT_THROW((void)view.input("other"), access_error);
}

class double_it final : public class_action {
 public:
  double_it() : class_action(make_spec()) {}

 private:
  static action_spec make_spec() {
    action_spec s;
    s.name = "double";
    s.reads = {"n"};
    s.writes = {"n"};
    return s;
  }
  result<value> run(const state_view& view) override { return view.at("n").get<int>() * 2; }
  result<state_delta> update(const value& result, const state_view&) override {
    state_delta d;
    d.set("n", result);
    return d;
  }
};

TEST(Action, ClassFormRunsThenUpdates) {
  double_it act;
  const state s = *state::from_json({{"n", 21}});
  const value inputs = value::object();
  null_sink sink;
  auto out = act.execute(state_view(s, act.spec(), inputs), sink);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->result, 42);
  EXPECT_EQ(out->changes.to_json(), value::parse(R"([{"op":"set","key":"n","value":42}])"));
}

TEST(Action, BuilderRecordsEveryDeclaration) {
  auto act = action_builder("a")
                 .reads({"x"})
                 .writes({"y"})
                 .inputs({"q"})
                 .optional_input("limit", 10)
                 .tags({"t"})
                 .cost_ms(5)
                 .latency(latency_class::hrt)
                 .retry({3, std::chrono::milliseconds(10), 2.0, std::chrono::milliseconds(100)})
                 .on_error("handler", "oops")
                 .run([](const state_view&) -> result<action_output> { return action_output{}; });
  const action_spec& s = act->spec();
  EXPECT_EQ(s.inputs.size(), 2u);
  EXPECT_FALSE(s.inputs[1].required);
  EXPECT_TRUE(s.has_tag("t"));
  EXPECT_EQ(*s.cost_ms, 5);
  EXPECT_EQ(*s.latency, latency_class::hrt);
  EXPECT_EQ(s.on_error->capture, "oops");
}

TEST(Action, RetryBackoffGrowsAndIsCapped) {
  const retry_policy p{5, std::chrono::milliseconds(100), 2.0, std::chrono::milliseconds(300)};
  EXPECT_EQ(p.backoff_before(1).count(), 0);
  EXPECT_EQ(p.backoff_before(2).count(), 100);
  EXPECT_EQ(p.backoff_before(3).count(), 200);
  EXPECT_EQ(p.backoff_before(4).count(), 300);
  EXPECT_EQ(p.backoff_before(5).count(), 300);
}

TEST(Action, LatencyClassesParseAndPrint) {
  EXPECT_EQ(parse_latency_class("HRT"), latency_class::hrt);
  EXPECT_EQ(parse_latency_class("DT"), latency_class::dt);
  EXPECT_FALSE(parse_latency_class("hrt").has_value());
  EXPECT_EQ(to_string(latency_class::srt), "SRT");
}

}  // namespace
}  // namespace choir::graph
