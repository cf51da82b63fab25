#include "choir/models/chat.hpp"

#include <gtest/gtest.h>

namespace choir::models {
namespace {

TEST(Chat, AMessageRoundTripsThroughJson) {
  chat_message m{.role = "assistant",
                 .content = "hi",
                 .tool_calls = {{.id = "c1", .name = "fs.read", .arguments = {{"path", "a"}}}}};
  auto back = message_from_json(to_json(m));
  ASSERT_TRUE(back.ok()) << back.err().message;
  EXPECT_EQ(back->role, "assistant");
  EXPECT_EQ(back->content, "hi");
  ASSERT_EQ(back->tool_calls.size(), 1u);
  EXPECT_EQ(back->tool_calls[0].arguments["path"], "a");
}

TEST(Chat, AResponseRoundTripsThroughJson) {
  chat_response r{.message = {.role = "assistant", .content = "ok"},
                  .finish_reason = "stop",
                  .usage = {3, 4, true},
                  .model = "m",
                  .cost_usd = 0.5};
  auto back = response_from_json(to_json(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->usage.total(), 7);
  EXPECT_TRUE(back->usage.estimated);
  EXPECT_EQ(back->model, "m");
  EXPECT_DOUBLE_EQ(back->cost_usd, 0.5);
}

TEST(Chat, MalformedMessagesNameTheField) {
  EXPECT_NE(message_from_json(value{{"role", "king"}}).err().message.find("role"), std::string::npos);
  EXPECT_NE(message_from_json(value{{"role", "assistant"}, {"tool_calls", 3}}).err().message.find("tool_calls"),
            std::string::npos);
  EXPECT_NE(message_from_json(value{{"role", "assistant"}, {"tool_calls", {{{"name", "x"}, {"arguments", 1}}}}})
                .err()
                .message.find("arguments"),
            std::string::npos);
  EXPECT_FALSE(message_from_json(value::array()).ok());
}

TEST(Chat, TheTokenEstimateCountsFourBytesATokenPlusMessages) {
  EXPECT_EQ(estimate_tokens(""), 0);
  EXPECT_EQ(estimate_tokens("abcd"), 1);
  EXPECT_EQ(estimate_tokens("abcde"), 2);
  chat_request r{.messages = {{.role = "user", .content = std::string(40, 'x')}}};
  EXPECT_EQ(estimate_tokens(r), 14);
}

}  // namespace
}  // namespace choir::models
