#include "choir/kernel/admission.hpp"

#include <gtest/gtest.h>

#include "choir/graph/loader.hpp"

namespace choir::kernel {
namespace {

agent_contract contract_of(const std::string& body) {
  auto c = load_contract("apiVersion: agentos/v0.2\nkind: AgentContract\nname: a\n" + body, "a.yaml");
  EXPECT_TRUE(c.ok()) << c.err().message;
  return c.ok() ? c->contract : agent_contract{};
}

std::shared_ptr<const graph::graph> graph_of(const std::string& actions) {
  auto doc =
      graph::load_graph("apiVersion: agentos/v0.2\nkind: Graph\nname: a\nentrypoint: first\nactions:\n" + actions,
                        "a.yaml", graph::action_registry::with_builtins());
  EXPECT_TRUE(doc.ok()) << doc.err().message;
  auto g = doc->builder.build_graph();
  EXPECT_TRUE(g.ok()) << g.err().message;
  return *g;
}

const std::string pure = "  first: {type: pass}\n";

node_resources small_node() {
  node_resources n;
  n.cpu = 2;
  n.mem_bytes = 1024ULL * 1024 * 1024;
  n.hrt_cpu = 1;
  n.models = {"local/8B"};
  return n;
}

TEST(Admission, ComputeIsReservedUntilTheRunEnds) {
  admission a(small_node());
  const auto g = graph_of(pure);
  const auto big = contract_of("class: {latency: DT}\ncompute: {cpu: 1.5, mem: 512MiB}\n");
  EXPECT_TRUE(a.reserve("r1", big, *g).allowed);
  const auto refused = a.reserve("r2", big, *g);
  EXPECT_FALSE(refused.allowed);
  EXPECT_NE(refused.reason.find("compute clause: it asks for 1.5 cores and 0.5 of 2 are left"), std::string::npos)
      << refused.reason;
  const auto memory = contract_of("class: {latency: DT}\ncompute: {mem: 600MiB}\n");
  EXPECT_NE(a.reserve("r3", memory, *g).reason.find("it asks for 600 MiB and 512 MiB of 1024 MiB are left"),
            std::string::npos);
  EXPECT_EQ(a.in_use().runs, 1u);
  // Admitting the same run again replaces what it held.
  EXPECT_TRUE(a.reserve("r1", big, *g).allowed);
  EXPECT_DOUBLE_EQ(a.in_use().cpu, 1.5);
  a.release("r1");
  EXPECT_TRUE(a.reserve("r2", big, *g).allowed);
  a.release("r2");
  a.release("never");
  EXPECT_EQ(a.in_use().runs, 0u);
  EXPECT_DOUBLE_EQ(a.in_use().cpu, 0);
}

TEST(Admission, AllowedModelsMustBeServedByTheGateway) {
  admission a(small_node());
  const auto g = graph_of(pure);
  EXPECT_TRUE(a.reserve("r1", contract_of("class: {latency: SRT}\nmodelPolicy: {allow: [local/8B]}\n"), *g).allowed);
  const auto cloud =
      a.reserve("r2", contract_of("class: {latency: SRT}\nmodelPolicy: {allow: [local/8B, cloud/70B]}\n"), *g);
  EXPECT_FALSE(cloud.allowed);
  EXPECT_NE(cloud.reason.find("model clause: the gateway does not serve cloud/70B (it serves local/8B)"),
            std::string::npos)
      << cloud.reason;
}

TEST(Admission, HrtActionsNeedAWorstCaseThatFitsTheDeadline) {
  const auto hrt = contract_of("class: {latency: HRT, slo: {deadline_ms: 10}}\n");
  auto plan = plan_hrt(hrt, *graph_of("  first: {type: pass, cost_ms: 4}\n  second: {type: pass, cost_ms: 2}\n"
                                      "transitions:\n  - {from: first, to: second}\n"));
  ASSERT_TRUE(plan.ok()) << plan.err().message;
  EXPECT_EQ(plan->actions.size(), 2u);
  EXPECT_DOUBLE_EQ(plan->utilization, 0.4);
  auto why = [&](const agent_contract& c, const std::string& actions) {
    auto p = plan_hrt(c, *graph_of(actions));
    return p.ok() ? std::string("(admitted)") : p.err().message;
  };
  EXPECT_NE(why(hrt, "  first: {type: pass}\n").find("action first is HRT but declares no cost_ms"), std::string::npos);
  EXPECT_NE(why(hrt, "  first: {type: pass, cost_ms: 12}\n").find("may take 12 ms, more than the 10 ms deadline"),
            std::string::npos);
  EXPECT_NE(why(hrt, "  first: {type: pass, cost_ms: 4, retry: {max_attempts: 3}}\n").find("(3 attempts)"),
            std::string::npos);
  EXPECT_NE(why(hrt, "  first: {type: human, inputs: [ok], writes: [ok], cost_ms: 1}\n")
                .find("a human action waits on something no deadline can bound"),
            std::string::npos);
  // An action may step out of the agent's class, or into HRT inside an SRT agent.
  EXPECT_EQ(why(hrt, "  first: {type: pass, latency: DT}\n"), "(admitted)");
  const auto srt = contract_of("class: {latency: SRT}\n");
  EXPECT_EQ(why(srt, "  first: {type: pass}\n"), "(admitted)");
  EXPECT_NE(why(srt, "  first: {type: pass, latency: HRT, cost_ms: 1}\n").find("declares no class.slo.deadline_ms"),
            std::string::npos);
  const auto srt_deadline = contract_of("class: {latency: SRT, slo: {deadline_ms: 5}}\n");
  EXPECT_EQ(why(srt_deadline, "  first: {type: pass, latency: HRT, cost_ms: 1}\n"), "(admitted)");
}

TEST(Admission, TheActionsOfAnHrtModeAreHrtUnderTheModesDeadline) {
  const std::string link = "transitions:\n  - {from: first, to: second}\n";
  const auto calm_and_paranoid = contract_of(
      "class: {latency: SRT}\nmodes:\n  PARANOID: {latency: HRT, slo: {deadline_ms: 10}, actions: [second]}\n"
      "  CALM: {latency: SRT, actions: [first]}\n");
  // Only `second` is HRT: `first` needs no cost.
  auto plan =
      plan_hrt(calm_and_paranoid, *graph_of("  first: {type: pass}\n  second: {type: pass, cost_ms: 4}\n" + link));
  ASSERT_TRUE(plan.ok()) << plan.err().message;
  ASSERT_EQ(plan->actions.size(), 1u);
  EXPECT_EQ(plan->actions[0].name, "second");
  EXPECT_DOUBLE_EQ(plan->utilization, 0.4);
  // An HRT mode's action without a cost, or one that cannot meet the mode's deadline, is refused.
  auto no_cost = plan_hrt(calm_and_paranoid, *graph_of("  first: {type: pass}\n  second: {type: pass}\n" + link));
  ASSERT_FALSE(no_cost.ok());
  EXPECT_NE(no_cost.err().message.find("second is HRT but declares no cost_ms"), std::string::npos);
  auto too_slow =
      plan_hrt(calm_and_paranoid, *graph_of("  first: {type: pass}\n  second: {type: pass, cost_ms: 40}\n" + link));
  ASSERT_FALSE(too_slow.ok());
  EXPECT_NE(too_slow.err().message.find("more than the 10 ms deadline"), std::string::npos) << too_slow.err().message;
  // An HRT agent's action in a DT mode is not HRT.
  const auto hrt_with_dt =
      contract_of("class: {latency: HRT, slo: {deadline_ms: 10}}\nmodes:\n  LATER: {latency: DT, actions: [second]}\n");
  auto mixed = plan_hrt(hrt_with_dt, *graph_of("  first: {type: pass, cost_ms: 1}\n  second: {type: pass}\n" + link));
  ASSERT_TRUE(mixed.ok()) << mixed.err().message;
  ASSERT_EQ(mixed->actions.size(), 1u);
  EXPECT_EQ(mixed->actions[0].name, "first");
}

TEST(Admission, TheAdmittedHrtSetMustFitTheReservedCores) {
  admission a(small_node());  // one core for HRT work
  const auto c = contract_of("class: {latency: HRT, slo: {deadline_ms: 10}}\n");
  const auto g = graph_of("  first: {type: pass, cost_ms: 4}\n");  // 0.4 of a core each
  EXPECT_TRUE(a.reserve("r1", c, *g).allowed);
  EXPECT_TRUE(a.reserve("r2", c, *g).allowed);
  const auto third = a.reserve("r3", c, *g);
  EXPECT_FALSE(third.allowed);
  EXPECT_NE(third.reason.find("HRT clause: its HRT actions need 0.4 of a core at their deadline and 0.2 of the 1 "
                              "cores reserved for HRT work are left"),
            std::string::npos)
      << third.reason;
  a.release("r1");
  EXPECT_TRUE(a.reserve("r3", c, *g).allowed);
  EXPECT_NEAR(a.in_use().hrt_utilization, 0.8, 1e-9);
}

TEST(Admission, ThisMachineHasCoresAndMemory) {
  const auto n = node_resources::of_this_machine();
  EXPECT_GE(n.cpu, 1);
  EXPECT_GT(n.mem_bytes, 0u);
  EXPECT_TRUE(n.models.empty());
}

}  // namespace
}  // namespace choir::kernel
