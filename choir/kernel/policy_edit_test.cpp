#include "choir/kernel/policy_edit.hpp"

#include <gtest/gtest.h>

#include "choir/kernel/audit.hpp"
#include "choir/kernel/policy.hpp"

namespace choir::kernel {
namespace {

using op = policy_change::op;

/// Applies the changes in order; each must succeed and leave a valid policy.
value build(std::initializer_list<policy_change> changes) {
  value doc = empty_policy();
  for (const auto& c : changes) {
    auto next = apply_change(doc, c);
    EXPECT_TRUE(next.ok()) << next.err().message;
    if (!next.ok()) return doc;
    doc = std::move(next).value();
    auto valid = policy::load(policy_text(doc), "edited.yaml");
    EXPECT_TRUE(valid.ok()) << valid.err().message;
  }
  return doc;
}

TEST(PolicyEdit, ChangesOneThingAtATimeAndStaysAValidPolicy) {
  const value doc = build(
      {{.what = op::add_tenant, .tenant = "acme"},
       {.what = op::add_role, .tenant = "acme", .role = "reader"},
       {.what = op::add_grant, .tenant = "acme", .role = "reader", .capability = "fs.read", .allow = {"workspace/**"}},
       {.what = op::add_grant, .tenant = "acme", .role = "reader", .capability = "web.fetch"},
       {.what = op::add_user, .tenant = "acme", .user = "ada", .roles = {"reader"}}});
  const auto p = policy::load(policy_text(doc), "p.yaml").value();
  EXPECT_TRUE(p.decide("acme", "ada", "fs.read", "workspace/a.txt").allowed);
  EXPECT_FALSE(p.decide("acme", "ada", "fs.read", "etc/passwd").allowed);
  EXPECT_TRUE(p.decide("acme", "ada", "web.fetch").allowed);
  auto revoked =
      apply_change(doc, {.what = op::remove_grant, .tenant = "acme", .role = "reader", .capability = "web.fetch"});
  ASSERT_TRUE(revoked.ok());
  EXPECT_FALSE(policy::load(policy_text(*revoked), "p.yaml")->decide("acme", "ada", "web.fetch").allowed);
}

TEST(PolicyEdit, RefusesWhatIsInTheWayAndSaysWhat) {
  const value doc = build({{.what = op::add_tenant, .tenant = "acme"},
                           {.what = op::add_role, .tenant = "acme", .role = "reader"},
                           {.what = op::add_user, .tenant = "acme", .user = "ada", .roles = {"reader"}}});
  auto why = [&](const policy_change& c) {
    auto r = apply_change(doc, c);
    return r.ok() ? std::string("(applied)") : r.err().message;
  };
  EXPECT_EQ(why({.what = op::add_tenant, .tenant = "acme"}), "tenant acme already exists");
  EXPECT_EQ(why({.what = op::remove_tenant, .tenant = "acme"}), "tenant acme still has users; remove them first");
  EXPECT_EQ(why({.what = op::add_user, .tenant = "globex", .user = "x"}), "there is no tenant globex");
  EXPECT_EQ(why({.what = op::add_user, .tenant = "acme", .user = "bob", .roles = {"admin"}}),
            "there is no role admin in tenant acme");
  EXPECT_EQ(why({.what = op::remove_role, .tenant = "acme", .role = "reader"}), "role reader is held by ada");
  EXPECT_EQ(why({.what = op::assign_role, .tenant = "acme", .user = "ada", .role = "reader"}),
            "ada already holds reader");
  EXPECT_EQ(why({.what = op::remove_grant, .tenant = "acme", .role = "reader", .capability = "x"}),
            "role reader does not grant x");
  EXPECT_EQ(why({.what = op::revoke_token, .tenant = "acme", .token_id = "t1"}), "there is no token t1 in tenant acme");
}

TEST(PolicyEdit, TokensAreKeptAsHashesAndIdentifyTheirUser) {
  const std::string token = "choir_0123456789abcdef0123456789abcdef";
  value doc = build({{.what = op::add_tenant, .tenant = "acme"},
                     {.what = op::add_role, .tenant = "acme", .role = "reader"},
                     {.what = op::add_user, .tenant = "acme", .user = "ada", .roles = {"reader"}},
                     {.what = op::add_token,
                      .tenant = "acme",
                      .user = "ada",
                      .token_id = "ci",
                      .token_sha256 = sha256_hex(token),
                      .created_ms = 5}});
  EXPECT_EQ(policy_text(doc).find(token), std::string::npos);  // never the token itself
  auto p = policy::load(policy_text(doc), "p.yaml").value();
  auto who = p.authenticate(token);
  ASSERT_TRUE(who.has_value());
  EXPECT_EQ(who->tenant, "acme");
  EXPECT_EQ(who->user, "ada");
  EXPECT_EQ(who->id, "ci");
  EXPECT_FALSE(p.authenticate("choir_wrong").has_value());
  EXPECT_FALSE(p.authenticate("").has_value());
  // Removing the user removes their tokens; revoking one removes it.
  auto gone = apply_change(doc, {.what = op::remove_user, .tenant = "acme", .user = "ada"});
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(policy::load(policy_text(*gone), "p.yaml")->authenticate(token).has_value());
  auto revoked = apply_change(doc, {.what = op::revoke_token, .tenant = "acme", .token_id = "ci"});
  EXPECT_FALSE(policy::load(policy_text(*revoked), "p.yaml")->authenticate(token).has_value());
  // The audit record of a token change never holds its hash.
  const policy_change created{.what = op::add_token, .token_sha256 = sha256_hex(token)};
  EXPECT_FALSE(created.to_json().contains("sha256"));
}

TEST(PolicyEdit, ATokenOfAnUnknownUserOrWithABadHashIsRefusedAtLoad) {
  const char* bad_user = R"(apiVersion: agentos/v0.2
kind: Policy
tenants:
  acme:
    users: {}
    tokens: {t: {user: ghost, sha256: "0000000000000000000000000000000000000000000000000000000000000000"}}
)";
  EXPECT_NE(policy::load(bad_user, "p.yaml").err().message.find("not a user of tenant acme"), std::string::npos);
  const char* bad_hash = R"(apiVersion: agentos/v0.2
kind: Policy
tenants:
  acme:
    roles: {r: {grants: []}}
    users: {ada: {roles: [r]}}
    tokens: {t: {user: ada, sha256: "plaintext-token"}}
)";
  EXPECT_NE(policy::load(bad_hash, "p.yaml").err().message.find("64 lowercase hexadecimal"), std::string::npos);
}

}  // namespace
}  // namespace choir::kernel
