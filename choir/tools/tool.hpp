#pragma once
/// Tools: named operations an agent may call, each with a JSON Schema for its arguments (and
/// optionally its result). The registry validates both; invalid arguments come back as a
/// `tool_errc::invalid_arguments` error whose message the `llm` action hands to the model so it
/// can correct the call. Tools know nothing of policy, audit or the journal: the runtime's gate
/// checks and journals every call before it reaches them (ARCHITECTURE, "Who owns what").
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "choir/core/json_schema.hpp"
#include "choir/core/result.hpp"
#include "choir/core/value.hpp"

namespace choir::tools {

enum class tool_errc {
  unknown_tool = 1,     ///< no tool of that name is registered
  invalid_arguments,    ///< the arguments do not match the input schema (the message lists why)
  invalid_result,       ///< the tool's result does not match its output schema (a bug in the tool)
  outside_workspace,    ///< a path leaves the workspace (`..`, an absolute path, a symlink out)
  not_found,            ///< a path inside the workspace does not exist
  limit_exceeded,       ///< time, memory or output over the limit
  sandbox_unavailable,  ///< the sandbox cannot be set up here (the tool does not run without it)
  failed,               ///< the operation failed (the message says how)
  forbidden_address,    ///< a network address the tool may not reach (loopback, private, link-local)
};

[[nodiscard]] const std::error_category& tool_category() noexcept;
[[nodiscard]] std::error_code make_error_code(tool_errc e) noexcept;

/// What a call runs with, set by the runtime.
struct tool_context {
  std::filesystem::path workspace;  ///< the agent's workspace; it exists
  /// The same for every attempt of the same call: tools that can be made idempotent use it (a
  /// write goes to a temporary file named after it, then is renamed into place).
  std::string idempotency_key;
  /// The run the call is for (tools that call out, such as MCP servers, say on whose behalf).
  std::string run_id;
  /// The patterns the contract narrows this capability to (`allow`), for tools that treat a
  /// place a pattern names explicitly differently (`web.fetch` reaches a private address only then).
  std::vector<std::string> patterns;
  /// Checks another subject of the same call against the contract and policy, as the first was
  /// (a redirect's URL); null: none is checked.
  std::function<result<void>(const std::string& subject)> recheck;
};

struct tool_spec {
  std::string name;
  std::string description;
  value input_schema = value::object();
  value output_schema;  ///< null: the result is not checked
  /// Safe to run twice with the same key: decides whether a call whose outcome was never
  /// recorded (the process died during it) may run again.
  bool idempotent = false;
  /// The argument the capability's patterns are matched against (`path`, `url`, `command`), or
  /// empty: the capability has no argument.
  std::string subject;
};

class tool {
 public:
  explicit tool(tool_spec spec) : spec_(std::move(spec)) {}
  virtual ~tool() = default;
  tool(const tool&) = delete;
  tool& operator=(const tool&) = delete;
  [[nodiscard]] const tool_spec& spec() const noexcept { return spec_; }
  /// Runs with arguments already validated against the input schema. May block (a shell
  /// command runs to its time limit). Thread-safe.
  [[nodiscard]] virtual result<value> call(const value& arguments, const tool_context& context) = 0;

 private:
  tool_spec spec_;
};

/// Tools by name. Thread-safe: tools can come and go (an MCP server's list changes) while others
/// are looked up and called; a call keeps the tool it started with.
class tool_registry {
 public:
  /// Registers `t`, compiling its schemas. Errors: `core_errc::invalid_argument` (a bad schema,
  /// or a name already taken).
  [[nodiscard]] result<void> add(std::shared_ptr<tool> t);
  /// Replaces every tool whose name begins with `prefix` by `tools` (whose names must begin with
  /// it), at once: a lookup sees the old set or the new one. A tool whose schemas do not compile,
  /// or whose name is outside the prefix or taken twice, is left out: the list says why, a line
  /// each.
  [[nodiscard]] std::vector<std::string> replace_prefix(std::string_view prefix,
                                                        std::vector<std::shared_ptr<tool>> tools);
  [[nodiscard]] std::shared_ptr<tool> find(std::string_view name) const;
  [[nodiscard]] std::vector<tool_spec> list() const;

  /// Checks `arguments` against the tool's input schema: `tool_errc::invalid_arguments` listing
  /// every violation by JSON pointer, or `unknown_tool`.
  [[nodiscard]] result<void> validate(std::string_view name, const value& arguments) const;
  /// The argument a capability's patterns are matched against (empty if the tool has none or the
  /// argument is not a string).
  [[nodiscard]] std::string subject_of(std::string_view name, const value& arguments) const;
  /// Validates, calls, and checks the result against the output schema.
  [[nodiscard]] result<value> call(std::string_view name, const value& arguments, const tool_context& context) const;

 private:
  struct entry {
    std::shared_ptr<tool> impl;
    json_schema input;
    std::optional<json_schema> output;
  };
  [[nodiscard]] static result<std::shared_ptr<const entry>> compile(std::shared_ptr<tool> t);
  [[nodiscard]] std::shared_ptr<const entry> lookup(std::string_view name) const;
  mutable std::shared_mutex mutex_;
  std::vector<std::shared_ptr<const entry>> entries_;  ///< in the order they were added
};

}  // namespace choir::tools

template <>
struct std::is_error_code_enum<choir::tools::tool_errc> : std::true_type {};
