#include "choir/core/id.hpp"

#include <gtest/gtest.h>

#include <set>

namespace choir {
namespace {

TEST(Uuid, MadeIdsAreVersion7WithTheRfcVariant) {
  manual_clock c(1'700'000'000'123);
  id_generator gen(c, 42);
  const uuid id = gen.next();
  EXPECT_EQ(id.version(), 7);
  EXPECT_EQ(id.bytes[8] & 0xC0, 0x80);
  EXPECT_EQ(id.unix_ms(), 1'700'000'000'123);
}

TEST(Uuid, IdsAreStrictlyIncreasingWithinOneMillisecond) {
  manual_clock c(1'700'000'000'000);
  id_generator gen(c, 7);
  uuid prev = gen.next();
  for (int i = 0; i < 10'000; ++i) {  // far more than the 12-bit counter holds
    const uuid next = gen.next();
    ASSERT_LT(prev, next) << "at " << i;
    prev = next;
  }
}

TEST(Uuid, IdsStayIncreasingWhenTheClockStepsBack) {
  manual_clock later(2'000'000);
  manual_clock earlier(1'000'000);
  id_generator gen(later, 1);
  const uuid a = gen.next();
  // A generator never goes back even when the time it reads does.
  id_generator gen2(earlier, 1);
  EXPECT_LT(gen2.next(), a);
  EXPECT_LT(a, gen.next());
}

TEST(Uuid, RoundTripsThroughItsCanonicalText) {
  id_generator gen(system_clock(), 3);
  const uuid id = gen.next();
  const std::string text = id.to_string();
  ASSERT_EQ(text.size(), 36u);
  EXPECT_EQ(text[14], '7');
  auto parsed = uuid::parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.err().message;
  EXPECT_EQ(*parsed, id);
}

TEST(Uuid, ParseAcceptsUpperCase) {
  auto parsed = uuid::parse("0190A5B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->to_string(), "0190a5b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b");
}

TEST(Uuid, ParseRejectsMalformedTextNamingThePosition) {
  EXPECT_EQ(uuid::parse("").err().code, core_errc::parse_error);
  EXPECT_EQ(uuid::parse("0190a5b2-c3d4-7e5f-8a6b-7c8d9e0f1a2").err().message, "a UUID has 36 characters, this has 35");
  EXPECT_EQ(uuid::parse("0190a5b2xc3d4-7e5f-8a6b-7c8d9e0f1a2b").err().message,
            "expected '-' at position 8 of the UUID");
  EXPECT_EQ(uuid::parse("0190a5b2-c3d4-7e5f-8a6b-7c8d9e0f1a2g").err().message,
            "not a hexadecimal digit at position 35 of the UUID");
}

TEST(Uuid, NilIsAllZero) {
  EXPECT_TRUE(uuid{}.is_nil());
  EXPECT_FALSE(new_id().is_nil());
}

TEST(Uuid, ProcessWideIdsAreUnique) {
  std::set<uuid> seen;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(seen.insert(new_id()).second);
}

}  // namespace
}  // namespace choir
