#pragma once
/// The kernel as `choir` uses it: the gate every driven run passes (its policy kept in the store,
/// its audit log beside the store), and the `policy` and `audit` commands. See docs/cli.md.
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/kernel/audit.hpp"
#include "choir/kernel/policy_edit.hpp"
#include "choir/runtime/gate.hpp"
#include "choir/store/event_store.hpp"

namespace choir::cli {

/// The store document the policy in force is kept in.
inline constexpr const char* policy_document = "policy";

/// Where the audit key and head file of a store live: `audit.key` and `audit-<store id>.head`
/// beside a SQLite store's file, or in `.choir/` for PostgreSQL (the store id, made on first use
/// and kept in the store, tells the head files of several stores apart); `CHOIR_AUDIT_KEY` and
/// `CHOIR_AUDIT_HEAD` override either.
[[nodiscard]] result<kernel::audit_options> audit_options_for(store::event_store& store, const std::string& store_path);

/// Whom this command acts for: `--tenant`/`--user` if given, else `CHOIR_TENANT`/`CHOIR_USER`,
/// else tenant `local`, user `local`.
[[nodiscard]] runtime::principal principal_for(const std::string& tenant, const std::string& user);

/// The gate over `store`: the stored policy (none stored: nothing is admitted, and the error says
/// how to apply one) and the store's audit log.
[[nodiscard]] result<std::shared_ptr<runtime::gate>> open_gate(const std::shared_ptr<store::event_store>& store,
                                                               const std::string& store_path);

struct kernel_options {
  std::string store;
  std::string file;
  bool json = false;
  std::size_t limit = 50;
  std::string run_id;
  std::string tenant;
  std::string user;
  bool all = false;                 ///< consent list: every status, not only pending
  std::string reason;               ///< consent approve|deny
  std::vector<std::string> agents;  ///< consent approve|deny: folders of agents, for the run they continue
};

/// `choir policy apply FILE`: validates a `kind: Policy` document, audits the change and stores it.
int policy_apply(const kernel_options& options, std::ostream& out, std::ostream& err);
/// `choir policy show`: the policy in force, as applied.
int policy_show(const kernel_options& options, std::ostream& out, std::ostream& err);
/// `choir tenant|user|role|grant|token …`: one change to the policy in force, validated and
/// audited (`policy.change`, with the change). The policy is stored as indented JSON afterwards.
int change_policy(const kernel_options& options, const kernel::policy_change& change, std::ostream& out,
                  std::ostream& err);
/// `choir token create TENANT USER [--id ID]`: a new API token, shown once; only its hash is kept.
int token_create(const kernel_options& options, const std::string& token_id, std::ostream& out, std::ostream& err);
/// `choir token list`: a tenant's tokens (ids and users; never the tokens).
int token_list(const kernel_options& options, std::ostream& out, std::ostream& err);

/// `choir consent list`: the caller's tenant's consent requests (pending ones unless `all`).
int consent_list(const kernel_options& options, std::ostream& out, std::ostream& err);
/// `choir consent approve|deny ID`: answers a request, then continues the run that waits for it.
int consent_answer(const kernel_options& options, bool approve, std::ostream& out, std::ostream& err);
/// `choir audit verify`: checks the whole chain; exit 1 and where, if anything was tampered with.
int audit_verify(const kernel_options& options, std::ostream& out, std::ostream& err);
/// `choir audit list`: the last entries (of one run, with `--run`).
int audit_list(const kernel_options& options, std::ostream& out, std::ostream& err);

}  // namespace choir::cli
