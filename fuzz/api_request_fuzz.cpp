/// libFuzzer target for the API's input: the first line of the input is a method, the second a
/// request target, the third `Host|Origin|Content-Type`, the rest a body — answered by the REST
/// service with a valid token over a store holding one run; then every line of the input is a frame
/// of an authenticated WebSocket stream connection. Every answer must be a well-formed response
/// (JSON where it says JSON); nothing may crash, hang, throw or trip a sanitizer.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <sstream>
#include <string_view>

#include "choir/api/service.hpp"
#include "choir/kernel/audit.hpp"
#include "choir/kernel/policy.hpp"
#include "choir/runtime/actor.hpp"
#include "choir/store/synchronized.hpp"

namespace {

namespace fs = std::filesystem;
constexpr const char* token = "choir_fuzz_token";

class quiet_connection final : public choir::api::stream_connection {
 public:
  using stream_connection::stream_connection;

 protected:
  void wake() override {}
};

struct world {
  std::shared_ptr<choir::store::event_store> store;
  std::shared_ptr<choir::runtime::gate> gate;
  std::unique_ptr<choir::runtime::actor_system> system;
  std::shared_ptr<choir::api::event_hub> hub;
  std::shared_ptr<choir::runtime::conversation_directory> directory;
  std::unique_ptr<choir::api::service> svc;
};

world& the_world() {
  static world* w = [] {
    auto* out = new world;
    const auto dir = fs::temp_directory_path() / ("choir-api-fuzz-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    out->store = choir::store::synchronized(choir::store::open_sqlite_store((dir / "choir.db").string()).value());
    choir::kernel::audit_options audit;
    audit.key_file = (dir / "audit.key").string();
    audit.head_file = (dir / "audit.head").string();
    const std::string policy =
        "apiVersion: agentos/v0.2\nkind: Policy\ntenants:\n  t:\n    roles: {r: {grants: []}}\n"
        "    users: {u: {roles: [r]}}\n    tokens: {k: {user: u, sha256: " +
        choir::kernel::sha256_hex(token) + "}}\n";
    out->gate = std::make_shared<choir::runtime::gate>(
        out->store,
        std::shared_ptr<choir::kernel::audit_log>(choir::kernel::audit_log::open(out->store, audit).value()),
        std::make_shared<const choir::kernel::policy>(choir::kernel::policy::load(policy, "policy").value()));
    choir::store::run_record run;
    run.run_id = "r1";
    run.agent = "a";
    run.graph_version = "v";
    run.status = "waiting";
    run.tenant = "t";
    run.user = "u";
    (void)out->store->create_run(run, choir::graph::state(), -1);
    out->system = std::make_unique<choir::runtime::actor_system>(choir::runtime::system_options{.threads = 1});
    out->hub = std::make_shared<choir::api::event_hub>(out->store);
    out->directory = std::make_shared<choir::runtime::conversation_directory>(
        *out->system, choir::runtime::directory_options{.store = out->store, .gate = out->gate});
    out->svc = std::make_unique<choir::api::service>(choir::api::service_options{.store = out->store,
                                                                                 .gate = out->gate,
                                                                                 .hub = out->hub,
                                                                                 .directory = out->directory,
                                                                                 .allowed_hosts = {"127.0.0.1:1"},
                                                                                 .audit = audit});
    return out;
  }();
  return *w;
}

std::string_view next_line(std::string_view& text) {
  const auto nl = text.find('\n');
  const auto line = text.substr(0, nl);
  text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& w = the_world();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view rest = input;
  choir::api::http_request req;
  req.method = std::string(next_line(rest));
  req.target = std::string(next_line(rest));
  auto headers = next_line(rest);
  auto field = [&]() {
    const auto bar = headers.find('|');
    auto f = headers.substr(0, bar);
    headers = bar == std::string_view::npos ? std::string_view() : headers.substr(bar + 1);
    return std::string(f);
  };
  req.host = field();
  if (req.host.empty()) req.host = "127.0.0.1:1";
  req.origin = field();
  req.content_type = field();
  req.authorization = std::string("Bearer ") + token;
  req.body = std::string(rest);
  // Starting a conversation would run an agent; this world has none, so it is refused (404).
  const auto res = w.svc->handle(req);
  if (res.status < 100 || res.status > 599) std::abort();
  if (res.content_type == "application/json" && choir::value::parse(res.body, nullptr, false).is_discarded()) {
    std::abort();
  }

  auto conn = std::make_shared<quiet_connection>(w.svc->stream_settings());
  if (!conn->on_frame(std::string("{\"type\":\"auth\",\"token\":\"") + token + "\"}")) std::abort();
  std::string_view frames = input;
  while (!frames.empty()) {
    if (!conn->on_frame(next_line(frames))) break;
  }
  std::deque<choir::api::frame> out;
  conn->take(out);
  for (const auto& f : out) {
    if (choir::value::parse(*f, nullptr, false).is_discarded()) std::abort();
  }
  conn->closed();
  return 0;
}
