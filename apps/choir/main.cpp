// The `choir` command: one binary for every ChoirOS command. See docs/cli.md.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/choir/chat_command.hpp"
#include "apps/choir/kernel_commands.hpp"
#include "apps/choir/mcp_command.hpp"
#include "apps/choir/run_command.hpp"
#include "apps/choir/serve_command.hpp"
#include "choir/graph/export.hpp"
#include "choir/graph/loader.hpp"
#include "choir/kernel/contract.hpp"

namespace {

int contract_validate(const std::string& file, bool json) {
  auto text = choir::cli::read_file(file);
  if (!text.ok()) {
    fmt::print(stderr, "choir contract validate: {}\n", text.err().message);
    return choir::cli::exit_invalid;
  }
  auto loaded = choir::kernel::load_contract(*text, file);
  if (!loaded.ok()) {
    fmt::print(stderr, "choir contract validate: {}\n", loaded.err().message);
    return choir::cli::exit_invalid;
  }
  const auto& c = loaded->contract;
  if (json) {
    fmt::print("{}\n", choir::dump_json(choir::value{
                           {"valid", true}, {"contract", c.to_json()}, {"not_enforced", loaded->not_enforced}}));
    return choir::cli::exit_ok;
  }
  fmt::print("contract {}: valid ({}, {} {})\n", c.name, choir::graph::to_string(c.latency), c.capabilities.size(),
             c.capabilities.size() == 1 ? "capability" : "capabilities");
  if (!loaded->not_enforced.empty()) {
    fmt::print("declared but not enforced yet:\n");
    for (const auto& line : loaded->not_enforced) fmt::print("  - {}\n", line);
  }
  return choir::cli::exit_ok;
}

int graph_command(const std::string& file, const std::string& format) {
  using namespace choir::graph;
  auto text = choir::cli::read_file(file);
  if (!text.ok()) {
    fmt::print(stderr, "choir graph: {}\n", text.err().message);
    return choir::cli::exit_invalid;
  }
  if (auto found = choir::cli::search_agents({}, file); !found.ok()) {
    fmt::print(stderr, "choir graph: {}\n", found.err().message);
    return choir::cli::exit_invalid;
  }
  const auto registry = choir::cli::default_registry();
  auto doc = load_graph(*text, file, registry);
  if (!doc.ok()) {
    fmt::print(stderr, "choir graph: {}\n", doc.err().message);
    return choir::cli::exit_invalid;
  }
  auto g = doc->builder.build_graph();
  if (!g.ok()) {
    fmt::print(stderr, "choir graph: {}\n", g.err().message);
    return choir::cli::exit_invalid;
  }
  if (format == "mermaid") {
    fmt::print("{}", to_mermaid(**g));
  } else if (format == "dot") {
    fmt::print("{}", to_dot(**g));
  } else {
    fmt::print("{}\n", choir::dump_json((*g)->describe(), 2));
  }
  return choir::cli::exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "choir: the ChoirOS command line — run agents, inspect graphs.\n"
      "Exit codes: 0 success, 1 a step failed, 2 invalid input, 3 stopped by --max-steps."};
  app.set_version_flag("--version", std::string("choir 0.1.0"));
  app.require_subcommand(1);
  std::string models_file;
  app.add_option("--models", models_file,
                 "The models file (kind: Models; default: $CHOIR_MODELS, else models.yaml beside the agents)")
      ->check(CLI::ExistingFile);
  std::string mcp_file;
  app.add_option("--mcp", mcp_file,
                 "The MCP servers file (kind: McpServers; default: $CHOIR_MCP, else mcp.yaml beside the agents)")
      ->check(CLI::ExistingFile);
  app.parse_complete_callback([&] {
    choir::cli::set_models_file(models_file);
    choir::cli::set_mcp_file(mcp_file);
  });

  choir::cli::run_options run_opts;
  auto* run = app.add_subcommand("run", "Run a YAML graph in memory and print each step");
  run->add_option("file", run_opts.file, "The agent or graph YAML file")->required();
  run->add_option("--input,-i", run_opts.inputs, "An input for the first step, as key=value (value: JSON or text)");
  run->add_option("--halt-after", run_opts.halt_after, "Stop after this action runs (or @tag:NAME)");
  run->add_option("--halt-before", run_opts.halt_before, "Stop before this action would run (or @tag:NAME)");
  run->add_option("--max-steps", run_opts.max_steps, "Stop after this many steps; 0 means no limit")
      ->default_val(100000);
  run->add_flag("--json", run_opts.json, "Print one JSON object per step, then the outcome");
  run->add_option("--store", run_opts.store,
                  "The event store: a SQLite file (default: .choir/choir.db) or postgresql://…");
  run->add_flag("--no-store", run_opts.no_store, "Run in memory only; record nothing");
  run->add_flag("--pin", run_opts.pin, "Resume this run only under the graph version it starts with");
  run->add_option("--agents", run_opts.agents,
                  "A folder where agents named by agent: are found as NAME.yaml (the file's folder is searched too)");
  run->add_option("--tenant", run_opts.tenant, "The tenant the run acts for (default: $CHOIR_TENANT, else local)");
  run->add_option("--user", run_opts.user, "The user the run acts for (default: $CHOIR_USER, else local)");

  choir::cli::runs_options runs_opts;
  auto* runs = app.add_subcommand("runs", "Inspect, resume, fork, replay and prune runs kept in the event store");
  runs->require_subcommand(1);
  runs->add_option("--store", runs_opts.store,
                   "The event store: a SQLite file (default: .choir/choir.db) or postgresql://…");
  runs->add_flag("--json", runs_opts.json, "Print JSON");
  runs->add_option("--tenant", runs_opts.run.tenant, "Your tenant (default: $CHOIR_TENANT, else local)");
  runs->add_option("--user", runs_opts.run.user, "Your user (default: $CHOIR_USER, else local)");
  runs->add_option("--agents", runs_opts.run.agents,
                   "A folder where agents named by agent: are found as NAME.yaml (the current folder is searched too)");
  auto* runs_list = runs->add_subcommand("list", "List runs, newest first");
  std::size_t list_limit = 50;
  runs_list->add_option("--limit", list_limit, "At most this many")->default_val(50);
  auto* runs_show = runs->add_subcommand("show", "Show a run and its steps");
  runs_show->add_option("run", runs_opts.run_id, "The run id")->required();
  std::size_t show_limit = 1000;
  runs_show->add_option("--limit", show_limit, "At most this many steps")->default_val(1000);
  auto* runs_state = runs->add_subcommand("state", "Print a run's state after a step");
  runs_state->add_option("run", runs_opts.run_id, "The run id")->required();
  runs_state->add_option("--at", runs_opts.at, "The step (default: the last)");
  auto* runs_resume = runs->add_subcommand("resume", "Continue a run from its last committed step");
  runs_resume->add_option("run", runs_opts.run_id, "The run id")->required();
  runs_resume->add_option("--input,-i", runs_opts.run.inputs, "An input for the first step, as key=value");
  runs_resume->add_option("--halt-after", runs_opts.run.halt_after, "Stop after this action runs");
  runs_resume->add_option("--halt-before", runs_opts.run.halt_before, "Stop before this action would run");
  runs_resume->add_option("--max-steps", runs_opts.run.max_steps, "Stop after this many steps; 0: no limit")
      ->default_val(100000);
  runs_resume->add_option("--graph", runs_opts.graph_file,
                          "Continue under this graph file's version, if the change is safe (docs/upgrades.md)");
  auto* runs_input = runs->add_subcommand("input", "Give a waiting run its input and continue it");
  runs_input->add_option("run", runs_opts.run_id, "The run id")->required();
  runs_input->add_option("inputs", runs_opts.run.inputs, "key=value (value: JSON or text)")->required();
  runs_input->add_option("--halt-after", runs_opts.run.halt_after, "Stop after this action runs");
  runs_input->add_option("--halt-before", runs_opts.run.halt_before, "Stop before this action would run");
  runs_input->add_option("--max-steps", runs_opts.run.max_steps, "Stop after this many steps; 0: no limit")
      ->default_val(100000);
  auto* runs_replay = runs->add_subcommand("replay", "Re-execute a run's steps and report the first divergence");
  runs_replay->add_option("run", runs_opts.run_id, "The run id")->required();
  auto* runs_prune = runs->add_subcommand("prune", "Delete finished runs by age or count (retention)");
  runs_prune->add_option("--older-than", runs_opts.older_than, "Finished runs older than this (30d, 12h, 45m, 90s)");
  runs_prune->add_option("--keep-last", runs_opts.keep_last, "Keep only the newest N finished runs per partition");
  runs_prune->add_option("--partition", runs_opts.partition, "Only this partition");
  auto* runs_fork = runs->add_subcommand("fork", "Start a new run from the state after a step of another");
  runs_fork->add_option("run", runs_opts.run_id, "The run id")->required();
  runs_fork->add_option("--at", runs_opts.at, "The step to fork after (default: the last)");
  for (auto* sub : {runs_list, runs_show, runs_state, runs_resume, runs_input, runs_replay, runs_prune, runs_fork}) {
    sub->fallthrough();  // --store, --json
  }

  std::string contract_file;
  bool contract_json = false;
  auto* contract = app.add_subcommand("contract", "Check an agent's contract");
  contract->require_subcommand(1);
  auto* contract_check = contract->add_subcommand("validate", "Validate the AgentContract in a YAML file");
  contract_check->add_option("file", contract_file, "The agent or contract YAML file")->required();
  contract_check->add_flag("--json", contract_json, "Print JSON");

  choir::cli::kernel_options kernel_opts;
  auto* policy = app.add_subcommand("policy", "The policy in force: tenants, roles, grants and users");
  policy->require_subcommand(1);
  policy->add_option("--store", kernel_opts.store, "The event store (default: .choir/choir.db) or postgresql://…");
  policy->add_flag("--json", kernel_opts.json, "Print JSON");
  auto* policy_apply =
      policy->add_subcommand("apply", "Validate a kind: Policy file, audit the change, put it in force");
  policy_apply->add_option("file", kernel_opts.file, "The Policy YAML file")->required();
  policy_apply->add_option("--tenant", kernel_opts.tenant, "Your tenant, as the audit log records it");
  policy_apply->add_option("--user", kernel_opts.user, "Your user, as the audit log records it");
  auto* policy_show = policy->add_subcommand("show", "Print the policy in force");
  // One change at a time to the policy in force (each validated and audited).
  using change_op = choir::kernel::policy_change::op;
  choir::kernel::policy_change change;
  std::string token_id;
  struct change_command {
    CLI::App* sub;
    change_op what;
  };
  std::vector<change_command> changes;
  auto policy_command = [&](const char* name, const char* help) {
    auto* cmd = app.add_subcommand(name, help);
    cmd->require_subcommand(1);
    cmd->add_option("--store", kernel_opts.store, "The event store (default: .choir/choir.db) or postgresql://…");
    cmd->add_flag("--json", kernel_opts.json, "Print JSON");
    return cmd;
  };
  auto add_change = [&](CLI::App* parent, const char* name, const char* help, change_op what) {
    auto* sub = parent->add_subcommand(name, help);
    sub->add_option("tenant", change.tenant, "The tenant")->required();
    sub->fallthrough();
    changes.push_back({sub, what});
    return sub;
  };
  auto* tenant_cmd = policy_command("tenant", "Add or remove tenants of the policy in force");
  add_change(tenant_cmd, "add", "Add a tenant", change_op::add_tenant);
  add_change(tenant_cmd, "remove", "Remove a tenant that has no users", change_op::remove_tenant);
  auto* user_cmd = policy_command("user", "Add or remove users of a tenant");
  add_change(user_cmd, "add", "Add a user", change_op::add_user)
      ->add_option("--role", change.roles, "A role the user holds (repeatable)");
  add_change(user_cmd, "remove", "Remove a user and their tokens", change_op::remove_user);
  for (auto& c : changes) {
    if (c.what == change_op::add_user || c.what == change_op::remove_user) {
      c.sub->add_option("user", change.user, "The user")->required();
    }
  }
  auto* role_cmd = policy_command("role", "Add, remove, assign and unassign a tenant's roles");
  add_change(role_cmd, "add", "Add a role", change_op::add_role)->add_option("role", change.role)->required();
  add_change(role_cmd, "remove", "Remove a role no user holds", change_op::remove_role)
      ->add_option("role", change.role)
      ->required();
  for (auto [name, what] :
       {std::pair{"assign", change_op::assign_role}, std::pair{"unassign", change_op::unassign_role}}) {
    auto* sub = add_change(role_cmd, name,
                           what == change_op::assign_role ? "Give a user a role" : "Take a role from a user", what);
    sub->add_option("user", change.user, "The user")->required();
    sub->add_option("role", change.role, "The role")->required();
  }
  auto* grant_cmd = policy_command("grant", "Grant capabilities to a tenant's roles, or take them back");
  for (auto [name, what] : {std::pair{"add", change_op::add_grant}, std::pair{"remove", change_op::remove_grant}}) {
    auto* sub = add_change(
        grant_cmd, name,
        what == change_op::add_grant ? "Grant a capability to a role" : "Take a capability from a role", what);
    sub->add_option("role", change.role, "The role")->required();
    sub->add_option("capability", change.capability, "The capability (fs.read, web.fetch, agent.call, …)")->required();
    if (what == change_op::add_grant) {
      sub->add_option("--allow", change.allow, "Narrow it to arguments matching this pattern (repeatable)");
    }
  }
  auto* token_cmd = policy_command("token", "API tokens: created for a user, shown once, stored hashed");
  auto* token_new = token_cmd->add_subcommand("create", "Create a token for a user (printed once)");
  token_new->add_option("tenant", kernel_opts.tenant, "The tenant")->required();
  token_new->add_option("user", kernel_opts.user, "The user the token acts for")->required();
  token_new->add_option("--id", token_id, "A name for the token (default: random)");
  token_new->fallthrough();
  auto* token_revoke = add_change(token_cmd, "revoke", "Revoke a token", change_op::revoke_token);
  token_revoke->add_option("id", change.token_id, "The token's id")->required();
  auto* token_ls = token_cmd->add_subcommand("list", "List tokens (ids and users, never the tokens)");
  token_ls->add_option("--tenant", kernel_opts.tenant, "Only this tenant");
  token_ls->fallthrough();

  auto* consent = app.add_subcommand("consent", "Consent requests: calls waiting for a person's approval");
  consent->require_subcommand(1);
  consent->add_option("--store", kernel_opts.store, "The event store (default: .choir/choir.db) or postgresql://…");
  consent->add_flag("--json", kernel_opts.json, "Print JSON");
  consent->add_option("--tenant", kernel_opts.tenant, "Your tenant (default: $CHOIR_TENANT, else local)");
  consent->add_option("--user", kernel_opts.user, "Your user (default: $CHOIR_USER, else local)");
  auto* consent_list = consent->add_subcommand("list", "Your tenant's pending requests (--all: answered ones too)");
  consent_list->add_flag("--all", kernel_opts.all, "Every request, answered or not");
  consent_list->add_option("--limit", kernel_opts.limit, "At most this many")->default_val(50);
  auto* consent_approve = consent->add_subcommand("approve", "Approve a request, then continue the run waiting for it");
  auto* consent_deny = consent->add_subcommand("deny", "Deny a request (the call fails), then continue the run");
  for (auto* sub : {consent_approve, consent_deny}) {
    sub->add_option("id", kernel_opts.run_id, "The request's id (from choir consent list)")->required();
    sub->add_option("--reason", kernel_opts.reason, "Why, for the record");
    sub->add_option("--agents", kernel_opts.agents, "A folder where the run's agents are found as NAME.yaml");
  }
  auto* audit = app.add_subcommand("audit", "The hash-chained audit log of every kernel decision");
  audit->require_subcommand(1);
  audit->add_option("--store", kernel_opts.store, "The event store (default: .choir/choir.db) or postgresql://…");
  audit->add_flag("--json", kernel_opts.json, "Print JSON");
  auto* audit_verify = audit->add_subcommand("verify", "Check every entry's MAC and the head; exit 1 if tampered");
  auto* audit_list = audit->add_subcommand("list", "Print the last entries");
  audit_list->add_option("--limit", kernel_opts.limit, "At most this many")->default_val(50);
  audit_list->add_option("--run", kernel_opts.run_id, "Only this run's entries");
  for (auto* sub : {policy_apply, policy_show, audit_verify, audit_list, consent_list, consent_approve, consent_deny}) {
    sub->fallthrough();
  }

  choir::cli::mcp_options mcp_opts;
  auto* mcp = app.add_subcommand("mcp", "The Model Context Protocol");
  mcp->require_subcommand(1);
  auto* mcp_serve =
      mcp->add_subcommand("serve", "Serve ChoirOS's tools to an MCP client over stdio, through the kernel");
  mcp_serve->add_option("--store", mcp_opts.store, "The event store (default: .choir/choir.db) or postgresql://…");
  mcp_serve->add_option("--agent", mcp_opts.agent_file,
                        "The agent file whose contract the session acts under (default: read-only fs tools)");
  mcp_serve->add_option("--agents", mcp_opts.agents, "A folder where agents (and models.yaml) are found");
  mcp_serve->add_option("--tenant", mcp_opts.tenant,
                        "The tenant the session acts for (default: $CHOIR_TENANT, else local)");
  mcp_serve->add_option("--user", mcp_opts.user, "The user the session acts for (default: $CHOIR_USER, else local)");

  choir::cli::serve_options serve_opts;
  auto* serve = app.add_subcommand("serve", "Serve the HTTP/WebSocket API and the web desktop (docs/api.md)");
  serve->add_option("--listen", serve_opts.listen, "HOST:PORT to listen on (default 127.0.0.1:8080; port 0: any)");
  serve->add_option("--store", serve_opts.store, "The event store (default: .choir/choir.db) or postgresql://…");
  serve->add_option("--agents", serve_opts.agents, "A folder of agent files (repeatable; default: ./examples)");
  serve->add_option("--web", serve_opts.web, "The web desktop's built files (default: web/dist)");
  serve->add_option("--allow-host", serve_opts.allow_hosts, "A further Host name to answer to (repeatable)");
  serve->add_option("--threads", serve_opts.threads, "Threads answering requests (default 1)")
      ->check(CLI::Range(1, 64));
  serve
      ->add_option(
          "--shutdown-grace", serve_opts.shutdown_grace_s,
          "Seconds steps in flight may take to commit after SIGTERM; then they are left for a resume (default 30)")
      ->check(CLI::Range(0.0, 86'400.0));
  serve->add_option("--config", serve_opts.config,
                    "A kind: ServerConfig file of these settings (the flags given here win; docs/api.md)");
  serve->add_option("--max-connections", serve_opts.max_connections, "Open connections at most (default 4096)")
      ->check(CLI::Range(1, 1'000'000));
  serve
      ->add_option("--step-workers", serve_opts.step_workers,
                   "Agent steps that run at once, started in latency-class order (default: one per core)")
      ->check(CLI::Range(0, 1024));
  serve
      ->add_option("--hrt-workers", serve_opts.hrt_workers,
                   "Of the step workers, how many run only HRT steps (default 0: HRT steps go first on every one)")
      ->check(CLI::Range(0, 1023));

  choir::cli::chat_options chat_opts;
  auto* chat = app.add_subcommand("chat", "Talk to an agent in the terminal (its replies streamed)");
  chat->add_option("agent", chat_opts.agent, "An agent file, or the name of one in --agents")->required();
  chat->add_option("--store", chat_opts.store, "The event store (default: .choir/choir.db) or postgresql://…");
  chat->add_option("--agents", chat_opts.agents, "A folder of agent files (default: ./examples)");
  chat->add_option("--run", chat_opts.run_id, "Continue this conversation");
  chat->add_option("--tenant", chat_opts.tenant, "The tenant to act for (default: $CHOIR_TENANT, else local)");
  chat->add_option("--user", chat_opts.user, "The user to act for (default: $CHOIR_USER, else local)");

  std::string graph_file;
  std::string graph_format = "mermaid";
  auto* graph = app.add_subcommand("graph", "Print a graph as Mermaid, DOT or JSON");
  graph->add_option("file", graph_file, "The agent or graph YAML file")->required();
  graph->add_option("--format,-f", graph_format, "mermaid, dot or json")
      ->check(CLI::IsMember({"mermaid", "dot", "json"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : choir::cli::exit_invalid;
  }
  if (run->parsed()) return choir::cli::run_command(run_opts, std::cout, std::cerr);
  runs_opts.run.json = runs_opts.json;
  runs_opts.run.store = runs_opts.store;
  runs_opts.limit = runs_list->parsed() ? list_limit : show_limit;
  if (runs_list->parsed()) return choir::cli::runs_list(runs_opts, std::cout, std::cerr);
  if (runs_show->parsed()) return choir::cli::runs_show(runs_opts, std::cout, std::cerr);
  if (runs_state->parsed()) return choir::cli::runs_state(runs_opts, std::cout, std::cerr);
  if (runs_resume->parsed()) return choir::cli::runs_resume(runs_opts, std::cout, std::cerr);
  if (runs_fork->parsed()) return choir::cli::runs_fork(runs_opts, std::cout, std::cerr);
  if (runs_input->parsed()) return choir::cli::runs_input(runs_opts, std::cout, std::cerr);
  if (runs_replay->parsed()) return choir::cli::runs_replay(runs_opts, std::cout, std::cerr);
  if (runs_prune->parsed()) return choir::cli::runs_prune(runs_opts, std::cout, std::cerr);
  if (graph->parsed()) return graph_command(graph_file, graph_format);
  if (chat->parsed()) return choir::cli::chat_command(chat_opts, std::cin, std::cout, std::cerr);
  if (serve->parsed()) {
    for (const auto* opt : serve->get_options()) {
      if (opt->count() > 0) serve_opts.given.insert(opt->get_name());
    }
    return choir::cli::serve_command(serve_opts, std::cout, std::cerr);
  }
  if (mcp_serve->parsed()) return choir::cli::mcp_serve(mcp_opts, std::cin, std::cout, std::cerr);
  if (contract_check->parsed()) return contract_validate(contract_file, contract_json);
  if (policy_apply->parsed()) return choir::cli::policy_apply(kernel_opts, std::cout, std::cerr);
  if (policy_show->parsed()) return choir::cli::policy_show(kernel_opts, std::cout, std::cerr);
  for (const auto& c : changes) {
    if (c.sub->parsed()) {
      change.what = c.what;
      return choir::cli::change_policy(kernel_opts, change, std::cout, std::cerr);
    }
  }
  if (token_new->parsed()) return choir::cli::token_create(kernel_opts, token_id, std::cout, std::cerr);
  if (token_ls->parsed()) return choir::cli::token_list(kernel_opts, std::cout, std::cerr);
  if (consent_list->parsed()) return choir::cli::consent_list(kernel_opts, std::cout, std::cerr);
  if (consent_approve->parsed()) return choir::cli::consent_answer(kernel_opts, true, std::cout, std::cerr);
  if (consent_deny->parsed()) return choir::cli::consent_answer(kernel_opts, false, std::cout, std::cerr);
  if (audit_verify->parsed()) return choir::cli::audit_verify(kernel_opts, std::cout, std::cerr);
  if (audit_list->parsed()) return choir::cli::audit_list(kernel_opts, std::cout, std::cerr);
  return choir::cli::exit_invalid;
}
