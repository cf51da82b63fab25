#include "choir/mcp/jsonrpc.hpp"

#include <gtest/gtest.h>

namespace choir::mcp {
namespace {

TEST(JsonRpc, ReadsRequestsNotificationsAndResponses) {
  rpc_failure f;
  auto req = parse_rpc(R"({"jsonrpc":"2.0","id":7,"method":"tools/list"})", f);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->type, rpc_message::kind::request);
  EXPECT_EQ(req->id, 7);
  EXPECT_TRUE(req->params.is_object());
  auto note = parse_rpc(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", f);
  ASSERT_TRUE(note);
  EXPECT_EQ(note->type, rpc_message::kind::notification);
  auto res = parse_rpc(R"({"jsonrpc":"2.0","id":"a","result":{}})", f);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->type, rpc_message::kind::response);
  auto err = parse_rpc(R"({"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"no"}})", f);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error["code"], -1);
}

TEST(JsonRpc, SaysHowToAnswerABadMessage) {
  struct bad_case {
    const char* text;
    int code;
    bool has_id;
  };
  for (const auto& c :
       {bad_case{"not json", rpc_code::parse_error, false},
        bad_case{R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])", rpc_code::invalid_request, false},
        bad_case{R"("hello")", rpc_code::invalid_request, false},
        bad_case{R"({"jsonrpc":"1.0","id":1,"method":"ping"})", rpc_code::invalid_request, true},
        bad_case{R"({"jsonrpc":"2.0","id":null,"method":"ping"})", rpc_code::invalid_request, false},
        bad_case{R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})", rpc_code::invalid_request, false},
        bad_case{R"({"jsonrpc":"2.0","id":1,"method":""})", rpc_code::invalid_request, true},
        bad_case{R"({"jsonrpc":"2.0","id":1,"method":"x","params":[1]})", rpc_code::invalid_params, true},
        bad_case{R"({"jsonrpc":"2.0","id":1})", rpc_code::invalid_request, true},
        bad_case{R"({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":""}})", rpc_code::invalid_request,
                 true},
        bad_case{R"({"jsonrpc":"2.0","id":1,"error":{"code":"x","message":""}})", rpc_code::invalid_request, true}}) {
    rpc_failure f;
    EXPECT_FALSE(parse_rpc(c.text, f)) << c.text;
    EXPECT_EQ(f.code, c.code) << c.text;
    EXPECT_EQ(!f.id.is_null(), c.has_id) << c.text;
  }
}

TEST(JsonRpc, RefusesAnOversizedMessageBeforeParsingIt) {
  rpc_failure f;
  EXPECT_FALSE(parse_rpc(std::string(100, ' '), f, 50));
  EXPECT_EQ(f.code, rpc_code::invalid_request);
}

TEST(JsonRpc, WritesMessages) {
  EXPECT_EQ(rpc_result(1, value::object()), R"({"id":1,"jsonrpc":"2.0","result":{}})");
  EXPECT_EQ(rpc_error(nullptr, -32700, "bad"),
            R"({"error":{"code":-32700,"message":"bad"},"id":null,"jsonrpc":"2.0"})");
  EXPECT_EQ(rpc_notification("x", {{"a", 1}}), R"({"jsonrpc":"2.0","method":"x","params":{"a":1}})");
}

}  // namespace
}  // namespace choir::mcp
