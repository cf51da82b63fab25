#include "choir/kernel/policy.hpp"

#include <gtest/gtest.h>

namespace choir::kernel {
namespace {

constexpr const char* policy_text = R"(apiVersion: agentos/v0.2
kind: Policy
tenants:
  acme:
    roles:
      analyst:
        grants:
          - web.fetch
          - {name: fs.read, allow: ["workspace/**", "docs/*.md"]}
      writer:
        grants: [fs.write]
    users:
      alice: {roles: [analyst]}
      bob: {roles: [analyst, writer]}
  globex:
    roles:
      admin: {grants: [fs.write, payment.charge]}
    users:
      carol: {roles: [admin]}
)";

policy load() {
  auto p = policy::load(policy_text, "policy.yaml");
  EXPECT_TRUE(p.ok()) << p.err().message;
  return std::move(p).value();
}

TEST(Policy, AllowsOnlyWhatARoleOfTheUserGrants) {
  const auto p = load();
  EXPECT_TRUE(p.decide("acme", "alice", "web.fetch").allowed);
  EXPECT_TRUE(p.decide("acme", "bob", "fs.write").allowed);
  const auto denied = p.decide("acme", "alice", "fs.write");
  EXPECT_FALSE(denied.allowed);
  EXPECT_NE(denied.reason.find("grants 'fs.write'"), std::string::npos) << denied.reason;
  EXPECT_FALSE(p.decide("acme", "mallory", "web.fetch").allowed);
  EXPECT_FALSE(p.decide("initech", "alice", "web.fetch").allowed);
}

TEST(Policy, OneTenantNeverUsesAnothersGrants) {
  const auto p = load();
  EXPECT_TRUE(p.decide("globex", "carol", "payment.charge").allowed);
  EXPECT_FALSE(p.decide("acme", "carol", "payment.charge").allowed);  // carol is not in acme
  EXPECT_FALSE(p.decide("globex", "alice", "web.fetch").allowed);     // alice is not in globex
  EXPECT_FALSE(p.decide("acme", "bob", "payment.charge").allowed);    // granted only in globex
}

TEST(Policy, PatternsNarrowAGrantAndCannotBeClimbedOutOf) {
  const auto p = load();
  EXPECT_TRUE(p.decide("acme", "alice", "fs.read", "workspace/src/main.cpp").allowed);
  EXPECT_TRUE(p.decide("acme", "alice", "fs.read", "docs/intro.md").allowed);
  EXPECT_FALSE(p.decide("acme", "alice", "fs.read", "docs/deep/intro.md").allowed);  // `*` stays in a segment
  EXPECT_FALSE(p.decide("acme", "alice", "fs.read", "/etc/passwd").allowed);
  const auto climbing = p.decide("acme", "alice", "fs.read", "workspace/../etc/passwd");
  EXPECT_FALSE(climbing.allowed);
  EXPECT_NE(climbing.reason.find(".."), std::string::npos);
}

TEST(Policy, AdmissionNeedsEveryCapabilityOfTheContract) {
  const auto p = load();
  agent_contract c;
  c.name = "reader";
  c.capabilities = {{"web.fetch", {}}, {"fs.read", {"workspace/**"}}};
  EXPECT_TRUE(p.admit(c, "acme", "alice").allowed);
  c.capabilities.push_back({"fs.read.all", {}});
  c.capabilities.push_back({"payment.charge", {}});
  const auto refused = p.admit(c, "acme", "alice");
  EXPECT_FALSE(refused.allowed);
  EXPECT_NE(refused.reason.find("not granted: fs.read.all, payment.charge"), std::string::npos) << refused.reason;
  agent_contract wide;
  wide.name = "wide";
  wide.capabilities = {{"fs.read", {}}};  // unconstrained, but alice's grant is narrowed
  EXPECT_FALSE(p.admit(wide, "acme", "alice").allowed);
}

TEST(Policy, BadPolicyDocumentsAreRefusedWithTheirLocation) {
  auto unknown_role = policy::load(
      "apiVersion: agentos/v0.2\nkind: Policy\ntenants:\n  a:\n    roles: {r: {grants: [x.y]}}\n"
      "    users:\n      u: {roles: [nope]}\n",
      "p.yaml");
  ASSERT_FALSE(unknown_role.ok());
  EXPECT_NE(unknown_role.err().message.find("p.yaml:7:"), std::string::npos) << unknown_role.err().message;
  EXPECT_NE(unknown_role.err().message.find("not a role of tenant a"), std::string::npos);
  auto bad_grant = policy::load(
      "apiVersion: agentos/v0.2\nkind: Policy\ntenants:\n  a:\n    roles: {r: {grants: [Bad Name]}}\n", "p.yaml");
  ASSERT_FALSE(bad_grant.ok());
  EXPECT_NE(bad_grant.err().message.find("is not a capability name"), std::string::npos);
  auto empty = policy::load("apiVersion: agentos/v0.2\nkind: Policy\n", "p.yaml");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->decide("a", "u", "web.fetch").allowed);  // deny by default
}

TEST(Glob, StarsMatchWithinOrAcrossSegments) {
  EXPECT_TRUE(glob_match("workspace/**", "workspace/a/b/c"));
  EXPECT_TRUE(glob_match("*.md", "readme.md"));
  EXPECT_FALSE(glob_match("*.md", "a/readme.md"));
  EXPECT_TRUE(glob_match("**/*.md", "a/b/readme.md"));
  EXPECT_TRUE(glob_match("https://*.example.com/**", "https://api.example.com/v1/x"));
  EXPECT_FALSE(glob_match("https://*.example.com/**", "https://evil.com/x.example.com/y"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "a/c"));
  EXPECT_FALSE(glob_match("abc", "abcd"));
  EXPECT_TRUE(glob_match("", ""));
}

}  // namespace
}  // namespace choir::kernel
