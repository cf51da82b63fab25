#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "choir/tools/builtin.hpp"
#include "choir/tools/workspace_paths.hpp"

namespace choir::tools {
namespace {

using detail::checked_path;
using detail::fd_handle;
using detail::open_beneath;
using detail::open_workspace;
using detail::path_error;

class fs_read final : public tool {
 public:
  explicit fs_read(std::size_t max_bytes)
      : tool({.name = "fs.read",
              .description = "Read a text file of the workspace.",
              .input_schema = {{"type", "object"},
                               {"properties",
                                {{"path", {{"type", "string"}, {"description", "relative to the workspace"}}},
                                 {"offset", {{"type", "integer"}, {"minimum", 0}}},
                                 {"max_bytes", {{"type", "integer"}, {"minimum", 1}}}}},
                               {"required", {"path"}},
                               {"additionalProperties", false}},
              .output_schema = {{"type", "object"}, {"required", {"path", "content", "size", "truncated"}}},
              .idempotent = true,
              .subject = "path"}),
        max_bytes_(max_bytes) {}

  result<value> call(const value& arguments, const tool_context& context) override {
    CHOIR_TRY(std::string path, checked_path(arguments));
    CHOIR_TRY(fd_handle root, open_workspace(context));
    fd_handle file(open_beneath(root.get(), path, O_RDONLY | O_NOCTTY | O_NONBLOCK));
    if (file.get() < 0) return path_error(errno, path, "reading");
    struct stat st {};
    if (::fstat(file.get(), &st) != 0) return path_error(errno, path, "reading");
    if (!S_ISREG(st.st_mode)) return make_error(tool_errc::failed, "'" + path + "' is not a regular file");
    const auto offset = static_cast<off_t>(arguments.value("offset", std::int64_t{0}));
    const std::size_t limit = std::min<std::size_t>(max_bytes_, arguments.value("max_bytes", max_bytes_));
    std::string bytes;
    bytes.resize(limit);
    std::size_t got = 0;
    while (got < limit) {
      const auto n = ::pread(file.get(), bytes.data() + got, limit - got, offset + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return path_error(errno, path, "reading");
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    bytes.resize(got);
    return value{{"path", path},
                 {"content", as_text(bytes)},
                 {"size", static_cast<std::int64_t>(st.st_size)},
                 {"truncated", static_cast<std::int64_t>(offset) + static_cast<std::int64_t>(got) < st.st_size}};
  }

 private:
  std::size_t max_bytes_;
};

/// The folder a path's last part lives in, opened beneath the workspace (created if asked), and
/// that last part.
result<std::pair<fd_handle, std::string>> parent_of(int root, const std::string& path, bool create) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!part.empty() && part != ".") parts.push_back(part);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (parts.empty() || parts.back() == "..") {
    return make_error(tool_errc::invalid_arguments, "'" + path + "' does not name a file");
  }
  const std::string leaf = parts.back();
  parts.pop_back();
  std::string parent;
  for (const auto& p : parts) parent += (parent.empty() ? "" : "/") + p;
  if (parent.empty()) parent = ".";
  fd_handle dir(open_beneath(root, parent, O_PATH | O_DIRECTORY));
  if (dir.get() >= 0) return std::pair{std::move(dir), leaf};
  if (errno != ENOENT || !create) return path_error(errno, path, "writing");
  // Create the missing folders one at a time, each beneath the one before.
  fd_handle cur(open_beneath(root, ".", O_PATH | O_DIRECTORY));
  for (const auto& p : parts) {
    if (p == "..")
      return make_error(tool_errc::invalid_arguments, "'" + path + "': '..' is not allowed where folders are created");
    if (::mkdirat(cur.get(), p.c_str(), 0755) != 0 && errno != EEXIST)
      return path_error(errno, path, "creating a folder for");
    fd_handle next(open_beneath(cur.get(), p, O_PATH | O_DIRECTORY));
    if (next.get() < 0) return path_error(errno, path, "writing");
    cur = std::move(next);
  }
  return std::pair{std::move(cur), leaf};
}

class fs_write final : public tool {
 public:
  explicit fs_write(std::size_t max_bytes)
      : tool({.name = "fs.write",
              .description = "Write a text file of the workspace (replacing it), creating its folders.",
              .input_schema = {{"type", "object"},
                               {"properties",
                                {{"path", {{"type", "string"}, {"description", "relative to the workspace"}}},
                                 {"content", {{"type", "string"}}},
                                 {"create_dirs", {{"type", "boolean"}, {"default", true}}}}},
                               {"required", {"path", "content"}},
                               {"additionalProperties", false}},
              .output_schema = {{"type", "object"}, {"required", {"path", "bytes"}}},
              .idempotent = true,
              .subject = "path"}),
        max_bytes_(max_bytes) {}

  result<value> call(const value& arguments, const tool_context& context) override {
    CHOIR_TRY(std::string path, checked_path(arguments));
    const std::string& content = arguments["content"].get_ref<const std::string&>();
    if (content.size() > max_bytes_) {
      return make_error(tool_errc::limit_exceeded, "content of " + std::to_string(content.size()) +
                                                       " bytes is over the limit of " + std::to_string(max_bytes_));
    }
    CHOIR_TRY(fd_handle root, open_workspace(context));
    CHOIR_TRY(auto parent, parent_of(root.get(), path, arguments.value("create_dirs", true)));
    auto& [dir, leaf] = parent;
    char tag[32];
    std::snprintf(tag, sizeof tag, "%016zx", std::hash<std::string>{}(context.idempotency_key + "\n" + path));
    const std::string temp = ".choir-write-" + std::string(tag) + ".tmp";
    fd_handle file(::openat(dir.get(), temp.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (file.get() < 0) return path_error(errno, path, "writing");
    std::size_t done = 0;
    while (done < content.size()) {
      const auto n = ::write(file.get(), content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::unlinkat(dir.get(), temp.c_str(), 0);
        return path_error(err, path, "writing");
      }
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(file.get()) != 0 || ::renameat(dir.get(), temp.c_str(), dir.get(), leaf.c_str()) != 0) {
      const int err = errno;
      ::unlinkat(dir.get(), temp.c_str(), 0);
      return path_error(err, path, "writing");
    }
    ::fsync(dir.get());
    return value{{"path", path}, {"bytes", static_cast<std::int64_t>(content.size())}};
  }

 private:
  std::size_t max_bytes_;
};

class fs_list final : public tool {
 public:
  fs_list()
      : tool({.name = "fs.list",
              .description = "List a folder of the workspace.",
              .input_schema = {{"type", "object"},
                               {"properties", {{"path", {{"type", "string"}, {"default", "."}}}}},
                               {"additionalProperties", false}},
              .output_schema = {{"type", "object"}, {"required", {"path", "entries"}}},
              .idempotent = true,
              .subject = "path"}) {}

  result<value> call(const value& arguments, const tool_context& context) override {
    CHOIR_TRY(std::string path, checked_path(arguments));
    CHOIR_TRY(fd_handle root, open_workspace(context));
    fd_handle dir(open_beneath(root.get(), path, O_RDONLY | O_DIRECTORY));
    if (dir.get() < 0) return path_error(errno, path, "listing");
    const int fd = dir.release();
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
      ::close(fd);
      return path_error(errno, path, "listing");
    }
    constexpr std::size_t max_entries = 10'000;
    value entries = value::array();
    bool truncated = false;
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == ".." || name.rfind(".choir-write-", 0) == 0) continue;
      if (entries.size() == max_entries) {
        truncated = true;
        break;
      }
      struct stat st {};
      std::string type = "other";
      std::int64_t size = 0;
      if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISREG(st.st_mode))
          type = "file";
        else if (S_ISDIR(st.st_mode))
          type = "folder";
        else if (S_ISLNK(st.st_mode))
          type = "symlink";
        size = static_cast<std::int64_t>(st.st_size);
      }
      entries.push_back({{"name", as_text(name)}, {"type", type}, {"size", size}});
    }
    ::closedir(d);
    std::sort(entries.begin(), entries.end(), [](const value& a, const value& b) { return a["name"] < b["name"]; });
    value out{{"path", path}, {"entries", std::move(entries)}};
    if (truncated) out["truncated"] = true;
    return out;
  }
};

}  // namespace

std::vector<std::shared_ptr<tool>> workspace_tools(std::size_t max_file_bytes) {
  return {std::make_shared<fs_read>(max_file_bytes), std::make_shared<fs_write>(max_file_bytes),
          std::make_shared<fs_list>()};
}

std::string as_text(const std::string& bytes) {
  const std::string quoted = dump_json(value(bytes));
  return value::parse(quoted).get<std::string>();
}

}  // namespace choir::tools
