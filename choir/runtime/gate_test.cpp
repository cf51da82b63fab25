#include "choir/runtime/gate.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "choir/runtime/actions/map.hpp"
#include "choir/runtime/actor.hpp"
#include "choir/runtime/agent_run.hpp"
#include "choir/store/synchronized.hpp"

namespace choir::runtime {
namespace {

namespace fs = std::filesystem;

constexpr const char* policy_text = R"(apiVersion: agentos/v0.2
kind: Policy
tenants:
  acme:
    roles:
      researcher: {grants: [web.fetch, {name: agent.call, allow: [researcher]}, {name: consent.answer, allow: [agent.call]}]}
      reader: {grants: [{name: fs.read, allow: ["workspace/**"]}]}
    users:
      ada: {roles: [researcher, reader]}
      bob: {roles: [reader]}
  globex:
    roles:
      everything: {grants: [web.fetch, fs.read, agent.call, payment.charge]}
    users:
      ada: {roles: []}
      carol: {roles: [everything]}
)";

constexpr const char* researcher_text = R"(apiVersion: agentos/v0.2
kind: AgentContract
name: researcher
class: {latency: SRT}
capabilities: [web.fetch, {name: fs.read, allow: ["workspace/notes/**"]}]
observability: {log_fields: [url]}
---
apiVersion: agentos/v0.2
kind: Graph
name: researcher
entrypoint: read
state: {topic: null}
actions:
  read: {type: set, update: {summary: "topic + ': 1 note'"}}
)";

constexpr const char* orchestrator_text = R"(apiVersion: agentos/v0.2
kind: AgentContract
name: orchestrator
class: {latency: SRT}
capabilities: [{name: agent.call, allow: [researcher]}]
---
apiVersion: agentos/v0.2
kind: Graph
name: orchestrator
entrypoint: fan
state: {topics: [owls, bats]}
actions:
  fan: {type: map, over: topics, as: topic, agent: researcher, collect: summary, into: findings}
)";

class Gate : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("choir-gate-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store_ = store::synchronized(store::open_sqlite_store((dir_ / "choir.db").string()).value());
    options_.key_file = (dir_ / "audit.key").string();
    options_.head_file = (dir_ / "audit.head").string();
    auto audit = kernel::audit_log::open(store_, options_);
    ASSERT_TRUE(audit.ok()) << audit.err().message;
    auto policy = kernel::policy::load(policy_text, "policy.yaml");
    ASSERT_TRUE(policy.ok()) << policy.err().message;
    gate_ = std::make_shared<gate>(store_, std::shared_ptr<kernel::audit_log>(std::move(audit).value()),
                                   std::make_shared<const kernel::policy>(std::move(policy).value()),
                                   gate_options{.consent_ttl = std::chrono::hours(1), .time = &clock_});
    services_ = std::make_shared<action_services>();
    services_->store = store_;
    services_->actors = &sys_;
    services_->gate = gate_;
    services_->agents = std::make_shared<agent_catalog>();
  }
  void TearDown() override {
    services_.reset();
    gate_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  std::shared_ptr<const agent_definition> load(const std::string& text) {
    auto agent = load_agent(text, "agent.yaml", runtime_registry(services_));
    EXPECT_TRUE(agent.ok()) << agent.err().message;
    return agent.ok() ? *agent : nullptr;
  }

  /// The audit log's entries, parsed.
  std::vector<value> audit_entries() {
    std::vector<value> out;
    EXPECT_TRUE(store_
                    ->scan_audit(1,
                                 [&](const store::audit_view& r) {
                                   out.push_back(value::parse(r.entry));
                                   return true;
                                 })
                    .ok());
    return out;
  }

  manual_clock clock_{1'800'000'000'000};
  fs::path dir_;
  actor_system sys_{{.threads = 2}};
  std::shared_ptr<store::event_store> store_;
  kernel::audit_options options_;
  std::shared_ptr<gate> gate_;
  std::shared_ptr<action_services> services_;
};

TEST_F(Gate, AnAgentWithoutAContractIsNeverAdmitted) {
  auto agent = load("apiVersion: agentos/v0.2\nkind: Graph\nname: bare\nentrypoint: a\nactions: {a: {type: pass}}\n");
  auto admitted = gate_->admit(*agent, {"acme", "ada"}, "run-1");
  ASSERT_FALSE(admitted.ok());
  EXPECT_EQ(admitted.err().code, kernel::kernel_errc::not_admitted);
  EXPECT_NE(admitted.err().message.find("has no contract"), std::string::npos);
  const auto entries = audit_entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0]["kind"], "admission");
  EXPECT_EQ(entries[0]["decision"], "deny");
  EXPECT_EQ(entries[0]["run"], "run-1");
}

TEST_F(Gate, AdmissionNeedsAUserOfTheTenantHoldingEveryCapability) {
  auto agent = load(researcher_text);
  EXPECT_TRUE(gate_->admit(*agent, {"acme", "ada"}, "run-ok").ok());
  // bob may read but not fetch.
  auto bob = gate_->admit(*agent, {"acme", "bob"}, "run-bob");
  ASSERT_FALSE(bob.ok());
  EXPECT_NE(bob.err().message.find("not granted: web.fetch"), std::string::npos) << bob.err().message;
  // Nobody of that name in the tenant; and a user of one tenant is nobody in another.
  EXPECT_NE(gate_->admit(*agent, {"acme", "mallory"}, "r").err().message.find("not a user of tenant 'acme'"),
            std::string::npos);
  EXPECT_NE(gate_->admit(*agent, {"initech", "ada"}, "r").err().message.find("not a user"), std::string::npos);
  // ada exists in globex too, without its grants: carol's role there is not hers.
  EXPECT_EQ(gate_->admit(*agent, {"globex", "ada"}, "r").err().code, kernel::kernel_errc::not_admitted);
  EXPECT_TRUE(gate_->admit(*agent, {"globex", "carol"}, "run-carol").ok());
  EXPECT_EQ(gate_->admitted("run-ok")->who.user, "ada");
  EXPECT_FALSE(gate_->admitted("run-bob").has_value());
  const auto entries = audit_entries();
  ASSERT_EQ(entries.size(), 6u);
  EXPECT_EQ(entries[0]["decision"], "allow");
  EXPECT_EQ(entries[0]["details"]["contract"]["name"], "researcher");
  EXPECT_EQ(entries[1]["decision"], "deny");
  EXPECT_EQ(entries[1]["user"], "bob");
}

TEST_F(Gate, EveryCallIsCheckedAgainstTheContractAndThePolicyAndAudited) {
  auto agent = load(researcher_text);
  ASSERT_TRUE(gate_->admit(*agent, {"acme", "ada"}, "run-1").ok());
  // Allowed: asked for by the contract and granted.
  EXPECT_TRUE(
      gate_->check({.run_id = "run-1", .step = 3, .capability = "web.fetch", .argument = "https://x.org"}).ok());
  // Not in the contract, even though the policy would allow it elsewhere.
  auto outside = gate_->check({.run_id = "run-1", .capability = "agent.call", .argument = "researcher"});
  EXPECT_EQ(outside.err().code, kernel::kernel_errc::denied);
  EXPECT_NE(outside.err().message.find("contract does not ask for agent.call"), std::string::npos);
  // The contract narrows fs.read to notes; the grant to the workspace.
  EXPECT_TRUE(gate_->check({.run_id = "run-1", .capability = "fs.read", .argument = "workspace/notes/a.md"}).ok());
  auto narrow = gate_->check({.run_id = "run-1", .capability = "fs.read", .argument = "workspace/secrets.env"});
  EXPECT_NE(narrow.err().message.find("only for"), std::string::npos) << narrow.err().message;
  // Never escapes through '..'.
  EXPECT_FALSE(gate_->check({.run_id = "run-1", .capability = "fs.read", .argument = "workspace/notes/../../x"}).ok());
  // A run that was never admitted can do nothing.
  EXPECT_NE(gate_->check({.run_id = "ghost", .capability = "web.fetch"}).err().message.find("not admitted"),
            std::string::npos);
  const auto entries = audit_entries();
  ASSERT_EQ(entries.size(), 7u);
  EXPECT_EQ(entries[1]["kind"], "call");
  EXPECT_EQ(entries[1]["capability"], "web.fetch");
  EXPECT_EQ(entries[1]["decision"], "allow");
  EXPECT_EQ(entries[1]["step"], 3);
  EXPECT_EQ(entries[1]["tenant"], "acme");
  EXPECT_EQ(entries[1]["agent"], "researcher");
  EXPECT_EQ(entries[2]["decision"], "deny");
  EXPECT_EQ(entries[6]["run"], "ghost");
}

TEST_F(Gate, AuditedArgumentsAreRedactedToTheContractsLogFields) {
  auto agent = load(researcher_text);
  ASSERT_TRUE(gate_->admit(*agent, {"acme", "ada"}, "run-1").ok());
  ASSERT_TRUE(gate_
                  ->check({.run_id = "run-1",
                           .capability = "web.fetch",
                           .argument = "https://x.org",
                           .arguments = {{"url", "https://x.org"}, {"authorization", "Bearer s3cret"}}})
                  .ok());
  const auto entries = audit_entries();
  EXPECT_EQ(entries.back()["details"]["arguments"], value({{"url", "https://x.org"}, {"authorization", "[redacted]"}}));
  std::string all;
  ASSERT_TRUE(store_
                  ->scan_audit(1,
                               [&](const store::audit_view& r) {
                                 all += r.entry;
                                 return true;
                               })
                  .ok());
  EXPECT_EQ(all.find("s3cret"), std::string::npos);
}

TEST_F(Gate, ARunIsAdmittedBeforeItStartsAndAgainWhenItReopens) {
  auto agent = load(researcher_text);
  run_hosting hosting;
  hosting.gate = gate_;
  auto refused = start_run(*store_, *agent, run_start{.run_id = "r-bob", .who = {"acme", "bob"}}, hosting);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.err().code, kernel::kernel_errc::not_admitted);
  EXPECT_EQ(store_->get_run("r-bob").err().code, store::store_errc::run_not_found);  // never created

  auto app = start_run(*store_, *agent, run_start{.run_id = "r-ada", .who = {"acme", "ada"}}, hosting);
  ASSERT_TRUE(app.ok()) << app.err().message;
  EXPECT_EQ(store_->get_run("r-ada")->user, "ada");
  ASSERT_TRUE(settle_run(*store_, "r-ada", "halted", gate_.get()).ok());
  EXPECT_FALSE(gate_->admitted("r-ada").has_value());

  // The policy changes: ada loses web.fetch. Reopening the run is refused.
  auto narrower = kernel::policy::load(
      "apiVersion: agentos/v0.2\nkind: Policy\ntenants:\n  acme:\n    roles: {r: {grants: [fs.read]}}\n"
      "    users: {ada: {roles: [r]}}\n",
      "p.yaml");
  ASSERT_TRUE(narrower.ok()) << narrower.err().message;
  gate_->set_policy(std::make_shared<const kernel::policy>(std::move(narrower).value()));
  auto reopened = open_run(*store_, "r-ada", *agent, hosting);
  ASSERT_FALSE(reopened.ok());
  EXPECT_NE(reopened.err().message.find("web.fetch"), std::string::npos);
  EXPECT_TRUE(store_->get_run("r-ada")->owner.empty());  // the lease was given back
}

TEST_F(Gate, CallingAnotherAgentPassesTheGateAndTheChildIsAdmittedForTheCallersPrincipal) {
  services_->agents->add(load(researcher_text));
  auto orchestrator = load(orchestrator_text);
  run_hosting hosting;
  hosting.gate = gate_;
  auto app = start_run(*store_, *orchestrator, run_start{.run_id = "orch", .who = {"acme", "ada"}}, hosting);
  ASSERT_TRUE(app.ok()) << app.err().message;
  auto outcome = (*app)->run();
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed) << outcome->failure->message;
  EXPECT_EQ((*app)->current_state().get("findings"), value::array({"owls: 1 note", "bats: 1 note"}));
  auto child = store_->get_run("orch.fan.0.1");
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(child->tenant, "acme");
  EXPECT_EQ(child->user, "ada");
  int calls = 0;
  int child_admissions = 0;
  for (const auto& e : audit_entries()) {
    if (e["kind"] == "call" && e["capability"] == "agent.call" && e["argument"] == "researcher" &&
        e["decision"] == "allow" && e["run"] == "orch") {
      ++calls;
    }
    if (e["kind"] == "admission" && e["agent"] == "researcher" && e["decision"] == "allow") ++child_admissions;
  }
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(child_admissions, 2);
}

TEST_F(Gate, ACallOutsideTheContractFailsTheStep) {
  // The graph calls writer; its contract (and ada's grant) cover only researcher.
  auto writer = std::string(researcher_text);
  for (std::size_t at = writer.find("researcher"); at != std::string::npos; at = writer.find("researcher", at)) {
    writer.replace(at, 10, "writer");
  }
  services_->agents->add(load(writer));
  auto text = std::string(orchestrator_text);
  text.replace(text.find("agent: researcher"), 17, "agent: writer");
  auto orchestrator = load(text);
  run_hosting hosting;
  hosting.gate = gate_;
  auto app = start_run(*store_, *orchestrator, run_start{.run_id = "orch", .who = {"acme", "ada"}}, hosting);
  ASSERT_TRUE(app.ok()) << app.err().message;
  auto outcome = (*app)->run();
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::failed);
  EXPECT_NE(outcome->failure->message.find("allows agent.call only for [\"researcher\"], not 'writer'"),
            std::string::npos)
      << outcome->failure->message;
  EXPECT_EQ(store_->get_run("orch.fan.0.0").err().code, store::store_errc::run_not_found);
}

TEST_F(Gate, AContractMustNameItsGraphsAgent) {
  std::string text = researcher_text;
  text.replace(text.find("name: researcher"), 16, "name: impostor");
  auto agent = load_agent(text, "agent.yaml", runtime_registry(services_));
  ASSERT_FALSE(agent.ok());
  EXPECT_NE(agent.err().message.find("the contract is for 'impostor'"), std::string::npos);
}

/// The orchestrator, with every call to another agent needing a person's consent.
std::string careful_orchestrator() {
  std::string text = orchestrator_text;
  text.replace(text.find("---"), 3, "security: {consent_for: [agent.call]}\n---");
  return text;
}

TEST_F(Gate, ACallNeedingConsentSuspendsTheRunUntilAPersonApproves) {
  services_->agents->add(load(researcher_text));
  auto orchestrator = load(careful_orchestrator());
  run_hosting hosting;
  hosting.gate = gate_;
  auto app = start_run(*store_, *orchestrator, run_start{.run_id = "orch", .who = {"acme", "ada"}}, hosting);
  ASSERT_TRUE(app.ok()) << app.err().message;
  auto outcome = (*app)->run();
  ASSERT_TRUE(outcome.ok()) << outcome.err().message;
  ASSERT_EQ(outcome->reason, graph::halt_reason::suspended);
  EXPECT_EQ(status_after(outcome->reason), "waiting_consent");
  EXPECT_NE(outcome->failure->message.find("waiting for consent to agent.call(researcher)"), std::string::npos)
      << outcome->failure->message;
  // Both children asked at once; neither ran.
  auto pending = store_->list_consents("acme", "pending", 10);
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].run_id, "orch");
  EXPECT_EQ((*pending)[0].capability, "agent.call");
  EXPECT_EQ(store_->get_run("orch.fan.0.0").err().code, store::store_errc::run_not_found);
  // Running the step again before an answer asks nothing new.
  ASSERT_EQ((*app)->run()->reason, graph::halt_reason::suspended);
  EXPECT_EQ(store_->list_consents("acme", "", 10)->size(), 2u);
  ASSERT_TRUE(settle_run(*store_, "orch", "waiting_consent", gate_.get()).ok());

  // Nobody of another tenant can see or answer them; bob may not answer.
  const std::string first = (*pending)[0].id;
  const std::string second = (*pending)[1].id;
  EXPECT_EQ(gate_->answer(first, true, {"globex", "carol"}, "").err().code, store::store_errc::invalid_argument);
  EXPECT_TRUE(store_->list_consents("globex", "", 10)->empty());
  EXPECT_EQ(gate_->answer(first, true, {"acme", "bob"}, "").err().code, kernel::kernel_errc::denied);

  // Answered later, by another process: a new gate over the same store.
  auto audit = kernel::audit_log::open(store_, options_);
  ASSERT_TRUE(audit.ok()) << audit.err().message;
  auto later = std::make_shared<gate>(store_, std::shared_ptr<kernel::audit_log>(std::move(audit).value()),
                                      gate_->current_policy(), gate_options{.time = &clock_});
  clock_.advance(std::chrono::minutes(30));
  ASSERT_TRUE(later->answer(first, true, {"acme", "ada"}, "fine").ok());
  ASSERT_TRUE(later->answer(second, true, {"acme", "ada"}, "").ok());
  EXPECT_EQ(later->answer(second, false, {"acme", "ada"}, "").err().code, store::store_errc::conflict);
  services_->gate = later;
  hosting.gate = later;
  auto reopened = open_run(*store_, "orch", *orchestrator, hosting);
  ASSERT_TRUE(reopened.ok()) << reopened.err().message;
  outcome = (*reopened)->run();
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::completed) << outcome->failure->message;
  EXPECT_EQ((*reopened)->current_state().get("findings"), value::array({"owls: 1 note", "bats: 1 note"}));
  int requests = 0;
  int answers = 0;
  int approved_calls = 0;
  for (const auto& e : audit_entries()) {
    if (e["kind"] == "consent.request") ++requests;
    if (e["kind"] == "consent.answer" && e["decision"] == "allow") ++answers;
    if (e["kind"] == "call" && e["decision"] == "allow" && e["details"].contains("approved_by")) ++approved_calls;
  }
  EXPECT_EQ(requests, 2);
  EXPECT_EQ(answers, 2);
  EXPECT_EQ(approved_calls, 2);
}

TEST_F(Gate, ADeniedOrExpiredConsentFailsTheCall) {
  services_->agents->add(load(researcher_text));
  auto orchestrator = load(careful_orchestrator());
  run_hosting hosting;
  hosting.gate = gate_;
  auto app = start_run(*store_, *orchestrator, run_start{.run_id = "orch", .who = {"acme", "ada"}}, hosting);
  ASSERT_TRUE(app.ok());
  ASSERT_EQ((*app)->run()->reason, graph::halt_reason::suspended);
  auto pending = *store_->list_consents("acme", "pending", 10);
  ASSERT_EQ(pending.size(), 2u);
  // The step reports its first child's failure: deny the first child's call (topic owls).
  if (pending[0].key != "agent.call:orch.fan.0.0") std::swap(pending[0], pending[1]);
  ASSERT_TRUE(gate_->answer(pending[0].id, false, {"acme", "ada"}, "not today").ok());
  // The other is never answered: an hour later it has expired.
  clock_.advance(std::chrono::hours(2));
  EXPECT_EQ(gate_->answer(pending[1].id, true, {"acme", "ada"}, "").err().code, kernel::kernel_errc::denied);
  auto outcome = (*app)->run();
  ASSERT_TRUE(outcome.ok());
  ASSERT_EQ(outcome->reason, graph::halt_reason::failed);
  EXPECT_NE(outcome->failure->message.find("was denied by acme/ada: not today"), std::string::npos)
      << outcome->failure->message;
  EXPECT_EQ((*store_->get_consent(pending[1].id))->status, "expired");
}

TEST_F(Gate, ComputeReservedAtAdmissionIsGivenBackWhenTheRunEnds) {
  auto audit = kernel::audit_log::open(store_, options_);
  ASSERT_TRUE(audit.ok());
  kernel::node_resources node;
  node.cpu = 2;
  node.mem_bytes = 1ULL << 30;
  auto small = std::make_shared<gate>(store_, std::shared_ptr<kernel::audit_log>(std::move(audit).value()),
                                      gate_->current_policy(), gate_options{.time = &clock_, .node = node});
  std::string text = researcher_text;
  text.replace(text.find("observability"), 0, "compute: {cpu: 1.5, mem: 256MiB}\n");
  auto agent = load(text);
  run_hosting hosting;
  hosting.gate = small;
  ASSERT_TRUE(start_run(*store_, *agent, run_start{.run_id = "r1", .who = {"acme", "ada"}}, hosting).ok());
  auto refused = start_run(*store_, *agent, run_start{.run_id = "r2", .who = {"acme", "ada"}}, hosting);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.err().message.find("compute clause"), std::string::npos) << refused.err().message;
  EXPECT_EQ(audit_entries().back()["decision"], "deny");
  ASSERT_TRUE(settle_run(*store_, "r1", "completed", small.get()).ok());
  EXPECT_EQ(small->resources().in_use().runs, 0u);
  EXPECT_TRUE(start_run(*store_, *agent, run_start{.run_id = "r2", .who = {"acme", "ada"}}, hosting).ok());
}

}  // namespace
}  // namespace choir::runtime
