// The stdio transport: a child process speaking newline-delimited JSON-RPC.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "choir/core/child_process.hpp"
#include "choir/mcp/client.hpp"

extern char** environ;

namespace choir::mcp {
namespace {

/// Writing to a pipe whose reader has gone raises SIGPIPE, which would kill the process: a
/// program that talks to child processes ignores it and reads EPIPE instead. Only a default
/// disposition is changed; one an application chose is left alone.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigemptyset(&ignore.sa_mask);
      ::sigaction(SIGPIPE, &ignore, nullptr);
    }
  });
}

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const auto end = std::min(dirs.find(':', start), dirs.size());
    const std::string dir = dirs.substr(start, end - start);
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

class stdio_channel final : public transport {
 public:
  explicit stdio_channel(stdio_options options) : options_(std::move(options)) {}
  ~stdio_channel() override { close(); }

  result<void> start(message_handler on_message, close_handler on_close) override {
    if (options_.argv.empty() || options_.argv.front().empty()) {
      return make_error(mcp_errc::transport_failed, "no program to run");
    }
    ignore_sigpipe_once();
    const std::string program = find_program(options_.argv.front());
    if (program.empty() || ::access(program.c_str(), X_OK) != 0) {
      return make_error(mcp_errc::transport_failed, options_.argv.front() + ": no such program");
    }
    // Everything the child needs is built before fork: after it, only async-signal-safe calls.
    std::vector<std::string> env_strings;
    if (!options_.clear_environment) {
      for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const auto eq = entry.find('=');
        const auto name = entry.substr(0, eq);
        const bool overridden =
            std::any_of(options_.env.begin(), options_.env.end(), [&](const auto& kv) { return kv.first == name; });
        if (!overridden) env_strings.emplace_back(entry);
      }
    }
    for (const auto& [k, v] : options_.env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = options_.argv;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      const std::string why = std::strerror(errno);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]})
        if (fd >= 0) ::close(fd);
      return make_error(mcp_errc::transport_failed, "pipe: " + why);
    }
    const char* cwd = options_.cwd.empty() ? nullptr : options_.cwd.c_str();
    const pid_t pid = ::fork();
    if (pid < 0) {
      const std::string why = std::strerror(errno);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
      return make_error(mcp_errc::transport_failed, "fork: " + why);
    }
    if (pid == 0) {  // the child
      ::setpgid(0, 0);
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      close_inherited_descriptors();
      if (cwd != nullptr && ::chdir(cwd) != 0) ::_exit(126);
      ::execve(program.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    pid_ = pid;
    stdin_ = in[1];
    ::fcntl(stdin_, F_SETFL, O_NONBLOCK);
    on_message_ = std::move(on_message);
    on_close_ = std::move(on_close);
    reader_ = std::thread([this, out = out[0], err = err[0]] { read_loop(out, err); });
    return {};
  }

  result<void> send(const std::string& message) override {
    std::lock_guard lock(write_mutex_);
    if (stdin_ < 0) return make_error(mcp_errc::closed, describe() + ": closed");
    std::string line = message;
    line.push_back('\n');
    std::size_t done = 0;
    while (done < line.size()) {
      const auto put = ::write(stdin_, line.data() + done, line.size() - done);
      if (put < 0 && errno == EAGAIN) {
        // The server is not reading: wait for room, but not for ever (close() needs this lock).
        pollfd room{stdin_, POLLOUT, 0};
        if (::poll(&room, 1, 30'000) == 0) {
          return make_error(mcp_errc::transport_failed, describe() + ": the server has not read its input for 30 s");
        }
        continue;
      }
      if (put < 0) {
        if (errno == EINTR) continue;
        return make_error(mcp_errc::closed, describe() + ": the server stopped reading (" + std::strerror(errno) + ")");
      }
      done += static_cast<std::size_t>(put);
    }
    return {};
  }

  void close() override {
    stop_reading_ = true;  // from now on nothing is handed on, and the end is not reported
    {
      std::lock_guard lock(write_mutex_);
      if (closing_) return;
      closing_ = true;
      if (stdin_ >= 0) ::close(stdin_);  // the polite request to stop: end of input
      stdin_ = -1;
    }
    if (pid_ > 0) {
      // Grace, then SIGTERM, then SIGKILL, to the whole process group.
      if (!wait_exit(options_.grace)) {
        ::kill(-pid_, SIGTERM);
        if (!wait_exit(options_.grace)) {
          ::kill(-pid_, SIGKILL);
          wait_exit(std::chrono::milliseconds(-1));
        }
      }
      ::kill(-pid_, SIGKILL);  // anything the server left behind in its group
    }
    if (reader_.joinable()) reader_.join();
  }

  std::string describe() const override {
    std::string text = "stdio:";
    for (const auto& a : options_.argv) text += " " + std::filesystem::path(a).filename().string();
    return text;
  }

 private:
  /// Waits for the child to exit (reaping it); a negative time waits for ever.
  bool wait_exit(std::chrono::milliseconds limit) {
    if (reaped_) return true;
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int status = 0;
      const pid_t got = ::waitpid(pid_, &status, limit.count() < 0 ? 0 : WNOHANG);
      if (got == pid_) {
        reaped_ = true;
        return true;
      }
      if (got < 0 && errno != EINTR) {
        reaped_ = true;  // not our child any more
        return true;
      }
      if (limit.count() >= 0 && std::chrono::steady_clock::now() >= until) return false;
      if (got == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  void read_loop(int out, int err) {
    std::string line;
    std::string why;
    char buf[64 * 1024];
    bool out_open = true, err_open = true;
    while (out_open) {
      pollfd fds[2] = {{out, POLLIN, 0}, {err, static_cast<short>(err_open ? POLLIN : 0), 0}};
      const int ready = ::poll(fds, err_open ? 2 : 1, 200);
      if (ready < 0 && errno != EINTR) {
        why = std::string("poll: ") + std::strerror(errno);
        break;
      }
      if (ready <= 0) {
        if (stop_reading_) break;
        continue;
      }
      if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        const auto got = ::read(err, buf, sizeof buf);
        if (got <= 0) {
          if (got == 0 || errno != EINTR) err_open = false;
        } else {
          std::lock_guard lock(stderr_mutex_);
          stderr_tail_.append(buf, static_cast<std::size_t>(got));
          if (stderr_tail_.size() > 4096) stderr_tail_.erase(0, stderr_tail_.size() - 4096);
        }
      }
      if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const auto got = ::read(out, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        out_open = false;
        break;
      }
      std::string_view chunk(buf, static_cast<std::size_t>(got));
      while (!chunk.empty()) {
        const auto nl = chunk.find('\n');
        if (nl == std::string_view::npos) {
          line.append(chunk);
          chunk = {};
        } else {
          line.append(chunk.substr(0, nl));
          chunk.remove_prefix(nl + 1);
          if (!line.empty() && line.back() == '\r') line.pop_back();
          if (!line.empty() && !stop_reading_) on_message_(line);
          line.clear();
        }
        if (line.size() > options_.max_line_bytes) {
          why = "the server sent a line over " + std::to_string(options_.max_line_bytes) + " bytes";
          out_open = false;
          break;
        }
      }
    }
    ::close(out);
    ::close(err);
    if (stop_reading_) return;  // closed by us: nothing to report
    if (why.empty()) why = "the server closed its output (it exited)";
    std::string tail;
    {
      std::lock_guard lock(stderr_mutex_);
      tail = stderr_tail_;
    }
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
    if (!tail.empty()) {
      const auto last = tail.rfind('\n');
      why += "; its last words: " + (last == std::string::npos ? tail : tail.substr(last + 1));
    }
    if (on_close_) on_close_(why);
  }

  stdio_options options_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::mutex write_mutex_;
  int stdin_ = -1;
  bool closing_ = false;
  std::atomic<bool> stop_reading_{false};
  std::thread reader_;
  message_handler on_message_;
  close_handler on_close_;
  std::mutex stderr_mutex_;
  std::string stderr_tail_;
};

}  // namespace

std::unique_ptr<transport> stdio_transport(stdio_options options) {
  return std::make_unique<stdio_channel>(std::move(options));
}

}  // namespace choir::mcp
