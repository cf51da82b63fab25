#include "choir/kernel/policy_edit.hpp"

#include <algorithm>

namespace choir::kernel {
namespace {

const char* name_of(policy_change::op o) {
  switch (o) {
    case policy_change::op::add_tenant: return "tenant.add";
    case policy_change::op::remove_tenant: return "tenant.remove";
    case policy_change::op::add_user: return "user.add";
    case policy_change::op::remove_user: return "user.remove";
    case policy_change::op::add_role: return "role.add";
    case policy_change::op::remove_role: return "role.remove";
    case policy_change::op::assign_role: return "role.assign";
    case policy_change::op::unassign_role: return "role.unassign";
    case policy_change::op::add_grant: return "grant.add";
    case policy_change::op::remove_grant: return "grant.remove";
    case policy_change::op::add_token: return "token.create";
    case policy_change::op::revoke_token: return "token.revoke";
  }
  return "unknown";
}

error refused(const std::string& why) { return make_error(core_errc::invalid_argument, why); }

/// The grant's capability name (a grant is a name, or `{name, allow}`).
std::string grant_name(const value& g) {
  if (g.is_string()) return g.get<std::string>();
  if (g.is_object() && g.contains("name") && g["name"].is_string()) return g["name"].get<std::string>();
  return {};
}

}  // namespace

value policy_change::to_json() const {
  value out = {{"op", name_of(what)}, {"tenant", tenant}};
  if (!user.empty()) out["user"] = user;
  if (!role.empty()) out["role"] = role;
  if (!roles.empty()) out["roles"] = roles;
  if (!capability.empty()) out["capability"] = capability;
  if (!allow.empty()) out["allow"] = allow;
  if (!token_id.empty()) out["token"] = token_id;
  return out;
}

value empty_policy() { return {{"apiVersion", "agentos/v0.2"}, {"kind", "Policy"}, {"tenants", value::object()}}; }

std::string policy_text(const value& document) { return document.dump(2) + "\n"; }

result<value> apply_change(value doc, const policy_change& c) {
  using op = policy_change::op;
  if (!doc.is_object()) return refused("the stored policy is not a mapping");
  if (!doc.contains("tenants") || !doc["tenants"].is_object()) doc["tenants"] = value::object();
  value& tenants = doc["tenants"];
  if (c.tenant.empty()) return refused("a tenant is needed");
  if (c.what == op::add_tenant) {
    if (tenants.contains(c.tenant)) return refused("tenant " + c.tenant + " already exists");
    tenants[c.tenant] = {{"roles", value::object()}, {"users", value::object()}};
    return doc;
  }
  if (!tenants.contains(c.tenant) || !tenants[c.tenant].is_object()) {
    return refused("there is no tenant " + c.tenant);
  }
  value& t = tenants[c.tenant];
  for (const char* part : {"roles", "users"}) {
    if (!t.contains(part) || !t[part].is_object()) t[part] = value::object();
  }
  value& roles = t["roles"];
  value& users = t["users"];
  auto holders = [&](const std::string& role) {
    std::string who;
    for (const auto& [name, u] : users.items()) {
      if (u.contains("roles") && u["roles"].is_array() &&
          std::find(u["roles"].begin(), u["roles"].end(), value(role)) != u["roles"].end()) {
        who += (who.empty() ? "" : ", ") + name;
      }
    }
    return who;
  };
  auto need_user = [&]() -> result<void> {
    if (!users.contains(c.user)) return refused("there is no user " + c.user + " in tenant " + c.tenant);
    return {};
  };
  auto need_role = [&]() -> result<void> {
    if (!roles.contains(c.role)) return refused("there is no role " + c.role + " in tenant " + c.tenant);
    return {};
  };
  switch (c.what) {
    case op::add_tenant: break;  // handled above
    case op::remove_tenant:
      if (!users.empty()) return refused("tenant " + c.tenant + " still has users; remove them first");
      tenants.erase(c.tenant);
      break;
    case op::add_user: {
      if (users.contains(c.user)) return refused("user " + c.user + " already exists in tenant " + c.tenant);
      for (const auto& r : c.roles) {
        if (!roles.contains(r)) return refused("there is no role " + r + " in tenant " + c.tenant);
      }
      users[c.user] = {{"roles", c.roles}};
      break;
    }
    case op::remove_user: {
      CHOIR_CHECK(need_user());
      users.erase(c.user);
      if (t.contains("tokens") && t["tokens"].is_object()) {
        value kept = value::object();
        for (const auto& [id, tok] : t["tokens"].items()) {
          if (tok.value("user", "") != c.user) kept[id] = tok;
        }
        t["tokens"] = std::move(kept);
      }
      break;
    }
    case op::add_role:
      if (roles.contains(c.role)) return refused("role " + c.role + " already exists in tenant " + c.tenant);
      roles[c.role] = {{"grants", value::array()}};
      break;
    case op::remove_role: {
      CHOIR_CHECK(need_role());
      if (auto who = holders(c.role); !who.empty()) return refused("role " + c.role + " is held by " + who);
      roles.erase(c.role);
      break;
    }
    case op::assign_role:
    case op::unassign_role: {
      CHOIR_CHECK(need_user());
      CHOIR_CHECK(need_role());
      value& held = users[c.user]["roles"];
      if (!held.is_array()) held = value::array();
      const auto at = std::find(held.begin(), held.end(), value(c.role));
      if (c.what == op::assign_role) {
        if (at != held.end()) return refused(c.user + " already holds " + c.role);
        held.push_back(c.role);
      } else {
        if (at == held.end()) return refused(c.user + " does not hold " + c.role);
        held.erase(at);
      }
      break;
    }
    case op::add_grant:
    case op::remove_grant: {
      CHOIR_CHECK(need_role());
      value& grants = roles[c.role]["grants"];
      if (!grants.is_array()) grants = value::array();
      auto at =
          std::find_if(grants.begin(), grants.end(), [&](const value& g) { return grant_name(g) == c.capability; });
      if (c.what == op::add_grant) {
        if (at != grants.end()) return refused("role " + c.role + " already grants " + c.capability);
        grants.push_back(c.allow.empty() ? value(c.capability) : value{{"name", c.capability}, {"allow", c.allow}});
      } else {
        if (at == grants.end()) return refused("role " + c.role + " does not grant " + c.capability);
        grants.erase(at);
      }
      break;
    }
    case op::add_token: {
      CHOIR_CHECK(need_user());
      if (!t.contains("tokens") || !t["tokens"].is_object()) t["tokens"] = value::object();
      if (t["tokens"].contains(c.token_id)) return refused("token " + c.token_id + " already exists");
      t["tokens"][c.token_id] = {{"user", c.user}, {"sha256", c.token_sha256}, {"created_ms", c.created_ms}};
      break;
    }
    case op::revoke_token:
      if (!t.contains("tokens") || !t["tokens"].is_object() || !t["tokens"].contains(c.token_id)) {
        return refused("there is no token " + c.token_id + " in tenant " + c.tenant);
      }
      t["tokens"].erase(c.token_id);
      break;
  }
  return doc;
}

}  // namespace choir::kernel
