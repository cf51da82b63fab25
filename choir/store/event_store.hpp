#pragma once
/// The event store: the durable, append-only record of every run and every committed step.
/// Its tables and the meaning of each column are documented in docs/event-log.md.
///
/// A run is created with its initial state and the graph it runs (kept by version, with its source
/// so that the run can be resumed without the original file). Each step is appended with its state
/// delta; every `snapshot_interval` steps the full state is stored too, so the state at any step
/// costs at most that many delta applications. `(run_id, sequence_id)` is unique: a step commits
/// exactly once.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "choir/core/clock.hpp"
#include "choir/core/result.hpp"
#include "choir/core/value.hpp"
#include "choir/graph/application.hpp"
#include "choir/graph/state.hpp"

namespace choir::store {

enum class store_errc {
  open_failed = 1,  ///< the database file could not be opened or created
  not_a_store,      ///< the file is a database (or something else) that ChoirOS did not create
  newer_schema,     ///< the store was written by a newer ChoirOS; nothing was changed
  corrupt,          ///< the store fails its integrity checks or holds a malformed record
  run_not_found,    ///< no run has that id
  step_not_found,   ///< the run has no step with that sequence id
  duplicate_step,   ///< a step with that (run_id, sequence_id) is already committed
  duplicate_run,    ///< a run with that id already exists
  io_error,         ///< the database refused a read or write
};
[[nodiscard]] const std::error_category& store_category() noexcept;
[[nodiscard]] std::error_code make_error_code(store_errc e) noexcept;

/// A graph version as stored: its fingerprint, name and YAML source.
struct graph_record {
  std::string version;
  std::string name;
  std::string source;
};

/// One run as listed.
struct run_record {
  std::string run_id;
  std::string partition_key;
  std::string agent;  ///< the graph's name
  std::string graph_version;
  std::string parent_run;                     ///< for forks: the run forked from (empty otherwise)
  std::optional<std::int64_t> parent_step;    ///< for forks: the step forked at
  std::string status;                         ///< `running`, `completed`, `halted`, `failed`
  std::string next_action;                    ///< where the run continues (empty when complete)
  std::optional<std::int64_t> last_sequence;  ///< the last committed step, if any
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;

  [[nodiscard]] value to_json() const;
};

/// One committed step as stored.
struct step_entry {
  std::int64_t sequence_id = 0;
  std::string action;
  std::string status;  ///< `completed` or `failed`
  value inputs;
  value result;
  value delta;  ///< the state delta in its JSON form (docs/graph-yaml.md, "State deltas")
  value error;  ///< `{code, message}` for a failed step, else null
  int attempts = 1;
  std::string next_action;
  std::string graph_version;
  std::int64_t committed_ms = 0;

  [[nodiscard]] value to_json() const;
};

struct store_options {
  /// `synchronous=FULL` (an fsync per commit) instead of the default `NORMAL` (durable against
  /// process crashes; the last commits may be lost to a power failure).
  bool full_sync = false;
  /// For states under 64 KiB, a full state snapshot at least every this many steps of a run.
  std::int64_t snapshot_interval = 100;
  /// Fault injection for crash tests: called at named points of a commit (`step.begin`,
  /// `step.inserted` — written but not committed —, `step.snapshot`, `step.committed`). A test
  /// makes it kill the process at one of them. Null in production.
  std::function<void(std::string_view point)> fault;
};

/// The store interface. Implementations are safe to use from one thread at a time.
class event_store {
 public:
  virtual ~event_store() = default;

  /// Stores a graph version if it is not stored yet.
  [[nodiscard]] virtual result<void> put_graph(const graph_record& g) = 0;
  [[nodiscard]] virtual result<graph_record> get_graph(std::string_view version) = 0;

  /// Creates a run with the state it starts from (stored as a snapshot at `start_after`, the
  /// sequence id its first step follows: -1 for a new run, the fork point for a fork).
  [[nodiscard]] virtual result<void> create_run(const run_record& run, const graph::state& initial,
                                                std::int64_t start_after) = 0;
  /// Commits one step and the run's new position in one transaction. Fails with
  /// `duplicate_step` if that sequence id is already committed (nothing is written then).
  [[nodiscard]] virtual result<void> append_step(std::string_view run_id, const graph::step_record& step,
                                                 const graph::state& after, std::string_view graph_version) = 0;
  /// Sets a run's status (`completed`, `halted`, `failed`, `running`).
  [[nodiscard]] virtual result<void> set_status(std::string_view run_id, std::string_view status) = 0;

  [[nodiscard]] virtual result<run_record> get_run(std::string_view run_id) = 0;
  /// Runs, newest first, at most `limit`.
  [[nodiscard]] virtual result<std::vector<run_record>> list_runs(std::size_t limit) = 0;
  /// Steps of a run with `sequence_id >= from`, in order, at most `limit`.
  [[nodiscard]] virtual result<std::vector<step_entry>> steps(std::string_view run_id, std::int64_t from,
                                                              std::size_t limit) = 0;
  /// The state after step `sequence_id` (or the run's initial state for the sequence id it starts
  /// after): the nearest snapshot at or before it plus the deltas since.
  [[nodiscard]] virtual result<graph::state> state_at(std::string_view run_id, std::int64_t sequence_id) = 0;
};

/// Opens (creating if absent, with its parent folder) a SQLite store at `path`. A file that is not
/// a ChoirOS store (`not_a_store`), is from a newer version (`newer_schema`) or fails SQLite's
/// quick check (`corrupt`) is refused and left unchanged.
[[nodiscard]] result<std::unique_ptr<event_store>> open_sqlite_store(const std::string& path,
                                                                     const store_options& options = {},
                                                                     const clock& time = system_clock());

/// Persists an application's steps into a run of the store (graph's persister interface).
class run_persister final : public graph::persister {
 public:
  run_persister(event_store& store, std::string run_id, std::string graph_version)
      : store_(&store), run_id_(std::move(run_id)), graph_version_(std::move(graph_version)) {}
  [[nodiscard]] result<void> save_step(const graph::run_identity& who, const graph::step_record& record,
                                       const graph::state& after) override;

 private:
  event_store* store_;
  std::string run_id_;
  std::string graph_version_;
};

}  // namespace choir::store

template <>
struct std::is_error_code_enum<choir::store::store_errc> : std::true_type {};
