#include "choir/net/http_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "choir/net/test_http_server.hpp"

namespace choir::net {
namespace {

using testing::canned_reply;
using testing::received_request;
using testing::test_http_server;

TEST(HttpClient, SendsTheRequestAndReadsTheAnswer) {
  test_http_server server([](const received_request& r) {
    return canned_reply{.status = 201, .headers = {{"X-Echo", r.header("x-test")}}, .chunks = {"got " + r.body}};
  });
  auto response = http_call(
      {.method = "POST", .url = server.url("/v1/things?q=1"), .headers = {{"X-Test", "yes"}}, .body = "hello"});
  ASSERT_TRUE(response.ok()) << response.err().message;
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, "got hello");
  EXPECT_EQ(response->header("x-echo"), "yes");
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/v1/things?q=1");
}

http_request kept(const std::string& url, std::string body) {
  http_request r{.method = "POST", .url = url, .body = std::move(body)};
  r.keep_alive = true;
  return r;
}

TEST(HttpClient, KeepsAConnectionForTheNextRequestThatAsks) {
  test_http_server server([](const received_request& r) { return canned_reply{.chunks = {"got " + r.body}}; },
                          /*keep_alive=*/true);
  for (const char* body : {"one", "two", "three"}) {
    auto answer = http_call(kept(server.url("/v1/chat"), body));
    ASSERT_TRUE(answer.ok()) << answer.err().message;
    EXPECT_EQ(answer->body, std::string("got ") + body);
  }
  EXPECT_EQ(server.connections(), 1);
  // Streamed answers too, read to their end.
  std::string streamed;
  ASSERT_TRUE(http_call(kept(server.url("/v1/chat"), "four"), [&](const http_response&, std::string_view chunk) {
                streamed += chunk;
                return true;
              }).ok());
  EXPECT_EQ(streamed, "got four");
  EXPECT_EQ(server.connections(), 1);
  // A request that does not ask gets a connection of its own, closed after it.
  ASSERT_TRUE(http_call({.method = "POST", .url = server.url("/v1/chat"), .body = "five"}).ok());
  EXPECT_EQ(server.connections(), 2);
  ASSERT_TRUE(http_call(kept(server.url("/v1/chat"), "six")).ok());
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.requests().size(), 6U);
}

TEST(HttpClient, AKeptConnectionTheServerClosedIsReplaced) {
  std::atomic<int> n{0};
  test_http_server server(
      [&](const received_request& r) { return canned_reply{.chunks = {"got " + r.body}, .close_after = ++n == 1}; },
      /*keep_alive=*/true);
  ASSERT_TRUE(http_call(kept(server.url("/"), "one")).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the server has closed its side
  auto second = http_call(kept(server.url("/"), "two"));
  ASSERT_TRUE(second.ok()) << second.err().message;
  EXPECT_EQ(second->body, "got two");
  EXPECT_EQ(server.connections(), 2);
  ASSERT_EQ(server.requests().size(), 2U);  // sent once to the server that answers
  auto third = http_call(kept(server.url("/"), "three"));
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(server.connections(), 2);  // the new one is kept
}

TEST(HttpClient, StreamsAChunkedBodyToTheSink) {
  test_http_server server([](const received_request&) { return canned_reply{.chunks = {"one ", "two ", "three"}}; });
  std::string got;
  int status_seen = 0;
  auto response = http_call({.url = server.url("/")}, [&](const http_response& head, std::string_view chunk) {
    status_seen = head.status;
    got += chunk;
    return true;
  });
  ASSERT_TRUE(response.ok()) << response.err().message;
  EXPECT_EQ(status_seen, 200);
  EXPECT_EQ(got, "one two three");
  EXPECT_TRUE(response->body.empty());
}

TEST(HttpClient, HandsOverEachPieceBeforeTheNextIsSent) {
  // The server sends its second piece only once the client has seen the first: a stream whose
  // reader waits for a full buffer would never see it (server-sent events that ask for an answer).
  std::promise<void> first_seen;
  auto seen = first_seen.get_future().share();
  std::atomic<bool> waited_ok{false};
  test_http_server server([&](const received_request&) {
    canned_reply reply{.headers = {{"Content-Type", "text/event-stream"}}, .chunks = {"data: 1\n\n", "data: 2\n\n"}};
    reply.between_chunks = [&, seen] {
      waited_ok = seen.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    };
    return reply;
  });
  std::string got;
  bool told = false;
  auto response = http_call({.url = server.url("/events")}, [&](const http_response&, std::string_view piece) {
    got.append(piece);
    if (!told) {
      told = true;
      first_seen.set_value();
    }
    return true;
  });
  ASSERT_TRUE(response.ok()) << response.err().message;
  EXPECT_TRUE(waited_ok.load());
  EXPECT_EQ(got, "data: 1\n\ndata: 2\n\n");
}

TEST(HttpClient, AnotherThreadCancelsALongStream) {
  test_http_server server([](const received_request&) { return canned_reply{.hang = true}; });
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel = true;
  });
  auto response = http_call({.url = server.url("/"), .timeout = std::chrono::seconds(30), .cancel = &cancel});
  canceller.join();
  ASSERT_FALSE(response.ok());
  EXPECT_NE(response.err().message.find("cancelled"), std::string::npos) << response.err().message;
}

TEST(HttpClient, GivesUpAfterTheTimeout) {
  test_http_server server([](const received_request&) { return canned_reply{.hang = true}; });
  auto response = http_call({.url = server.url("/"), .timeout = std::chrono::milliseconds(200)});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.err().code, core_errc::timed_out);
}

TEST(HttpClient, RefusesABodyOverTheLimit) {
  test_http_server server([](const received_request&) { return canned_reply{.chunks = {std::string(5000, 'x')}}; });
  auto response = http_call({.url = server.url("/"), .max_body_bytes = 1000});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.err().code, core_errc::invalid_argument);
}

TEST(HttpClient, ReportsARefusedConnection) {
  std::string url;
  {
    test_http_server gone([](const received_request&) { return canned_reply{}; });
    url = gone.url("/");
  }
  auto response = http_call({.url = url, .timeout = std::chrono::milliseconds(2000)});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.err().code, core_errc::io_error);
}

TEST(HttpClient, ParsesUrls) {
  auto u = parse_url("https://api.example.com/v1/chat?x=1#frag");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "api.example.com");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/v1/chat?x=1");
  auto v6 = parse_url("http://[::1]:8080");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "8080");
  EXPECT_EQ(v6->target, "/");
  for (const char* bad : {"ftp://x/", "http://", "http://user:pw@host/", "http://host:99999/", "http://host:x/",
                          "no scheme", "http://ho st/", "http://host/a b"}) {
    EXPECT_FALSE(parse_url(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace choir::net
