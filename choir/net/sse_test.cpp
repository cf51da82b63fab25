#include "choir/net/sse.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace choir::net {
namespace {

std::vector<sse_event> parse_in_pieces(std::string_view text, std::size_t piece) {
  sse_parser parser;
  std::vector<sse_event> events;
  for (std::size_t i = 0; i < text.size(); i += piece) {
    EXPECT_TRUE(parser.feed(text.substr(i, piece), [&](const sse_event& e) { events.push_back(e); }).ok());
  }
  return events;
}

TEST(Sse, ParsesEventsWithTypeDataAndId) {
  auto events = parse_in_pieces("event: delta\ndata: {\"a\":1}\nid: 7\n\ndata: two\n\n", 1000);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event, "delta");
  EXPECT_EQ(events[0].data, "{\"a\":1}");
  EXPECT_EQ(events[0].id, "7");
  EXPECT_EQ(events[1].event, "");
  EXPECT_EQ(events[1].data, "two");
  EXPECT_EQ(events[1].id, "7") << "the last id carries over";
}

TEST(Sse, GivesTheSameEventsWhateverTheSizeOfThePieces) {
  const std::string text =
      "\xEF\xBB\xBF: comment\r\nevent: a\r\ndata: x\r\ndata: y\r\n\r\nevent:b\rdata:z\r\rdata: [DONE]\n\n";
  const auto whole = parse_in_pieces(text, text.size());
  ASSERT_EQ(whole.size(), 3u);
  EXPECT_EQ(whole[0].data, "x\ny");
  EXPECT_EQ(whole[1].event, "b");
  EXPECT_EQ(whole[1].data, "z");
  EXPECT_EQ(whole[2].data, "[DONE]");
  for (std::size_t piece = 1; piece < 8; ++piece) {
    const auto split = parse_in_pieces(text, piece);
    ASSERT_EQ(split.size(), whole.size()) << "pieces of " << piece;
    for (std::size_t i = 0; i < split.size(); ++i) {
      EXPECT_EQ(split[i].data, whole[i].data) << "pieces of " << piece;
      EXPECT_EQ(split[i].event, whole[i].event) << "pieces of " << piece;
    }
  }
}

TEST(Sse, AnEventWithoutDataIsNotDispatched) {
  auto events = parse_in_pieces("event: ping\n\nretry: 10\nunknown: 1\n\ndata:\n\n", 3);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "");
}

TEST(Sse, AnUnfinishedEventIsHeldBack) {
  auto events = parse_in_pieces("data: partial\n", 100);
  EXPECT_TRUE(events.empty());
}

TEST(Sse, AnEventOverTheLimitFailsTheStream) {
  sse_parser parser(64);
  auto sink = [](const sse_event&) {};
  EXPECT_TRUE(parser.feed("data: short\n\n", sink).ok());
  auto big = parser.feed("data: " + std::string(100, 'x'), sink);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.err().code, core_errc::parse_error);
  EXPECT_FALSE(parser.feed("data: more\n\n", sink).ok()) << "the parser stays failed";
}

TEST(Sse, ManyLinesThatAddUpOverTheLimitFailTheStream) {
  sse_parser parser(64);
  std::string text;
  for (int i = 0; i < 20; ++i) text += "data: 0123456789\n";
  EXPECT_FALSE(parser.feed(text, [](const sse_event&) {}).ok());
}

}  // namespace
}  // namespace choir::net
