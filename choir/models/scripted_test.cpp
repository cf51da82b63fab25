#include "choir/models/scripted.hpp"

#include <gtest/gtest.h>

namespace choir::models {
namespace {

constexpr std::string_view rules = R"(kind: ScriptedModel
rules:
  - when: {user_contains: note, turn: 0, has_tools: true}
    tool_calls: [{name: fs.write, arguments: {path: note.txt, content: "{{user}}"}}]
  - when: {last_role: tool, tool: fs.write}
    reply: "Saved ({{tool_result}})."
  - when: {user_matches: "^json"}
    json: {answer: 42, echo: "{{user}}"}
  - reply: "You said: {{user}}"
)";

chat_request ask(std::string text, bool tools = true) {
  chat_request r{.model = "m",
                 .messages = {{.role = "system", .content = "be brief"}, {.role = "user", .content = std::move(text)}}};
  if (tools) r.tools.push_back({.name = "fs.write", .description = "write a file"});
  return r;
}

struct collect final : chat_stream {
  std::vector<std::string> tokens;
  std::vector<std::string> calls;
  void text(std::string_view d) override { tokens.emplace_back(d); }
  void tool_call_ready(const tool_call& c) override { calls.push_back(c.name); }
};

TEST(ScriptedModel, TheFirstMatchingRuleAnswersWithToolCalls) {
  auto model = scripted_from_yaml(rules, "rules.yaml").value();
  auto r = model->complete(ask("take a note: milk"), nullptr);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->finish_reason, "tool_calls");
  ASSERT_EQ(r->message.tool_calls.size(), 1u);
  EXPECT_EQ(r->message.tool_calls[0].name, "fs.write");
  EXPECT_EQ(r->message.tool_calls[0].arguments["content"], "take a note: milk");
  EXPECT_FALSE(r->message.tool_calls[0].id.empty());
  EXPECT_TRUE(r->usage.estimated);
  EXPECT_GT(r->usage.input_tokens, 0);
}

TEST(ScriptedModel, MatchesOnTheToolResultAfterACall) {
  auto model = scripted_from_yaml(rules, "rules.yaml").value();
  chat_request r = ask("take a note: milk");
  r.messages.push_back({.role = "assistant", .tool_calls = {{.id = "c", .name = "fs.write"}}});
  r.messages.push_back({.role = "tool", .content = "12 bytes", .tool_call_id = "c", .name = "fs.write"});
  auto answer = model->complete(r, nullptr);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->message.content, "Saved (12 bytes).");
  EXPECT_EQ(answer->finish_reason, "stop");
}

TEST(ScriptedModel, StreamsTheAnswerTokenByToken) {
  auto model = scripted_from_yaml(rules, "rules.yaml").value();
  collect sink;
  auto answer = model->complete(ask("hello there", false), &sink);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->message.content, "You said: hello there");
  EXPECT_EQ(sink.tokens, (std::vector<std::string>{"You ", "said: ", "hello ", "there"}));
}

TEST(ScriptedModel, PausesBetweenStreamedWordsWhenAskedTo) {
  auto model = scripted_from_yaml("kind: ScriptedModel\ntoken_ms: 5\nrules: [{reply: one two three four}]\n", "p.yaml");
  ASSERT_TRUE(model.ok()) << model.err().message;
  collect sink;
  ASSERT_TRUE((*model)->complete(ask("hi", false), &sink).ok());
  EXPECT_EQ(sink.tokens.size(), 4u);  // the pause is a lower bound on time: not asserted here (bench/, not tests)
  for (const char* bad : {"token_ms: -1", "token_ms: 10001", "token_ms: soon"}) {
    auto refused = scripted_from_yaml(std::string("kind: ScriptedModel\n") + bad + "\nrules: [{reply: x}]\n", "p.yaml");
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.err().message.find("token_ms"), std::string::npos) << refused.err().message;
  }
}

TEST(ScriptedModel, AnswersJsonWithTemplatesInside) {
  auto model = scripted_from_yaml(rules, "rules.yaml").value();
  auto answer = model->complete(ask("json please", false), nullptr);
  ASSERT_TRUE(answer.ok());
  const value v = value::parse(answer->message.content);
  EXPECT_EQ(v["answer"], 42);
  EXPECT_EQ(v["echo"], "json please");
}

TEST(ScriptedModel, CutsTheAnswerAtMaxTokens) {
  auto model = scripted_from_yaml(rules, "rules.yaml").value();
  chat_request r = ask(std::string(100, 'y'), false);
  r.max_tokens = 2;
  auto answer = model->complete(r, nullptr);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->finish_reason, "length");
  EXPECT_EQ(answer->message.content.size(), 8u);
}

TEST(ScriptedModel, NoMatchingRuleIsAClearError) {
  auto model =
      scripted_from_yaml("kind: ScriptedModel\nrules: [{when: {user_contains: x}, reply: y}]\n", "r.yaml").value();
  auto answer = model->complete(ask("nothing"), nullptr);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.err().code, model_errc::rejected);
  EXPECT_NE(answer.err().message.find("no rule matches"), std::string::npos);
}

TEST(ScriptedModel, BadRuleFilesNameTheField) {
  struct bad_case {
    const char* text;
    const char* mentions;
  };
  for (const auto& c :
       {bad_case{"kind: Other\n", "kind"}, bad_case{"kind: ScriptedModel\nrules: []\n", "rules"},
        bad_case{"kind: ScriptedModel\nrules: [{when: {mood: happy}, reply: x}]\n", "rules[0].when.mood"},
        bad_case{"kind: ScriptedModel\nrules: [{when: {user_matches: \"(\"}, reply: x}]\n", "user_matches"},
        bad_case{"kind: ScriptedModel\nrules: [{when: {turn: -1}, reply: x}]\n", "turn"},
        bad_case{"kind: ScriptedModel\nrules: [{when: {}}]\n", "rules[0]"},
        bad_case{"kind: ScriptedModel\nrules: [{reply: x, json: {}}]\n", "json"},
        bad_case{"kind: ScriptedModel\nrules: [{tool_calls: [{arguments: {}}]}]\n", "tool_calls[0]"}}) {
    auto loaded = scripted_from_yaml(c.text, "bad.yaml");
    ASSERT_FALSE(loaded.ok()) << c.text;
    EXPECT_NE(loaded.err().message.find(c.mentions), std::string::npos) << loaded.err().message;
  }
}

}  // namespace
}  // namespace choir::models
