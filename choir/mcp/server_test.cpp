#include "choir/mcp/server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "choir/mcp/jsonrpc.hpp"

namespace choir::mcp {
namespace {

class fake_tools final : public server_provider {
 public:
  std::vector<tool_descriptor> tools() override {
    std::vector<tool_descriptor> out;
    for (int i = 0; i < count; ++i) out.push_back({.name = "t" + std::to_string(i), .description = "tool"});
    out.push_back({.name = "echo",
                   .description = "say it back",
                   .input_schema = {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}},
                   .output_schema = {{"type", "object"}}});
    return out;
  }
  result<tool_result> call_tool(const std::string& name, const value& arguments) override {
    ++calls;
    if (name == "t0") return make_error(core_errc::invalid_argument, "refused by the kernel");
    if (!arguments.contains("text")) {
      return tool_result{.content = value::array({{{"type", "text"}, {"text", "text is required"}}}), .is_error = true};
    }
    return tool_result{.content = value::array({{{"type", "text"}, {"text", arguments["text"]}}}),
                       .structured = {{"said", arguments["text"]}}};
  }
  int count = 3;
  int calls = 0;
};

/// `take_response` of a message given as text.
bool take(server& s, const std::string& text) {
  rpc_failure failure;
  const auto message = parse_rpc(text, failure);
  return message && s.take_response(*message);
}

value ask(server& s, const std::string& message) {
  auto answer = s.handle(message);
  EXPECT_TRUE(answer) << message;
  return answer ? value::parse(*answer) : value();
}

TEST(McpServer, NegotiatesTheProtocolVersion) {
  fake_tools tools;
  server s(tools, {.name = "choir", .version = "0.1.0"});
  auto r = ask(
      s,
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})");
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "choir");
  EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
  EXPECT_EQ(s.version(), "2025-06-18");
  auto newer = ask(s, R"({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2099-01-01"}})");
  EXPECT_EQ(newer["result"]["protocolVersion"], "2025-11-25") << "an unknown version gets the newest spoken here";
  EXPECT_FALSE(s.handle(R"({"jsonrpc":"2.0","method":"notifications/initialized"})")) << "no answer to a notification";
}

TEST(McpServer, ListsToolsInPages) {
  fake_tools tools;
  tools.count = 5;
  server s(tools, {}, 4);
  auto first = ask(s, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  ASSERT_EQ(first["result"]["tools"].size(), 4u);
  ASSERT_TRUE(first["result"].contains("nextCursor"));
  auto second = ask(s, R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":)" +
                           first["result"]["nextCursor"].dump() + "}}");
  ASSERT_EQ(second["result"]["tools"].size(), 2u);
  EXPECT_FALSE(second["result"].contains("nextCursor"));
  EXPECT_EQ(second["result"]["tools"][1]["name"], "echo");
  EXPECT_EQ(second["result"]["tools"][1]["outputSchema"]["type"], "object");
  auto bad = ask(s, R"({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"zz"}})");
  EXPECT_EQ(bad["error"]["code"], rpc_code::invalid_params);
}

TEST(McpServer, CallsATool) {
  fake_tools tools;
  server s(tools, {});
  auto r =
      ask(s, R"({"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}})");
  EXPECT_EQ(r["id"], "c1");
  EXPECT_EQ(r["result"]["isError"], false);
  EXPECT_EQ(r["result"]["content"][0]["text"], "hi");
  EXPECT_EQ(r["result"]["structuredContent"]["said"], "hi");
}

TEST(McpServer, ToolFailuresAreResultsTheModelCanReadAndUnknownToolsAreProtocolErrors) {
  fake_tools tools;
  server s(tools, {});
  auto invalid = ask(s, R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}})");
  EXPECT_EQ(invalid["result"]["isError"], true);
  auto refused = ask(s, R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t0"}})");
  EXPECT_EQ(refused["result"]["isError"], true);
  EXPECT_EQ(refused["result"]["content"][0]["text"], "refused by the kernel");
  auto unknown = ask(s, R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nope"}})");
  EXPECT_EQ(unknown["error"]["code"], rpc_code::invalid_params);
  EXPECT_EQ(tools.calls, 2);
}

TEST(McpServer, AnswersPingLoggingAndUnknownMethods) {
  fake_tools tools;
  server s(tools, {});
  EXPECT_EQ(ask(s, R"({"jsonrpc":"2.0","id":1,"method":"ping"})")["result"], value::object());
  EXPECT_EQ(ask(s, R"({"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}})")["result"],
            value::object());
  EXPECT_EQ(
      ask(s, R"({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"loud"}})")["error"]["code"],
      rpc_code::invalid_params);
  EXPECT_EQ(ask(s, R"({"jsonrpc":"2.0","id":4,"method":"server/discover"})")["error"]["code"],
            rpc_code::method_not_found);
  EXPECT_EQ(ask(s, "{oops")["error"]["code"], rpc_code::parse_error);
}

class fake_library final : public server_provider {
 public:
  std::vector<tool_descriptor> tools() override { return {}; }
  result<tool_result> call_tool(const std::string&, const value&) override { return tool_result{}; }
  std::vector<resource_descriptor> resources() override {
    std::vector<resource_descriptor> out;
    for (int i = 0; i < 5; ++i) {
      out.push_back(
          {.uri = "x://doc/" + std::to_string(i), .name = "doc" + std::to_string(i), .mime_type = "text/plain"});
    }
    return out;
  }
  std::vector<resource_descriptor> resource_templates() override {
    return {{.uri = "x://doc/{n}", .name = "doc", .title = "A document", .description = "the nth"}};
  }
  result<std::vector<resource_content>> read_resource(const std::string& uri) override {
    if (uri.rfind("x://doc/", 0) != 0) return make_error(core_errc::not_found, "no " + uri);
    return std::vector<resource_content>{{.uri = uri, .mime_type = "text/plain", .text = "text of " + uri}};
  }
  std::vector<prompt_descriptor> prompts() override {
    return {
        {.name = "summarize", .description = "Summarize a document", .arguments = {{.name = "n", .required = true}}}};
  }
  result<prompt_result> get_prompt(const std::string&, const value& arguments) override {
    const std::string n = arguments["n"];
    if (n == "9") return make_error(core_errc::not_found, "no document 9");
    return prompt_result{.description = "about " + n,
                         .messages = {{.text = "Summarize this."},
                                      {.resource = resource_content{.uri = "x://doc/" + n, .text = "body"}}}};
  }
  completion complete(const value& ref, const std::string& argument, const std::string& prefix,
                      const value& known) override {
    last_ref = ref;
    last_known = known;
    completion out;
    if (argument != "n") return out;
    for (int i = 0; i < 150; ++i) {
      const std::string v = std::to_string(i);
      if (v.rfind(prefix, 0) == 0) out.values.push_back(v);
    }
    out.total = out.values.size();
    return out;
  }
  value last_ref;
  value last_known;
};

TEST(McpServer, ListsAndReadsResourcesAndTemplates) {
  fake_library lib;
  server s(lib, {}, 2);
  auto init = ask(s, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})");
  EXPECT_TRUE(init["result"]["capabilities"].contains("resources"));
  EXPECT_TRUE(init["result"]["capabilities"].contains("prompts"));
  EXPECT_TRUE(init["result"]["capabilities"].contains("completions"));

  std::vector<std::string> uris;
  value cursor;
  for (int page = 0; page < 5; ++page) {
    value params = value::object();
    if (!cursor.is_null()) params["cursor"] = cursor;
    auto r = ask(s, value{{"jsonrpc", "2.0"}, {"id", 2}, {"method", "resources/list"}, {"params", params}}.dump());
    for (const auto& e : r["result"]["resources"]) uris.push_back(e["uri"]);
    cursor = r["result"].value("nextCursor", value());
    if (cursor.is_null()) break;
  }
  EXPECT_EQ(uris.size(), 5u);
  EXPECT_EQ(uris.back(), "x://doc/4");
  auto bad = ask(s, R"({"jsonrpc":"2.0","id":3,"method":"resources/list","params":{"cursor":"99"}})");
  EXPECT_EQ(bad["error"]["code"], -32602);

  auto templates = ask(s, R"({"jsonrpc":"2.0","id":4,"method":"resources/templates/list"})");
  ASSERT_EQ(templates["result"]["resourceTemplates"].size(), 1u);
  EXPECT_EQ(templates["result"]["resourceTemplates"][0]["uriTemplate"], "x://doc/{n}");
  EXPECT_EQ(templates["result"]["resourceTemplates"][0]["title"], "A document");

  auto read = ask(s, R"({"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"x://doc/3"}})");
  ASSERT_EQ(read["result"]["contents"].size(), 1u);
  EXPECT_EQ(read["result"]["contents"][0]["text"], "text of x://doc/3");
  EXPECT_EQ(read["result"]["contents"][0]["mimeType"], "text/plain");
  auto missing = ask(s, R"({"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"y://other"}})");
  EXPECT_EQ(missing["error"]["code"], -32002);
  EXPECT_EQ(missing["error"]["data"]["uri"], "y://other");
  auto no_uri = ask(s, R"({"jsonrpc":"2.0","id":7,"method":"resources/read","params":{}})");
  EXPECT_EQ(no_uri["error"]["code"], -32602);
}

TEST(McpServer, GetsPromptsAndCompletesArguments) {
  fake_library lib;
  server s(lib, {});
  auto list = ask(s, R"({"jsonrpc":"2.0","id":1,"method":"prompts/list"})");
  ASSERT_EQ(list["result"]["prompts"].size(), 1u);
  EXPECT_EQ(list["result"]["prompts"][0]["arguments"][0], (value{{"name", "n"}, {"required", true}}));

  auto got =
      ask(s, R"({"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"summarize","arguments":{"n":"2"}}})");
  ASSERT_EQ(got["result"]["messages"].size(), 2u) << got.dump();
  EXPECT_EQ(got["result"]["description"], "about 2");
  EXPECT_EQ(got["result"]["messages"][0]["content"], (value{{"type", "text"}, {"text", "Summarize this."}}));
  EXPECT_EQ(got["result"]["messages"][1]["content"]["type"], "resource");
  EXPECT_EQ(got["result"]["messages"][1]["content"]["resource"]["uri"], "x://doc/2");

  for (const char* wrong :
       {R"({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"summarize"}})",
        R"({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"summarize","arguments":{"n":2}}})",
        R"({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"other","arguments":{"n":"2"}}})",
        R"({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"summarize","arguments":{"n":"9"}}})"}) {
    EXPECT_EQ(ask(s, wrong)["error"]["code"], -32602) << wrong;
  }

  auto done = ask(
      s,
      R"({"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"summarize"},"argument":{"name":"n","value":"1"},"context":{"arguments":{"x":"y"}}}})");
  const auto& c = done["result"]["completion"];
  EXPECT_EQ(c["values"].size(), 61u);  // 1, 10–19, 100–149
  EXPECT_EQ(c["total"], 61);
  EXPECT_EQ(c["hasMore"], false);
  EXPECT_EQ(lib.last_known, (value{{"x", "y"}}));
  auto many = ask(
      s,
      R"({"jsonrpc":"2.0","id":5,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"x://doc/{n}"},"argument":{"name":"n","value":""}}})");
  EXPECT_EQ(many["result"]["completion"]["values"].size(), 100u) << "at most 100 values per answer";
  EXPECT_EQ(many["result"]["completion"]["total"], 150);
  EXPECT_EQ(many["result"]["completion"]["hasMore"], true);
  EXPECT_EQ(lib.last_ref["uri"], "x://doc/{n}");
  auto bad_ref = ask(
      s,
      R"({"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/tool"},"argument":{"name":"n"}}})");
  EXPECT_EQ(bad_ref["error"]["code"], -32602);
}

/// A tool that reports progress and asks the person at the client.
class asking_tool final : public server_provider {
 public:
  std::vector<tool_descriptor> tools() override { return {{.name = "ask", .description = "asks"}}; }
  result<tool_result> call_tool(const std::string&, const value&) override {
    return make_error(core_errc::invalid_argument, "called without a context");
  }
  result<tool_result> call_tool(const std::string&, const value&, const call_context& context) override {
    if (context.progress) {
      context.progress(1, 2, "half");
      context.progress(2, 2, "done");
    }
    if (!context.elicit) return tool_result{.content = value::array({{{"type", "text"}, {"text", "nobody to ask"}}})};
    auto answer = context.elicit("Name?", {{"type", "object"}, {"properties", {{"name", {{"type", "string"}}}}}});
    if (!answer.ok()) return tool_result{.content = value::array({{{"type", "text"}, {"text", answer.err().message}}})};
    return tool_result{.content = value::array({{{"type", "text"}, {"text", "hello " + answer->dump()}}})};
  }
};

/// What a server sends its client (from any thread), kept in order, with a wait for it.
struct client_inbox {
  explicit client_inbox(server& s) {
    s.set_outbound([this](const std::string& m) {
      std::lock_guard lock(mutex);
      sent.push_back(value::parse(m));
      arrived.notify_all();
      return true;
    });
  }
  /// Waits up to 10 s until `n` messages have been sent; the n-th of them, or null.
  value wait_for(std::size_t n) {
    std::unique_lock lock(mutex);
    if (!arrived.wait_for(lock, std::chrono::seconds(10), [&] { return sent.size() >= n; })) return {};
    return sent[n - 1];
  }
  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<value> sent;
};

TEST(McpServer, ReportsProgressAndAsksTheClientWhenItCan) {
  asking_tool tool;
  server s(tool, {});
  client_inbox inbox(s);
  auto& sent = inbox.sent;
  const auto call = [&](int id) {
    return value{{"jsonrpc", "2.0"},
                 {"id", id},
                 {"method", "tools/call"},
                 {"params", {{"name", "ask"}, {"_meta", {{"progressToken", "tok"}}}}}}
        .dump();
  };
  // A client without the elicitation capability is not asked; progress still flows.
  (void)ask(s, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}})");
  auto unasked = ask(s, call(2));
  EXPECT_EQ(unasked["result"]["content"][0]["text"], "nobody to ask");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0]["method"], "notifications/progress");
  EXPECT_EQ(sent[0]["params"],
            (value{{"progressToken", "tok"}, {"progress", 1.0}, {"total", 2.0}, {"message", "half"}}));
  EXPECT_EQ(sent[1]["params"]["progress"], 2.0);

  // With it: the request goes out, the call waits, the client's answer comes back to it.
  (void)ask(s, R"({"jsonrpc":"2.0","id":3,"method":"initialize","params":{"capabilities":{"elicitation":{}}}})");
  sent.clear();
  std::optional<std::string> answered;
  std::thread caller([&] { answered = s.handle(call(4)); });
  const value request = inbox.wait_for(3);
  ASSERT_FALSE(request.is_null());
  EXPECT_EQ(request["method"], "elicitation/create");
  EXPECT_EQ(request["params"]["message"], "Name?");
  EXPECT_TRUE(take(s, value{{"jsonrpc", "2.0"},
                            {"id", request["id"]},
                            {"result", {{"action", "accept"}, {"content", {{"name", "Ada"}}}}}}
                          .dump()));
  caller.join();
  ASSERT_TRUE(answered);
  EXPECT_EQ(value::parse(*answered)["result"]["content"][0]["text"],
            R"(hello {"action":"accept","content":{"name":"Ada"}})");
  EXPECT_TRUE(take(s, R"({"jsonrpc":"2.0","id":"choir-99","result":{}})")) << "an unknown answer is dropped";
  EXPECT_FALSE(take(s, R"({"jsonrpc":"2.0","id":5,"method":"ping"})")) << "a request is not an answer";

  // The client's input ends while a call waits for it: the wait fails, the call still answers.
  sent.clear();
  std::thread waiting([&] { answered = s.handle(call(6)); });
  ASSERT_FALSE(inbox.wait_for(3).is_null());
  s.close_outbound();
  waiting.join();
  EXPECT_EQ(value::parse(*answered)["result"]["content"][0]["text"], "the client has gone");
  sent.clear();
  EXPECT_EQ(ask(s, call(7))["result"]["content"][0]["text"], "nobody to ask") << "not asked once it cannot answer";
  EXPECT_EQ(sent.size(), 2u) << "progress still goes out";
}

TEST(McpServer, AsksOnlyWhereTheAnswerCanComeBack) {
  asking_tool tool;
  server s(tool, {});
  bool open = true;
  bool askable = false;
  std::vector<std::string> sent;
  s.set_outbound(
      [&](const std::string& m) {
        if (open) sent.push_back(m);
        return open;
      },
      [&] { return askable; });
  (void)ask(s, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{"elicitation":{}}}})");
  const std::string call = R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ask"}})";
  // A call whose thread could not read the answer is not asked.
  EXPECT_EQ(ask(s, call)["result"]["content"][0]["text"], "nobody to ask");
  EXPECT_TRUE(sent.empty());
  // A stream that closed fails the request at once, instead of waiting for an answer.
  askable = true;
  open = false;
  EXPECT_NE(ask(s, call)["result"]["content"][0]["text"].get<std::string>().find("its stream has closed"),
            std::string::npos);
}

/// A tool that asks the client's model, and says what it could do.
class sampling_tool final : public server_provider {
 public:
  std::vector<tool_descriptor> tools() override { return {{.name = "think", .description = "samples"}}; }
  result<tool_result> call_tool(const std::string&, const value&) override { return tool_result{}; }
  result<tool_result> call_tool(const std::string&, const value&, const call_context& context) override {
    const auto say = [](const std::string& text) {
      return tool_result{.content = value::array({{{"type", "text"}, {"text", text}}})};
    };
    if (!context.sample) return say("cannot sample");
    auto answer = context.sample(
        {{"messages", value::array({{{"role", "user"}, {"content", {{"type", "text"}, {"text", "hi"}}}}})},
         {"maxTokens", 10}});
    if (!answer.ok()) return say(answer.err().message);
    return say(std::string(context.sample_with_tools ? "tools " : "") +
               (*answer)["content"]["text"].get<std::string>());
  }
};

TEST(McpServer, SamplesTheClientsModelOnlyWhenItDeclaredSampling) {
  sampling_tool tool;
  server s(tool, {});
  client_inbox inbox(s);
  auto& sent = inbox.sent;
  const std::string call = R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"think"}})";
  (void)ask(s, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{"elicitation":{}}}})");
  EXPECT_EQ(ask(s, call)["result"]["content"][0]["text"], "cannot sample");
  EXPECT_TRUE(sent.empty());

  // Declared (with tools): the request goes out and the client's answer — or refusal — comes back.
  (void)ask(s, R"({"jsonrpc":"2.0","id":3,"method":"initialize","params":{"capabilities":{"sampling":{"tools":{}}}}})");
  for (const bool refuse : {false, true}) {
    std::optional<std::string> answered;
    std::thread caller([&] { answered = s.handle(call); });
    const value request = inbox.wait_for(refuse ? 2 : 1);
    ASSERT_FALSE(request.is_null());
    EXPECT_EQ(request["method"], "sampling/createMessage");
    EXPECT_EQ(request["params"]["maxTokens"], 10);
    const value reply =
        refuse ? value{{"jsonrpc", "2.0"}, {"id", request["id"]}, {"error", {{"code", -1}, {"message", "declined"}}}}
               : value{{"jsonrpc", "2.0"},
                       {"id", request["id"]},
                       {"result", {{"role", "assistant"}, {"content", {{"type", "text"}, {"text", "hello"}}}}}};
    EXPECT_TRUE(take(s, reply.dump()));
    caller.join();
    ASSERT_TRUE(answered);
    EXPECT_EQ(value::parse(*answered)["result"]["content"][0]["text"],
              refuse ? "the client refused: declined" : "tools hello");
  }
}

/// A tool that logs one message at each level it is given.
class logging_tool final : public server_provider {
 public:
  std::vector<tool_descriptor> tools() override { return {{.name = "log", .description = "logs"}}; }
  result<tool_result> call_tool(const std::string&, const value&) override { return tool_result{}; }
  result<tool_result> call_tool(const std::string&, const value& arguments, const call_context& context) override {
    for (const auto& level : arguments["levels"]) {
      context.log(level.get<std::string>(), "test", {{"message", "at " + level.get<std::string>()}});
    }
    return tool_result{};
  }
};

TEST(McpServer, LogsToTheClientFromTheLevelItSet) {
  logging_tool tool;
  server s(tool, {});
  client_inbox inbox(s);
  (void)ask(s, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})");
  const std::string call =
      R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"log","arguments":{"levels":["debug","info","error"]}}})";
  (void)ask(s, call);  // `info` until the client says otherwise
  ASSERT_EQ(inbox.sent.size(), 2U);
  EXPECT_EQ(inbox.sent[0], value::parse(R"({"jsonrpc":"2.0","method":"notifications/message",
      "params":{"level":"info","logger":"test","data":{"message":"at info"}}})"));
  EXPECT_EQ(inbox.sent[1]["params"]["level"], "error");

  inbox.sent.clear();
  EXPECT_EQ(ask(s, R"({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"warning"}})")["result"],
            value::object());
  (void)ask(s, call);
  ASSERT_EQ(inbox.sent.size(), 1U);
  EXPECT_EQ(inbox.sent[0]["params"]["level"], "error");
  inbox.sent.clear();
  (void)ask(s, R"({"jsonrpc":"2.0","id":4,"method":"logging/setLevel","params":{"level":"debug"}})");
  (void)ask(s, call);
  EXPECT_EQ(inbox.sent.size(), 3U);
  EXPECT_EQ(
      ask(s, R"({"jsonrpc":"2.0","id":5,"method":"logging/setLevel","params":{"level":"loud"}})")["error"]["code"],
      -32602);
}

/// A tool that works until the client cancels it.
class endless_tool final : public server_provider {
 public:
  std::vector<tool_descriptor> tools() override { return {{.name = "wait", .description = "waits"}}; }
  result<tool_result> call_tool(const std::string&, const value&) override { return tool_result{}; }
  result<tool_result> call_tool(const std::string&, const value&, const call_context& context) override {
    started = true;
    while (!context.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return tool_result{.content = value::array({{{"type", "text"}, {"text", "stopped"}}})};
  }
  std::atomic<bool> started{false};
};

TEST(McpServer, ACancelledCallIsToldAndGetsNoAnswer) {
  endless_tool tool;
  server s(tool, {});
  (void)ask(s, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})");
  EXPECT_FALSE(take(s, R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"x"}})"))
      << "no such call: left to `handle`, which ignores it";
  std::optional<std::string> answered = "not yet";
  std::thread caller(
      [&] { answered = s.handle(R"({"jsonrpc":"2.0","id":"c-7","method":"tools/call","params":{"name":"wait"}})"); });
  while (!tool.started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(take(s, R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}})"))
      << "7 is not \"c-7\"";
  EXPECT_TRUE(
      take(s, R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c-7","reason":"bored"}})"));
  caller.join();
  EXPECT_FALSE(answered.has_value()) << *answered;
  // An integer id is matched as well.
  tool.started = false;
  std::thread again(
      [&] { answered = s.handle(R"({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"wait"}})"); });
  while (!tool.started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(take(s, R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":8}})"));
  again.join();
  EXPECT_FALSE(answered.has_value());
}

class watched_docs final : public server_provider {
 public:
  std::vector<tool_descriptor> tools() override { return {}; }
  result<tool_result> call_tool(const std::string&, const value&) override { return tool_result{}; }
  bool can_subscribe() const override { return true; }
  result<void> subscribe(const std::string& uri, std::function<void()> updated) override {
    if (uri != "x://doc") return make_error(core_errc::not_found, "no " + uri);
    watchers[uri] = std::move(updated);
    return {};
  }
  void unsubscribe(const std::string& uri) override { watchers.erase(uri); }
  std::map<std::string, std::function<void()>> watchers;
};

TEST(McpServer, SubscriptionsSendUpdatesOnlyWhereTheTransportCarriesThem) {
  watched_docs docs;
  std::vector<value> sent;
  {
    server plain(docs, {});  // no channel to the client (HTTP today)
    auto init = ask(plain, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})");
    EXPECT_EQ(init["result"]["capabilities"]["resources"]["subscribe"], false);
    auto refused = ask(plain, R"({"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"x://doc"}})");
    EXPECT_EQ(refused["error"]["code"], -32601);
    EXPECT_TRUE(docs.watchers.empty());

    server s(docs, {});
    s.set_outbound([&](const std::string& m) {
      sent.push_back(value::parse(m));
      return true;
    });
    init = ask(s, R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})");
    EXPECT_EQ(init["result"]["capabilities"]["resources"]["subscribe"], true);
    auto missing = ask(s, R"({"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"x://other"}})");
    EXPECT_EQ(missing["error"]["code"], -32002);
    auto no_uri = ask(s, R"({"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{}})");
    EXPECT_EQ(no_uri["error"]["code"], -32602);
    auto ok = ask(s, R"({"jsonrpc":"2.0","id":4,"method":"resources/subscribe","params":{"uri":"x://doc"}})");
    EXPECT_EQ(ok["result"], value::object());
    ASSERT_EQ(docs.watchers.count("x://doc"), 1u);
    docs.watchers["x://doc"]();
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(
        sent[0],
        (value{{"jsonrpc", "2.0"}, {"method", "notifications/resources/updated"}, {"params", {{"uri", "x://doc"}}}}));
    auto off = ask(s, R"({"jsonrpc":"2.0","id":5,"method":"resources/unsubscribe","params":{"uri":"x://doc"}})");
    EXPECT_EQ(off["result"], value::object());
    EXPECT_TRUE(docs.watchers.empty());
    (void)ask(s, R"({"jsonrpc":"2.0","id":6,"method":"resources/subscribe","params":{"uri":"x://doc"}})");
    EXPECT_EQ(docs.watchers.size(), 1u);
  }
  EXPECT_TRUE(docs.watchers.empty()) << "a server that goes ends its client's subscriptions";
}

TEST(McpServer, ServesNewlineDelimitedMessages) {
  fake_tools tools;
  server s(tools, {});
  std::istringstream in(
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n\n"
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
      "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
  std::ostringstream out;
  serve_lines(s, in, out);
  EXPECT_EQ(out.str(), "{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{}}\n{\"id\":2,\"jsonrpc\":\"2.0\",\"result\":{}}\n");
}

}  // namespace
}  // namespace choir::mcp
