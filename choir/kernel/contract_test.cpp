#include "choir/kernel/contract.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace choir::kernel {
namespace {

constexpr const char* full = R"(apiVersion: agentos/v0.2
kind: AgentContract
name: doc-rag-planner
description: Plans city documents from sources.
class:
  latency: SRT
  slo: {onset_ms: 250, turn_ms: 1000, jitter_p95_pct: 20}
capabilities:
  - web.fetch
  - {name: fs.read, allow: ["workspace/**"]}
  - fs.write
compute: {cpu: "500m", mem: 4GiB, gpu_mem: 8GiB}
modelPolicy: {allow: [local/8B, cloud/70B], max_context_tokens: 32000, placement: [on-prem]}
memory: {namespace: city-planning, retention_days: 30, rag: {top_k: 8, require_grounding: true}}
security: {consent_for: [fs.write], data_scopes: [public]}
observability: {tracing: opentelemetry, log_fields: [prompt, sources]}
budget: {max_tokens_per_turn: 8000, max_tokens_per_run: 200000, max_cost_usd_per_run: 2.5}
---
apiVersion: agentos/v0.2
kind: Graph
name: doc-rag-planner
entrypoint: a
actions:
  a: {type: pass}
)";

TEST(Contract, AFullContractLoadsWithEveryField) {
  auto loaded = load_contract(full, "planner.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.err().message;
  const agent_contract& c = loaded->contract;
  EXPECT_EQ(c.name, "doc-rag-planner");
  EXPECT_EQ(c.latency, graph::latency_class::srt);
  EXPECT_EQ(c.slo.onset_ms, 250);
  EXPECT_EQ(c.slo.turn_ms, 1000);
  EXPECT_EQ(c.slo.jitter_p95_pct, 20.0);
  ASSERT_EQ(c.capabilities.size(), 3U);
  EXPECT_EQ(c.capabilities[1].allow, std::vector<std::string>{"workspace/**"});
  EXPECT_TRUE(c.allows("fs.write"));
  EXPECT_FALSE(c.allows("payment.charge"));
  EXPECT_DOUBLE_EQ(*c.cpu, 0.5);
  EXPECT_EQ(c.mem_bytes, 4ULL << 30);
  EXPECT_EQ(c.gpu_mem_bytes, 8ULL << 30);
  EXPECT_EQ(c.models_allowed, (std::vector<std::string>{"local/8B", "cloud/70B"}));
  EXPECT_EQ(c.max_context_tokens, 32000);
  EXPECT_EQ(c.memory_namespace, "city-planning");
  EXPECT_EQ(c.retention_days, 30);
  EXPECT_EQ(c.rag_top_k, 8);
  EXPECT_TRUE(c.rag_require_grounding);
  EXPECT_EQ(c.consent_for, std::vector<std::string>{"fs.write"});
  EXPECT_EQ(c.tracing, "opentelemetry");
  EXPECT_EQ(c.max_tokens_per_turn, 8000);
  EXPECT_EQ(c.max_cost_usd_per_run, 2.5);
  EXPECT_EQ(c.to_json()["class"]["latency"], "SRT");
}

TEST(Contract, ItsJsonHoldsEveryFieldAndLoadsBackTheSame) {
  auto loaded = load_contract(full, "planner.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.err().message;
  const value json = loaded->contract.to_json();
  EXPECT_EQ(json["modelPolicy"]["allow"], value::array({"local/8B", "cloud/70B"}));
  EXPECT_EQ(json["modelPolicy"]["max_context_tokens"], 32000);
  EXPECT_EQ(json["modelPolicy"]["placement"], value::array({"on-prem"}));
  EXPECT_EQ(json["memory"]["rag"]["top_k"], 8);
  EXPECT_EQ(json["security"]["data_scopes"], value::array({"public"}));
  EXPECT_EQ(json["observability"]["log_fields"], value::array({"prompt", "sources"}));
  EXPECT_EQ(json["budget"]["max_cost_usd_per_run"], 2.5);
  EXPECT_EQ(json["class"]["slo"]["turn_ms"], 1000);
  // JSON is YAML: the document loads back into the same contract.
  auto again = load_contract(dump_json(json), "again.json");
  ASSERT_TRUE(again.ok()) << again.err().message;
  EXPECT_EQ(again->contract.to_json(), json);
}

TEST(Contract, FieldsNothingEnforcesYetAreReportedNotIgnored) {
  auto loaded = load_contract(full, "planner.yaml");
  ASSERT_TRUE(loaded.ok());
  std::string all;
  for (const auto& line : loaded->not_enforced) all += line + "\n";
  for (const char* field :
       {"compute.gpu_mem", "modelPolicy.placement", "memory", "security.data_scopes", "observability"}) {
    EXPECT_NE(all.find(field), std::string::npos) << field << " missing from:\n" << all;
  }
  // The gate enforces these now.
  EXPECT_EQ(all.find("budget"), std::string::npos) << all;
  EXPECT_EQ(all.find("max_context_tokens"), std::string::npos) << all;
}

TEST(Contract, AMinimalContractNeedsOnlyItsNameAndClass) {
  auto loaded =
      load_contract("apiVersion: agentos/v0.2\nkind: AgentContract\nname: tiny\nclass: {latency: DT}\n", "tiny.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.err().message;
  EXPECT_EQ(loaded->contract.latency, graph::latency_class::dt);
  EXPECT_TRUE(loaded->not_enforced.empty());
}

/// Replaces `from` with `to` in the full contract and expects an error naming `field` at `line`.
void expect_refused(const std::string& from, const std::string& to, const std::string& field, int line) {
  std::string text = full;
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
  auto loaded = load_contract(text, "planner.yaml");
  ASSERT_FALSE(loaded.ok()) << "accepted: " << to;
  EXPECT_EQ(loaded.err().code, kernel_errc::invalid_contract) << loaded.err().message;
  EXPECT_NE(loaded.err().message.find("planner.yaml:" + std::to_string(line) + ":"), std::string::npos)
      << loaded.err().message;
  EXPECT_NE(loaded.err().message.find(field), std::string::npos) << loaded.err().message;
}

TEST(Contract, EveryBadFieldIsRefusedWithItsPathAndLine) {
  expect_refused("apiVersion: agentos/v0.2\nkind: AgentContract", "apiVersion: agentos/v0.1\nkind: AgentContract",
                 "apiVersion", 1);
  expect_refused("name: doc-rag-planner\ndescription", "name: 'a b'\ndescription", "name", 3);
  expect_refused("latency: SRT", "latency: FAST", "class.latency", 6);
  expect_refused("onset_ms: 250", "onset_ms: -1", "class.slo.onset_ms", 7);
  expect_refused("onset_ms: 250", "onset_ms: 5000", "class.slo.onset_ms", 7);  // later than the turn
  expect_refused("jitter_p95_pct: 20", "jitter_p95_pct: 120", "class.slo.jitter_p95_pct", 7);
  expect_refused("  - web.fetch\n", "  - Web Fetch\n", "capabilities.0", 9);
  expect_refused("  - fs.write\n", "  - web.fetch\n", "capabilities.2", 11);  // listed twice
  expect_refused(R"(allow: ["workspace/**"])", "allow: []", "capabilities.1.allow", 10);
  expect_refused(R"(cpu: "500m")", R"(cpu: "lots")", "compute.cpu", 12);
  expect_refused("mem: 4GiB", "mem: 4 gigs", "compute.mem", 12);
  expect_refused("max_context_tokens: 32000", "max_context_tokens: 1.5", "modelPolicy.max_context_tokens", 13);
  expect_refused("top_k: 8", "top_k: 0", "memory.rag.top_k", 14);
  expect_refused("require_grounding: true", "require_grounding: yes please", "memory.rag.require_grounding", 14);
  expect_refused("consent_for: [fs.write]", "consent_for: [payment.charge]", "security.consent_for.0", 15);
  expect_refused("tracing: opentelemetry", "tracing: zipkin", "observability.tracing", 16);
  expect_refused("max_cost_usd_per_run: 2.5", "max_cost_usd_per_run: -1", "budget.max_cost_usd_per_run", 17);
  expect_refused("budget: {", "budgets: {", "budgets", 17);  // unknown field
  expect_refused("memory: {namespace", "memory: {shelf: x, namespace", "memory.shelf", 14);
}

TEST(Contract, AnHrtAgentMustDeclareItsDeadline) {
  auto refused =
      load_contract("apiVersion: agentos/v0.2\nkind: AgentContract\nname: fast\nclass: {latency: HRT}\n", "fast.yaml");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.err().message.find("deadline_ms"), std::string::npos) << refused.err().message;
  auto ok = load_contract(
      "apiVersion: agentos/v0.2\nkind: AgentContract\nname: fast\nclass: {latency: HRT, slo: {deadline_ms: 10}}\n",
      "fast.yaml");
  ASSERT_TRUE(ok.ok()) << ok.err().message;
  EXPECT_EQ(ok->contract.slo.deadline_ms, 10);
}

TEST(Contract, ModesHaveClassesOfTheirOwn) {
  const std::string head =
      "apiVersion: agentos/v0.2\nkind: AgentContract\nname: pilot\n"
      "class: {latency: SRT, slo: {onset_ms: 300, turn_ms: 3000}}\n";
  auto loaded = load_contract(head +
                                  "modes:\n"
                                  "  PARANOID: {latency: HRT, slo: {deadline_ms: 10}, actions: [check, verify]}\n"
                                  "  CURIOUS: {latency: DT, slo: {turn_ms: 60000}, actions: [ask]}\n",
                              "pilot.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.err().message;
  const auto& c = loaded->contract;
  ASSERT_EQ(c.modes.size(), 2u);
  ASSERT_NE(c.mode_of("verify"), nullptr);
  EXPECT_EQ(c.mode_of("verify")->name, "PARANOID");
  EXPECT_EQ(c.mode_of("listen"), nullptr);
  // A step's class: its mode's, with the agent's levels where the mode has none.
  const auto [paranoid, paranoid_levels] = c.class_of("check");
  EXPECT_EQ(paranoid, graph::latency_class::hrt);
  EXPECT_EQ(paranoid_levels.deadline_ms, 10);
  EXPECT_EQ(paranoid_levels.onset_ms, 300);
  const auto [curious, curious_levels] = c.class_of("ask");
  EXPECT_EQ(curious, graph::latency_class::dt);
  EXPECT_EQ(curious_levels.turn_ms, 60000);
  EXPECT_EQ(c.class_of("listen").first, graph::latency_class::srt);
  EXPECT_EQ(c.class_of("listen").second.turn_ms, 3000);
  // Its JSON holds the modes and loads back the same.
  const value json = c.to_json();
  EXPECT_EQ(json["modes"]["PARANOID"]["actions"], value::array({"check", "verify"}));
  auto again = load_contract(dump_json(json), "again.json");
  ASSERT_TRUE(again.ok()) << again.err().message;
  EXPECT_EQ(again->contract.to_json(), json);

  for (const auto& [modes, field] : std::vector<std::pair<std::string, std::string>>{
           {"modes: {P: {latency: HRT, actions: [a]}}", "modes.P"},  // an HRT mode without a deadline
           {"modes: {P: {latency: FAST, actions: [a]}}", "modes.P.latency"},
           {"modes: {P: {latency: SRT}}", "modes.P.actions"},
           {"modes: {P: {latency: SRT, actions: []}}", "modes.P.actions"},
           {"modes: {P: {latency: SRT, actions: [a]}, Q: {latency: DT, actions: [a]}}", "modes.Q.actions.0"},
           {"modes: {P: {latency: SRT, actions: [a], tools: [x]}}", "modes.P.tools"},
           {"modes: {'a b': {latency: SRT, actions: [a]}}", "modes.a b"},
           {"modes: [P]", "modes"}}) {
    auto refused = load_contract(head + modes + "\n", "pilot.yaml");
    ASSERT_FALSE(refused.ok()) << modes;
    EXPECT_NE(refused.err().message.find(field + ":"), std::string::npos) << modes << " → " << refused.err().message;
  }
}

TEST(Contract, AFileWithoutOneContractIsRefused) {
  auto none = load_contract("apiVersion: agentos/v0.2\nkind: Graph\nname: g\n", "g.yaml");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.err().code, kernel_errc::no_contract);
  const std::string one = "apiVersion: agentos/v0.2\nkind: AgentContract\nname: a\nclass: {latency: DT}\n";
  auto two = load_contract(one + "---\n" + one, "two.yaml");
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.err().message.find("second"), std::string::npos);
  auto broken = load_contract("kind: AgentContract\nname: [unclosed\n", "broken.yaml");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.err().code, core_errc::parse_error);
}

}  // namespace
}  // namespace choir::kernel
