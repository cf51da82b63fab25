#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "choir/tools/builtin.hpp"

namespace choir::tools {
namespace {

namespace fs = std::filesystem;

struct WorkspaceTools : ::testing::Test {
  fs::path base = fs::temp_directory_path() / ("choir-ws-" + std::to_string(::getpid()) + "-" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::path ws = base / "ws";
  tool_registry registry;
  tool_context context{.workspace = ws, .idempotency_key = "run/1/write/0"};

  void SetUp() override {
    fs::remove_all(base);
    fs::create_directories(ws);
    std::ofstream(base / "secret.txt") << "top secret";
    ASSERT_TRUE(add_builtin_tools(registry).ok());
  }
  void TearDown() override { fs::remove_all(base); }

  result<value> call(const std::string& name, const value& args) { return registry.call(name, args, context); }
};

TEST_F(WorkspaceTools, WritesReadsAndListsFiles) {
  auto w = call("fs.write", {{"path", "notes/today.txt"}, {"content", "milk\neggs\n"}});
  ASSERT_TRUE(w.ok()) << w.err().message;
  EXPECT_EQ((*w)["bytes"], 10);
  auto r = call("fs.read", {{"path", "notes/today.txt"}});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ((*r)["content"], "milk\neggs\n");
  EXPECT_EQ((*r)["truncated"], false);
  auto l = call("fs.list", {{"path", "notes"}});
  ASSERT_TRUE(l.ok()) << l.err().message;
  ASSERT_EQ((*l)["entries"].size(), 1u);
  EXPECT_EQ((*l)["entries"][0]["name"], "today.txt");
  EXPECT_EQ((*l)["entries"][0]["type"], "file");
  auto root = call("fs.list", value::object());
  ASSERT_TRUE(root.ok());
  EXPECT_EQ((*root)["entries"][0]["name"], "notes");
  EXPECT_EQ((*root)["entries"][0]["type"], "folder");
}

TEST_F(WorkspaceTools, AWriteRunTwiceWithTheSameKeyLeavesOneFileAndNoTemporary) {
  ASSERT_TRUE(call("fs.write", {{"path", "a.txt"}, {"content", "one"}}).ok());
  ASSERT_TRUE(call("fs.write", {{"path", "a.txt"}, {"content", "one"}}).ok());
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(ws)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST_F(WorkspaceTools, ReadsPartOfAFile) {
  ASSERT_TRUE(call("fs.write", {{"path", "a.txt"}, {"content", "0123456789"}}).ok());
  auto r = call("fs.read", {{"path", "a.txt"}, {"offset", 2}, {"max_bytes", 3}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["content"], "234");
  EXPECT_EQ((*r)["truncated"], true);
}

TEST_F(WorkspaceTools, NoPathLeadsOutOfTheWorkspace) {
  fs::create_symlink(base / "secret.txt", ws / "link");
  fs::create_symlink(base, ws / "up");
  fs::create_directories(ws / "sub");
  for (const char* path : {"../secret.txt", "sub/../../secret.txt", "link", "up/secret.txt", "/etc/passwd"}) {
    auto r = call("fs.read", {{"path", path}});
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.err().code, tool_errc::outside_workspace) << path << ": " << r.err().message;
  }
  for (const char* path : {"../evil.txt", "up/evil.txt", "/tmp/evil.txt"}) {
    auto w = call("fs.write", {{"path", path}, {"content", "x"}});
    ASSERT_FALSE(w.ok()) << path;
    EXPECT_EQ(w.err().code, tool_errc::outside_workspace) << path << ": " << w.err().message;
  }
  EXPECT_FALSE(fs::exists(base / "evil.txt"));
  EXPECT_EQ(call("fs.list", {{"path", ".."}}).err().code, tool_errc::outside_workspace);
  EXPECT_EQ(call("fs.list", {{"path", "up"}}).err().code, tool_errc::outside_workspace);
}

TEST_F(WorkspaceTools, WritingOverASymlinkReplacesTheLinkNotItsTarget) {
  fs::create_symlink(base / "secret.txt", ws / "link");
  ASSERT_TRUE(call("fs.write", {{"path", "link"}, {"content", "mine"}}).ok());
  std::ifstream secret(base / "secret.txt");
  std::string text((std::istreambuf_iterator<char>(secret)), {});
  EXPECT_EQ(text, "top secret");
  EXPECT_FALSE(fs::is_symlink(ws / "link"));
}

TEST_F(WorkspaceTools, SymlinksInsideTheWorkspaceWork) {
  ASSERT_TRUE(call("fs.write", {{"path", "real/a.txt"}, {"content", "x"}}).ok());
  fs::create_symlink("real", ws / "alias");
  auto r = call("fs.read", {{"path", "alias/a.txt"}});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ((*r)["content"], "x");
}

TEST_F(WorkspaceTools, MissingFilesAndBadArgumentsAreClearErrors) {
  EXPECT_EQ(call("fs.read", {{"path", "missing.txt"}}).err().code, tool_errc::not_found);
  EXPECT_EQ(call("fs.read", {{"path", 3}}).err().code, tool_errc::invalid_arguments);
  EXPECT_EQ(call("fs.write", {{"path", "x"}}).err().code, tool_errc::invalid_arguments);
  EXPECT_EQ(call("fs.write", {{"path", "sub/.."}, {"content", "x"}}).err().code, tool_errc::invalid_arguments);
  EXPECT_EQ(call("fs.write", {{"path", "a/b.txt"}, {"content", "x"}, {"create_dirs", false}}).err().code,
            tool_errc::not_found);
  ASSERT_TRUE(call("fs.write", {{"path", "d/f.txt"}, {"content", "x"}}).ok());
  EXPECT_EQ(call("fs.read", {{"path", "d"}}).err().code, tool_errc::failed);
}

TEST_F(WorkspaceTools, ContentOverTheLimitIsRefused) {
  tool_registry small;
  for (auto& t : workspace_tools(16)) ASSERT_TRUE(small.add(t).ok());
  EXPECT_EQ(small.call("fs.write", {{"path", "a"}, {"content", std::string(17, 'x')}}, context).err().code,
            tool_errc::limit_exceeded);
}

}  // namespace
}  // namespace choir::tools
