#pragma once
/// Paths of an agent's workspace as the tools resolve them (internal to choir/tools): every path
/// is opened by the kernel beneath the workspace (`openat2` with `RESOLVE_BENEATH`), so no `..`,
/// absolute path or symlink leads out of it.
#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>

#include "choir/tools/tool.hpp"

namespace choir::tools::detail {

/// An open file descriptor, closed when it goes.
class fd_handle {
 public:
  explicit fd_handle(int fd = -1) : fd_(fd) {}
  ~fd_handle() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_handle(fd_handle&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  fd_handle& operator=(fd_handle&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

/// The tool error an `errno` from resolving `path` means (`outside_workspace`, `not_found`, …).
[[nodiscard]] error path_error(int err, std::string_view path, std::string_view doing);

/// Opens `rel` beneath the folder `dir`; the kernel refuses any resolution that leaves it.
[[nodiscard]] int open_beneath(int dir, const std::string& rel, int flags, mode_t mode = 0);

/// The argument `field` as a workspace path (default `.`): no NUL, not absolute.
[[nodiscard]] result<std::string> checked_path(const value& arguments, const char* field = "path");
[[nodiscard]] result<std::string> checked_path(std::string path);

/// The workspace itself, opened as a path.
[[nodiscard]] result<fd_handle> open_workspace(const tool_context& context);

}  // namespace choir::tools::detail
