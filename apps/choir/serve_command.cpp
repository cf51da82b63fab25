#include "apps/choir/serve_command.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "apps/choir/kernel_commands.hpp"
#include "apps/choir/run_command.hpp"
#include "choir/api/server.hpp"
#include "choir/api/service.hpp"
#include "choir/core/yaml.hpp"
#include "choir/runtime/actor.hpp"
#include "choir/runtime/agent_catalog.hpp"
#include "choir/runtime/mcp_session.hpp"
#include "choir/store/group_commit.hpp"

namespace choir::cli {
namespace {

namespace fs = std::filesystem;

/// `host:port` → its parts (the host may be `[v6]`).
result<std::pair<std::string, std::uint16_t>> split_listen(const std::string& where) {
  const auto colon = where.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return make_error(core_errc::invalid_argument, "--listen takes HOST:PORT, e.g. 127.0.0.1:8080");
  }
  std::string host = where.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const auto port_text = where.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port_text) > 65535) {
    return make_error(core_errc::invalid_argument, "--listen: '" + port_text + "' is not a port");
  }
  return std::pair{host, static_cast<std::uint16_t>(std::stoul(port_text))};
}

/// Where the desktop's built files are when `--web` is not given: `web/dist` here, or in the
/// checkout the binary was built in.
fs::path default_web_dir() {
  std::error_code ec;
  if (fs::is_regular_file("web/dist/index.html", ec)) return "web/dist";
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (auto dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      if (fs::is_regular_file(dir / "web/dist/index.html", ec)) return dir / "web/dist";
    }
  }
  return {};
}

/// Every agent in `folders`: each `*.yaml` holding a `kind: Graph` document. Files of other kinds
/// (models, policies, scripts) are passed over; an agent that does not load is reported and left out.
std::map<std::string, std::shared_ptr<const runtime::agent_definition>, std::less<>> load_agents(
    const std::vector<std::string>& folders, std::ostream& err) {
  std::map<std::string, std::shared_ptr<const runtime::agent_definition>, std::less<>> out;
  for (const auto& folder : folders) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      if (entry.is_regular_file() && entry.path().extension() == ".yaml") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      auto text = read_file(file.string());
      if (!text.ok() || text->find("kind: Graph") == std::string::npos) continue;
      auto agent = runtime::load_agent(*text, file.string(), default_registry());
      if (!agent.ok()) {
        err << "choir serve: " << file.string() << " left out: " << agent.err().message << "\n";
        continue;
      }
      if (!(*agent)->contract) {
        err << "choir serve: " << file.string() << " left out: it has no AgentContract, so nothing would admit it\n";
        continue;
      }
      process_services()->agents->add(*agent);
      out[(*agent)->name] = *agent;
    }
  }
  return out;
}

/// Makes the admin's token if the policy has none at all (the first start), and returns it.
result<std::string> first_token(const std::string& store_path, std::ostream& err) {
  kernel_options list{.store = store_path, .json = true};
  std::ostringstream listed;
  std::ostringstream quiet;
  if (token_list(list, listed, quiet) != exit_ok) return make_error(core_errc::io_error, quiet.str());
  if (!listed.str().empty()) return std::string();
  const auto admin = principal_for("", "");
  kernel_options make{.store = store_path, .json = true, .tenant = admin.tenant, .user = admin.user};
  std::ostringstream made;
  std::ostringstream why;
  if (token_create(make, "admin", made, why) != exit_ok) {
    err << "choir serve: no admin token made (" << why.str() << "); make one with choir token create TENANT USER\n";
    return std::string();
  }
  auto v = value::parse(made.str(), nullptr, false);
  return v.is_object() ? v.value("token", std::string()) : std::string();
}

}  // namespace

result<void> read_serve_config(serve_options& options) {
  if (options.config.empty()) return {};
  CHOIR_TRY(auto text, read_file(options.config));
  CHOIR_TRY(auto docs, parse_yaml(text, options.config));
  if (docs.size() != 1) {
    return make_error(core_errc::invalid_argument, options.config + ": expected one ServerConfig document");
  }
  const auto& doc = docs.front();
  const value& root = doc.root();
  auto bad = [&](const std::string& key, const std::string& why) {
    return make_error(core_errc::invalid_argument, doc.locate(key) + ": " + key + ": " + why);
  };
  if (!root.is_object() || root.value("kind", "") != "ServerConfig") return bad("kind", "must be ServerConfig");
  const fs::path base = fs::path(options.config).parent_path();
  auto path_of = [&](const std::string& p) { return fs::path(p).is_absolute() ? p : (base / p).string(); };
  auto taken = [&](std::string_view flag) { return options.given.contains(flag); };
  for (const auto& [key, v] : root.items()) {
    if (key == "kind") continue;
    if (key == "listen" || key == "store" || key == "web") {
      if (!v.is_string() || v.get<std::string>().empty()) return bad(key, "must be text");
      const std::string setting = v.get<std::string>();
      if (key == "listen") {
        if (!taken("--listen")) options.listen = setting;
      } else if (key == "store") {
        // A PostgreSQL URL as it is; a SQLite file relative to the config file.
        if (!taken("--store")) options.store = setting.starts_with("postgres") ? setting : path_of(setting);
      } else if (!taken("--web")) {
        options.web = path_of(setting);
      }
    } else if (key == "agents" || key == "allow_hosts") {
      if (!v.is_array()) return bad(key, "must be a list");
      std::vector<std::string> items;
      for (const auto& item : v) {
        if (!item.is_string() || item.get<std::string>().empty()) return bad(key, "must be a list of text");
        items.push_back(key == "agents" ? path_of(item.get<std::string>()) : item.get<std::string>());
      }
      if (key == "agents" && !taken("--agents")) options.agents = std::move(items);
      if (key == "allow_hosts" && !taken("--allow-host")) options.allow_hosts = std::move(items);
    } else if (key == "threads" || key == "max_connections" || key == "step_workers" || key == "hrt_workers") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > 1'000'000) {
        return bad(key, "must be a whole number from 0 to 1000000");
      }
      const auto n = v.get<std::int64_t>();
      if (key == "threads" && !taken("--threads")) {
        if (n < 1 || n > 64) return bad(key, "must be from 1 to 64");
        options.threads = static_cast<int>(n);
      }
      if (key == "max_connections" && !taken("--max-connections")) {
        if (n < 1) return bad(key, "must be at least 1");
        options.max_connections = static_cast<std::size_t>(n);
      }
      if (key == "step_workers" && !taken("--step-workers")) {
        if (n > 1024) return bad(key, "must be at most 1024");
        options.step_workers = static_cast<int>(n);
      }
      if (key == "hrt_workers" && !taken("--hrt-workers")) {
        if (n > 1023) return bad(key, "must be at most 1023");
        options.hrt_workers = static_cast<int>(n);
      }
    } else if (key == "shutdown_grace_s") {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 86'400) {
        return bad(key, "must be a number of seconds from 0 to 86400");
      }
      if (!taken("--shutdown-grace")) options.shutdown_grace_s = v.get<double>();
    } else {
      return bad(key,
                 "unknown setting (known: kind, listen, store, agents, web, allow_hosts, threads, max_connections, "
                 "step_workers, hrt_workers, shutdown_grace_s)");
    }
  }
  return {};
}

int serve_command(const serve_options& given, std::ostream& out, std::ostream& err) {
  const std::string command = "choir serve";
  auto fail = [&](const std::string& message) {
    err << command << ": " << message << "\n";
    return exit_invalid;
  };
  serve_options options = given;
  if (auto configured = read_serve_config(options); !configured.ok()) return fail(configured.err().message);
  auto where = split_listen(options.listen);
  if (!where.ok()) return fail(where.err().message);
  std::vector<std::string> folders = options.agents;
  std::error_code ec;
  if (folders.empty() && fs::is_directory("examples", ec)) folders.emplace_back("examples");
  if (auto found = search_agents(folders); !found.ok()) return fail(found.err().message);

  // Signals are taken by sigwait below: block them before any thread starts, so all inherit it.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  {  // A store with no policy admits nothing and knows no tokens: say so now.
    auto probe = open_store(options.store);
    if (!probe.ok()) return fail(probe.err().message);
    auto policy = (*probe)->get_document(policy_document);
    if (!policy.ok()) return fail(policy.err().message);
    if (!*policy)
      return fail(
          "the store has no policy, so nobody could sign in: apply one first (choir policy apply "
          "examples/policy.yaml)");
  }
  auto token = first_token(options.store, err);
  if (!token.ok()) return fail(token.err().message);

  auto store = open_store(options.store);
  if (!store.ok()) return fail(store.err().message);
  auto gate = open_gate(*store, options.store);
  if (!gate.ok()) return fail(gate.err().message);
  use_gate(*gate);
  auto agents = load_agents(folders, err);

  // The conversations' steps share transactions (group commit); it outlives the actors.
  auto committer = std::make_shared<store::group_committer>(**store);
  auto system = std::make_unique<runtime::actor_system>();
  auto hub = std::make_shared<api::event_hub>(*store);
  // Every conversation's steps start in latency-class order (docs/scheduling.md).
  const int cores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  const int workers = options.step_workers > 0 ? options.step_workers : cores;
  if (options.hrt_workers >= workers) {
    return fail("--hrt-workers must leave at least one of the " + std::to_string(workers) +
                " step workers to SRT and DT steps");
  }
  auto dispatcher = std::make_shared<runtime::step_dispatcher>(
      runtime::dispatch_options{.workers = workers, .hrt_workers = options.hrt_workers});
  auto directory = std::make_shared<runtime::conversation_directory>(
      *system, runtime::directory_options{.store = *store,
                                          .gate = *gate,
                                          .observer = [hub](const runtime::conversation_event& e) { hub->publish(e); },
                                          .dispatcher = dispatcher,
                                          .committer = committer});
  const fs::path web = options.web.empty() ? default_web_dir() : fs::path(options.web);
  auto audit = audit_options_for(**store, options.store);
  if (!audit.ok()) return fail(audit.err().message);
  auto session_agent = runtime::mcp_session_agent(default_registry());
  if (!session_agent.ok()) return fail(session_agent.err().message);
  std::unique_ptr<api::server> server;
  auto svc = std::make_shared<api::service>(api::service_options{
      .store = *store,
      .gate = *gate,
      .hub = hub,
      .directory = directory,
      .agents = std::move(agents),
      .load_agent = [](std::string_view text,
                       std::string_view label) -> result<std::shared_ptr<const runtime::agent_definition>> {
        return runtime::load_agent(text, label, default_registry());
      },
      .web_dir = web,
      .audit = *audit,
      .connections = [&server]() -> std::size_t { return server ? server->connections() : 0; },
      .policy_document = policy_document,
      .services = process_services(),
      .mcp_agent = *session_agent,
      .dispatcher = dispatcher});
  for (const auto& why : svc->stored_agent_errors()) err << command << ": a registered agent left out: " << why << "\n";
  server = std::make_unique<api::server>(svc, api::server_options{.host = where->first,
                                                                  .port = where->second,
                                                                  .threads = options.threads,
                                                                  .max_connections = options.max_connections});
  auto port = server->listen();
  if (!port.ok()) return fail(port.err().message);
  const std::string p = std::to_string(*port);
  const std::string host = where->first.find(':') != std::string::npos ? "[" + where->first + "]" : where->first;
  for (const auto& h : {host, std::string("127.0.0.1"), std::string("localhost")}) svc->allow_host(h + ":" + p);
  for (const auto& h : options.allow_hosts) {
    svc->allow_host(h.find(':') == std::string::npos ? h + ":" + p : h);
  }
  server->run();

  out << "listening on http://" << host << ":" << p << "\n";
  if (!token->empty()) {
    out << "admin token: " << *token << "\n";
    out << "  (shown this once: only its SHA-256 is kept; sign in to the desktop with it)\n";
  }
  for (const auto& line : mcp_server_lines()) out << "MCP server " << line << "\n";
  if (web.empty()) out << "the web desktop is not built: npm ci --prefix web && npm run build --prefix web\n";
  out << std::flush;

  int received = 0;
  sigwait(&stop_signals, &received);
  err << command << ": " << (received == SIGTERM ? "SIGTERM" : "SIGINT") << ", stopping\n";
  server->stop();  // no more requests
  svc->close_mcp_sessions();
  // The conversations stop at a step boundary: a step in flight commits whole, or — past the grace
  // period — the process leaves without it (nothing of it is written; a resume runs it again).
  std::mutex stopping;
  std::condition_variable stopped_cv;
  bool stopped = false;
  std::thread grace([&] {
    std::unique_lock lock(stopping);
    const auto limit = std::chrono::duration<double>(options.shutdown_grace_s);
    if (stopped_cv.wait_for(lock, limit, [&] { return stopped; })) return;
    err << command << ": steps still in flight after " << options.shutdown_grace_s
        << " s; leaving them uncommitted (a resume runs them again)\n"
        << std::flush;
    std::_Exit(exit_ok);
  });
  system.reset();
  {
    std::lock_guard lock(stopping);
    stopped = true;
  }
  stopped_cv.notify_one();
  grace.join();
  stop_mcp_servers();
  return exit_ok;  // then the server closes its connections
}

}  // namespace choir::cli
