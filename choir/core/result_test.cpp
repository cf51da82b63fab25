#include "choir/core/result.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace choir {
namespace {

result<int> parse_positive(int v) {
  if (v <= 0) return make_error(core_errc::invalid_argument, "value must be positive, got " + std::to_string(v));
  return v;
}

result<int> doubled(int v) {
  CHOIR_TRY(int x, parse_positive(v));
  return x * 2;
}

result<void> check(int v) {
  CHOIR_CHECK(parse_positive(v));
  return {};
}

TEST(Result, HoldsAValue) {
  auto r = parse_positive(3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 3);
}

TEST(Result, HoldsAnErrorWithItsCodeAndMessage) {
  auto r = parse_positive(-1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, core_errc::invalid_argument);
  EXPECT_EQ(r.err().message, "value must be positive, got -1");
  EXPECT_EQ(r.err().describe(), "choir.core: invalid argument: value must be positive, got -1");
}

TEST(Result, TryPropagatesErrorsAndBindsValues) {
  EXPECT_EQ(*doubled(4), 8);
  EXPECT_EQ(doubled(0).err().code, core_errc::invalid_argument);
}

TEST(Result, VoidResultReportsSuccessOrError) {
  EXPECT_TRUE(check(1).ok());
  EXPECT_FALSE(check(-5).ok());
  EXPECT_EQ(check(-5).err().code, core_errc::invalid_argument);
}

TEST(Result, MoveOnlyValuesAreSupported) {
  result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  auto owned = std::move(r).value();
  EXPECT_EQ(*owned, 7);
}

TEST(Result, ErrorCodesOfDifferentLayersDoNotCompareEqual) {
  std::error_code core = core_errc::not_found;
  EXPECT_NE(core, std::make_error_code(std::errc::no_such_file_or_directory));
  EXPECT_STREQ(core.category().name(), "choir.core");
}

}  // namespace
}  // namespace choir
