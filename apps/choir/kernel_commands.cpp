#include "apps/choir/kernel_commands.hpp"

#include <fmt/core.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <sstream>

#include "apps/choir/run_command.hpp"
#include "choir/core/id.hpp"
#include "choir/core/yaml.hpp"
#include "choir/kernel/policy.hpp"
#include "choir/runtime/run_tree.hpp"

namespace choir::cli {
namespace {

/// The store document that holds the policy in force (docs/audit.md, "Policy changes").

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

bool is_postgres(const std::string& where) {
  for (const char* prefix : {"postgresql://", "postgres://", "host=", "dbname=", "service=", "user="}) {
    if (where.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

int report(std::ostream& err, const std::string& command, const error& e) {
  err << command << ": " << e.message << "\n";
  return exit_invalid;
}

}  // namespace

result<kernel::audit_options> audit_options_for(store::event_store& store, const std::string& store_path) {
  CHOIR_TRY(auto id, store.get_document("store_id"));
  if (!id) {
    CHOIR_TRY(auto last, store.last_audit());
    if (last) {
      return make_error(kernel::kernel_errc::audit_broken,
                        "the store's id is missing but its audit log has entries: its head file cannot be found");
    }
    auto made = store.put_document("store_id", new_id().to_string(), 0);
    if (!made.ok() && made.err().code != store::store_errc::conflict) return std::move(made).err();
    CHOIR_TRY(id, store.get_document("store_id"));
    if (!id) return make_error(store::store_errc::io_error, "the store's id could not be recorded");
  }
  const std::string where = store_path.empty() ? std::string(default_store_path) : store_path;
  std::filesystem::path folder = ".choir";
  if (!is_postgres(where)) {
    folder = std::filesystem::path(where).parent_path();
    if (folder.empty()) folder = ".";
  }
  kernel::audit_options options;
  options.key_file = env_or("CHOIR_AUDIT_KEY", (folder / "audit.key").string());
  options.head_file = env_or("CHOIR_AUDIT_HEAD", (folder / ("audit-" + id->body + ".head")).string());
  return options;
}

runtime::principal principal_for(const std::string& tenant, const std::string& user) {
  return {tenant.empty() ? env_or("CHOIR_TENANT", "local") : tenant,
          user.empty() ? env_or("CHOIR_USER", "local") : user};
}

result<std::shared_ptr<runtime::gate>> open_gate(const std::shared_ptr<store::event_store>& store,
                                                 const std::string& store_path) {
  CHOIR_TRY(auto where, audit_options_for(*store, store_path));
  CHOIR_TRY(auto audit, kernel::audit_log::open(store, where));
  CHOIR_TRY(auto stored, store->get_document(policy_document));
  std::shared_ptr<const kernel::policy> policy;
  if (stored) {
    CHOIR_TRY(auto loaded, kernel::policy::load(stored->body, "stored policy v" + std::to_string(stored->version)));
    policy = std::make_shared<const kernel::policy>(std::move(loaded));
  }
  runtime::gate_options options;
  options.node.models = served_models();
  return std::make_shared<runtime::gate>(store, std::shared_ptr<kernel::audit_log>(std::move(audit)), std::move(policy),
                                         options);
}

namespace {

/// Puts `text` in force as the policy's next version after `from`: audited first (a change the
/// log does not hold did not happen; an entry whose version never appears in the store is a
/// change that failed), then stored unless another writer changed the policy meanwhile.
result<std::int64_t> commit_policy(const std::shared_ptr<store::event_store>& s, const kernel_options& options,
                                   const std::string& text, std::int64_t from, value details) {
  CHOIR_TRY(auto where, audit_options_for(*s, options.store));
  CHOIR_TRY(auto audit, kernel::audit_log::open(s, where));
  const auto who = principal_for(options.tenant, options.user);
  kernel::audit_event event{.kind = "policy.change", .tenant = who.tenant, .user = who.user};
  event.decision = "allow";
  details["from_version"] = from;
  details["to_version"] = from + 1;
  details["sha256"] = kernel::sha256_hex(text);
  event.details = std::move(details);
  CHOIR_CHECK(audit->append(event));
  auto stored = s->put_document(policy_document, text, from);
  if (!stored.ok() && stored.err().code == store::store_errc::conflict) {
    return make_error(store::store_errc::conflict, "the policy changed meanwhile; run the command again");
  }
  return stored;
}

}  // namespace

int policy_apply(const kernel_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir policy apply";
  auto text = read_file(options.file);
  if (!text.ok()) return report(err, command, text.err());
  auto loaded = kernel::policy::load(*text, options.file);
  if (!loaded.ok()) return report(err, command, loaded.err());
  auto s = open_store(options.store);
  if (!s.ok()) return report(err, command, s.err());
  auto current = (*s)->get_document(policy_document);
  if (!current.ok()) return report(err, command, current.err());
  const std::int64_t from = *current ? (*current)->version : 0;
  if (*current && (*current)->body == *text) {
    out << "policy version " << from << " is already in force; nothing changed\n";
    return exit_ok;
  }
  auto stored = commit_policy(*s, options, *text, from, value{{"file", options.file}});
  if (!stored.ok()) return report(err, command, stored.err());
  if (options.json) {
    out << dump_json(value{{"version", *stored}, {"sha256", kernel::sha256_hex(*text)}}) << "\n";
  } else {
    out << "policy version " << *stored << " applied from " << options.file << "\n";
  }
  return exit_ok;
}

int change_policy(const kernel_options& options, const kernel::policy_change& change, std::ostream& out,
                  std::ostream& err) {
  std::string command = "choir " + change.to_json()["op"].get<std::string>();
  std::replace(command.begin(), command.end(), '.', ' ');
  auto s = open_store(options.store);
  if (!s.ok()) return report(err, command, s.err());
  auto current = (*s)->get_document(policy_document);
  if (!current.ok()) return report(err, command, current.err());
  value doc = kernel::empty_policy();
  std::int64_t from = 0;
  if (*current) {
    from = (*current)->version;
    auto parsed = parse_yaml((*current)->body, "stored policy");
    if (!parsed.ok()) return report(err, command, parsed.err());
    for (const auto& d : *parsed) {
      if (d.root().is_object() && d.root().value("kind", "") == "Policy") doc = d.root();
    }
  }
  auto changed = kernel::apply_change(std::move(doc), change);
  if (!changed.ok()) return report(err, command, changed.err());
  const std::string text = kernel::policy_text(*changed);
  auto valid = kernel::policy::load(text, "changed policy");
  if (!valid.ok()) return report(err, command, valid.err());
  auto stored = commit_policy(*s, options, text, from, value{{"change", change.to_json()}});
  if (!stored.ok()) return report(err, command, stored.err());
  if (options.json) {
    out << dump_json(value{{"version", *stored}, {"change", change.to_json()}}) << "\n";
  } else {
    out << "policy version " << *stored << ": " << dump_json(change.to_json()) << "\n";
  }
  return exit_ok;
}

int token_create(const kernel_options& options, const std::string& token_id, std::ostream& out, std::ostream& err) {
  unsigned char secret[24];
  if (RAND_bytes(secret, sizeof secret) != 1) {
    err << "choir token create: no random bytes\n";
    return exit_invalid;
  }
  std::string token = "choir_";
  for (unsigned char b : secret) token += fmt::format("{:02x}", b);
  kernel::policy_change change{
      .what = kernel::policy_change::op::add_token, .tenant = options.tenant, .user = options.user};
  change.token_id = token_id.empty() ? new_id().to_string().substr(24) : token_id;
  change.token_sha256 = kernel::sha256_hex(token);
  change.created_ms = system_clock().unix_ms();
  kernel_options as_admin = options;
  as_admin.tenant.clear();  // the audit entry names who ran the command, not the token's owner
  as_admin.user.clear();
  std::ostringstream quiet;
  const int code = change_policy(as_admin, change, quiet, err);
  if (code != exit_ok) return code;
  if (options.json) {
    out << dump_json(value{{"id", change.token_id}, {"tenant", change.tenant}, {"user", change.user}, {"token", token}})
        << "\n";
  } else {
    out << "token " << change.token_id << " for " << change.tenant << "/" << change.user << ":\n  " << token
        << "\nIt is shown this once: only its SHA-256 is kept.\n";
  }
  return exit_ok;
}

int token_list(const kernel_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir token list";
  auto s = open_store(options.store);
  if (!s.ok()) return report(err, command, s.err());
  auto current = (*s)->get_document(policy_document);
  if (!current.ok()) return report(err, command, current.err());
  if (!*current) return exit_ok;
  auto parsed = parse_yaml((*current)->body, "stored policy");
  if (!parsed.ok()) return report(err, command, parsed.err());
  for (const auto& d : *parsed) {
    if (!d.root().is_object() || d.root().value("kind", "") != "Policy" || !d.root().contains("tenants")) continue;
    for (const auto& [tenant, t] : d.root()["tenants"].items()) {
      if (!options.tenant.empty() && tenant != options.tenant) continue;
      if (!t.is_object() || !t.contains("tokens")) continue;
      for (const auto& [id, tok] : t["tokens"].items()) {
        if (options.json) {
          out << dump_json(value{{"id", id},
                                 {"tenant", tenant},
                                 {"user", tok.value("user", "")},
                                 {"created_ms", tok.value("created_ms", 0)}})
              << "\n";
        } else {
          out << id << "  " << tenant << "/" << tok.value("user", "") << "\n";
        }
      }
    }
  }
  return exit_ok;
}

int policy_show(const kernel_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir policy show";
  auto s = open_store(options.store);
  if (!s.ok()) return report(err, command, s.err());
  auto current = (*s)->get_document(policy_document);
  if (!current.ok()) return report(err, command, current.err());
  if (!*current) {
    err << command << ": no policy is stored, so nothing is admitted: apply one with choir policy apply FILE "
        << "(examples/policy.yaml grants what the examples use)\n";
    return exit_invalid;
  }
  if (options.json) {
    out << dump_json(value{{"version", (*current)->version},
                           {"updated_ms", (*current)->updated_ms},
                           {"sha256", kernel::sha256_hex((*current)->body)},
                           {"body", (*current)->body}})
        << "\n";
  } else {
    out << "# policy version " << (*current)->version << "\n" << (*current)->body;
    if (!(*current)->body.empty() && (*current)->body.back() != '\n') out << "\n";
  }
  return exit_ok;
}

int consent_list(const kernel_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir consent list";
  auto s = open_store(options.store);
  if (!s.ok()) return report(err, command, s.err());
  const auto who = principal_for(options.tenant, options.user);
  auto listed = (*s)->list_consents(who.tenant, options.all ? "" : "pending", options.limit);
  if (!listed.ok()) return report(err, command, listed.err());
  const std::int64_t now = system_clock().unix_ms();
  for (const auto& c : *listed) {
    // Not answered in time: shown as expired (the gate records it so when the call runs again).
    const std::string status = c.status == "pending" && now >= c.expires_ms ? "expired" : c.status;
    if (options.json) {
      value v = c.to_json();
      v["status"] = status;
      out << dump_json(v) << "\n";
      continue;
    }
    out << c.id << "  " << status << "  " << c.tenant << "/" << c.user << "  " << c.agent << "  run " << c.run_id;
    if (c.step) out << " step " << *c.step;
    out << "  " << c.capability;
    if (!c.argument.empty()) out << "(" << c.argument << ")";
    if (!c.arguments.is_null()) out << "  " << dump_json(c.arguments);
    if (!c.answered_by.empty()) out << "  by " << c.answered_by;
    if (!c.reason.empty()) out << ": " << c.reason;
    out << "\n";
  }
  return exit_ok;
}

int consent_answer(const kernel_options& options, bool approve, std::ostream& out, std::ostream& err) {
  const std::string command = approve ? "choir consent approve" : "choir consent deny";
  std::string run_id;
  {
    auto s = open_store(options.store);
    if (!s.ok()) return report(err, command, s.err());
    auto kernel = open_gate(*s, options.store);
    if (!kernel.ok()) return report(err, command, kernel.err());
    auto answered =
        (*kernel)->answer(options.run_id, approve, principal_for(options.tenant, options.user), options.reason);
    if (!answered.ok()) return report(err, command, answered.err());
    if (!options.json) {
      out << "consent request " << answered->id << " " << answered->status << ": " << answered->capability
          << (answered->argument.empty() ? "" : "(" + answered->argument + ")") << " for run " << answered->run_id
          << "\n";
    }
    run_id = runtime::waiting_root(**s, answered->run_id);
  }
  runs_options resume;
  resume.store = options.store;
  resume.json = options.json;
  resume.run_id = run_id;
  resume.run.json = options.json;
  resume.run.store = options.store;
  resume.run.tenant = options.tenant;
  resume.run.user = options.user;
  resume.run.agents = options.agents;
  return runs_resume(resume, out, err);
}

int audit_verify(const kernel_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir audit verify";
  auto s = open_store(options.store);
  if (!s.ok()) return report(err, command, s.err());
  auto where = audit_options_for(**s, options.store);
  if (!where.ok()) return report(err, command, where.err());
  auto verified = kernel::verify_audit(**s, *where);
  if (!verified.ok()) return report(err, command, verified.err());
  if (options.json) {
    out << dump_json(verified->to_json()) << "\n";
  } else if (verified->ok()) {
    out << "audit log intact: " << verified->entries << (verified->entries == 1 ? " entry" : " entries")
        << " verified\n";
  } else {
    out << "audit log TAMPERED at " << verified->problem << "\n"
        << "  " << verified->verified << " entries before it verify\n";
  }
  for (const auto& note : verified->notes) {
    if (!options.json) out << "note: " << note << "\n";
  }
  return verified->ok() ? exit_ok : exit_step_failed;
}

int audit_list(const kernel_options& options, std::ostream& out, std::ostream& err) {
  const std::string command = "choir audit list";
  auto s = open_store(options.store);
  if (!s.ok()) return report(err, command, s.err());
  auto last = (*s)->last_audit();
  if (!last.ok()) return report(err, command, last.err());
  if (!*last) return exit_ok;
  // With --run, every entry is read and the last `limit` of that run kept.
  const auto limit = static_cast<std::int64_t>(std::max<std::size_t>(options.limit, 1));
  const std::int64_t from = options.run_id.empty() ? std::max<std::int64_t>(1, (*last)->seq - limit + 1) : 1;
  std::vector<value> shown;
  auto scanned = (*s)->scan_audit(from, [&](const store::audit_view& row) {
    value entry = value::parse(row.entry, nullptr, false);
    if (entry.is_discarded()) entry = value{{"seq", row.seq}, {"unreadable", std::string(row.entry)}};
    if (!options.run_id.empty() && entry.value("run", "") != options.run_id) return true;
    shown.push_back(std::move(entry));
    if (static_cast<std::int64_t>(shown.size()) > limit) shown.erase(shown.begin());
    return true;
  });
  if (!scanned.ok()) return report(err, command, scanned.err());
  for (const auto& e : shown) {
    if (options.json) {
      out << dump_json(e) << "\n";
      continue;
    }
    std::string line = std::to_string(e.value("seq", 0)) + "  " + e.value("kind", "") + "  " + e.value("tenant", "") +
                       "/" + e.value("user", "");
    if (!e.value("agent", "").empty()) line += "  " + e.value("agent", "");
    if (!e.value("run", "").empty()) {
      line += "  run " + e.value("run", "");
      if (e.contains("step") && e["step"].is_number()) line += " step " + std::to_string(e["step"].get<std::int64_t>());
    }
    if (!e.value("capability", "").empty()) {
      line += "  " + e.value("capability", "");
      if (!e.value("argument", "").empty()) line += "(" + e.value("argument", "") + ")";
    }
    if (e.contains("details") && e["details"].is_object() && e["details"].contains("change")) {
      line += "  " + dump_json(e["details"]["change"]);
    } else if (e.contains("details") && e["details"].is_object() && e["details"].contains("to_version")) {
      line += "  policy version " + std::to_string(e["details"].value("to_version", 0));
    }
    if (!e.value("decision", "").empty()) line += "  " + e.value("decision", "");
    if (!e.value("reason", "").empty()) line += ": " + e.value("reason", "");
    out << line << "\n";
  }
  return exit_ok;
}

}  // namespace choir::cli
