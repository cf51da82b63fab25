#pragma once
/// For code that starts programs with fork and exec (the sandbox, MCP stdio servers).
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace choir {

/// In the child, between fork and exec: closes every descriptor above standard error, so that the
/// program inherits its three standard streams and nothing else. A socket or file this process
/// opened without close-on-exec (Asio opens its sockets so) would otherwise cross into the program
/// — into the sandbox, past its network namespace. Async-signal-safe.
inline void close_inherited_descriptors() noexcept {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
  rlimit open_files{};  // a kernel without close_range (before Linux 5.9): one at a time
  const long highest = ::getrlimit(RLIMIT_NOFILE, &open_files) == 0 && open_files.rlim_cur != RLIM_INFINITY
                           ? static_cast<long>(open_files.rlim_cur)
                           : 65536L;
  for (long fd = 3; fd < highest; ++fd) ::close(static_cast<int>(fd));
}

}  // namespace choir
