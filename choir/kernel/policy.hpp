#pragma once
/// Policy: who may use which capability. Deny by default — a capability is allowed only if a role
/// of the calling user, in the user's own tenant, grants it (and its argument matches the grant's
/// patterns, if any). Declared in a `kind: Policy` YAML document (docs/policy.md).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/kernel/contract.hpp"

namespace choir::kernel {

/// A decision and, for a denial, the clause that denied it.
struct decision {
  bool allowed = false;
  std::string reason;
};

/// Lets the maps below be searched with a string_view, without building a string.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

class policy {
 public:
  /// Loads the `kind: Policy` document of a YAML stream. Errors as `load_contract`'s
  /// (`invalid_contract` with the field's location; `no_contract` if there is no Policy document).
  [[nodiscard]] static result<policy> load(std::string_view text, std::string_view file);

  /// May `user` of `tenant` use `capability_name` (with `argument`: a path, a URL; empty if none)?
  /// Thread-safe (the policy is immutable once loaded). Never allocates on the allow path.
  [[nodiscard]] decision decide(std::string_view tenant, std::string_view user, std::string_view capability_name,
                                std::string_view argument = {}) const;

  /// Who an API token acts for: the token's tenant and user, and its id. Only the token's
  /// SHA-256 is kept in the policy; an unknown token is nobody.
  struct token_identity {
    std::string tenant;
    std::string user;
    std::string id;
  };
  [[nodiscard]] std::optional<token_identity> authenticate(std::string_view token) const;

  /// Whether `user` is a user of `tenant`.
  [[nodiscard]] bool has_user(std::string_view tenant, std::string_view user) const;

  /// Admission's capability clause: every capability the contract asks for must be granted to the
  /// user (unconstrained grants, or grants at least as narrow as the contract's). Lists what is not.
  [[nodiscard]] decision admit(const agent_contract& contract, std::string_view tenant, std::string_view user) const;

 private:
  struct grant {
    std::vector<std::string> allow;  ///< empty: any argument
  };
  struct tenant_entry {
    string_map<string_map<grant>> roles;         ///< role → capability → grant
    string_map<std::vector<std::string>> users;  ///< user → roles
  };
  string_map<tenant_entry> tenants_;
  string_map<token_identity> tokens_;  ///< SHA-256 (hex) → identity

  enum class lookup { no_tenant, no_user, found };
  /// Calls `visit(grant)` for each role of `user` in `tenant` that grants `capability_name`, until
  /// it returns true. Says whether the tenant and the user exist.
  template <class Visit>
  lookup visit_grants(std::string_view tenant, std::string_view user, std::string_view capability_name,
                      Visit&& visit) const;
};

/// `*` matches within one `/`-separated segment, `**` across segments, `?` one character.
[[nodiscard]] bool glob_match(std::string_view pattern, std::string_view text) noexcept;

}  // namespace choir::kernel
