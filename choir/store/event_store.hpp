#pragma once
/// The event store: the durable, append-only record of every run and every committed step.
/// Its tables and the meaning of each column are documented in docs/event-log.md.
///
/// A run is created with its initial state and the graph it runs (kept by version, with its source
/// so that the run can be resumed without the original file). Each step is appended with its state
/// delta; every `snapshot_interval` steps the full state is stored too, so the state at any step
/// costs at most that many delta applications. `(run_id, sequence_id)` is unique: a step commits
/// exactly once.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
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
  open_failed = 1,         ///< the database could not be opened or created
  not_a_store,             ///< the file or database is something ChoirOS did not create
  newer_schema,            ///< the store was written by a newer ChoirOS; nothing was changed
  corrupt,                 ///< the store fails its integrity checks or holds a malformed record
  run_not_found,           ///< no run has that id
  step_not_found,          ///< the run has no step with that sequence id
  duplicate_step,          ///< a step with that (run_id, sequence_id) is already committed
  duplicate_run,           ///< a run with that id already exists
  io_error,                ///< the database refused a read or write
  run_leased,              ///< another live owner holds the run's lease
  lease_lost,              ///< this owner's lease on the run expired and was taken, or was never held
  effect_outcome_unknown,  ///< an effect that is not idempotent was in flight when its process died
  invalid_argument,        ///< a malformed request (an empty owner, a bad retention policy, …)
  effect_failed,           ///< the effect failed when it ran; its recorded failure is returned again
  conflict,                ///< another writer changed it first (an audit sequence number, a document version)
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
  std::string status;                         ///< `running`, `waiting`, `completed`, `halted`, `failed`
  std::string next_action;                    ///< where the run continues (empty when complete)
  std::optional<std::int64_t> last_sequence;  ///< the last committed step, if any
  bool pinned = false;                        ///< resumes only under `graph_version`, never an upgrade
  std::string tenant;                         ///< who started it: its tenant (empty: started without a kernel)
  std::string user;                           ///< … and the user, whose grants the run acts under
  /// The inputs its first step was started with (a JSON object, as text): kept so that a run
  /// killed before its first step committed resumes with them.
  std::string start_inputs = "{}";
  std::string owner;                  ///< the lease holder (empty: none)
  std::int64_t lease_expires_ms = 0;  ///< the lease is live until then
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;

  /// The sequence id the run's next step follows: its last step, or where it started.
  [[nodiscard]] std::int64_t position() const { return last_sequence.value_or(parent_step.value_or(-1)); }
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

/// A step ready to be written: its JSON columns already serialized (on the caller's thread), and
/// the state after it, serialized only if the store decides a snapshot is due.
struct step_write {
  std::string run_id;
  std::int64_t sequence_id = 0;
  std::string action;
  bool failed = false;
  std::string inputs;
  std::string result;
  std::string delta;
  std::string error;
  int attempts = 1;
  std::string next_action;
  std::string graph_version;
  graph::state after;
};
[[nodiscard]] step_write make_step_write(std::string run_id, const graph::step_record& step, graph::state after,
                                         std::string graph_version);

/// A step checked, and put in the form its store writes, on the thread that made it
/// (`event_store::prepare`): the one thread that commits a batch then does less. Only a store
/// makes one, and it does not change after.
class prepared_step {
 public:
  [[nodiscard]] const step_write& step() const noexcept { return step_; }

 private:
  friend class event_store;
  step_write step_;
  result<void> checked_;  ///< why the store would refuse the step before reading anything
  std::string form_;      ///< the store's own form of the step (empty: none)
};

/// One effect in the journal (docs/event-log.md, "The effect journal"). The intent is written
/// before the effect runs, the outcome after.
struct effect_record {
  std::string key;  ///< the idempotency key: unique in the store
  std::string run_id;
  std::int64_t sequence_id = 0;
  std::string kind;                ///< what the effect is: `tool:fs.write`, `model:openai`, …
  value request;                   ///< what was asked
  std::string status = "pending";  ///< `pending` (intent only), `succeeded`, `failed`
  value outcome;                   ///< the result, or `{code, message}` when failed
  std::int64_t created_ms = 0;
  std::int64_t completed_ms = 0;

  [[nodiscard]] value to_json() const;
};

/// What `begin_effect` found.
struct effect_begin {
  effect_record record;  ///< as stored
  bool fresh = false;    ///< true if this call wrote the intent; false if the key was known
};

/// Which finished (completed or failed) runs `prune` deletes: those older than the age, beyond the
/// newest N of their partition, or — with both — both. Runs that are running, waiting or halted
/// are never pruned.
struct retention_policy {
  std::optional<std::int64_t> older_than_ms;  ///< finished runs last updated longer ago than this
  std::optional<std::size_t> keep_last;       ///< keep only the newest N finished runs (per partition)
  std::optional<std::string> partition;       ///< only this partition (default: every partition)
};
struct prune_report {
  std::size_t runs = 0;
  std::size_t steps = 0;
  std::size_t snapshots = 0;
  std::size_t effects = 0;
};

/// One entry of the kernel's audit chain as stored (docs/event-log.md, "The audit log"). The store
/// keeps entries and never interprets them; the kernel computes and checks the chain.
struct audit_row {
  std::int64_t seq = 0;  ///< 1, 2, 3, … without gaps
  std::string entry;     ///< the canonical entry (JSON)
  std::string mac;       ///< lowercase hex HMAC-SHA-256 over the previous entry's MAC and `entry`
};

/// A stored audit row as `scan_audit` shows it: valid only during the visit.
struct audit_view {
  std::int64_t seq = 0;
  std::string_view entry;
  std::string_view mac;
};

/// A consent request: a gated call waiting for a person's approval (docs/audit.md, "Consent").
struct consent_record {
  std::string id;   ///< short and unique: what a person approves or denies
  std::string key;  ///< the call's identity (unique): the same call asks once, however often its step runs
  std::string tenant;
  std::string user;
  std::string agent;
  std::string run_id;
  std::optional<std::int64_t> step;
  std::string capability;
  std::string argument;
  value arguments;                 ///< already redacted
  std::string status = "pending";  ///< `pending`, `approved`, `denied`, `expired`
  std::string answered_by;         ///< `tenant/user` of whoever answered
  std::string reason;              ///< given with the answer
  std::int64_t created_ms = 0;
  std::int64_t expires_ms = 0;  ///< an unanswered request expires then
  std::int64_t answered_ms = 0;

  [[nodiscard]] value to_json() const;
};

/// Where a page of runs ended: the last run's creation time and id (`list_runs`).
struct run_cursor {
  std::int64_t created_ms = 0;
  std::string run_id;
};

/// Which runs `list_runs` gives: each field that is set must match (an index serves `tenant`, so
/// a tenant's page costs its own runs, not everyone's).
struct run_filter {
  std::string tenant;
  std::string agent;
  std::string status;
  std::string parent_run;
  bool top_level = false;  ///< only runs without a parent run
};

/// A named document the kernel keeps in the store (the policy), with an optimistic version.
struct document_record {
  std::string name;
  std::string body;
  std::int64_t version = 0;  ///< 1 for the first write, +1 for each
  std::int64_t updated_ms = 0;
};

struct store_options {
  /// `synchronous=FULL` (an fsync per commit) instead of the default `NORMAL` (durable against
  /// process crashes; the last commits may be lost to a power failure). SQLite only.
  bool full_sync = false;
  /// For states under 64 KiB, a full state snapshot at least every this many steps of a run.
  std::int64_t snapshot_interval = 100;
  /// This process's identity as a lease owner (default: `host/pid/random`).
  std::string owner;
  /// Fault injection for crash tests: called at named points of a commit (`step.begin`,
  /// `step.inserted` — written but not committed —, `step.snapshot`, `step.committed`,
  /// `effect.intent`, `effect.outcome`). A test makes it kill the process at one of them.
  std::function<void(std::string_view point)> fault;
  /// Tests of migrations only: create a new store at this older schema version (0: the newest).
  std::int64_t create_schema_version = 0;
};

/// The store interface. Implementations are safe to use from one thread at a time.
class event_store {
 public:
  virtual ~event_store() = default;

  /// `sqlite` or `postgresql`.
  [[nodiscard]] virtual std::string_view backend() const = 0;
  /// The owner identity this store writes leases with.
  [[nodiscard]] virtual const std::string& owner() const = 0;

  /// Stores a graph version if it is not stored yet.
  [[nodiscard]] virtual result<void> put_graph(const graph_record& g) = 0;
  [[nodiscard]] virtual result<graph_record> get_graph(std::string_view version) = 0;

  /// Creates a run with the state it starts from (stored as a snapshot at `start_after`, the
  /// sequence id its first step follows: -1 for a new run, the fork point for a fork). The run's
  /// `owner` and lease are taken from `run` (empty: unowned).
  [[nodiscard]] virtual result<void> create_run(const run_record& run, const graph::state& initial,
                                                std::int64_t start_after) = 0;

  /// Commits steps — of one run or of many — in one transaction, each with the run's new position
  /// (and a snapshot when one is due). Returns one result per step: `duplicate_step` if that
  /// sequence id is already committed, `run_not_found`, `run_leased` if another live owner holds
  /// the run, or `invalid_argument` if a JSON column is not one JSON value (`is_json_text`); a
  /// refused step writes nothing and does not affect the others. If a write
  /// fails (the disk, a snapshot), the transaction is rolled back and every step that was not
  /// refused gets that error.
  [[nodiscard]] virtual std::vector<result<void>> append_steps(std::span<const step_write> steps) = 0;
  /// Does ahead, on the caller's thread, what this store can of writing a step (SQLite: checks
  /// it and packs it; by default, nothing). It reads nothing of the store, so any thread may call
  /// it at any time (the group committer's callers do, before queueing).
  [[nodiscard]] virtual prepared_step prepare(step_write step) const;
  /// `append_steps` for prepared steps.
  [[nodiscard]] virtual std::vector<result<void>> append_prepared(std::span<const prepared_step> steps);
  /// One step in its own transaction.
  [[nodiscard]] result<void> append_step(std::string_view run_id, const graph::step_record& step,
                                         const graph::state& after, std::string_view graph_version);

  /// Sets a run's status (`running`, `waiting`, `completed`, `halted`, `failed`). Refused with
  /// `run_leased` if another live owner holds the run.
  [[nodiscard]] virtual result<void> set_status(std::string_view run_id, std::string_view status) = 0;
  /// Moves a run to another stored graph version (a checked upgrade, `choir/store/upgrade.hpp`).
  [[nodiscard]] virtual result<void> set_graph_version(std::string_view run_id, std::string_view version) = 0;

  /// Single activation: takes the run's lease for this store's owner for `ttl_ms` if it is free,
  /// expired, already ours or held by `replacing` (an owner known to be dead: see
  /// `owner_known_dead`); `run_leased` (naming the holder and the expiry) otherwise.
  [[nodiscard]] virtual result<void> acquire_lease(std::string_view run_id, std::int64_t ttl_ms,
                                                   std::string_view replacing = {}) = 0;
  /// Extends our lease; `lease_lost` if it is no longer ours.
  [[nodiscard]] virtual result<void> renew_lease(std::string_view run_id, std::int64_t ttl_ms) = 0;
  /// Gives the lease up (nothing happens if it is not ours).
  [[nodiscard]] virtual result<void> release_lease(std::string_view run_id) = 0;

  [[nodiscard]] virtual result<run_record> get_run(std::string_view run_id) = 0;
  /// Runs that match `filter`, newest first (by `created_ms`, then `run_id`), at most `limit`; with
  /// `before`, only the runs after it in that order (the next page).
  [[nodiscard]] virtual result<std::vector<run_record>> list_runs(std::size_t limit,
                                                                  std::optional<run_cursor> before = std::nullopt,
                                                                  const run_filter& filter = {}) = 0;
  /// Steps of a run with `sequence_id >= from`, in order, at most `limit`.
  [[nodiscard]] virtual result<std::vector<step_entry>> steps(std::string_view run_id, std::int64_t from,
                                                              std::size_t limit) = 0;
  /// The state after step `sequence_id` (or the run's initial state for the sequence id it starts
  /// after): the nearest snapshot at or before it plus the deltas since.
  [[nodiscard]] virtual result<graph::state> state_at(std::string_view run_id, std::int64_t sequence_id) = 0;

  /// The effect journal: writes the intent unless `intent.key` is known, and returns the stored record.
  [[nodiscard]] virtual result<effect_begin> begin_effect(const effect_record& intent) = 0;
  /// Records an effect's outcome (`succeeded` or `failed`).
  [[nodiscard]] virtual result<void> finish_effect(std::string_view key, std::string_view status,
                                                   const value& outcome) = 0;
  [[nodiscard]] virtual result<std::optional<effect_record>> get_effect(std::string_view key) = 0;
  /// A run's effects in the order they began.
  [[nodiscard]] virtual result<std::vector<effect_record>> effects(std::string_view run_id) = 0;

  /// The audit log: appends rows in one transaction. `conflict` (and nothing written) if a row's
  /// `seq` is not the one after the last stored (another writer appended first).
  [[nodiscard]] virtual result<void> append_audit(std::span<const audit_row> rows) = 0;
  /// The last row, if any.
  [[nodiscard]] virtual result<std::optional<audit_row>> last_audit() = 0;
  /// Calls `visit` for each row with `seq >= from`, in order, until it returns false. The views
  /// point into the store's buffers: copy what must outlive the call.
  [[nodiscard]] virtual result<void> scan_audit(std::int64_t from,
                                                const std::function<bool(const audit_view&)>& visit) = 0;
  /// The same backwards: each row with `seq < before` (every row if `before` is 0), newest first.
  [[nodiscard]] virtual result<void> scan_audit_back(std::int64_t before,
                                                     const std::function<bool(const audit_view&)>& visit) = 0;

  /// Consent: stores the request unless one with its `key` exists; returns the stored one.
  [[nodiscard]] virtual result<consent_record> raise_consent(const consent_record& request) = 0;
  /// The request with this id, or (if `id` is not one) with this key.
  [[nodiscard]] virtual result<std::optional<consent_record>> get_consent(std::string_view id_or_key) = 0;
  /// A tenant's requests, newest first; `status` empty: any.
  [[nodiscard]] virtual result<std::vector<consent_record>> list_consents(std::string_view tenant,
                                                                          std::string_view status,
                                                                          std::size_t limit) = 0;
  /// Answers a pending request (`approved`, `denied` or `expired`) and returns it; `conflict` if it
  /// was answered already, `invalid_argument` for an unknown id or status.
  [[nodiscard]] virtual result<consent_record> answer_consent(std::string_view id, std::string_view status,
                                                              std::string_view by, std::string_view reason) = 0;

  /// Documents: the stored document, if any.
  [[nodiscard]] virtual result<std::optional<document_record>> get_document(std::string_view name) = 0;
  /// Writes `body` as the document's next version if its stored version is `expected_version` (0:
  /// it does not exist yet) and returns the new version; `conflict` otherwise.
  [[nodiscard]] virtual result<std::int64_t> put_document(std::string_view name, std::string_view body,
                                                          std::int64_t expected_version) = 0;

  /// Retention: deletes the finished runs the policy selects, with their steps, snapshots and
  /// effects. A fork keeps its own starting snapshot, so pruning its parent never breaks it. The
  /// audit log is never pruned.
  [[nodiscard]] virtual result<prune_report> prune(const retention_policy& policy) = 0;

 protected:
  /// For stores: a prepared step, what checking it found, and the form the store made of it.
  [[nodiscard]] static prepared_step make_prepared(step_write step, result<void> checked, std::string form);
  [[nodiscard]] static const result<void>& checked(const prepared_step& p) noexcept { return p.checked_; }
  [[nodiscard]] static const std::string& form(const prepared_step& p) noexcept { return p.form_; }
};

/// Opens (creating if absent, with its parent folder) a SQLite store at `path`. A file that is not
/// a ChoirOS store (`not_a_store`), is from a newer version (`newer_schema`) or fails SQLite's
/// quick check (`corrupt`) is refused and left unchanged. An older schema is migrated forward.
[[nodiscard]] result<std::unique_ptr<event_store>> open_sqlite_store(const std::string& path,
                                                                     const store_options& options = {},
                                                                     const clock& time = system_clock());
/// Connects to a PostgreSQL store (`postgresql://…` or a libpq `key=value` string), creating or
/// migrating its tables (in the connection's schema) as `open_sqlite_store` does.
[[nodiscard]] result<std::unique_ptr<event_store>> open_pg_store(const std::string& conninfo,
                                                                 const store_options& options = {},
                                                                 const clock& time = system_clock());
/// `postgresql://…`, `postgres://…` or a libpq `key=value` string (starting `host=`, `dbname=`,
/// `service=` or `user=`) → PostgreSQL; anything else is a SQLite file path.
[[nodiscard]] result<std::unique_ptr<event_store>> open_store(const std::string& where,
                                                              const store_options& options = {},
                                                              const clock& time = system_clock());

/// This process's default owner identity: `host/pid/random`.
[[nodiscard]] std::string default_owner();
/// Whether `owner` (as `default_owner` makes them) is a process of this host that no longer runs,
/// so that its lease may be taken before it expires. False whenever in doubt.
[[nodiscard]] bool owner_known_dead(const std::string& owner);

/// Keeps a run's lease while its steps commit: renews it every third of its duration, so a run
/// driven step after step keeps its single owner (`lease_lost` / `run_leased` stop the run
/// otherwise). What both persisters share.
class lease_keeper {
 public:
  /// `ttl_ms` 0: no lease is kept.
  lease_keeper(std::string run_id, std::int64_t ttl_ms)
      : run_id_(std::move(run_id)), ttl_ms_(ttl_ms), renewed_(std::chrono::steady_clock::now()) {}
  /// Renews the lease through `store` if a third of it has passed since the last renewal.
  [[nodiscard]] result<void> renew_if_due(event_store& store);

 private:
  std::string run_id_;
  std::int64_t ttl_ms_;
  std::chrono::steady_clock::time_point renewed_;
};

/// Persists an application's steps into a run of the store (graph's persister interface). With a
/// lease duration, it also keeps the run's lease (`lease_keeper`).
class run_persister final : public graph::persister {
 public:
  run_persister(event_store& store, std::string run_id, std::string graph_version, std::int64_t lease_ttl_ms = 0)
      : store_(&store),
        run_id_(run_id),
        graph_version_(std::move(graph_version)),
        lease_(std::move(run_id), lease_ttl_ms) {}
  [[nodiscard]] result<void> save_step(const graph::run_identity& who, const graph::step_record& record,
                                       const graph::state& after) override;

 private:
  event_store* store_;
  std::string run_id_;
  std::string graph_version_;
  lease_keeper lease_;
};

}  // namespace choir::store

template <>
struct std::is_error_code_enum<choir::store::store_errc> : std::true_type {};
