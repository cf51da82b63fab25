#pragma once
/// The built-in tools and the sandbox they run in:
///  - `fs.read`, `fs.write`, `fs.list`: files of the agent's workspace only. Every path is resolved
///    by the kernel beneath the workspace (`openat2` with `RESOLVE_BENEATH`), so no `..`, absolute
///    path or symlink leads out of it, and there is no window between a check and the use. A
///    write goes to a temporary file named after the call's idempotency key and is renamed into
///    place, so running it twice is harmless.
///  - `shell.exec`: a command run by `/bin/sh` inside a bubblewrap sandbox (`run_sandboxed`).
///  - `git.*`: the workspace as a git repository (`git_tools`).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "choir/tools/tool.hpp"

namespace choir::tools {

/// What a sandboxed program may use. The sandbox itself: no network (every namespace unshared),
/// a read-only /usr (and the /bin, /lib symlinks), private /proc, /dev and /tmp, no /etc and no
/// home, the workspace bound read-write at /workspace (its working folder), a clean environment,
/// and the process killed with its parent.
struct sandbox_limits {
  std::chrono::milliseconds time{30'000};   ///< wall clock, then the whole process group is killed
  std::uint64_t memory_bytes = 1ull << 30;  ///< address space (RLIMIT_AS)
  std::size_t output_bytes = 1u << 20;      ///< stdout and stderr each
  std::uint64_t file_bytes = 256ull << 20;  ///< the largest file it may write (RLIMIT_FSIZE)
  std::string bwrap = "/usr/bin/bwrap";
};

struct sandbox_result {
  int exit_code = 0;  ///< the program's exit status, or 128 + the signal that ended it
  std::string out;
  std::string err;
  std::int64_t elapsed_ms = 0;
};

/// Runs `argv` in the sandbox with `workspace` at /workspace, writing `input` to its stdin, and
/// waits for it. Blocks the calling thread up to the time limit. Errors:
/// `tool_errc::sandbox_unavailable` (bubblewrap missing or unable to start),
/// `tool_errc::limit_exceeded` (time or output over the limit: the program is killed; the message
/// names the limit), `core_errc::io_error`.
[[nodiscard]] result<sandbox_result> run_sandboxed(const std::vector<std::string>& argv,
                                                   const std::filesystem::path& workspace, std::string_view input,
                                                   const sandbox_limits& limits);

/// Bytes from outside (a file, a program's output, a web page) as text JSON can hold: bytes that
/// are not UTF-8 become U+FFFD.
[[nodiscard]] std::string as_text(const std::string& bytes);

/// What else a sandboxed program may see: folders bound read-only at their own paths (a
/// program's own files, such as an MCP server's packages), and environment variables.
struct sandbox_extras {
  std::vector<std::filesystem::path> read_only;
  std::vector<std::pair<std::string, std::string>> env;
};

/// The bubblewrap command line that runs `argv` in the sandbox described at `sandbox_limits`, for
/// a caller that starts and talks to the process itself (the runtime's stdio MCP servers). Limits
/// of time and memory are the caller's; the namespaces and the `--die-with-parent` tie are here.
[[nodiscard]] std::vector<std::string> sandbox_command(const std::vector<std::string>& argv,
                                                       const std::filesystem::path& workspace,
                                                       const sandbox_extras& extras = {},
                                                       const std::string& bwrap = "/usr/bin/bwrap");

/// The workspace tools. `max_file_bytes` bounds what `fs.read` returns and `fs.write` accepts.
[[nodiscard]] std::vector<std::shared_ptr<tool>> workspace_tools(std::size_t max_file_bytes = 8u << 20);
[[nodiscard]] std::shared_ptr<tool> shell_tool(sandbox_limits limits);

/// The `git.*` tools (libgit2) on a repository at the root of the workspace: `git.init`,
/// `git.status`, `git.diff`, `git.log`, `git.add`, `git.commit`. The repository must be the
/// workspace's own (never one above it, no `.git` file or link pointing out), the host's git
/// configuration is not read, staged files are read beneath the workspace like `fs.read`, and the
/// calls on one workspace run one at a time. A commit records the call's idempotency key, so the
/// same call run again after a crash returns the commit it made instead of committing again.
[[nodiscard]] std::vector<std::shared_ptr<tool>> git_tools();

/// What `web.fetch` may do per call.
struct web_limits {
  std::size_t max_bytes = 1u << 20;  ///< of the answer's body; more is cut (`truncated: true`)
  std::chrono::milliseconds timeout{20'000};
  int max_redirects = 5;
};

/// Why `web.fetch` refuses to connect to `address` (text form, IPv4 or IPv6): loopback, private,
/// link-local (cloud metadata), shared, unspecified, multicast — IPv4-mapped IPv6 included. Empty:
/// a public address.
[[nodiscard]] std::string refused_address(std::string_view address);

/// `web.fetch`: GET `url` (http or https). The host is resolved first and each address vetted
/// (`refused_address`) unless one of the capability's patterns names the host itself; only vetted
/// addresses are connected to. Redirects (at most `max_redirects`) are followed by hand, each new
/// URL checked again by the gate (`tool_context::recheck`) and vetted again.
[[nodiscard]] std::shared_ptr<tool> web_tool(web_limits limits = {});

/// Registers every built-in tool.
[[nodiscard]] result<void> add_builtin_tools(tool_registry& registry, const sandbox_limits& limits = {});

}  // namespace choir::tools
