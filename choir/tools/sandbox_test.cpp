#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "choir/tools/builtin.hpp"

namespace choir::tools {
namespace {

namespace fs = std::filesystem;

struct Sandbox : ::testing::Test {
  fs::path ws = fs::temp_directory_path() / ("choir-sandbox-" + std::to_string(::getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
  sandbox_limits limits{.time = std::chrono::milliseconds(10'000)};

  void SetUp() override {
    fs::remove_all(ws);
    fs::create_directories(ws);
    if (::access(limits.bwrap.c_str(), X_OK) != 0)
      GTEST_SKIP() << "bubblewrap is not installed (scripts/setup.sh installs it)";
  }
  void TearDown() override { fs::remove_all(ws); }

  result<sandbox_result> sh(const std::string& command, std::string_view input = {}) {
    return run_sandboxed({"/bin/sh", "-c", command}, ws, input, limits);
  }
};

TEST_F(Sandbox, RunsACommandInTheWorkspace) {
  auto r = sh("echo hello > out.txt && cat out.txt && pwd && cat", "from stdin");
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_EQ(r->out, "hello\n/workspace\nfrom stdin");
  std::ifstream file(ws / "out.txt");
  std::string text;
  std::getline(file, text);
  EXPECT_EQ(text, "hello");
}

TEST_F(Sandbox, ReportsTheExitCode) {
  auto r = sh("echo oops >&2; exit 3");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->err, "oops\n");
}

TEST_F(Sandbox, SeesNothingOutsideTheWorkspaceAndCannotWriteTheSystem) {
  auto r = sh("ls /etc 2>&1; ls /root 2>&1; touch /usr/evil 2>&1; echo x > /evil 2>&1; ls -a /workspace/..");
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_NE(r->out.find("/etc"), std::string::npos) << r->out;  // "No such file or directory"
  EXPECT_NE(r->out.find("Read-only"), std::string::npos) << r->out;
  EXPECT_FALSE(fs::exists("/usr/evil"));
  EXPECT_EQ(r->out.find("home"), std::string::npos) << r->out;
}

TEST_F(Sandbox, HasNoNetwork) {
  // Its own network namespace: the only interface is a loopback, whatever the host has.
  auto r = sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->out, "lo\n");
}

TEST_F(Sandbox, InheritsNoDescriptorOfThisProcess) {
  // Descriptors opened without close-on-exec, as Asio opens its sockets: a connected socket
  // passed into the sandbox would reach the network around its namespace.
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  const int file = ::open("/etc/hostname", O_RDONLY);
  ASSERT_GE(sock, 0);
  ASSERT_GE(file, 0);
  auto r = sh("ls /proc/self/fd | sort -n | tr '\\n' ' '");
  ::close(sock);
  ::close(file);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->out, "0 1 2 3 ") << "3 is ls's own listing of the folder";
}

TEST_F(Sandbox, IsKilledAtItsTimeLimit) {
  limits.time = std::chrono::milliseconds(300);
  const auto started = std::chrono::steady_clock::now();
  auto r = sh("sleep 30");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, tool_errc::limit_exceeded);
  EXPECT_NE(r.err().message.find("time limit"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
}

TEST_F(Sandbox, IsKilledAtItsOutputLimit) {
  limits.output_bytes = 1000;
  auto r = sh("yes");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, tool_errc::limit_exceeded);
  EXPECT_NE(r.err().message.find("output limit"), std::string::npos);
}

TEST_F(Sandbox, CannotAllocateMoreThanItsMemoryLimit) {
  limits.memory_bytes = 64ull << 20;
  // Ask the shell for a 200 MB string: the allocation fails and the shell dies.
  auto r = sh("x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}");
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_NE(r->exit_code, 0) << r->out;
  EXPECT_EQ(r->out.find("200000000"), std::string::npos);
}

TEST_F(Sandbox, AMissingSandboxIsAnErrorNotAnUnsandboxedRun) {
  limits.bwrap = "/nonexistent/bwrap";
  auto r = sh("echo unsafe");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, tool_errc::sandbox_unavailable);
}

}  // namespace
}  // namespace choir::tools
