#include "choir/models/sampling.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace choir::models {
namespace {

/// A sampler that answers with its own name, and notes what it was asked.
struct named_sampler {
  std::string name;
  std::vector<std::string>* asked;
  result<chat_response> operator()(const chat_request& request, const sampling_preferences& preferences,
                                   chat_stream* /*stream*/) const {
    asked->push_back(name + ":" + request.run_id + ":" + request.model +
                     (preferences.hints.empty() ? "" : ":" + preferences.hints.front()));
    return chat_response{.message = {.role = "assistant", .content = "from " + name}, .finish_reason = "stop"};
  }
};

TEST(SamplerRegistry, TheRunAttachedNearestAnswersForItAndItsChildren) {
  auto registry = std::make_shared<sampler_registry>();
  std::vector<std::string> asked;
  auto session = registry->attach("s.mcp.1", named_sampler{"outer", &asked});
  const sampling_preferences none;

  auto own = registry->complete({.model = "m", .run_id = "s.mcp.1"}, none, nullptr);
  ASSERT_TRUE(own.ok()) << own.err().message;
  EXPECT_EQ(own->message.content, "from outer");
  ASSERT_TRUE(registry->complete({.model = "m", .run_id = "s.mcp.1.fan.3.0"}, none, nullptr).ok());
  {
    auto inner = registry->attach("s.mcp.1.fan.3", named_sampler{"inner", &asked});
    auto child = registry->complete({.model = "m", .run_id = "s.mcp.1.fan.3.0"}, none, nullptr);
    ASSERT_TRUE(child.ok());
    EXPECT_EQ(child->message.content, "from inner");
  }
  // Detached again: the outer one answers for the grandchild.
  auto again = registry->complete({.model = "m", .run_id = "s.mcp.1.fan.3.0"}, none, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->message.content, "from outer");
  EXPECT_EQ(asked, (std::vector<std::string>{"outer:s.mcp.1:m", "outer:s.mcp.1.fan.3.0:m", "inner:s.mcp.1.fan.3.0:m",
                                             "outer:s.mcp.1.fan.3.0:m"}));

  // A run whose id merely begins with the same characters is not below it; nor is the session.
  for (const char* stranger : {"s.mcp.10", "s.mcp", "s", "other", ""}) {
    auto r = registry->complete({.model = "m", .run_id = stranger}, none, nullptr);
    ASSERT_FALSE(r.ok()) << stranger;
    EXPECT_EQ(r.err().code, model_errc::rejected);
  }
  auto refused = registry->complete({.model = "m", .run_id = "s.mcp.10"}, none, nullptr);
  EXPECT_NE(refused.err().message.find("run s.mcp.10 is not running for an MCP client"), std::string::npos)
      << refused.err().message;
}

TEST(SamplerRegistry, AttachingTheSameRunAgainShadowsUntilDetached) {
  auto registry = std::make_shared<sampler_registry>();
  std::vector<std::string> asked;
  auto first = registry->attach("r", named_sampler{"first", &asked});
  auto second = std::make_unique<sampler_registry::attachment>(registry->attach("r", named_sampler{"second", &asked}));
  EXPECT_EQ(registry->complete({.run_id = "r"}, {}, nullptr)->message.content, "from second");
  second.reset();
  EXPECT_EQ(registry->complete({.run_id = "r"}, {}, nullptr)->message.content, "from first");
  // Moved, an attachment still detaches once.
  sampler_registry::attachment moved = std::move(first);
  EXPECT_EQ(registry->complete({.run_id = "r"}, {}, nullptr)->message.content, "from first");
  moved = sampler_registry::attachment{};
  EXPECT_FALSE(registry->complete({.run_id = "r"}, {}, nullptr).ok());
}

TEST(SamplerRegistry, AnAttachmentMayOutliveItsRegistry) {
  std::vector<std::string> asked;
  sampler_registry::attachment kept;
  {
    auto registry = std::make_shared<sampler_registry>();
    kept = registry->attach("r", named_sampler{"gone", &asked});
  }
  kept = sampler_registry::attachment{};  // detaching from nothing is nothing
  SUCCEED();
}

TEST(SamplerRegistry, CallsAndDetachesFromManyThreads) {
  auto registry = std::make_shared<sampler_registry>();
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string run = "s.mcp." + std::to_string(t);
      for (int i = 0; i < 200; ++i) {
        auto a = registry->attach(run, [&](const chat_request&, const sampling_preferences&, chat_stream*) {
          ++answered;
          return result<chat_response>(chat_response{});
        });
        ASSERT_TRUE(registry->complete({.run_id = run + ".child"}, {}, nullptr).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(answered.load(), 8 * 200);
}

TEST(SamplingConfig, AnMcpClientAliasIsAskedOnceAndFallsBackWhenNoClientAnswers) {
  auto g = gateway::from_config(value::parse(R"({"kind": "Models", "models": {
        "client": {"provider": "mcp-client", "hints": ["claude-sonnet", "gpt"], "intelligence_priority": 0.8},
        "offline": {"provider": "scripted", "rules": [{"reply": "offline answer"}]}}})"),
                                ".");
  ASSERT_TRUE(g.ok()) << g.err().message;
  EXPECT_EQ((*g)->find("client")->max_attempts, 1);

  // No client is attached for the run: the next allowed alias answers.
  call_report report;
  const std::vector<std::string> fallbacks{"offline"};
  chat_request request{.model = "client", .run_id = "s.mcp.1", .messages = {{.role = "user", .content = "hi"}}};
  auto r = (*g)->complete(request, fallbacks, nullptr, &report);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->model, "offline");
  ASSERT_EQ(report.attempts.size(), 2U);
  EXPECT_NE(report.attempts[0].find("not running for an MCP client"), std::string::npos) << report.attempts[0];

  // Attached: the client's sampler answers, with the alias's preferences.
  std::vector<std::string> asked;
  sampling_preferences seen;
  auto attached = (*g)->samplers().attach(
      "s.mcp.1", [&](const chat_request& req, const sampling_preferences& prefs, chat_stream* stream) {
        asked.push_back(req.run_id);
        seen = prefs;
        if (stream != nullptr) stream->text("streamed");
        return result<chat_response>(
            chat_response{.message = {.role = "assistant", .content = "from the client"}, .finish_reason = "stop"});
      });
  r = (*g)->complete(request, fallbacks);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->model, "client");
  EXPECT_EQ(r->message.content, "from the client");
  EXPECT_TRUE(r->usage.estimated);  // a client reports no usage: the gateway estimates it
  EXPECT_GT(r->usage.input_tokens, 0);
  EXPECT_EQ(asked, std::vector<std::string>{"s.mcp.1"});
  EXPECT_EQ(seen.hints, (std::vector<std::string>{"claude-sonnet", "gpt"}));
  EXPECT_EQ(seen.intelligence_priority, 0.8);
  EXPECT_FALSE(seen.cost_priority.has_value());
}

TEST(SamplingConfig, BadPreferencesNameTheField) {
  for (const auto& [model, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"provider": "mcp-client", "hints": "claude"})", "models.c.hints"},
           {R"({"provider": "mcp-client", "hints": [""]})", "models.c.hints"},
           {R"({"provider": "mcp-client", "speed_priority": 2})", "models.c.speed_priority"},
           {R"({"provider": "mcp-client", "cost_priority": "low"})", "models.c.cost_priority"},
           {R"({"provider": "mcp-clients"})", "models.c.provider"}}) {
    auto g = gateway::from_config(value::parse(R"({"kind": "Models", "models": {"c": )" + model + "}}"), ".");
    ASSERT_FALSE(g.ok()) << model;
    EXPECT_NE(g.err().message.find(field), std::string::npos) << g.err().message;
  }
}

}  // namespace
}  // namespace choir::models
