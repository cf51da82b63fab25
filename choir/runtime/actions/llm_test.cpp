#include "choir/runtime/actions/llm.hpp"
#include "choir/runtime/actions/exec.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "choir/models/gateway.hpp"
#include "choir/models/scripted.hpp"
#include "choir/net/test_http_server.hpp"
#include "choir/runtime/agent_run.hpp"
#include "choir/runtime/test_kernel.hpp"
#include "choir/store/synchronized.hpp"
#include "choir/tools/builtin.hpp"

namespace choir::runtime {
namespace {

namespace fs = std::filesystem;

constexpr const char* policy_text = R"(apiVersion: agentos/v0.2
kind: Policy
tenants:
  acme:
    roles:
      writer: {grants: [fs.read, fs.write, fs.list, shell.exec, {name: exec, allow: ["sh **"]}, verify, web.fetch]}
    users:
      ada: {roles: [writer]}
)";

/// The scripted model every test here talks to.
constexpr const char* script = R"(kind: ScriptedModel
rules:
  - when: {user_contains: "note:", turn: 0}
    tool_calls: [{name: fs.write, arguments: {path: notes/today.txt, content: "{{user}}"}}]
  - when: {user_contains: "sneak", turn: 0}
    tool_calls: [{name: fs.write, arguments: {path: out/escape.txt, content: x}}]
  - when: {user_contains: "sloppy", turn: 0}
    tool_calls: [{name: fs.write, arguments: {file: x}}]
  - when: {user_contains: "shell", turn: 0}
    tool_calls: [{name: shell.exec, arguments: {command: "echo hi"}}]
  - when: {last_role: tool}
    reply: "tool said: {{tool_result}}"
  - when: {user_contains: "bad json"}
    reply: "not json at all"
  - when: {user_contains: "json"}
    json: {title: Owls, pages: 3}
  - reply: "echo: {{user}}"
)";

std::string agent_text(const std::string& contract_extra, const std::string& action) {
  return "apiVersion: agentos/v0.2\nkind: AgentContract\nname: writer\nclass: {latency: SRT}\n"
         "capabilities: [fs.write, fs.read]\nmodelPolicy: {allow: [local/8B]}\n" +
         contract_extra +
         "---\napiVersion: agentos/v0.2\nkind: Graph\nname: writer\nentrypoint: think\n"
         "state: {request: '', messages: []}\nactions:\n  think: " +
         action + "\n";
}

class Llm : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = test_support::test_kernel::make(
        std::string("llm-") + ::testing::UnitTest::GetInstance()->current_test_info()->name(), policy_text,
        {"local/8B"});
    ASSERT_TRUE(k.ok()) << k.err().message;
    dir_ = k->dir;
    store_ = k->store;
    gate_ = k->gate;
    auto models = std::make_shared<models::gateway>();
    models->add({.alias = "local/8B", .backend = models::scripted_from_yaml(script, "script.yaml").value()});
    auto tools = std::make_shared<tools::tool_registry>();
    ASSERT_TRUE(tools::add_builtin_tools(*tools).ok());
    services_ = std::make_shared<action_services>();
    services_->store = store_;
    services_->gate = gate_;
    services_->models = models;
    services_->tools = tools;
    services_->workspaces = dir_ / "workspaces";
  }
  void TearDown() override {
    services_.reset();
    gate_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  /// Runs the one-action agent to its halt with `request` in state.
  result<graph::run_outcome> run(const std::string& text, const std::string& request,
                                 const std::string& run_id = "r1") {
    auto agent = load_agent(text, "writer.yaml", runtime_registry(services_));
    if (!agent.ok()) return std::move(agent).err();
    run_hosting hosting;
    hosting.gate = gate_;
    CHOIR_TRY(
        auto app,
        start_run(*store_, **agent,
                  run_start{.run_id = run_id, .who = {"acme", "ada"}, .initial = {{"request", request}}}, hosting));
    auto outcome = app->run();
    if (outcome.ok()) final_ = app->current_state().to_json();
    return outcome;
  }

  std::vector<value> audit_entries(const std::string& kind) {
    std::vector<value> out;
    EXPECT_TRUE(store_
                    ->scan_audit(1,
                                 [&](const store::audit_view& r) {
                                   value e = value::parse(r.entry);
                                   if (e.value("kind", "") == kind) out.push_back(std::move(e));
                                   return true;
                                 })
                    .ok());
    return out;
  }

  fs::path workspace() const { return dir_ / "workspaces" / "acme" / "writer"; }

  fs::path dir_;
  std::shared_ptr<store::event_store> store_;
  std::shared_ptr<gate> gate_;
  std::shared_ptr<action_services> services_;
  value final_;
};

constexpr const char* loop_action =
    "{type: llm, system: You keep notes., prompt: '{{request}}', history: messages, tools: [fs.write], into: reply, "
    "usage_into: usage}";

TEST_F(Llm, AToolLoopWritesTheFileAnswersAndKeepsTheConversation) {
  auto outcome = run(agent_text("", loop_action), "note: buy milk");
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed) << (outcome->failure ? outcome->failure->message : "");
  std::ifstream file(workspace() / "notes" / "today.txt");
  std::string text((std::istreambuf_iterator<char>(file)), {});
  EXPECT_EQ(text, "note: buy milk");
  EXPECT_EQ(final_["reply"], R"(tool said: {"bytes":14,"path":"notes/today.txt"})");
  // user, assistant (tool call), tool, assistant
  ASSERT_EQ(final_["messages"].size(), 4u);
  EXPECT_EQ(final_["messages"][1]["tool_calls"][0]["name"], "fs.write");
  EXPECT_EQ(final_["messages"][2]["role"], "tool");
  EXPECT_GT(final_["usage"]["input_tokens"].get<int>(), 0);
  EXPECT_EQ(final_["usage"]["model"], "local/8B");

  // Journaled: two model calls and the tool call, with their outcomes.
  auto effects = store_->effects("r1");
  ASSERT_TRUE(effects.ok());
  ASSERT_EQ(effects->size(), 3u);
  // Listed by time: the tool call and the second model call may share a millisecond.
  EXPECT_EQ((*effects)[0].kind, "model:local/8B");
  const auto tool = std::find_if(effects->begin(), effects->end(),
                                 [](const store::effect_record& e) { return e.kind == "tool:fs.write"; });
  ASSERT_NE(tool, effects->end());
  EXPECT_EQ(tool->key, "r1/0/think/tool/0/0");
  EXPECT_EQ(tool->status, "succeeded");
  EXPECT_EQ(tool->request["content"], "[redacted]") << "arguments are journaled as the contract's log_fields allow";
  // Audited: each model call and the tool call allowed, and the effects' outcomes.
  const auto calls = audit_entries("call");
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0]["capability"], "model.call");
  EXPECT_EQ(calls[1]["capability"], "fs.write");
  EXPECT_EQ(calls[1]["argument"], "notes/today.txt");
  EXPECT_EQ(calls[1]["decision"], "allow");
  EXPECT_EQ(audit_entries("effect").size(), 3u);
  EXPECT_GT(gate_->spent("r1").first, 0);
}

TEST_F(Llm, AWriteOutsideTheWorkspaceFailsIsAuditedAndTheModelIsTold) {
  // A symlink in the workspace that points out of it: the path looks harmless to every check
  // before the tool; the tool's resolution beneath the workspace refuses it.
  fs::create_directories(workspace());
  fs::create_symlink(dir_, workspace() / "out");
  auto outcome = run(agent_text("", loop_action), "sneak out");
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed);
  EXPECT_NE(final_["reply"].get<std::string>().find("leads outside the workspace"), std::string::npos)
      << final_["reply"];
  EXPECT_FALSE(fs::exists(dir_ / "escape.txt"));
  const auto effects = audit_entries("effect");
  ASSERT_EQ(effects.size(), 3u);
  EXPECT_EQ(effects[1]["capability"], "fs.write");
  EXPECT_EQ(effects[1]["decision"], "failed");
  EXPECT_NE(effects[1]["reason"].get<std::string>().find("outside the workspace"), std::string::npos);
}

TEST_F(Llm, InvalidToolArgumentsGoBackToTheModelAsAnError) {
  auto outcome = run(agent_text("", loop_action), "sloppy");
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed);
  const std::string reply = final_["reply"];
  EXPECT_NE(reply.find("invalid arguments for fs.write"), std::string::npos) << reply;
  EXPECT_NE(reply.find("content"), std::string::npos) << reply;
  EXPECT_EQ(store_->effects("r1")->size(), 2u) << "a call refused by the schema is not journaled as a call";
}

TEST_F(Llm, AToolTheContractDoesNotAskForIsDeniedAndTheModelIsTold) {
  auto outcome =
      run(agent_text("", "{type: llm, prompt: '{{request}}', tools: [shell.exec], into: reply}"), "shell please");
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed);
  EXPECT_NE(final_["reply"].get<std::string>().find("denied: agent writer's contract does not ask for shell.exec"),
            std::string::npos)
      << final_["reply"];
  const auto calls = audit_entries("call");
  ASSERT_GE(calls.size(), 2u);
  EXPECT_EQ(calls[1]["capability"], "shell.exec");
  EXPECT_EQ(calls[1]["decision"], "deny");
}

TEST_F(Llm, AModelTheContractDoesNotAllowIsRefused) {
  std::string text = agent_text("", "{type: llm, model: local/8B, prompt: '{{request}}', into: reply}");
  text.replace(text.find("allow: [local/8B]"), 17, "allow: []");
  auto outcome = run(text, "hello");
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  ASSERT_EQ(outcome->reason, graph::halt_reason::failed);
  EXPECT_NE(outcome->failure->message.find("allows no model"), std::string::npos) << outcome->failure->message;
}

TEST_F(Llm, TheRunsTokenBudgetStopsFurtherModelCalls) {
  // Each call here costs about 20 estimated tokens; the budget allows one.
  auto outcome = run(agent_text("budget: {max_tokens_per_run: 10}\n", loop_action), "note: x");
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::failed);
  EXPECT_NE(outcome->failure->message.find("its budget (max_tokens_per_run) of 10"), std::string::npos)
      << outcome->failure->message;
  EXPECT_EQ(store_->effects("r1")->size(), 2u) << "one model call and its tool call; the second model call was refused";
}

TEST_F(Llm, AContextOverTheContractsLimitIsRefusedBeforeTheCall) {
  auto outcome = run(agent_text("", "{type: llm, prompt: '{{request}}', into: reply}"), std::string(400, 'x'));
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->reason, graph::halt_reason::completed) << "no limit: allowed";
  std::string limited = agent_text("", "{type: llm, prompt: '{{request}}', into: reply}");
  limited.replace(limited.find("allow: [local/8B]"), 17, "allow: [local/8B], max_context_tokens: 50");
  auto refused = run(limited, std::string(400, 'x'), "r2");
  ASSERT_TRUE(refused.ok());
  ASSERT_EQ(refused->reason, graph::halt_reason::failed);
  EXPECT_NE(refused->failure->message.find("max_context_tokens of 50"), std::string::npos) << refused->failure->message;
  EXPECT_TRUE(store_->effects("r2")->empty());
}

TEST_F(Llm, AJsonAnswerIsParsedAndCheckedAgainstItsSchema) {
  const std::string schema = "{type: object, required: [title, pages], properties: {pages: {type: integer}}}";
  auto outcome =
      run(agent_text("", "{type: llm, prompt: '{{request}}', output: json, schema: " + schema + ", into: book}"),
          "json please");
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed) << outcome->failure->message;
  EXPECT_EQ(final_["book"]["pages"], 3);
  const std::string strict = "{type: object, required: [author]}";
  auto refused =
      run(agent_text("", "{type: llm, prompt: '{{request}}', output: json, schema: " + strict + ", into: book}"),
          "json please", "r2");
  ASSERT_EQ(refused->reason, graph::halt_reason::failed);
  EXPECT_NE(refused->failure->message.find("does not match its schema"), std::string::npos)
      << refused->failure->message;
  auto garbled = run(agent_text("", "{type: llm, prompt: '{{request}}', output: json, into: book}"), "bad json", "r3");
  ASSERT_EQ(garbled->reason, graph::halt_reason::failed);
  EXPECT_NE(garbled->failure->message.find("is not JSON"), std::string::npos);
}

TEST_F(Llm, ANeedForConsentSuspendsTheStepBeforeTheToolRuns) {
  auto outcome = run(agent_text("security: {consent_for: [fs.write]}\n", loop_action), "note: later");
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::suspended);
  EXPECT_FALSE(fs::exists(workspace() / "notes" / "today.txt"));
  auto pending = store_->list_consents("acme", "pending", 10);
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].capability, "fs.write");
  EXPECT_EQ((*pending)[0].argument, "notes/today.txt");
}

/// Fails its first `failures` calls as a provider in an outage does, then answers.
class flaky_model final : public models::provider {
 public:
  explicit flaky_model(int failures) : failures_(failures) {}
  result<models::chat_response> complete(const models::chat_request&, models::chat_stream*) override {
    if (++calls <= failures_) return make_error(models::model_errc::provider_error, "HTTP 503: outage");
    return models::chat_response{.message = {.role = "assistant", .content = "back"}, .finish_reason = "stop"};
  }
  int calls = 0;

 private:
  int failures_;
};

TEST_F(Llm, AModelCallThatFailedIsAskedAgainWhenTheStepRunsAgain) {
  auto flaky = std::make_shared<flaky_model>(1);
  auto models = std::make_shared<models::gateway>([](std::chrono::milliseconds) {});
  models->add({.alias = "local/8B", .backend = flaky, .max_attempts = 1});
  services_->models = models;
  auto agent = load_agent(agent_text("", "{type: llm, prompt: '{{request}}', into: reply}"), "writer.yaml",
                          runtime_registry(services_));
  ASSERT_TRUE(agent.ok()) << agent.err().message;
  run_hosting hosting;
  hosting.gate = gate_;
  auto app = start_run(*store_, **agent,
                       run_start{.run_id = "r1", .who = {"acme", "ada"}, .initial = {{"request", "hi"}}}, hosting);
  ASSERT_TRUE(app.ok()) << app.err().message;
  auto first = (*app)->run();
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->reason, graph::halt_reason::failed);
  EXPECT_NE(first->failure->message.find("outage"), std::string::npos);
  // The outage is over: the same step, run again, asks the model again instead of replaying the failure.
  auto second = (*app)->run();
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->reason, graph::halt_reason::completed) << second->failure->message;
  EXPECT_EQ((*app)->current_state().get("reply"), "back");
  EXPECT_EQ(flaky->calls, 2);
}

TEST_F(Llm, BadLlmActionsAreRefusedWhenTheGraphLoads) {
  struct bad_case {
    std::string action;
    const char* mentions;
  };
  for (const auto& c :
       {bad_case{"{type: llm, into: x}", "needs a prompt or a history"}, bad_case{"{type: llm, prompt: hi}", "into"},
        bad_case{"{type: llm, prompt: '{{ 1 + }}', into: x}", "prompt"},
        bad_case{"{type: llm, prompt: '{{request', into: x}", "never closed"},
        bad_case{"{type: llm, prompt: hi, tools: [fs.teleport], into: x}", "fs.teleport"},
        bad_case{"{type: llm, prompt: hi, model: cloud/1T, into: x}", "no model 'cloud/1T'"},
        bad_case{"{type: llm, prompt: hi, schema: {type: object}, into: x}", "needs output: json"},
        bad_case{"{type: llm, prompt: hi, max_rounds: 0, into: x}", "max_rounds"},
        bad_case{"{type: llm, prompt: '{{secret}}', reads: [request], into: x}", "secret"},
        bad_case{"{type: tool, tool: fs.nothing}", "fs.nothing"},
        bad_case{"{type: tool, tool: fs.read, args: [1]}", "args"}}) {
    auto agent = load_agent(agent_text("", c.action), "writer.yaml", runtime_registry(services_));
    ASSERT_FALSE(agent.ok()) << c.action;
    EXPECT_NE(agent.err().message.find(c.mentions), std::string::npos) << agent.err().message;
  }
}

TEST_F(Llm, AToolStepCallsItsToolWithComputedArguments) {
  auto outcome = run(
      agent_text(
          "",
          "{type: tool, tool: fs.write, args: {path: \"'notes/' + request + '.txt'\", content: request}, into: saved}"),
      "owls");
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed) << outcome->failure->message;
  EXPECT_EQ(final_["saved"]["bytes"], 4);
  EXPECT_TRUE(fs::exists(workspace() / "notes" / "owls.txt"));
  // `..` is refused by the gate already; a symlink out is refused by the tool.
  auto dotdot =
      run(agent_text("", "{type: tool, tool: fs.read, args: {path: \"'../../' + request\"}}"), "secret", "r2");
  ASSERT_EQ(dotdot->reason, graph::halt_reason::failed);
  EXPECT_NE(dotdot->failure->message.find("'..' segment"), std::string::npos) << dotdot->failure->message;
  fs::create_symlink(dir_, workspace() / "out");
  auto linked =
      run(agent_text("", "{type: tool, tool: fs.read, args: {path: \"'out/' + request\"}}"), "choir.db", "r3");
  ASSERT_EQ(linked->reason, graph::halt_reason::failed);
  EXPECT_NE(linked->failure->message.find("leads outside the workspace"), std::string::npos)
      << linked->failure->message;
}

// ---- exec and verify: programs in the sandbox ----

std::string program_agent(const std::string& capabilities, const std::string& actions,
                          const std::string& transitions = "") {
  return "apiVersion: agentos/v0.2\nkind: AgentContract\nname: writer\nclass: {latency: SRT}\ncapabilities: " +
         capabilities +
         "\nobservability: {log_fields: [request]}\n---\napiVersion: agentos/v0.2\nkind: Graph\nname: writer\n"
         "entrypoint: first\nstate: {request: '', length: 0, verdict: null}\nactions:\n" +
         actions + transitions;
}

bool have_sandbox() { return ::access("/usr/bin/bwrap", X_OK) == 0; }

TEST_F(Llm, ExecRunsAProgramJsonInAndJsonOutInTheWorkspace) {
  if (!have_sandbox()) GTEST_SKIP() << "bubblewrap is not installed";
  // stdin is {"request": "hello"}: 19 bytes; the program also leaves a file in the workspace.
  const std::string actions =
      "  first:\n    type: exec\n    reads: [request]\n    writes: [length]\n"
      "    command: [sh, -c, 'read -r line; echo made > made.txt; printf \"{\\\"length\\\": %d}\" ${#line}']\n";
  auto outcome = run(program_agent("[{name: exec, allow: [\"sh **\"]}]", actions), "hello");
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed) << (outcome->failure ? outcome->failure->message : "");
  EXPECT_EQ(final_["length"], 19);
  EXPECT_TRUE(fs::exists(workspace() / "made.txt"));
  const auto calls = audit_entries("call");
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back()["capability"], "exec");
}

TEST_F(Llm, ExecFailsClearlyOnBadExitsBadOutputAndUndeclaredWrites) {
  if (!have_sandbox()) GTEST_SKIP() << "bubblewrap is not installed";
  struct failing {
    const char* command;
    const char* says;
  };
  for (const auto& f :
       {failing{"echo oops >&2; exit 3", "exited with 3: oops"}, failing{"echo not json", "not one JSON object"},
        failing{"echo '{\"secret\": 1}'", "wrote 'secret', which is not in writes"},
        failing{"sleep 5", "time limit"}}) {
    const std::string actions = std::string("  first:\n    type: exec\n    writes: [length]\n    timeout_ms: 300\n") +
                                "    command: [sh, -c, " + value(f.command).dump() + "]\n";
    auto outcome = run(program_agent("[{name: exec, allow: [\"sh **\"]}]", actions), "x",
                       std::string("r-") + std::to_string(std::hash<std::string>{}(f.command)));
    ASSERT_TRUE(outcome.ok()) << outcome.err().message;
    ASSERT_TRUE(outcome->failure) << f.command;
    EXPECT_NE(outcome->failure->message.find(f.says), std::string::npos) << outcome->failure->message;
  }
}

TEST_F(Llm, ExecAndVerifyNeedTheirCapabilities) {
  if (!have_sandbox()) GTEST_SKIP() << "bubblewrap is not installed";
  // The contract asks for exec only for `sh …`; the policy grants exec only for `sh …` too.
  const std::string actions = "  first:\n    type: exec\n    command: [cat, /etc/hostname]\n";
  auto outcome = run(program_agent("[{name: exec, allow: [\"sh **\"]}]", actions), "x");
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  ASSERT_TRUE(outcome->failure);
  EXPECT_NE(outcome->failure->message.find("exec"), std::string::npos) << outcome->failure->message;
  const auto verify = "  first:\n    type: verify\n    command: 'true'\n    into: verdict\n";
  auto no_cap = run(program_agent("[fs.read]", verify), "x", "r2");
  ASSERT_TRUE(no_cap.ok()) << no_cap.err().message;
  ASSERT_TRUE(no_cap->failure);
  EXPECT_NE(no_cap->failure->message.find("verify"), std::string::npos) << no_cap->failure->message;
}

TEST_F(Llm, VerifyGivesAVerdictTheGraphRoutesOn) {
  if (!have_sandbox()) GTEST_SKIP() << "bubblewrap is not installed";
  // Check for a file that is not there, make it, check again: fail, then pass.
  const std::string actions =
      "  first:\n    type: verify\n    command: 'test -f ok.txt || { echo missing ok.txt; exit 1; }'\n    into: "
      "verdict\n"
      "  fix:\n    type: exec\n    command: [sh, -c, 'touch ok.txt']\n"
      "  again:\n    type: verify\n    command: 'test -f ok.txt && echo found'\n    into: verdict\n";
  const std::string transitions =
      "transitions:\n  - {from: first, to: fix, when: 'verdict.passed == false'}\n  - {from: fix, to: again}\n";
  auto outcome = run(program_agent("[{name: exec, allow: [\"sh **\"]}, verify]", actions, transitions), "x");
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed) << (outcome->failure ? outcome->failure->message : "");
  EXPECT_EQ(final_["verdict"]["passed"], true);
  EXPECT_EQ(final_["verdict"]["exit_code"], 0);
  EXPECT_EQ(final_["verdict"]["output"], "found\n");
  // A verifier that runs out of time has failed; it is not an error.
  const auto slow = "  first:\n    type: verify\n    command: 'sleep 5'\n    timeout_ms: 200\n    into: verdict\n";
  auto timed = run(program_agent("[verify]", slow), "x", "r3");
  ASSERT_TRUE(timed.ok()) << timed.err().message;
  ASSERT_EQ(timed->reason, graph::halt_reason::completed) << (timed->failure ? timed->failure->message : "");
  EXPECT_EQ(final_["verdict"]["passed"], false);
  EXPECT_NE(final_["verdict"]["output"].get<std::string>().find("time limit"), std::string::npos);
}

TEST_F(Llm, BadExecAndVerifyActionsAreRefusedWhenTheGraphLoads) {
  for (const char* bad :
       {"  first: {type: exec}\n", "  first: {type: exec, command: 7}\n", "  first: {type: exec, command: [sh, 3]}\n",
        "  first: {type: exec, command: x, timeout_ms: -1}\n", "  first: {type: verify, command: x}\n",
        "  first: {type: verify, command: x, into: v, idempotent: 1}\n"}) {
    auto agent = load_agent(program_agent("[exec, verify]", bad), "writer.yaml", runtime_registry(services_));
    EXPECT_FALSE(agent.ok()) << bad;
  }
}

TEST_F(Llm, WebFetchReachesOnlyWhatTheContractNamesAndEveryRedirectPassesTheGate) {
  net::testing::test_http_server server([](const net::testing::received_request& r) {
    if (r.target == "/docs") return net::testing::canned_reply{.chunks = {"the docs"}};
    if (r.target == "/hop") {
      return net::testing::canned_reply{.status = 302, .headers = {{"Location", "/docs"}}, .chunks = {""}};
    }
    // Redirected to a port the contract does not name: the gate refuses the second place.
    return net::testing::canned_reply{
        .status = 302, .headers = {{"Location", "http://127.0.0.1:1/admin"}}, .chunks = {""}};
  });
  const std::string allowed = "http://127.0.0.1:" + server.url("").substr(server.url("").rfind(':') + 1) + "/**";
  auto agent = [&](const std::string& path) {
    return program_agent("[{name: web.fetch, allow: [\"" + allowed + "\"]}]",
                         "  first:\n    type: tool\n    tool: web.fetch\n    args: {url: \"'" + server.url(path) +
                             "'\"}\n    into: page\n");
  };
  auto fetched = run(agent("/hop"), "x", "w1");
  ASSERT_TRUE(fetched.ok()) << fetched.err().message;
  ASSERT_EQ(fetched->reason, graph::halt_reason::completed) << (fetched->failure ? fetched->failure->message : "");
  EXPECT_EQ(final_["page"]["content"], "the docs");
  EXPECT_EQ(final_["page"]["redirects"].size(), 1u);

  auto away = run(agent("/away"), "x", "w2");
  ASSERT_TRUE(away.ok()) << away.err().message;
  ASSERT_TRUE(away->failure);
  EXPECT_NE(away->failure->message.find("http://127.0.0.1:1/admin"), std::string::npos) << away->failure->message;
  bool denied = false;
  for (const auto& e : audit_entries("call")) {
    denied = denied || (e.value("argument", "") == "http://127.0.0.1:1/admin" && e.value("decision", "") == "deny");
  }
  EXPECT_TRUE(denied);
}

}  // namespace
}  // namespace choir::runtime
