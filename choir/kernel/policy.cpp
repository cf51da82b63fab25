#include "choir/kernel/policy.hpp"

#include <algorithm>

#include "choir/core/yaml.hpp"
#include "choir/kernel/audit.hpp"

namespace choir::kernel {

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  // Iterative matching that backtracks to the last `*` (which may not cross '/') and, when that
  // cannot go further, to the last `**` (which may).
  constexpr auto none = std::string_view::npos;
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star_p = none;  // after the last `*`
  std::size_t star_t = 0;
  std::size_t dstar_p = none;  // after the last `**`
  std::size_t dstar_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      if (p + 1 < pattern.size() && pattern[p + 1] == '*') {
        p += 2;
        dstar_p = p;
        dstar_t = t;
        star_p = none;
      } else {
        ++p;
        star_p = p;
        star_t = t;
      }
      continue;
    }
    if (p < pattern.size() && (pattern[p] == '?' ? text[t] != '/' : pattern[p] == text[t])) {
      ++p;
      ++t;
      continue;
    }
    if (star_p != none && text[star_t] != '/') {
      t = ++star_t;  // the `*` takes one more character
      p = star_p;
      continue;
    }
    if (dstar_p != none) {
      t = ++dstar_t;  // the `**` takes one more character, `/` included
      p = dstar_p;
      star_p = none;
      continue;
    }
    return false;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

namespace {

error policy_error(const yaml_document& doc, const std::string& path, const std::string& message) {
  return make_error(kernel_errc::invalid_contract, doc.locate(path) + ": " + path + ": " + message);
}

bool well_formed_name(const std::string& s) {
  return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '@';
  });
}

}  // namespace

result<policy> policy::load(std::string_view text, std::string_view file) {
  CHOIR_TRY(auto docs, parse_yaml(text, file));
  const yaml_document* doc = nullptr;
  for (const auto& d : docs) {
    if (d.root().is_object() && d.root().contains("kind") && d.root()["kind"] == "Policy") doc = &d;
  }
  if (doc == nullptr) return make_error(kernel_errc::no_contract, std::string(file) + ": no kind: Policy document");
  const value& root = doc->root();
  for (const auto& [key, v] : root.items()) {
    if (key != "apiVersion" && key != "kind" && key != "tenants") {
      return policy_error(*doc, key, "unknown field (known: apiVersion, kind, tenants)");
    }
  }
  if (!root.contains("apiVersion") || root["apiVersion"] != "agentos/v0.2") {
    return policy_error(*doc, "apiVersion", "expected agentos/v0.2");
  }
  policy out;
  if (!root.contains("tenants")) return out;  // nobody may do anything
  if (!root["tenants"].is_object()) return policy_error(*doc, "tenants", "expected a mapping of tenants");
  for (const auto& [tenant_name, tenant] : root["tenants"].items()) {
    const std::string tpath = "tenants." + tenant_name;
    if (!well_formed_name(tenant_name)) return policy_error(*doc, tpath, "not a tenant name");
    if (!tenant.is_object()) return policy_error(*doc, tpath, "expected roles and users");
    tenant_entry entry;
    for (const auto& [key, v] : tenant.items()) {
      if (key != "roles" && key != "users" && key != "tokens")
        return policy_error(*doc, tpath + "." + key, "unknown field (known: roles, users, tokens)");
    }
    if (tenant.contains("roles")) {
      if (!tenant["roles"].is_object()) return policy_error(*doc, tpath + ".roles", "expected a mapping of roles");
      for (const auto& [role_name, role] : tenant["roles"].items()) {
        const std::string rpath = tpath + ".roles." + role_name;
        if (!well_formed_name(role_name)) return policy_error(*doc, rpath, "not a role name");
        if (!role.is_object() || !role.contains("grants") || !role["grants"].is_array()) {
          return policy_error(*doc, rpath, "expected {grants: [capabilities]}");
        }
        auto& grants = entry.roles[role_name];
        for (std::size_t i = 0; i < role["grants"].size(); ++i) {
          const value& g = role["grants"][i];
          const std::string gpath = rpath + ".grants." + std::to_string(i);
          std::string name;
          grant gr;
          if (g.is_string()) {
            name = g.get<std::string>();
          } else if (g.is_object() && g.contains("name") && g["name"].is_string() && g.contains("allow") &&
                     g["allow"].is_array() && !g["allow"].empty()) {
            name = g["name"].get<std::string>();
            for (const auto& a : g["allow"]) {
              if (!a.is_string() || a.get<std::string>().empty())
                return policy_error(*doc, gpath + ".allow", "expected patterns");
              gr.allow.push_back(a.get<std::string>());
            }
          } else {
            return policy_error(*doc, gpath, "expected a capability, or {name, allow: [patterns]}");
          }
          if (name.empty() || name.size() > 256 ||
              name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.:/-") != std::string::npos) {
            return policy_error(*doc, gpath, "'" + name + "' is not a capability name");
          }
          if (!grants.emplace(name, std::move(gr)).second) return policy_error(*doc, gpath, "granted twice");
        }
      }
    }
    if (tenant.contains("users")) {
      if (!tenant["users"].is_object()) return policy_error(*doc, tpath + ".users", "expected a mapping of users");
      for (const auto& [user_name, user] : tenant["users"].items()) {
        const std::string upath = tpath + ".users." + user_name;
        if (!well_formed_name(user_name)) return policy_error(*doc, upath, "not a user name");
        if (!user.is_object() || !user.contains("roles") || !user["roles"].is_array()) {
          return policy_error(*doc, upath, "expected {roles: [names]}");
        }
        auto& roles = entry.users[user_name];
        for (std::size_t i = 0; i < user["roles"].size(); ++i) {
          const value& r = user["roles"][i];
          if (!r.is_string() || !entry.roles.contains(r.get<std::string>())) {
            return policy_error(*doc, upath + ".roles." + std::to_string(i), "not a role of tenant " + tenant_name);
          }
          roles.push_back(r.get<std::string>());
        }
      }
    }
    if (tenant.contains("tokens")) {
      // API tokens: only their SHA-256 is stored (`choir token create` shows a token once).
      if (!tenant["tokens"].is_object()) return policy_error(*doc, tpath + ".tokens", "expected a mapping of tokens");
      for (const auto& [token_id, token] : tenant["tokens"].items()) {
        const std::string kpath = tpath + ".tokens." + token_id;
        if (!well_formed_name(token_id)) return policy_error(*doc, kpath, "not a token id");
        if (!token.is_object() || !token.contains("user") || !token["user"].is_string() || !token.contains("sha256") ||
            !token["sha256"].is_string()) {
          return policy_error(*doc, kpath, "expected {user, sha256, created_ms}");
        }
        for (const auto& [key, v] : token.items()) {
          if (key != "user" && key != "sha256" && key != "created_ms") {
            return policy_error(*doc, kpath + "." + key, "unknown field (known: user, sha256, created_ms)");
          }
        }
        const std::string user = token["user"].get<std::string>();
        if (!entry.users.contains(user))
          return policy_error(*doc, kpath + ".user", "not a user of tenant " + tenant_name);
        const std::string hash = token["sha256"].get<std::string>();
        if (hash.size() != 64 || hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
          return policy_error(*doc, kpath + ".sha256", "expected 64 lowercase hexadecimal digits");
        }
        if (!out.tokens_.emplace(hash, token_identity{tenant_name, user, token_id}).second) {
          return policy_error(*doc, kpath + ".sha256", "the same token is listed twice");
        }
      }
    }
    out.tenants_.emplace(tenant_name, std::move(entry));
  }
  return out;
}

std::optional<policy::token_identity> policy::authenticate(std::string_view token) const {
  if (token.empty() || tokens_.empty()) return std::nullopt;
  const auto found = tokens_.find(sha256_hex(token));
  if (found == tokens_.end()) return std::nullopt;
  return found->second;
}

namespace {
/// A `..` segment could climb out of what a pattern allows: refused before any pattern is tried.
bool climbs(std::string_view argument) noexcept {
  for (std::size_t start = 0; start <= argument.size();) {
    const auto end = std::min(argument.find('/', start), argument.size());
    if (argument.substr(start, end - start) == "..") return true;
    start = end + 1;
  }
  return false;
}
}  // namespace

template <class Visit>
policy::lookup policy::visit_grants(std::string_view tenant, std::string_view user, std::string_view capability_name,
                                    Visit&& visit) const {
  const auto t = tenants_.find(tenant);
  if (t == tenants_.end()) return lookup::no_tenant;
  const auto u = t->second.users.find(user);
  if (u == t->second.users.end()) return lookup::no_user;
  for (const auto& role : u->second) {
    const auto& grants = t->second.roles.find(role)->second;
    const auto g = grants.find(capability_name);
    if (g != grants.end() && visit(g->second)) break;
  }
  return lookup::found;
}

decision policy::decide(std::string_view tenant, std::string_view user, std::string_view capability_name,
                        std::string_view argument) const {
  if (climbs(argument)) return {false, "the argument '" + std::string(argument) + "' has a '..' segment"};
  bool allowed = false;
  bool granted_elsewhere = false;
  const auto found = visit_grants(tenant, user, capability_name, [&](const grant& g) {
    allowed = g.allow.empty() || std::any_of(g.allow.begin(), g.allow.end(),
                                             [&](const std::string& p) { return glob_match(p, argument); });
    granted_elsewhere = true;
    return allowed;
  });
  if (found == lookup::no_tenant) return {false, "no tenant '" + std::string(tenant) + "'"};
  if (found == lookup::no_user) {
    return {false, "no user '" + std::string(user) + "' in tenant '" + std::string(tenant) + "'"};
  }
  if (allowed) return {true, {}};
  if (granted_elsewhere) {
    return {false, "'" + std::string(capability_name) + "' is granted to " + std::string(user) + " only for other " +
                       "arguments than '" + std::string(argument) + "'"};
  }
  return {false, "no role of " + std::string(user) + " in tenant '" + std::string(tenant) + "' grants '" +
                     std::string(capability_name) + "'"};
}

bool policy::has_user(std::string_view tenant, std::string_view user) const {
  const auto t = tenants_.find(tenant);
  return t != tenants_.end() && t->second.users.find(user) != t->second.users.end();
}

decision policy::admit(const agent_contract& contract, std::string_view tenant, std::string_view user) const {
  std::string missing;
  for (const auto& cap : contract.capabilities) {
    bool ok = false;
    if (cap.allow.empty()) {
      // Unconstrained in the contract: the user needs an unconstrained grant.
      (void)visit_grants(tenant, user, cap.name, [&](const grant& g) { return ok = g.allow.empty(); });
    } else {
      // Narrowed: each pattern of the contract must itself be allowed (checked as a literal argument).
      ok = std::all_of(cap.allow.begin(), cap.allow.end(),
                       [&](const std::string& pattern) { return decide(tenant, user, cap.name, pattern).allowed; });
    }
    if (!ok) missing += (missing.empty() ? "" : ", ") + cap.name;
  }
  if (missing.empty()) return {true, {}};
  return {false, "agent " + contract.name + " is not admitted for " + std::string(user) + " in tenant '" +
                     std::string(tenant) + "': not granted: " + missing};
}

}  // namespace choir::kernel
