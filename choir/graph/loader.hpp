#pragma once
/// Graphs in YAML: a `kind: Graph` document (name, entrypoint, initial state, actions,
/// transitions). The format is documented in docs/graph-yaml.md. Errors give the file, line,
/// column and field path of the offending node: `counter.yaml:12:7: actions.increment.update.count: …`.
///
/// Action types are looked up in an `action_registry`: `set`, `pass` and `human` are built in; C++
/// code and later layers (`llm`, `tool`, `map`, `agent`, `verify`) register more.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/graph/action.hpp"
#include "choir/graph/application.hpp"
#include "choir/graph/expression.hpp"

namespace choir::graph {

/// One action as declared in YAML, handed to the factory of its type.
class action_decl {
 public:
  class locator {
   public:
    virtual ~locator() = default;
    /// The `file:line:column` of `field` (a dotted path below the action), or of the nearest
    /// enclosing node that exists.
    [[nodiscard]] virtual std::string locate(std::string_view field) const = 0;
  };

  action_decl(action_spec spec, value config, const locator& where)
      : spec_(std::move(spec)), config_(std::move(config)), where_(&where) {}

  /// The common fields, already parsed: name, type, reads, writes, inputs, tags, cost_ms,
  /// latency, retry, on_error. `reads`/`writes` are empty when not declared (see `declared_*`).
  [[nodiscard]] const action_spec& spec() const noexcept { return spec_; }
  [[nodiscard]] bool declared_reads() const { return config_.contains("reads"); }
  [[nodiscard]] bool declared_writes() const { return config_.contains("writes"); }
  /// The action's whole mapping as JSON (type-specific fields included).
  [[nodiscard]] const value& config() const noexcept { return config_; }
  /// An `invalid_document` error located at `field` below this action:
  /// `file:line:col: actions.<name>.<field>: <message>`.
  [[nodiscard]] error fail(std::string_view field, std::string_view message) const;

 private:
  action_spec spec_;
  value config_;
  const locator* where_;
};

/// What the expressions of a YAML action see: its inputs first, then the state keys it reads.
class step_scope final : public expr_scope {
 public:
  explicit step_scope(const state_view& view) : view_(view) {}
  [[nodiscard]] value_ref find(std::string_view name) const override;

 private:
  const state_view& view_;
};

using action_factory = std::function<result<std::shared_ptr<action>>(const action_decl&)>;

/// Action types by name. Not thread-safe to modify; safe to read from many threads.
class action_registry {
 public:
  /// Registers `type`; `fields` are the type-specific fields it accepts (any other field not
  /// common to all actions is reported as unknown). Replaces an earlier registration.
  void add(std::string type, std::vector<std::string> fields, action_factory factory);
  [[nodiscard]] bool contains(std::string_view type) const;
  [[nodiscard]] std::vector<std::string> types() const;

  /// A registry with the built-in types `set`, `pass` and `human`.
  [[nodiscard]] static action_registry with_builtins();

 private:
  friend class graph_loader;
  struct entry {
    std::string type;
    std::vector<std::string> fields;
    action_factory factory;
  };
  [[nodiscard]] const entry* find(std::string_view type) const;
  std::vector<entry> entries_;
};

/// A loaded graph document: its metadata and a builder ready to `build()`.
struct graph_document {
  std::string name;
  std::string description;
  application_builder builder;
  /// The kinds of the other documents in the file (e.g. `AgentContract`), in order.
  std::vector<std::string> other_kinds;
};

/// Loads the one `kind: Graph` document in `text` (a YAML stream that may hold other documents,
/// such as an agent's contract). `file` is used only in error messages. The YAML is read by
/// `choir::parse_yaml` with its default limits (4 MiB, 1M nodes counting aliases, depth 256).
[[nodiscard]] result<graph_document> load_graph(std::string_view text, std::string_view file,
                                                const action_registry& registry);

}  // namespace choir::graph
