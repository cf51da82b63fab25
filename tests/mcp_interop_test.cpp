// Interop: ChoirOS's MCP client against the reference servers from npm
// (@modelcontextprotocol/server-everything and server-filesystem, installed by
// `npm ci --prefix tests/interop`), over stdio inside the sandbox and over Streamable HTTP.
// Skips when Node.js or the packages are missing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "choir/mcp/client.hpp"
#include "choir/runtime/mcp_servers.hpp"
#include "choir/tools/builtin.hpp"

namespace choir::mcp {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path modules = fs::path(CHOIR_SOURCE_DIR) / "tests/interop/node_modules";
const fs::path everything = modules / "@modelcontextprotocol/server-everything/dist/index.js";
const fs::path filesystem_server = modules / "@modelcontextprotocol/server-filesystem/dist/index.js";

std::string node() {
  for (const char* candidate : {"/usr/bin/node", "/usr/local/bin/node"}) {
    if (::access(candidate, X_OK) == 0) return candidate;
  }
  return {};
}

bool sandbox_works() {
  static const bool works = [] {
    auto r = tools::run_sandboxed({"/bin/true"}, fs::temp_directory_path(), "", {});
    return r.ok() && r->exit_code == 0;
  }();
  return works;
}

class McpInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (node().empty()) GTEST_SKIP() << "Node.js is not installed";
    if (!fs::exists(everything) || !fs::exists(filesystem_server)) {
      GTEST_SKIP() << "the reference MCP servers are not installed (npm ci --prefix tests/interop)";
    }
    workspace_ = fs::temp_directory_path() / ("choir-mcp-interop-" + std::to_string(::getpid()));
    fs::remove_all(workspace_);
    fs::create_directories(workspace_);
  }
  void TearDown() override {
    if (!workspace_.empty()) fs::remove_all(workspace_);
  }

  /// A stdio server, inside the sandbox when bubblewrap works here (the runtime's way).
  std::unique_ptr<transport> stdio(std::vector<std::string> argv) {
    argv.insert(argv.begin(), node());
    stdio_options options;
    if (sandbox_works()) {
      options.argv = tools::sandbox_command(argv, workspace_, {.read_only = {modules}});
    } else {
      options.argv = std::move(argv);
      options.cwd = workspace_.string();
    }
    return stdio_transport(std::move(options));
  }

  fs::path workspace_;
};

std::vector<std::string> names(const std::vector<tool_descriptor>& tools) {
  std::vector<std::string> out;
  for (const auto& t : tools) out.push_back(t.name);
  return out;
}

bool has(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

/// Lists every tool, calls several (one with structured output, one with progress, one that
/// samples back through the client), and checks each.
void exercise_everything(client& mcp, bool sampling) {
  auto listed = mcp.list_tools();
  ASSERT_TRUE(listed.ok()) << listed.err().message;
  const auto tool_names = names(*listed);
  for (const char* expected : {"echo", "get-sum", "get-structured-content", "trigger-long-running-operation"}) {
    EXPECT_TRUE(has(tool_names, expected)) << expected;
  }
  for (const auto& t : *listed) EXPECT_TRUE(t.input_schema.is_object()) << t.name;

  auto echo = mcp.call_tool("echo", {{"message", "hello from choir"}});
  ASSERT_TRUE(echo.ok()) << echo.err().message;
  EXPECT_FALSE(echo->is_error);
  EXPECT_EQ(echo->text(), "Echo: hello from choir");

  auto sum = mcp.call_tool("get-sum", {{"a", 2}, {"b", 40}});
  ASSERT_TRUE(sum.ok()) << sum.err().message;
  EXPECT_NE(sum->text().find("42"), std::string::npos) << sum->text();

  auto weather = mcp.call_tool("get-structured-content", {{"location", "Chicago"}});
  ASSERT_TRUE(weather.ok()) << weather.err().message;  // checked against its output schema
  EXPECT_TRUE(weather->structured["temperature"].is_number());
  EXPECT_TRUE(weather->structured["conditions"].is_string());

  std::vector<progress_update> updates;
  call_options with_progress;
  with_progress.on_progress = [&](const progress_update& u) { updates.push_back(u); };
  auto slow = mcp.call_tool("trigger-long-running-operation", {{"duration", 1}, {"steps", 4}}, with_progress);
  ASSERT_TRUE(slow.ok()) << slow.err().message;
  EXPECT_NE(slow->text().find("completed"), std::string::npos) << slow->text();
  ASSERT_EQ(updates.size(), 4u);
  EXPECT_EQ(updates.back().progress, 4);
  EXPECT_EQ(updates.back().total, 4.0);

  // A tool's own failure is a result the model can read, not a protocol error.
  auto invalid = mcp.call_tool("get-sum", {{"a", "two"}});
  if (invalid.ok()) {
    EXPECT_TRUE(invalid->is_error);
  } else {
    EXPECT_EQ(invalid.err().code, make_error_code(mcp_errc::rpc_error));
  }

  if (sampling) {
    ASSERT_TRUE(has(tool_names, "trigger-sampling-request"));
    call_options tagged;
    tagged.tag = "run-42";
    auto sampled = mcp.call_tool("trigger-sampling-request", {{"prompt", "a haiku"}, {"maxTokens", 20}}, tagged);
    ASSERT_TRUE(sampled.ok()) << sampled.err().message;
    EXPECT_NE(sampled->text().find("an offline answer for run-42"), std::string::npos) << sampled->text();
  }
  EXPECT_TRUE(mcp.ping().ok());
}

client_options sampling_client() {
  client_options options;
  options.on_sampling = [](const value& params, const std::vector<std::string>& tags) -> result<value> {
    if (!params.contains("messages")) return make_error(core_errc::invalid_argument, "no messages");
    return value{{"role", "assistant"},
                 {"content", {{"type", "text"}, {"text", "an offline answer for " + (tags.empty() ? "" : tags[0])}}},
                 {"model", "scripted"},
                 {"stopReason", "endTurn"}};
  };
  return options;
}

TEST_F(McpInterop, EverythingOverStdioInTheSandbox) {
  auto c = client::connect(stdio({everything.string(), "stdio"}), sampling_client());
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ((*c)->protocol_version(), "2025-11-25");
  EXPECT_EQ((*c)->server_info()["name"], "mcp-servers/everything");
  exercise_everything(**c, /*sampling=*/true);
  (*c)->close();
  EXPECT_TRUE((*c)->closed());
}

TEST_F(McpInterop, EverythingNegotiatesDownTo20250618) {
  client_options options;
  options.protocol_version = "2025-06-18";
  auto c = client::connect(stdio({everything.string(), "stdio"}), options);
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ((*c)->protocol_version(), "2025-06-18");
  auto echo = (*c)->call_tool("echo", {{"message", "older"}});
  ASSERT_TRUE(echo.ok()) << echo.err().message;
  EXPECT_EQ(echo->text(), "Echo: older");
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool port_open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

TEST_F(McpInterop, EverythingOverStreamableHttp) {
  const int port = free_port();
  const std::string preload = (fs::path(CHOIR_SOURCE_DIR) / "tests/interop/force-loopback.cjs").string();
  const std::string node_path = node();
  const std::string port_env = "PORT=" + std::to_string(port);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setpgid(0, 0);
    const char* argv[] = {node_path.c_str(),  "--require",      preload.c_str(),
                          everything.c_str(), "streamableHttp", nullptr};
    const char* envp[] = {port_env.c_str(), "PATH=/usr/bin:/bin", nullptr};
    ::execve(argv[0], const_cast<char**>(argv), const_cast<char**>(envp));
    ::_exit(127);
  }
  struct stop_server {
    pid_t pid;
    ~stop_server() {
      ::kill(-pid, SIGTERM);
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  } stop{pid};
  for (int i = 0; i < 200 && !port_open(port); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(port_open(port)) << "server-everything did not start on port " << port;

  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/mcp";
  auto c = client::connect(http_transport({.url = url}), sampling_client());
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ((*c)->protocol_version(), "2025-11-25");
  exercise_everything(**c, /*sampling=*/true);
  (*c)->close();  // DELETE ends the session
}

TEST_F(McpInterop, FilesystemServerConfinedToTheWorkspace) {
  // In the sandbox the workspace is /workspace; outside it, its own path.
  const std::string root = sandbox_works() ? "/workspace" : workspace_.string();
  auto c = client::connect(stdio({filesystem_server.string(), root}));
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto listed = (*c)->list_tools();
  ASSERT_TRUE(listed.ok()) << listed.err().message;
  const auto tool_names = names(*listed);
  EXPECT_GE(tool_names.size(), 10u);
  for (const char* expected : {"read_text_file", "write_file", "list_directory", "create_directory"}) {
    EXPECT_TRUE(has(tool_names, expected)) << expected;
  }

  auto made = (*c)->call_tool("create_directory", {{"path", root + "/notes"}});
  ASSERT_TRUE(made.ok()) << made.err().message;
  EXPECT_FALSE(made->is_error) << made->text();
  auto wrote = (*c)->call_tool("write_file", {{"path", root + "/notes/a.txt"}, {"content", "from the client"}});
  ASSERT_TRUE(wrote.ok()) << wrote.err().message;
  EXPECT_FALSE(wrote->is_error) << wrote->text();
  std::ifstream written(workspace_ / "notes/a.txt");
  std::string text((std::istreambuf_iterator<char>(written)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "from the client");

  auto read = (*c)->call_tool("read_text_file", {{"path", root + "/notes/a.txt"}});
  ASSERT_TRUE(read.ok()) << read.err().message;
  EXPECT_EQ(read->text(), "from the client");
  EXPECT_EQ(read->structured["content"], "from the client");  // structured output, schema-checked

  auto listing = (*c)->call_tool("list_directory", {{"path", root + "/notes"}});
  ASSERT_TRUE(listing.ok()) << listing.err().message;
  EXPECT_NE(listing->text().find("a.txt"), std::string::npos);

  // Outside its allowed folder the server refuses (and the sandbox has no such files anyway).
  auto outside = (*c)->call_tool("read_text_file", {{"path", "/etc/hostname"}});
  if (outside.ok()) {
    EXPECT_TRUE(outside->is_error) << outside->text();
  }
}

}  // namespace
}  // namespace choir::mcp

namespace choir::runtime {
namespace {

/// A server written with the SDK whose tool list changes (tests/interop/changing_tools.mjs): the
/// runtime imports its tools again when it says so, and the registry follows.
TEST(McpInteropRuntime, ToolsAreImportedAgainWhenTheServersListChanges) {
  namespace fs = std::filesystem;
  const std::string node_path = mcp::node();
  const fs::path script = fs::path(CHOIR_SOURCE_DIR) / "tests/interop/changing_tools.mjs";
  if (node_path.empty() || !fs::exists(mcp::modules / "@modelcontextprotocol/sdk")) {
    GTEST_SKIP() << "Node.js or the MCP SDK is not installed (npm ci --prefix tests/interop)";
  }
  const fs::path state = fs::temp_directory_path() / ("choir-mcp-changing-" + std::to_string(::getpid()));
  fs::remove_all(state);
  tools::tool_registry registry;
  mcp_server_config config;
  config.name = "changing";
  config.command = {node_path, script.string()};
  config.sandbox = false;  // the script is outside any workspace; the sandboxed way is tested above
  auto servers = mcp_servers::start({config}, registry, state);
  ASSERT_TRUE(servers.ok()) << servers.err().message;
  const auto names = [&] {
    std::vector<std::string> out;
    for (const auto& t : registry.list()) out.push_back(t.name);
    std::sort(out.begin(), out.end());
    return out;
  };
  const auto eventually = [&](const std::vector<std::string>& expected) {
    for (int i = 0; i < 200 && names() != expected; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    return names();
  };
  EXPECT_EQ(names(), (std::vector<std::string>{"mcp.changing.grow", "mcp.changing.shrink"}));
  const tools::tool_context context{.workspace = state};

  auto grown = registry.call("mcp.changing.grow", value::object(), context);
  ASSERT_TRUE(grown.ok()) << grown.err().message;
  EXPECT_EQ(eventually({"mcp.changing.double", "mcp.changing.grow", "mcp.changing.shrink"}),
            (std::vector<std::string>{"mcp.changing.double", "mcp.changing.grow", "mcp.changing.shrink"}));
  auto doubled = registry.call("mcp.changing.double", {{"n", 21}}, context);
  ASSERT_TRUE(doubled.ok()) << doubled.err().message;
  EXPECT_EQ((*doubled)["text"], "42");
  // Its input schema came along: a string is refused before the server is asked.
  EXPECT_EQ(registry.call("mcp.changing.double", {{"n", "x"}}, context).err().code,
            make_error_code(tools::tool_errc::invalid_arguments));

  ASSERT_TRUE(registry.call("mcp.changing.shrink", value::object(), context).ok());
  EXPECT_EQ(eventually({"mcp.changing.double", "mcp.changing.shrink"}),
            (std::vector<std::string>{"mcp.changing.double", "mcp.changing.shrink"}));
  EXPECT_GE((*servers)->reimports(), 2u);
  EXPECT_TRUE((*servers)->warnings().empty());
  (*servers)->stop();
  fs::remove_all(state);
}

}  // namespace
}  // namespace choir::runtime
