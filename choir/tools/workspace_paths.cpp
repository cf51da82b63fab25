#include "choir/tools/workspace_paths.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>

namespace choir::tools::detail {

error path_error(int err, std::string_view path, std::string_view doing) {
  const std::string p(path);
  switch (err) {
    case EXDEV:
    case ELOOP: return make_error(tool_errc::outside_workspace, "'" + p + "' leads outside the workspace");
    case ENOENT: return make_error(tool_errc::not_found, "'" + p + "' does not exist in the workspace");
    case ENOTDIR: return make_error(tool_errc::not_found, "a part of '" + p + "' is not a folder");
    case EISDIR: return make_error(tool_errc::failed, "'" + p + "' is a folder");
    default: return make_error(tool_errc::failed, std::string(doing) + " '" + p + "': " + std::strerror(err));
  }
}

int open_beneath(int dir, const std::string& rel, int flags, mode_t mode) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) != 0 ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dir, rel.c_str(), &how, sizeof how));
}

result<std::string> checked_path(const value& arguments, const char* field) {
  return checked_path(arguments.contains(field) ? arguments[field].get<std::string>() : std::string("."));
}

result<std::string> checked_path(std::string path) {
  if (path.empty()) path = ".";
  if (path.find('\0') != std::string::npos) return make_error(tool_errc::invalid_arguments, "a path may not hold NUL");
  if (path.front() == '/') {
    return make_error(tool_errc::outside_workspace, "'" + path + "' is absolute; paths are relative to the workspace");
  }
  return path;
}

result<fd_handle> open_workspace(const tool_context& context) {
  fd_handle root(::open(context.workspace.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) {
    return make_error(tool_errc::failed,
                      "the workspace " + context.workspace.string() + " cannot be opened: " + std::strerror(errno));
  }
  return root;
}

}  // namespace choir::tools::detail
