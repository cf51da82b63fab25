#include "apps/choir/chat_command.hpp"

#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>

#include "apps/choir/kernel_commands.hpp"
#include "apps/choir/run_command.hpp"
#include "choir/core/id.hpp"
#include "choir/runtime/actor.hpp"
#include "choir/runtime/agent_catalog.hpp"
#include "choir/runtime/conversation.hpp"

namespace choir::cli {
namespace {

/// A turn's result, handed from the conversation's thread to the terminal's.
class turn_waiter {
 public:
  void set(result<runtime::turn_result> r) {
    std::lock_guard lock(mutex_);
    out_.emplace(std::move(r));
    ready_.notify_all();
  }
  result<runtime::turn_result> wait() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return out_.has_value(); });
    auto r = std::move(*out_);
    out_.reset();
    return r;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::optional<result<runtime::turn_result>> out_;
};

}  // namespace

int chat_command(const chat_options& options, std::istream& in, std::ostream& out, std::ostream& err) {
  const std::string command = "choir chat";
  auto fail = [&](const std::string& message) {
    err << command << ": " << message << "\n";
    return exit_invalid;
  };
  // The agent: a file, or a name found in the agents' folders (default ./examples).
  std::vector<std::string> folders = options.agents;
  std::error_code ec;
  const bool is_file = std::filesystem::is_regular_file(options.agent, ec);
  if (folders.empty() && std::filesystem::is_directory("examples", ec)) folders.emplace_back("examples");
  if (auto found = search_agents(folders, is_file ? options.agent : ""); !found.ok()) return fail(found.err().message);
  std::shared_ptr<const runtime::agent_definition> agent;
  if (is_file) {
    auto text = read_file(options.agent);
    if (!text.ok()) return fail(text.err().message);
    auto loaded = runtime::load_agent(*text, options.agent, default_registry());
    if (!loaded.ok()) return fail(loaded.err().message);
    agent = *loaded;
  } else {
    auto found = process_services()->agents->find(options.agent, default_registry());
    if (!found.ok()) return fail(found.err().message);
    agent = *found;
  }
  if (auto ok = runtime::check_conversable(*agent, "message"); !ok.ok()) return fail(ok.err().message);

  auto store = open_store(options.store);
  if (!store.ok()) return fail(store.err().message);
  auto gate = open_gate(*store, options.store);
  if (!gate.ok()) return fail(gate.err().message);
  use_gate(*gate);
  const auto who = principal_for(options.tenant, options.user);

  // Streamed tokens are printed as they come; a reply that was not streamed is printed whole.
  std::mutex print;
  bool streamed = false;
  auto system = std::make_unique<runtime::actor_system>();
  runtime::conversation_directory directory(
      *system, runtime::directory_options{.store = *store,
                                          .gate = *gate,
                                          .idle_after = std::chrono::milliseconds(0),
                                          .observer = [&](const runtime::conversation_event& e) {
                                            if (e.kind != "token") return;
                                            std::lock_guard lock(print);
                                            if (!streamed) out << agent->name << ": ";
                                            streamed = true;
                                            out << e.data.value("text", "") << std::flush;
                                          }});
  std::string run_id = options.run_id;
  if (!run_id.empty()) {
    auto run = (*store)->get_run(run_id);
    if (!run.ok()) return fail(run.err().message);
    if (run->tenant != who.tenant || run->agent != agent->name) {
      return fail("run " + run_id + " is not a conversation of " + who.tenant + " with " + agent->name);
    }
  } else {
    run_id = new_id().to_string();
  }
  if (auto added = directory.add(run_id, agent, who); !added.ok()) return fail(added.err().message);

  turn_waiter waiter;
  auto take_turn = [&](std::optional<value> message) {
    {
      std::lock_guard lock(print);
      streamed = false;
    }
    using request = runtime::conversation_directory::request;
    request asked = message ? request{request::kind::message, std::move(*message)} : request{};
    directory.post(run_id, std::move(asked), [&](result<runtime::turn_result> r) { waiter.set(std::move(r)); });
    auto turn = waiter.wait();
    std::lock_guard lock(print);
    if (turn.ok() && !streamed && turn->state.is_object() && turn->state.contains("reply") &&
        turn->state["reply"].is_string()) {
      out << agent->name << ": " << turn->state["reply"].get<std::string>();
      streamed = true;
    }
    if (streamed) out << "\n";
    return turn;
  };

  // Starts (or reopens) the run and brings it to where it listens.
  auto opened = take_turn(std::nullopt);
  if (!opened.ok()) return fail(opened.err().message);
  err << "chatting with " << agent->name << " (run " << run_id << "); end with Ctrl-D\n";
  int code = exit_ok;
  std::string line;
  for (;;) {
    out << "> " << std::flush;
    if (!std::getline(in, line)) break;
    if (line.empty()) continue;
    auto turn = take_turn(value(line));
    // A call that needs consent: asked here, answered, and the turn continues.
    while (turn.ok() && turn->ended == "waiting_consent") {
      auto pending = (*store)->list_consents(who.tenant, "pending", 100);
      if (!pending.ok()) break;
      bool answered = false;
      for (const auto& c : *pending) {
        if (c.run_id != run_id) continue;
        out << "consent needed: " << c.capability << (c.argument.empty() ? "" : "(" + c.argument + ")") << " "
            << dump_json(c.arguments) << "\napprove? [y/N] " << std::flush;
        std::string answer;
        if (!std::getline(in, answer)) break;
        const bool yes = answer == "y" || answer == "Y" || answer == "yes";
        auto done = (*gate)->answer(c.id, yes, who, yes ? "approved in choir chat" : "denied in choir chat");
        if (!done.ok()) {
          err << command << ": " << done.err().message << "\n";
          continue;
        }
        answered = true;
      }
      if (!answered) break;
      turn = take_turn(std::nullopt);
    }
    if (!turn.ok()) {
      err << command << ": " << turn.err().message << "\n";
      code = exit_step_failed;
      continue;
    }
    if (turn->ended == "failed" && turn->failure) {
      err << command << ": the step failed: " << turn->failure->message << "\n";
      code = exit_step_failed;
    } else if (turn->ended == "completed") {
      err << agent->name << " completed its run\n";
      break;
    } else if (turn->ended == "waiting_consent") {
      err << "the run waits for consent: choir consent list\n";
      break;
    }
  }
  out << "\n";
  err << "run " << run_id << " kept; continue it with: choir chat " << options.agent << " --run " << run_id << "\n";
  system.reset();
  return code;
}

}  // namespace choir::cli
