#pragma once
/// Changes to a `kind: Policy` document, one at a time: what `choir tenant|user|role|grant|token`
/// do. Pure functions over the document as a value; the caller validates the result with
/// `policy::load`, audits the change and stores it.
#include <cstdint>
#include <string>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"

namespace choir::kernel {

struct policy_change {
  enum class op {
    add_tenant,
    remove_tenant,  ///< only a tenant without users
    add_user,       ///< with `roles`
    remove_user,    ///< and the user's tokens
    add_role,
    remove_role,  ///< only a role no user holds
    assign_role,
    unassign_role,
    add_grant,  ///< `capability`, narrowed by `allow` patterns if any
    remove_grant,
    add_token,  ///< `token_id` for `user`, stored as `token_sha256`
    revoke_token,
  };
  op what = op::add_tenant;
  std::string tenant;
  std::string user;
  std::string role;
  std::vector<std::string> roles;  ///< add_user
  std::string capability;
  std::vector<std::string> allow;
  std::string token_id;
  std::string token_sha256;
  std::int64_t created_ms = 0;

  /// The change as the audit log records it (a token's hash is not recorded).
  [[nodiscard]] value to_json() const;
};

/// An empty policy document: nobody may do anything.
[[nodiscard]] value empty_policy();

/// Applies `change` to the document. Errors (`core_errc::invalid_argument`) say what is in the
/// way: `tenant acme already exists`, `role writer is held by bob`, …
[[nodiscard]] result<value> apply_change(value document, const policy_change& change);

/// The document as stored after a change: indented JSON (which is YAML too).
[[nodiscard]] std::string policy_text(const value& document);

}  // namespace choir::kernel
