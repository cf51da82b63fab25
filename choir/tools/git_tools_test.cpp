// The git.* tools, checked against the git command line on the same repository.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "choir/tools/builtin.hpp"

namespace choir::tools {
namespace {

namespace fs = std::filesystem;

/// What `git -C <dir> <args>` prints (the real git, as a peer).
std::string git(const fs::path& dir, const std::string& args) {
  const std::string command = "git -C '" + dir.string() + "' " + args + " 2>&1";
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 4096> buffer{};
  while (const auto n = std::fread(buffer.data(), 1, buffer.size(), p)) out.append(buffer.data(), n);
  ::pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

struct GitTools : ::testing::Test {
  fs::path base = fs::temp_directory_path() / ("choir-git-" + std::to_string(::getpid()) + "-" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::path ws = base / "ws";
  tool_registry registry;
  tool_context context{.workspace = ws, .idempotency_key = "run-1/3/tool/0"};

  void SetUp() override {
    fs::remove_all(base);
    fs::create_directories(ws);
    std::ofstream(base / "secret.txt") << "top secret";
    ASSERT_TRUE(add_builtin_tools(registry).ok());
  }
  void TearDown() override { fs::remove_all(base); }

  result<value> call(const std::string& name, const value& args) { return registry.call(name, args, context); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((ws / rel).parent_path());
    std::ofstream(ws / rel) << text;
  }
  static std::string code(const result<value>& r) { return r.ok() ? "ok" : r.err().code.message(); }
};

TEST_F(GitTools, InitAddCommitStatusDiffAndLogAgreeWithGit) {
  auto init = call("git.init", value::object());
  ASSERT_TRUE(init.ok()) << init.err().message;
  EXPECT_EQ((*init)["created"], true);
  EXPECT_EQ((*init)["branch"], "main");
  EXPECT_EQ((*call("git.init", value::object()))["created"], false);

  write("a.txt", "one\ntwo\n");
  write("src/b.txt", "bee\n");
  write("run.sh", "#!/bin/sh\necho hi\n");
  fs::permissions(ws / "run.sh", fs::perms::owner_exec, fs::perm_options::add);
  fs::create_symlink("a.txt", ws / "link");
  write(".gitignore", "*.log\n");
  write("noise.log", "ignored\n");

  auto status = call("git.status", value::object());
  ASSERT_TRUE(status.ok()) << status.err().message;
  EXPECT_EQ((*status)["head"], nullptr);
  EXPECT_EQ((*status)["branch"], "main");
  ASSERT_EQ((*status)["files"].size(), 5u) << (*status)["files"].dump();  // the log file is ignored
  for (const auto& f : (*status)["files"]) EXPECT_EQ(f["unstaged"], "untracked") << f.dump();

  auto added = call("git.add", {{"paths", {"."}}});
  ASSERT_TRUE(added.ok()) << added.err().message;
  EXPECT_EQ((*added)["staged"].size(), 5u) << (*added)["staged"].dump();
  auto commit = call("git.commit", {{"message", "First files"}, {"author_name", "Ada"}, {"author_email", "ada@x.org"}});
  ASSERT_TRUE(commit.ok()) << commit.err().message;
  const std::string first = (*commit)["commit"];

  // The real git sees the same repository.
  EXPECT_EQ(git(ws, "rev-parse HEAD"), first);
  EXPECT_EQ(git(ws, "status --porcelain"), "");  // the log file is ignored
  EXPECT_EQ(git(ws, "log -1 --format=%an%n%ae%n%s"), "Ada\nada@x.org\nFirst files");
  EXPECT_EQ(git(ws, "ls-tree HEAD link run.sh a.txt | cut -c1-6"), "100644\n120000\n100755");
  EXPECT_EQ(git(ws, "show HEAD:link"), "a.txt");
  EXPECT_EQ(git(ws, "show HEAD:src/b.txt"), "bee");
  EXPECT_EQ(git(ws, "fsck --strict 2>&1 | grep -c error"), "0");

  // A change in the working files, then staged.
  write("a.txt", "one\nthree\n");
  auto diff = call("git.diff", value::object());
  ASSERT_TRUE(diff.ok()) << diff.err().message;
  const std::string text = (*diff)["diff"];
  EXPECT_NE(text.find("-two\n+three\n"), std::string::npos) << text;
  EXPECT_EQ((*diff)["files"], 1);  // the ignored log file is not shown
  EXPECT_EQ((*call("git.diff", {{"staged", true}}))["files"], 0);
  ASSERT_TRUE(call("git.add", {{"paths", {"a.txt"}}}).ok());
  auto staged = call("git.diff", {{"staged", true}, {"paths", {"a.txt"}}});
  EXPECT_NE((*staged)["diff"].get<std::string>().find("+three"), std::string::npos);
  EXPECT_EQ((*call("git.status", value::object()))["files"][0], (value{{"path", "a.txt"}, {"staged", "modified"}}));
  auto small = call("git.diff", {{"staged", true}, {"max_bytes", 20}});
  EXPECT_EQ((*small)["truncated"], true);
  EXPECT_LE((*small)["diff"].get<std::string>().size(), 20u);

  // A removal, staged by naming its folder.
  fs::remove_all(ws / "src");
  auto removed = call("git.add", {{"paths", {"src"}}});
  ASSERT_TRUE(removed.ok()) << removed.err().message;
  EXPECT_EQ((*removed)["removed"], value::array({"src/b.txt"}));
  ASSERT_TRUE(call("git.commit", {{"message", "Second"}}).ok());
  EXPECT_EQ(git(ws, "status --porcelain"), "");  // the log file is ignored

  auto log = call("git.log", {{"limit", 5}});
  ASSERT_TRUE(log.ok()) << log.err().message;
  ASSERT_EQ((*log)["commits"].size(), 2u);
  EXPECT_EQ((*log)["commits"][1]["id"], first);
  EXPECT_EQ((*log)["commits"][0]["author"], "ChoirOS agent");
  EXPECT_EQ((*log)["commits"][0]["message"].get<std::string>().rfind("Second\n\nChoir-Call: ", 0), 0u);
  EXPECT_EQ((*call("git.log", {{"limit", 1}}))["commits"].size(), 1u);
}

TEST_F(GitTools, ACommitRepeatedByTheSameCallIsNotMadeTwice) {
  ASSERT_TRUE(call("git.init", value::object()).ok());
  write("a.txt", "a\n");
  ASSERT_TRUE(call("git.add", {{"paths", {"a.txt"}}}).ok());
  auto once = call("git.commit", {{"message", "Add a"}});
  ASSERT_TRUE(once.ok()) << once.err().message;
  // The process died after committing and the call runs again: the commit it made.
  auto again = call("git.commit", {{"message", "Add a"}});
  ASSERT_TRUE(again.ok()) << again.err().message;
  EXPECT_EQ((*again)["commit"], (*once)["commit"]);
  EXPECT_EQ((*again)["repeated"], true);
  EXPECT_EQ(git(ws, "rev-list --count HEAD"), "1");
  // Another call with nothing staged commits nothing.
  context.idempotency_key = "run-1/4/tool/0";
  auto empty = call("git.commit", {{"message", "Add a"}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.err().message.find("nothing to commit"), std::string::npos);
}

TEST_F(GitTools, NothingOutsideTheWorkspaceIsReadOrWritten) {
  // Not a repository: a repository above the workspace is not used.
  ASSERT_EQ(git(base, "-c init.defaultBranch=main init -q"), "");
  EXPECT_EQ(code(call("git.status", value::object())), code(make_error(tool_errc::not_found, "")));
  EXPECT_EQ(code(call("git.commit", {{"message", "x"}})), code(make_error(tool_errc::not_found, "")));
  fs::remove_all(base / ".git");

  ASSERT_TRUE(call("git.init", value::object()).ok());
  const auto outside = code(make_error(tool_errc::outside_workspace, ""));
  EXPECT_EQ(code(call("git.add", {{"paths", {"../secret.txt"}}})), outside);
  EXPECT_EQ(code(call("git.add", {{"paths", {"/etc/passwd"}}})), outside);
  EXPECT_EQ(code(call("git.diff", {{"paths", {"a/../../secret.txt"}}})), outside);
  EXPECT_EQ(code(call("git.add", {{"paths", {".git/config"}}})), code(make_error(tool_errc::invalid_arguments, "")));
  EXPECT_EQ(code(call("git.add", {{"paths", value::array()}})), code(make_error(tool_errc::invalid_arguments, "")));

  // A folder link that leads out: staging through it is refused; the link itself is staged as a link.
  fs::create_directory_symlink(base, ws / "out");
  EXPECT_EQ(code(call("git.add", {{"paths", {"out/secret.txt"}}})), outside);
  auto link = call("git.add", {{"paths", {"out"}}});
  ASSERT_TRUE(link.ok()) << link.err().message;
  ASSERT_TRUE(call("git.commit", {{"message", "link"}}).ok());
  EXPECT_EQ(git(ws, "ls-tree HEAD out | cut -c1-6"), "120000");
  EXPECT_EQ(git(ws, "grep -c secret HEAD -- . 2>/dev/null"), "");

  // A link inside .git would let libgit2 write where it points.
  fs::create_directory_symlink(base, ws / ".git" / "refs" / "elsewhere");
  EXPECT_EQ(code(call("git.status", value::object())), outside);
  fs::remove(ws / ".git" / "refs" / "elsewhere");
  EXPECT_TRUE(call("git.status", value::object()).ok());

  // A .git file that points at another repository.
  fs::rename(ws / ".git", base / "moved.git");
  std::ofstream(ws / ".git") << "gitdir: " << (base / "moved.git").string() << "\n";
  EXPECT_EQ(code(call("git.status", value::object())), outside);
}

TEST_F(GitTools, CallsOnOneWorkspaceRunOneAtATime) {
  ASSERT_TRUE(call("git.init", value::object()).ok());
  constexpr int writers = 8;
  for (int i = 0; i < writers; ++i) write("f" + std::to_string(i) + ".txt", std::to_string(i) + "\n");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < writers; ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 5; ++round) {
        if (!call("git.add", {{"paths", {"f" + std::to_string(i) + ".txt"}}}).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  // Every file is staged: no call's index write lost another's.
  auto status = call("git.status", value::object());
  ASSERT_TRUE(status.ok());
  ASSERT_EQ((*status)["files"].size(), static_cast<std::size_t>(writers));
  for (const auto& f : (*status)["files"]) EXPECT_EQ(f["staged"], "added") << f.dump();
}

}  // namespace
}  // namespace choir::tools
