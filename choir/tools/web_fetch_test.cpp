#include <gtest/gtest.h>

#include "choir/net/test_http_server.hpp"
#include "choir/tools/builtin.hpp"

namespace choir::tools {
namespace {

using net::testing::canned_reply;
using net::testing::received_request;
using net::testing::test_http_server;

TEST(WebFetch, RefusesLoopbackPrivateLinkLocalAndTheirDisguises) {
  for (const char* refused :
       {"127.0.0.1", "127.1.2.3", "10.0.0.7", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "not-an-address"}) {
    EXPECT_FALSE(refused_address(refused).empty()) << refused;
  }
  for (const char* allowed : {"93.184.216.34", "8.8.8.8", "172.32.0.1", "192.169.0.1", "2606:4700::1111"}) {
    EXPECT_EQ(refused_address(allowed), "") << allowed;
  }
}

class WebFetchTest : public ::testing::Test {
 protected:
  result<value> fetch(const value& arguments, std::vector<std::string> patterns = {},
                      std::function<result<void>(const std::string&)> recheck = {}) {
    tool_context context{.workspace = ::testing::TempDir()};
    context.patterns = std::move(patterns);
    context.recheck = std::move(recheck);
    return registry_.call("web.fetch", arguments, context);
  }
  void SetUp() override { ASSERT_TRUE(registry_.add(web_tool({.max_bytes = 64, .max_redirects = 3})).ok()); }
  tool_registry registry_;
};

TEST_F(WebFetchTest, ALoopbackServerIsRefusedUnlessAPatternNamesIt) {
  test_http_server server([](const received_request&) {
    return canned_reply{.headers = {{"Content-Type", "text/plain"}}, .chunks = {"hello from the server"}};
  });
  auto refused = fetch({{"url", server.url("/page")}});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, tool_errc::forbidden_address);
  EXPECT_NE(refused.err().message.find("loopback"), std::string::npos) << refused.err().message;
  EXPECT_TRUE(server.requests().empty());  // nothing was sent

  // A wildcard does not name it; the host itself does.
  EXPECT_FALSE(fetch({{"url", server.url("/page")}}, {"http://*/**"}).ok());
  auto named = fetch({{"url", server.url("/page")}}, {"http://127.0.0.1:*/**"});
  ASSERT_TRUE(named.ok()) << named.err().message;
  EXPECT_EQ((*named)["status"], 200);
  EXPECT_EQ((*named)["content"], "hello from the server");
  EXPECT_EQ((*named)["content_type"], "text/plain");
  EXPECT_EQ((*named)["truncated"], false);
}

TEST_F(WebFetchTest, LongAnswersAreCutAndArgumentsChecked) {
  test_http_server server([](const received_request&) {
    return canned_reply{.chunks = {std::string(50, 'a'), std::string(50, 'b')}};
  });
  auto cut = fetch({{"url", server.url("/big")}}, {"http://127.0.0.1/**"});
  ASSERT_TRUE(cut.ok()) << cut.err().message;
  EXPECT_EQ((*cut)["content"].get<std::string>().size(), 64u);
  EXPECT_EQ((*cut)["truncated"], true);
  auto smaller = fetch({{"url", server.url("/big")}, {"max_bytes", 10}}, {"http://127.0.0.1/**"});
  ASSERT_TRUE(smaller.ok());
  EXPECT_EQ((*smaller)["content"], "aaaaaaaaaa");
  for (const value& bad : {value{{"url", "file:///etc/passwd"}}, value{{"url", "ftp://example.com/"}}, value::object(),
                           value{{"url", "http://x/"}, {"method", "POST"}}}) {
    auto r = fetch(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.err().code, tool_errc::invalid_arguments) << bad;
  }
}

TEST_F(WebFetchTest, EveryRedirectIsCheckedAgainAndTheirNumberBounded) {
  test_http_server server([](const received_request& r) {
    if (r.target == "/start")
      return canned_reply{.status = 302, .headers = {{"Location", "/next?x=1"}}, .chunks = {""}};
    if (r.target == "/next?x=1") return canned_reply{.status = 301, .headers = {{"Location", "end"}}, .chunks = {""}};
    if (r.target == "/end") return canned_reply{.chunks = {"arrived"}};
    if (r.target == "/loop") return canned_reply{.status = 307, .headers = {{"Location", "/loop"}}, .chunks = {""}};
    // Off to a place the capability does not name: the metadata address.
    return canned_reply{.status = 302, .headers = {{"Location", "http://169.254.169.254/latest"}}, .chunks = {""}};
  });
  const std::vector<std::string> patterns = {"http://127.0.0.1/**"};
  std::vector<std::string> checked;
  auto record = [&](const std::string& url) -> result<void> {
    checked.push_back(url);
    if (url.find("169.254") != std::string::npos) return make_error(core_errc::invalid_argument, "not allowed");
    return {};
  };
  auto followed = fetch({{"url", server.url("/start")}}, patterns, record);
  ASSERT_TRUE(followed.ok()) << followed.err().message;
  EXPECT_EQ((*followed)["content"], "arrived");
  EXPECT_EQ((*followed)["url"], server.url("/end"));
  EXPECT_EQ((*followed)["redirects"].size(), 2u);
  EXPECT_EQ(checked, (std::vector<std::string>{server.url("/next?x=1"), server.url("/end")}));

  auto away = fetch({{"url", server.url("/elsewhere")}}, patterns, record);
  ASSERT_FALSE(away.ok());
  EXPECT_NE(away.err().message.find("169.254.169.254"), std::string::npos) << away.err().message;
  // Even with no gate to ask, the address itself is refused.
  auto unchecked = fetch({{"url", server.url("/elsewhere")}}, patterns);
  ASSERT_FALSE(unchecked.ok());
  EXPECT_EQ(unchecked.err().code, tool_errc::forbidden_address);

  auto loop = fetch({{"url", server.url("/loop")}}, patterns);
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.err().code, tool_errc::limit_exceeded);
}

}  // namespace
}  // namespace choir::tools
