#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "choir/core/child_process.hpp"
#include "choir/tools/builtin.hpp"

namespace choir::tools {
namespace {

void close_both(int p[2]) {
  if (p[0] >= 0) ::close(p[0]);
  if (p[1] >= 0) ::close(p[1]);
}

}  // namespace

std::vector<std::string> sandbox_command(const std::vector<std::string>& argv, const std::filesystem::path& workspace,
                                         const sandbox_extras& extras, const std::string& bwrap) {
  std::vector<std::string> out = {bwrap,  "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind",
                                  "/usr", "/usr"};
  for (const char* top : {"/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"}) {
    std::error_code ec;
    const auto status = std::filesystem::symlink_status(top, ec);
    if (ec) continue;
    if (std::filesystem::is_symlink(status)) {
      out.insert(out.end(), {"--symlink", std::filesystem::read_symlink(top, ec).string(), top});
    } else if (std::filesystem::is_directory(status)) {
      out.insert(out.end(), {"--ro-bind", top, top});
    }
  }
  out.insert(out.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"});
  for (const auto& dir : extras.read_only) out.insert(out.end(), {"--ro-bind", dir.string(), dir.string()});
  out.insert(out.end(), {"--bind", workspace.string(), "/workspace", "--chdir", "/workspace", "--clearenv", "--setenv",
                         "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/workspace", "--setenv", "LANG",
                         "C.UTF-8", "--setenv", "TMPDIR", "/tmp"});
  for (const auto& [name, val] : extras.env) out.insert(out.end(), {"--setenv", name, val});
  out.emplace_back("--");
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

result<sandbox_result> run_sandboxed(const std::vector<std::string>& argv, const std::filesystem::path& workspace,
                                     std::string_view input, const sandbox_limits& limits) {
  if (argv.empty()) return make_error(tool_errc::invalid_arguments, "nothing to run");
  if (::access(limits.bwrap.c_str(), X_OK) != 0) {
    return make_error(tool_errc::sandbox_unavailable,
                      limits.bwrap + " is not installed (Debian: bubblewrap); sandboxed tools do not run without it");
  }
  const auto full = sandbox_command(argv, workspace, {}, limits.bwrap);
  std::vector<char*> cargv;
  cargv.reserve(full.size() + 1);
  for (const auto& a : full) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    close_both(in);
    close_both(out);
    close_both(err);
    return make_error(core_errc::io_error, std::string("pipe: ") + std::strerror(errno));
  }
  const rlimit mem{limits.memory_bytes, limits.memory_bytes};
  const rlimit fsize{limits.file_bytes, limits.file_bytes};
  const auto started = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    close_both(in);
    close_both(out);
    close_both(err);
    return make_error(core_errc::io_error, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {  // the child: async-signal-safe calls only
    ::setpgid(0, 0);
    ::setrlimit(RLIMIT_AS, &mem);
    ::setrlimit(RLIMIT_FSIZE, &fsize);
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    close_inherited_descriptors();
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);

  sandbox_result result;
  std::size_t written = 0;
  bool in_open = true;
  if (input.empty()) {
    ::close(in[1]);
    in_open = false;
  }
  bool out_open = true, err_open = true;
  std::string over;  // which limit was passed, if one was
  const auto deadline = started + limits.time;
  char buf[16 * 1024];
  while (out_open || err_open) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      over = "its time limit of " + std::to_string(limits.time.count()) + " ms";
      break;
    }
    pollfd fds[3];
    nfds_t n = 0;
    const int out_at = out_open ? static_cast<int>(n) : -1;
    if (out_open) fds[n++] = {out[0], POLLIN, 0};
    const int err_at = err_open ? static_cast<int>(n) : -1;
    if (err_open) fds[n++] = {err[0], POLLIN, 0};
    const int in_at = in_open ? static_cast<int>(n) : -1;
    if (in_open) fds[n++] = {in[1], POLLOUT, 0};
    const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    if (::poll(fds, n, static_cast<int>(std::min<std::int64_t>(wait_ms, 1000))) < 0 && errno != EINTR) break;
    auto drain = [&](int at, int fd, bool& open, std::string& into) {
      if (at < 0 || (fds[at].revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
      const auto got = ::read(fd, buf, sizeof buf);
      if (got <= 0) {
        if (got < 0 && errno == EINTR) return;
        open = false;
        return;
      }
      into.append(buf, static_cast<std::size_t>(got));
      if (into.size() > limits.output_bytes) {
        into.resize(limits.output_bytes);
        over = "its output limit of " + std::to_string(limits.output_bytes) + " bytes";
      }
    };
    drain(out_at, out[0], out_open, result.out);
    drain(err_at, err[0], err_open, result.err);
    if (!over.empty()) break;
    if (in_at >= 0 && (fds[in_at].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      const auto put = ::write(in[1], input.data() + written, input.size() - written);
      if (put > 0) written += static_cast<std::size_t>(put);
      if (put < 0 && errno != EAGAIN && errno != EINTR) written = input.size();  // the program closed its stdin
      if (written == input.size()) {
        ::close(in[1]);
        in_open = false;
      }
    }
  }
  if (!over.empty()) ::kill(-pid, SIGKILL);
  if (in_open) ::close(in[1]);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (!over.empty()) {
    return make_error(tool_errc::limit_exceeded, "the sandboxed program was killed: it ran past " + over);
  }
  if (WIFEXITED(status))
    result.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.exit_code = 128 + WTERMSIG(status);
  if (result.exit_code == 127 && result.out.empty() && result.err.empty()) {
    return make_error(tool_errc::sandbox_unavailable, "the sandbox (" + limits.bwrap + ") could not start");
  }
  return result;
}

namespace {

class shell_exec final : public tool {
 public:
  explicit shell_exec(sandbox_limits limits)
      : tool({.name = "shell.exec",
              .description = "Run a shell command in a sandbox: the workspace is the current folder and the only "
                             "writable place; there is no network.",
              .input_schema = {{"type", "object"},
                               {"properties",
                                {{"command", {{"type", "string"}, {"minLength", 1}}},
                                 {"stdin", {{"type", "string"}}},
                                 {"timeout_ms", {{"type", "integer"}, {"minimum", 1}}}}},
                               {"required", {"command"}},
                               {"additionalProperties", false}},
              .output_schema = {{"type", "object"}, {"required", {"exit_code", "stdout", "stderr"}}},
              .idempotent = false,
              .subject = "command"}),
        limits_(std::move(limits)) {}

  result<value> call(const value& arguments, const tool_context& context) override {
    sandbox_limits limits = limits_;
    if (arguments.contains("timeout_ms")) {
      limits.time = std::min(limits.time, std::chrono::milliseconds(arguments["timeout_ms"].get<std::int64_t>()));
    }
    const std::string input = arguments.value("stdin", std::string());
    CHOIR_TRY(sandbox_result r, run_sandboxed({"/bin/sh", "-c", arguments["command"].get<std::string>()},
                                              context.workspace, input, limits));
    return value{{"exit_code", r.exit_code},
                 {"stdout", as_text(r.out)},
                 {"stderr", as_text(r.err)},
                 {"elapsed_ms", r.elapsed_ms}};
  }

 private:
  sandbox_limits limits_;
};

}  // namespace

std::shared_ptr<tool> shell_tool(sandbox_limits limits) { return std::make_shared<shell_exec>(std::move(limits)); }

result<void> add_builtin_tools(tool_registry& registry, const sandbox_limits& limits) {
  for (auto& t : workspace_tools()) CHOIR_CHECK(registry.add(std::move(t)));
  CHOIR_CHECK(registry.add(shell_tool(limits)));
  CHOIR_CHECK(registry.add(web_tool()));
  for (auto& t : git_tools()) CHOIR_CHECK(registry.add(std::move(t)));
  return {};
}

}  // namespace choir::tools
