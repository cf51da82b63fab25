#include "choir/models/gateway.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <mutex>

namespace choir::models {
namespace {

/// A provider that answers from a queue of outcomes, and counts its calls.
class queued final : public provider {
 public:
  explicit queued(std::deque<result<chat_response>> outcomes) : outcomes_(std::move(outcomes)) {}
  result<chat_response> complete(const chat_request& request, chat_stream*) override {
    std::lock_guard lock(mutex_);
    ++calls;
    last_model = request.model;
    if (outcomes_.empty()) return make_error(model_errc::provider_error, "no more answers");
    auto next = std::move(outcomes_.front());
    outcomes_.pop_front();
    return next;
  }
  int calls = 0;
  std::string last_model;

 private:
  std::mutex mutex_;
  std::deque<result<chat_response>> outcomes_;
};

chat_response text(std::string t, std::int64_t in = 10, std::int64_t out = 5) {
  return chat_response{
      .message = {.role = "assistant", .content = std::move(t)}, .finish_reason = "stop", .usage = {in, out}};
}

struct GatewayTest : ::testing::Test {
  std::vector<std::chrono::milliseconds> waits;
  gateway g{[this](std::chrono::milliseconds d) { waits.push_back(d); }};
};

TEST_F(GatewayTest, RetriesARateLimitWithGrowingBackoffThenAnswers) {
  auto p = std::make_shared<queued>(std::deque<result<chat_response>>{
      make_error(model_errc::rate_limited, "429"), make_error(model_errc::provider_error, "503"), text("hi")});
  g.add({.alias = "a",
         .backend = p,
         .model = "real-a",
         .max_attempts = 3,
         .initial_backoff = std::chrono::milliseconds(100)});
  auto r = g.complete({.model = "a"});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->message.content, "hi");
  EXPECT_EQ(r->model, "a");
  EXPECT_EQ(p->last_model, "real-a");
  EXPECT_EQ(p->calls, 3);
  EXPECT_EQ(waits,
            (std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(100), std::chrono::milliseconds(200)}));
}

TEST_F(GatewayTest, DoesNotRetryARejectedRequest) {
  auto p = std::make_shared<queued>(
      std::deque<result<chat_response>>{make_error(model_errc::rejected, "400 bad"), text("never")});
  g.add({.alias = "a", .backend = p});
  auto r = g.complete({.model = "a"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::rejected);
  EXPECT_EQ(p->calls, 1);
  EXPECT_TRUE(waits.empty());
}

TEST_F(GatewayTest, FallsBackToTheNextAllowedAliasAfterItsRetries) {
  auto a = std::make_shared<queued>(std::deque<result<chat_response>>{make_error(core_errc::timed_out, "t1"),
                                                                      make_error(core_errc::timed_out, "t2")});
  auto b = std::make_shared<queued>(std::deque<result<chat_response>>{text("from b")});
  g.add({.alias = "a", .backend = a, .max_attempts = 2, .initial_backoff = std::chrono::milliseconds(1)});
  g.add({.alias = "b", .backend = b});
  const std::vector<std::string> fallbacks{"a", "b"};
  call_report report;
  auto r = g.complete({.model = "a"}, fallbacks, nullptr, &report);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->model, "b");
  EXPECT_EQ(a->calls, 2);
  EXPECT_EQ(report.attempts.size(), 3u);
  EXPECT_EQ(report.attempts.back(), "b: ok");
}

TEST_F(GatewayTest, AnUnknownAliasIsAnError) {
  auto r = g.complete({.model = "nope"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::unknown_model);
}

TEST_F(GatewayTest, ARequestOverTheWindowIsRefusedBeforeTheCall) {
  auto p = std::make_shared<queued>(std::deque<result<chat_response>>{text("x")});
  g.add({.alias = "small", .backend = p, .context_tokens = 10});
  auto r = g.complete({.model = "small", .messages = {{.role = "user", .content = std::string(200, 'x')}}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, model_errc::context_too_long);
  EXPECT_EQ(p->calls, 0);
}

TEST_F(GatewayTest, PricesTheAnswerFromItsUsage) {
  auto p = std::make_shared<queued>(std::deque<result<chat_response>>{text("x", 1'000'000, 500'000)});
  g.add({.alias = "paid", .backend = p, .usd_per_million_input = 2.0, .usd_per_million_output = 8.0});
  auto r = g.complete({.model = "paid"});
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(r->cost_usd, 6.0);
}

TEST_F(GatewayTest, EstimatesUsageTheProviderDidNotReport) {
  auto p = std::make_shared<queued>(std::deque<result<chat_response>>{text("abcdefgh", 0, 0)});
  g.add({.alias = "a", .backend = p});
  auto r = g.complete({.model = "a", .messages = {{.role = "user", .content = "abcd"}}});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->usage.estimated);
  EXPECT_EQ(r->usage.input_tokens, 5);
  EXPECT_EQ(r->usage.output_tokens, 2);
}

TEST(GatewayConfig, BuildsScriptedAndHttpRoutes) {
  const value config = value::parse(R"({"kind":"Models","models":{
    "local/8B":{"provider":"scripted","rules":[{"reply":"hi"}]},
    "cloud/70B":{"provider":"openai","base_url":"http://127.0.0.1:9/v1","model":"gpt","context_tokens":1000,"max_attempts":2}}})");
  auto g = gateway::from_config(config, ".");
  ASSERT_TRUE(g.ok()) << g.err().message;
  EXPECT_EQ((*g)->aliases().size(), 2u);
  EXPECT_EQ((*g)->find("cloud/70B")->model, "gpt");
  EXPECT_EQ((*g)->find("cloud/70B")->max_attempts, 2);
  auto answer = (*g)->complete({.model = "local/8B", .messages = {{.role = "user", .content = "x"}}});
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->message.content, "hi");
}

TEST(GatewayConfig, BadConfigurationsNameTheField) {
  struct bad_case {
    const char* json;
    const char* mentions;
  };
  for (const auto& c :
       {bad_case{R"({"kind":"X"})", "kind"}, bad_case{R"({"kind":"Models","models":{}})", "models"},
        bad_case{R"({"kind":"Models","models":{"a":{"provider":"magic"}}})", "models.a.provider"},
        bad_case{R"({"kind":"Models","models":{"a":{"provider":"magic"}}})", "openai-responses"},
        bad_case{R"({"kind":"Models","models":{"a":{"provider":"openai","colour":1}}})", "models.a.colour"},
        bad_case{R"({"kind":"Models","models":{"a":{"provider":"openai","base_url":"ftp://x"}}})", "base_url"},
        bad_case{R"({"kind":"Models","models":{"a":{"provider":"openai","api_key_env":"CHOIR_SURELY_UNSET_KEY"}}})",
                 "CHOIR_SURELY_UNSET_KEY"},
        bad_case{R"({"kind":"Models","models":{"a":{"provider":"scripted"}}})", "script"},
        bad_case{R"({"kind":"Models","models":{"a":{"provider":"scripted","script":"missing.yaml"}}})", "missing.yaml"},
        bad_case{R"({"kind":"Models","models":{"a":{"provider":"openai","max_attempts":0}}})", "max_attempts"}}) {
    auto g = gateway::from_config(value::parse(c.json), ".");
    ASSERT_FALSE(g.ok()) << c.json;
    EXPECT_NE(g.err().message.find(c.mentions), std::string::npos) << g.err().message;
  }
}

}  // namespace
}  // namespace choir::models
