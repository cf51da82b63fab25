// The `git.*` tools: a git repository at the root of the agent's workspace, through libgit2.
// Nothing of the host leaks in or out: the repository must be the workspace's own `.git` folder
// (never one found above it, never a `.git` file pointing elsewhere), the host's git
// configuration is not read, libgit2 runs no hooks or external programs, and the files `git.add`
// stages are read by this code beneath the workspace (`openat2`), not by libgit2 from a path.
// Operations on one workspace run one at a time.
#include <dirent.h>
#include <fcntl.h>
#include <git2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>

#include "choir/tools/builtin.hpp"
#include "choir/tools/workspace_paths.hpp"

namespace choir::tools {
namespace {

using detail::fd_handle;
using detail::open_beneath;
using detail::open_workspace;
using detail::path_error;

constexpr std::size_t max_entries = 10'000;           // files listed or staged per call
constexpr std::size_t max_staged_bytes = 64u << 20;   // one file `git.add` reads
constexpr std::size_t default_diff_bytes = 1u << 20;  // of `git.diff`'s text
constexpr const char* call_trailer = "Choir-Call: ";  // marks a commit with the call that made it

void init_libgit2() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    // The host's system, global and XDG configuration stay out of agents' repositories.
    for (const int level :
         {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL, GIT_CONFIG_LEVEL_PROGRAMDATA}) {
      git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, "");
    }
  });
}

error git_failure(std::string_view doing) {
  const git_error* e = git_error_last();
  return make_error(tool_errc::failed,
                    std::string(doing) + ": " + (e != nullptr && e->message != nullptr ? e->message : "git error"));
}

/// libgit2 objects, freed when they go.
template <typename T, void (*Free)(T*)>
struct owned {
  T* p = nullptr;
  owned() = default;
  owned(const owned&) = delete;
  owned& operator=(const owned&) = delete;
  ~owned() {
    if (p != nullptr) Free(p);
  }
  T** out() { return &p; }
  T* get() const { return p; }
};
using repo_ptr = owned<git_repository, git_repository_free>;
using index_ptr = owned<git_index, git_index_free>;
using commit_ptr = owned<git_commit, git_commit_free>;
using tree_ptr = owned<git_tree, git_tree_free>;
using diff_ptr = owned<git_diff, git_diff_free>;
using status_ptr = owned<git_status_list, git_status_list_free>;
using walk_ptr = owned<git_revwalk, git_revwalk_free>;
using ref_ptr = owned<git_reference, git_reference_free>;
using sig_ptr = owned<git_signature, git_signature_free>;

/// One lock per workspace: git's index and refs are written whole, and two calls at once would
/// lose one's changes.
std::shared_ptr<std::mutex> workspace_lock(const std::filesystem::path& workspace) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<std::mutex>> locks;
  std::error_code ec;
  const std::string key = std::filesystem::weakly_canonical(workspace, ec).string();
  std::lock_guard guard(mutex);
  for (auto it = locks.begin(); it != locks.end();) it = it->second.expired() ? locks.erase(it) : std::next(it);
  auto& slot = locks[key];
  auto lock = slot.lock();
  if (!lock) {
    lock = std::make_shared<std::mutex>();
    slot = lock;
  }
  return lock;
}

std::string with_slash(std::string path) {
  if (path.empty() || path.back() != '/') path += '/';
  return path;
}

/// Whether the folder `fd` holds a symbolic link anywhere beneath it. A link inside `.git` would
/// make libgit2, which runs outside the sandbox, read or write where it points.
bool holds_link(int fd, int depth = 0) {
  if (depth > 64) return true;
  const int copy = ::dup(fd);
  if (copy < 0) return true;
  DIR* d = ::fdopendir(copy);
  if (d == nullptr) {
    ::close(copy);
    return true;
  }
  bool found = false;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISLNK(st.st_mode)) {
      found = true;
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      fd_handle sub(::openat(::dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.get() < 0 || holds_link(sub.get(), depth + 1)) {
        found = true;
        break;
      }
    }
  }
  ::closedir(d);
  return found;
}

/// The repository at the root of the workspace, which must be its own.
result<void> open_repository(const tool_context& context, repo_ptr& repo) {
  init_libgit2();
  std::error_code ec;
  const auto root = std::filesystem::canonical(context.workspace, ec);
  if (ec) return make_error(tool_errc::failed, "the workspace cannot be opened: " + ec.message());
  const int rc = git_repository_open_ext(repo.out(), root.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (rc == GIT_ENOTFOUND) {
    return make_error(tool_errc::not_found, "the workspace is not a git repository (git.init makes it one)");
  }
  if (rc != 0) return git_failure("opening the workspace's repository");
  const char* workdir = git_repository_workdir(repo.get());
  const std::string own = with_slash(root.string());
  if (workdir == nullptr || std::string(workdir) != own ||
      std::string(git_repository_path(repo.get())) != own + ".git/") {
    return make_error(tool_errc::outside_workspace, "the workspace's .git does not hold its own repository");
  }
  fd_handle dot_git(::open((own + ".git").c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dot_git.get() < 0 || holds_link(dot_git.get())) {
    return make_error(tool_errc::outside_workspace,
                      "the workspace's .git holds a symbolic link, which git tools refuse");
  }
  return {};
}

/// A path inside the repository: relative, no `..`, no `.git` part.
result<std::string> repo_path(const std::string& raw) {
  CHOIR_TRY(std::string path, detail::checked_path(raw));
  while (path.size() > 2 && path.compare(0, 2, "./") == 0) path.erase(0, 2);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find('/', start), path.size());
    const std::string part = path.substr(start, end - start);
    if (part == "..") return make_error(tool_errc::outside_workspace, "'" + raw + "' leads outside the workspace");
    if (strcasecmp(part.c_str(), ".git") == 0) {
      return make_error(tool_errc::invalid_arguments, "'" + raw + "' is inside .git, which the git tools manage");
    }
    start = end + 1;
  }
  return path;
}

/// The `paths` argument, each checked by `repo_path`.
result<std::vector<std::string>> repo_paths(const value& arguments) {
  std::vector<std::string> out;
  if (!arguments.contains("paths")) return out;
  for (const auto& v : arguments["paths"]) {
    CHOIR_TRY(std::string path, repo_path(v.get<std::string>()));
    out.push_back(std::move(path));
  }
  return out;
}

std::string head_branch(git_repository* repo) {
  ref_ptr head;
  if (git_repository_head(head.out(), repo) == 0) return git_reference_shorthand(head.get());
  // An unborn branch: HEAD names it but no commit exists yet.
  ref_ptr symbolic;
  if (git_reference_lookup(symbolic.out(), repo, "HEAD") == 0 &&
      git_reference_type(symbolic.get()) == GIT_REFERENCE_SYMBOLIC) {
    std::string target = git_reference_symbolic_target(symbolic.get());
    const std::string prefix = "refs/heads/";
    return target.rfind(prefix, 0) == 0 ? target.substr(prefix.size()) : target;
  }
  return {};
}

value head_commit(git_repository* repo) {
  git_oid id;
  if (git_reference_name_to_id(&id, repo, "HEAD") != 0) return nullptr;
  return git_oid_tostr_s(&id);
}

class git_tool : public tool {
 public:
  using tool::tool;
  result<value> call(const value& arguments, const tool_context& context) final {
    const auto lock = workspace_lock(context.workspace);
    std::lock_guard guard(*lock);
    return locked_call(arguments, context);
  }

 protected:
  virtual result<value> locked_call(const value& arguments, const tool_context& context) = 0;
};

value object_schema(value properties, value required = value::array()) {
  value s{{"type", "object"}, {"properties", std::move(properties)}, {"additionalProperties", false}};
  if (!required.empty()) s["required"] = std::move(required);
  return s;
}

const value paths_schema = {{"type", "array"}, {"items", {{"type", "string"}, {"minLength", 1}}}, {"maxItems", 1000}};

class git_init final : public git_tool {
 public:
  git_init()
      : git_tool({.name = "git.init",
                  .description = "Make the workspace a git repository (branch main), unless it is one already.",
                  .input_schema = object_schema(value::object()),
                  .output_schema = {{"type", "object"}, {"required", {"created", "branch"}}},
                  .idempotent = true}) {}

  result<value> locked_call(const value&, const tool_context& context) override {
    repo_ptr repo;
    auto opened = open_repository(context, repo);
    if (opened.ok()) return value{{"created", false}, {"branch", head_branch(repo.get())}};
    if (opened.err().code != make_error_code(tool_errc::not_found)) return std::move(opened).err();
    std::error_code ec;
    const auto root = std::filesystem::canonical(context.workspace, ec);
    if (ec) return make_error(tool_errc::failed, "the workspace cannot be opened: " + ec.message());
    git_repository_init_options options = GIT_REPOSITORY_INIT_OPTIONS_INIT;
    options.flags = GIT_REPOSITORY_INIT_NO_REINIT;
    options.initial_head = "main";
    repo_ptr created;
    if (git_repository_init_ext(created.out(), root.c_str(), &options) != 0) {
      return git_failure("making the workspace a repository");
    }
    return value{{"created", true}, {"branch", "main"}};
  }
};

class git_status final : public git_tool {
 public:
  git_status()
      : git_tool({.name = "git.status",
                  .description = "The workspace repository's branch, last commit, and changed files: staged "
                                 "(in the index) and unstaged (in the working files), untracked files included.",
                  .input_schema = object_schema(value::object()),
                  .output_schema = {{"type", "object"}, {"required", {"branch", "head", "files"}}},
                  .idempotent = true}) {}

  result<value> locked_call(const value&, const tool_context& context) override {
    repo_ptr repo;
    CHOIR_CHECK(open_repository(context, repo));
    git_status_options options = GIT_STATUS_OPTIONS_INIT;
    options.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
    options.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS |
                    GIT_STATUS_OPT_EXCLUDE_SUBMODULES | GIT_STATUS_OPT_SORT_CASE_SENSITIVELY;
    status_ptr list;
    if (git_status_list_new(list.out(), repo.get(), &options) != 0) return git_failure("reading the status");
    value files = value::array();
    const std::size_t n = git_status_list_entrycount(list.get());
    for (std::size_t i = 0; i < n && files.size() < max_entries; ++i) {
      const git_status_entry* e = git_status_byindex(list.get(), i);
      const unsigned s = e->status;
      const char* staged = (s & GIT_STATUS_INDEX_NEW)          ? "added"
                           : (s & GIT_STATUS_INDEX_MODIFIED)   ? "modified"
                           : (s & GIT_STATUS_INDEX_DELETED)    ? "deleted"
                           : (s & GIT_STATUS_INDEX_RENAMED)    ? "renamed"
                           : (s & GIT_STATUS_INDEX_TYPECHANGE) ? "typechange"
                                                               : nullptr;
      const char* unstaged = (s & GIT_STATUS_WT_NEW)          ? "untracked"
                             : (s & GIT_STATUS_WT_MODIFIED)   ? "modified"
                             : (s & GIT_STATUS_WT_DELETED)    ? "deleted"
                             : (s & GIT_STATUS_WT_RENAMED)    ? "renamed"
                             : (s & GIT_STATUS_WT_TYPECHANGE) ? "typechange"
                                                              : nullptr;
      if (staged == nullptr && unstaged == nullptr) continue;  // ignored or unchanged
      const git_diff_delta* d = e->index_to_workdir != nullptr ? e->index_to_workdir : e->head_to_index;
      const char* path = d->new_file.path != nullptr ? d->new_file.path : d->old_file.path;
      value file{{"path", as_text(path)}};
      if (staged != nullptr) file["staged"] = staged;
      if (unstaged != nullptr) file["unstaged"] = unstaged;
      files.push_back(std::move(file));
    }
    value out{{"branch", head_branch(repo.get())}, {"head", head_commit(repo.get())}, {"files", std::move(files)}};
    if (n > max_entries) out["truncated"] = true;
    return out;
  }
};

class git_diff_tool final : public git_tool {
 public:
  git_diff_tool()
      : git_tool({.name = "git.diff",
                  .description = "A unified diff of the workspace repository: the working files against the index "
                                 "(untracked files shown whole), or with staged=true the index against the last "
                                 "commit. paths limits it to those files or folders.",
                  .input_schema = object_schema({{"staged", {{"type", "boolean"}, {"default", false}}},
                                                 {"paths", paths_schema},
                                                 {"max_bytes", {{"type", "integer"}, {"minimum", 1}}}}),
                  .output_schema = {{"type", "object"}, {"required", {"diff", "files", "truncated"}}},
                  .idempotent = true}) {}

  result<value> locked_call(const value& arguments, const tool_context& context) override {
    repo_ptr repo;
    CHOIR_CHECK(open_repository(context, repo));
    CHOIR_TRY(std::vector<std::string> paths, repo_paths(arguments));
    std::vector<char*> specs;
    for (auto& p : paths) specs.push_back(p.data());
    git_diff_options options = GIT_DIFF_OPTIONS_INIT;
    options.flags = GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS | GIT_DIFF_SHOW_UNTRACKED_CONTENT;
    options.pathspec.strings = specs.data();
    options.pathspec.count = specs.size();
    diff_ptr diff;
    if (arguments.value("staged", false)) {
      tree_ptr head_tree;
      commit_ptr head;
      git_oid id;
      if (git_reference_name_to_id(&id, repo.get(), "HEAD") == 0) {
        if (git_commit_lookup(head.out(), repo.get(), &id) != 0 || git_commit_tree(head_tree.out(), head.get()) != 0) {
          return git_failure("reading the last commit");
        }
      }
      if (git_diff_tree_to_index(diff.out(), repo.get(), head_tree.get(), nullptr, &options) != 0) {
        return git_failure("comparing the index with the last commit");
      }
    } else if (git_diff_index_to_workdir(diff.out(), repo.get(), nullptr, &options) != 0) {
      return git_failure("comparing the working files with the index");
    }
    struct sink {
      std::string text;
      std::size_t limit;
      bool truncated = false;
    } out{{}, static_cast<std::size_t>(arguments.value("max_bytes", static_cast<std::int64_t>(default_diff_bytes)))};
    out.limit = std::min(out.limit, default_diff_bytes * 8);
    const auto print = [](const git_diff_delta*, const git_diff_hunk*, const git_diff_line* line,
                          void* payload) -> int {
      auto* s = static_cast<sink*>(payload);
      std::string piece;
      if (line->origin == GIT_DIFF_LINE_CONTEXT || line->origin == GIT_DIFF_LINE_ADDITION ||
          line->origin == GIT_DIFF_LINE_DELETION) {
        piece += line->origin;
      }
      piece.append(line->content, line->content_len);
      if (s->text.size() + piece.size() > s->limit) {
        s->truncated = true;
        return 1;  // stops the walk
      }
      s->text += piece;
      return 0;
    };
    const int rc = git_diff_print(diff.get(), GIT_DIFF_FORMAT_PATCH, print, &out);
    if (rc != 0 && !out.truncated) return git_failure("writing the diff");
    return value{{"diff", as_text(out.text)},
                 {"files", static_cast<std::int64_t>(git_diff_num_deltas(diff.get()))},
                 {"truncated", out.truncated}};
  }
};

class git_log final : public git_tool {
 public:
  git_log()
      : git_tool({.name = "git.log",
                  .description = "The last commits of the workspace repository's current branch, newest first.",
                  .input_schema = object_schema(
                      {{"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", 200}, {"default", 20}}}}),
                  .output_schema = {{"type", "object"}, {"required", {"branch", "commits"}}},
                  .idempotent = true}) {}

  result<value> locked_call(const value& arguments, const tool_context& context) override {
    repo_ptr repo;
    CHOIR_CHECK(open_repository(context, repo));
    value commits = value::array();
    const auto limit = static_cast<std::size_t>(arguments.value("limit", 20));
    git_oid head;
    if (git_reference_name_to_id(&head, repo.get(), "HEAD") == 0) {
      walk_ptr walk;
      if (git_revwalk_new(walk.out(), repo.get()) != 0 || git_revwalk_push(walk.get(), &head) != 0) {
        return git_failure("walking the history");
      }
      git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
      git_oid id;
      while (commits.size() < limit && git_revwalk_next(&id, walk.get()) == 0) {
        commit_ptr c;
        if (git_commit_lookup(c.out(), repo.get(), &id) != 0) return git_failure("reading a commit");
        const git_signature* author = git_commit_author(c.get());
        commits.push_back({{"id", git_oid_tostr_s(&id)},
                           {"author", as_text(author->name)},
                           {"email", as_text(author->email)},
                           {"time", static_cast<std::int64_t>(author->when.time)},
                           {"message", as_text(git_commit_message(c.get()))}});
      }
    }
    return value{{"branch", head_branch(repo.get())}, {"commits", std::move(commits)}};
  }
};

/// What `git.add` stages, read beneath the workspace by this code.
class stager {
 public:
  stager(git_repository* repo, git_index* index, int root) : repo_(repo), index_(index), root_(root) {}

  result<void> add(const std::string& path) {
    if (path == ".") return add_folder("", root_);
    const auto slash = path.rfind('/');
    const std::string parent = slash == std::string::npos ? "." : path.substr(0, slash);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    fd_handle dir(open_beneath(root_, parent, O_PATH | O_DIRECTORY));
    if (dir.get() < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return remove_missing(path);
      return path_error(errno, path, "staging");
    }
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return remove_missing(path);
      return path_error(errno, path, "staging");
    }
    if (S_ISDIR(st.st_mode)) {
      fd_handle sub(open_beneath(dir.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
      if (sub.get() < 0) return path_error(errno, path, "staging");
      return add_folder(path + "/", sub.get());
    }
    return add_entry(path, dir.get(), name, st);
  }

  [[nodiscard]] const value& staged() const { return staged_; }
  [[nodiscard]] const value& removed() const { return removed_; }

 private:
  result<void> add_entry(const std::string& path, int dir, const std::string& name, const struct stat& st) {
    if (staged_.size() + removed_.size() >= max_entries) {
      return make_error(tool_errc::limit_exceeded, "more than " + std::to_string(max_entries) + " files to stage");
    }
    std::string content;
    git_filemode_t mode = GIT_FILEMODE_BLOB;
    if (S_ISLNK(st.st_mode)) {
      // A link is staged as itself (its target's name), never followed.
      content.resize(4096);
      const auto n = ::readlinkat(dir, name.c_str(), content.data(), content.size());
      if (n < 0) return path_error(errno, path, "staging");
      content.resize(static_cast<std::size_t>(n));
      mode = GIT_FILEMODE_LINK;
    } else if (S_ISREG(st.st_mode)) {
      if (static_cast<std::uint64_t>(st.st_size) > max_staged_bytes) {
        return make_error(tool_errc::limit_exceeded,
                          "'" + path + "' is larger than " + std::to_string(max_staged_bytes >> 20) + " MiB");
      }
      fd_handle file(open_beneath(dir, name, O_RDONLY | O_NOFOLLOW));
      if (file.get() < 0) return path_error(errno, path, "staging");
      content.resize(static_cast<std::size_t>(st.st_size));
      std::size_t got = 0;
      while (got < content.size()) {
        const auto n = ::read(file.get(), content.data() + got, content.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return path_error(errno, path, "staging");
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
      }
      content.resize(got);
      if ((st.st_mode & S_IXUSR) != 0) mode = GIT_FILEMODE_BLOB_EXECUTABLE;
    } else {
      return {};  // sockets, fifos, devices: git keeps none
    }
    git_index_entry entry{};
    entry.path = path.c_str();
    entry.mode = mode;
    if (git_index_add_from_buffer(index_, &entry, content.data(), content.size()) != 0) {
      return git_failure("staging '" + path + "'");
    }
    staged_.push_back(as_text(path));
    return {};
  }

  /// Everything in a folder (`prefix` ends with '/', or is empty for the root) that is not
  /// ignored, and the removal of tracked files under it that are gone.
  result<void> add_folder(const std::string& prefix, int fd) {
    const int copy = ::dup(fd);
    if (copy < 0) return path_error(errno, prefix, "staging");
    DIR* d = ::fdopendir(copy);
    if (d == nullptr) {
      ::close(copy);
      return path_error(errno, prefix, "staging");
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == ".." || strcasecmp(name.c_str(), ".git") == 0 || name.rfind(".choir-write-", 0) == 0) {
        continue;
      }
      names.push_back(name);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      const std::string path = prefix + name;
      struct stat st {};
      if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      int ignored = 0;
      if (git_ignore_path_is_ignored(&ignored, repo_, (S_ISDIR(st.st_mode) ? path + "/" : path).c_str()) == 0 &&
          ignored != 0) {
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        fd_handle sub(open_beneath(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
        if (sub.get() < 0) return path_error(errno, path, "staging");
        CHOIR_CHECK(add_folder(path + "/", sub.get()));
      } else {
        CHOIR_CHECK(add_entry(path, fd, name, st));
      }
    }
    // Tracked files under the folder that no longer exist: their removal is staged.
    std::vector<std::string> gone;
    const std::size_t n = git_index_entrycount(index_);
    for (std::size_t i = 0; i < n; ++i) {
      const git_index_entry* e = git_index_get_byindex(index_, i);
      const std::string path = e->path;
      if (path.compare(0, prefix.size(), prefix) != 0) continue;
      if (::faccessat(root_, path.c_str(), F_OK, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) gone.push_back(path);
    }
    for (const auto& path : gone) CHOIR_CHECK(remove_missing(path));
    return {};
  }

  result<void> remove_missing(const std::string& path) {
    if (git_index_get_bypath(index_, path.c_str(), 0) == nullptr) {
      // Not a tracked file: perhaps a folder whose tracked files all went.
      const std::string prefix = path + "/";
      std::vector<std::string> under;
      const std::size_t n = git_index_entrycount(index_);
      for (std::size_t i = 0; i < n; ++i) {
        const std::string p = git_index_get_byindex(index_, i)->path;
        if (p.compare(0, prefix.size(), prefix) == 0) under.push_back(p);
      }
      if (under.empty()) return path_error(ENOENT, path, "staging");
      for (const auto& p : under) CHOIR_CHECK(remove_missing(p));
      return {};
    }
    if (git_index_remove_bypath(index_, path.c_str()) != 0) return git_failure("staging the removal of '" + path + "'");
    removed_.push_back(as_text(path));
    return {};
  }

  git_repository* repo_;
  git_index* index_;
  int root_;
  value staged_ = value::array();
  value removed_ = value::array();
};

class git_add final : public git_tool {
 public:
  git_add()
      : git_tool({.name = "git.add",
                  .description = "Stage files or folders of the workspace (a folder: everything in it that is not "
                                 "ignored; a file that is gone: its removal). \".\" stages the whole workspace.",
                  .input_schema = object_schema({{"paths", paths_schema}}, {"paths"}),
                  .output_schema = {{"type", "object"}, {"required", {"staged", "removed"}}},
                  .idempotent = true}) {}

  result<value> locked_call(const value& arguments, const tool_context& context) override {
    repo_ptr repo;
    CHOIR_CHECK(open_repository(context, repo));
    CHOIR_TRY(std::vector<std::string> paths, repo_paths(arguments));
    if (paths.empty()) return make_error(tool_errc::invalid_arguments, "paths: name at least one file or folder");
    CHOIR_TRY(fd_handle root, open_workspace(context));
    fd_handle dir(::openat(root.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) return path_error(errno, ".", "staging");
    index_ptr index;
    if (git_repository_index(index.out(), repo.get()) != 0) return git_failure("reading the index");
    stager s(repo.get(), index.get(), dir.get());
    for (const auto& path : paths) CHOIR_CHECK(s.add(path));
    if (git_index_write(index.get()) != 0) return git_failure("writing the index");
    return value{{"staged", s.staged()}, {"removed", s.removed()}};
  }
};

class git_commit_tool final : public git_tool {
 public:
  git_commit_tool()
      : git_tool({.name = "git.commit",
                  .description = "Commit what is staged in the workspace repository. The commit records the call "
                                 "that made it, so a call repeated after a crash does not commit twice.",
                  .input_schema = object_schema({{"message", {{"type", "string"}, {"minLength", 1}}},
                                                 {"author_name", {{"type", "string"}, {"minLength", 1}}},
                                                 {"author_email", {{"type", "string"}, {"minLength", 1}}}},
                                                {"message"}),
                  .output_schema = {{"type", "object"}, {"required", {"commit", "branch"}}},
                  .idempotent = true}) {}

  result<value> locked_call(const value& arguments, const tool_context& context) override {
    repo_ptr repo;
    CHOIR_CHECK(open_repository(context, repo));
    std::string message = arguments["message"].get<std::string>();
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    if (!context.idempotency_key.empty()) message += std::string("\n\n") + call_trailer + context.idempotency_key;
    message += '\n';

    commit_ptr parent;
    git_oid head_id;
    const bool born = git_reference_name_to_id(&head_id, repo.get(), "HEAD") == 0;
    if (born) {
      if (git_commit_lookup(parent.out(), repo.get(), &head_id) != 0) return git_failure("reading the last commit");
      // The same call again (its process died after committing): the commit it made.
      if (!context.idempotency_key.empty() && std::string(git_commit_message(parent.get())) == message) {
        return value{{"commit", git_oid_tostr_s(&head_id)}, {"branch", head_branch(repo.get())}, {"repeated", true}};
      }
    }
    index_ptr index;
    if (git_repository_index(index.out(), repo.get()) != 0) return git_failure("reading the index");
    git_oid tree_id;
    if (git_index_write_tree(&tree_id, index.get()) != 0) return git_failure("writing the tree");
    if (born ? git_oid_equal(&tree_id, git_commit_tree_id(parent.get())) != 0
             : git_index_entrycount(index.get()) == 0) {
      return make_error(tool_errc::failed, "nothing to commit: stage changes with git.add first");
    }
    tree_ptr tree;
    if (git_tree_lookup(tree.out(), repo.get(), &tree_id) != 0) return git_failure("reading the tree");
    sig_ptr author;
    const std::string name = arguments.value("author_name", std::string("ChoirOS agent"));
    const std::string email = arguments.value("author_email", std::string("agent@choiros.invalid"));
    if (git_signature_new(author.out(), name.c_str(), email.c_str(), static_cast<git_time_t>(std::time(nullptr)), 0) !=
        0) {
      return git_failure("the author");
    }
    const git_commit* parents[] = {parent.get()};
    git_oid id;
    if (git_commit_create(&id, repo.get(), "HEAD", author.get(), author.get(), nullptr, message.c_str(), tree.get(),
                          born ? 1 : 0, parents) != 0) {
      return git_failure("committing");
    }
    return value{{"commit", git_oid_tostr_s(&id)}, {"branch", head_branch(repo.get())}};
  }
};

}  // namespace

std::vector<std::shared_ptr<tool>> git_tools() {
  return {std::make_shared<git_init>(), std::make_shared<git_status>(), std::make_shared<git_diff_tool>(),
          std::make_shared<git_log>(),  std::make_shared<git_add>(),    std::make_shared<git_commit_tool>()};
}

}  // namespace choir::tools
