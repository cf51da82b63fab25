// The SQLite event store: the embedded default. Schema and formats: docs/event-log.md.
#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "choir/core/json_text.hpp"
#include "choir/store/event_store.hpp"
#include "choir/store/store_detail.hpp"

namespace choir::store {
namespace {

/// Written as SQLite's application_id so that other tools (and we) can tell the file apart.
constexpr std::int32_t application_id = 0x43484F52;  // "CHOR"

/// The schema, as the migrations that build it: `migrations[i]` takes a store from version i to
/// i + 1 (version 0 is an empty file). A new store runs them all; an older store runs the rest.
/// Never edit a released migration: add one.
constexpr const char* migrations[] = {
    // 0 -> 1: graphs, runs, steps, snapshots.
    R"sql(
CREATE TABLE choir_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO choir_meta VALUES ('format', 'choir-event-store');
CREATE TABLE graphs (
  version TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  source TEXT NOT NULL,
  created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  partition_key TEXT NOT NULL DEFAULT '',
  agent TEXT NOT NULL,
  graph_version TEXT NOT NULL REFERENCES graphs(version),
  parent_run TEXT,
  parent_step INTEGER,
  status TEXT NOT NULL,
  start_action TEXT NOT NULL DEFAULT '',
  start_after INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX runs_by_created ON runs(created_ms DESC);
CREATE TABLE steps (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  sequence_id INTEGER NOT NULL,
  action TEXT NOT NULL,
  status TEXT NOT NULL,
  inputs TEXT NOT NULL,
  result TEXT NOT NULL,
  delta TEXT NOT NULL,
  error TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  next_action TEXT NOT NULL,
  graph_version TEXT NOT NULL,
  committed_ms INTEGER NOT NULL,
  PRIMARY KEY (run_id, sequence_id)
) WITHOUT ROWID;
CREATE TABLE snapshots (
  run_id TEXT NOT NULL,
  sequence_id INTEGER NOT NULL,
  state TEXT NOT NULL,
  PRIMARY KEY (run_id, sequence_id)
) WITHOUT ROWID;
)sql",
    // 1 -> 2: owner leases, version pinning, the effect journal, retention by partition, and the
    // steps tail: batches of several steps land in `steps_tail` (rows in commit order, a small
    // index) and move into `steps` a thousand at a time, sorted by run (see `append_steps`).
    R"sql(
CREATE TABLE steps_tail (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  sequence_id INTEGER NOT NULL,
  action TEXT NOT NULL,
  status TEXT NOT NULL,
  inputs TEXT NOT NULL,
  result TEXT NOT NULL,
  delta TEXT NOT NULL,
  error TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  next_action TEXT NOT NULL,
  graph_version TEXT NOT NULL,
  committed_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX steps_tail_by_run ON steps_tail(run_id, sequence_id);
ALTER TABLE runs ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN lease_expires_ms INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_by_partition ON runs(partition_key, updated_ms);
CREATE TABLE effects (
  key TEXT PRIMARY KEY,
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  sequence_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  request TEXT NOT NULL,
  status TEXT NOT NULL,
  outcome TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  completed_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX effects_by_run ON effects(run_id, created_ms);
)sql",
    // 2 -> 3: who started a run (tenant and user), the kernel's audit log (append-only: its rows
    // cannot be changed or deleted through SQL, short of dropping the triggers) and documents.
    R"sql(
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY,
  entry TEXT NOT NULL,
  mac TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE documents (
  name TEXT PRIMARY KEY,
  body TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
    // 3 -> 4: consent requests.
    R"sql(
CREATE TABLE consents (
  id TEXT PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  tenant TEXT NOT NULL,
  user_name TEXT NOT NULL,
  agent TEXT NOT NULL,
  run_id TEXT NOT NULL,
  step INTEGER,
  capability TEXT NOT NULL,
  argument TEXT NOT NULL,
  arguments TEXT NOT NULL,
  status TEXT NOT NULL,
  answered_by TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  answered_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX consents_by_tenant ON consents(tenant, created_ms DESC);
)sql",
    // 4 -> 5: the inputs a run's first step was started with; the step log and the step packs
    // replace the steps tail. A group commit writes one
    // `step_log` row holding every step of its transaction (docs/event-log.md, "The step log");
    // a few thousand steps at a time, the log moves to `step_packs`, one row per run.
    R"sql(
CREATE TABLE IF NOT EXISTS steps_tail (run_id, sequence_id, action, status, inputs, result, delta, error, attempts,
  next_action, graph_version, committed_ms);
INSERT INTO steps SELECT * FROM steps_tail WHERE true ON CONFLICT DO NOTHING;
ALTER TABLE runs ADD COLUMN start_inputs TEXT NOT NULL DEFAULT '{}';
DROP TABLE steps_tail;
CREATE TABLE step_log (
  id INTEGER PRIMARY KEY,
  steps TEXT NOT NULL
);
CREATE TABLE step_packs (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  count INTEGER NOT NULL,
  delta_bytes INTEGER NOT NULL,
  next_action TEXT NOT NULL,
  committed_ms INTEGER NOT NULL,
  steps TEXT NOT NULL,
  UNIQUE (run_id, first_seq)
);
)sql",
    // 5 -> 6: a tenant's runs, newest first, without reading everyone's (`list_runs`).
    "CREATE INDEX runs_by_tenant ON runs(tenant, created_ms, run_id)",
    // 6 -> 7: the step log's rows become slots written over in place, batch after batch
    // (docs/event-log.md, "The step log"): `batch` numbers what a row holds, `slot` marks the rows
    // kept at one size for that, and `step_log_head` says which batches moved to the packs. The
    // columns read to find a batch come before its steps, inside the row's first page.
    R"sql(
CREATE TABLE step_log_slots (
  id INTEGER PRIMARY KEY,
  batch INTEGER NOT NULL,
  slot INTEGER NOT NULL,
  steps TEXT NOT NULL
);
INSERT INTO step_log_slots(id, batch, slot, steps) SELECT id, id, 0, steps FROM step_log WHERE steps <> '[]';
DROP TABLE step_log;
ALTER TABLE step_log_slots RENAME TO step_log;
CREATE TABLE step_log_head (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  moved_through INTEGER NOT NULL
);
INSERT INTO step_log_head(id, moved_through) VALUES (1, 0);
)sql",
};
/// The schema version this code writes. Opening a store with a higher version is refused.
constexpr std::int64_t schema_version = std::size(migrations);

error sqlite_error(store_errc code, sqlite3* db, const std::string& what) {
  return make_error(code, what + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

/// A prepared statement, reset after each use.
class statement {
 public:
  statement(sqlite3* db, const std::string& sql) {
    if (sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr) != SQLITE_OK) {
      stmt_ = nullptr;
    }
  }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  ~statement() { sqlite3_finalize(stmt_); }

  [[nodiscard]] bool valid() const { return stmt_ != nullptr; }
  statement& bind(int i, std::string_view text) {
    if (stmt_ == nullptr) return *this;
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  /// Binds text that outlives the statement's next step (no copy).
  statement& bind_static(int i, std::string_view text) {
    if (stmt_ == nullptr) return *this;
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    return *this;
  }
  statement& bind(int i, std::int64_t v) {
    if (stmt_ == nullptr) return *this;
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  statement& bind_null(int i) {
    if (stmt_ == nullptr) return *this;
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  /// SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return stmt_ != nullptr ? sqlite3_step(stmt_) : SQLITE_MISUSE; }
  /// Makes a cached statement ready for its next use.
  void reset() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  [[nodiscard]] std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p != nullptr ? std::string(reinterpret_cast<const char*>(p),
                                      static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
                        : std::string();
  }
  [[nodiscard]] std::string_view view(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p != nullptr ? std::string_view(reinterpret_cast<const char*>(p),
                                           static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
                        : std::string_view();
  }
  [[nodiscard]] std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  [[nodiscard]] bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

/// A cached statement in use: reset (ending any read it holds) when the scope ends.
class statement_use {
 public:
  explicit statement_use(statement& s) : s_(&s) {}
  statement_use(const statement_use&) = delete;
  statement_use& operator=(const statement_use&) = delete;
  ~statement_use() { s_->reset(); }
  statement& operator*() const { return *s_; }
  template <class T>
  statement& bind(int i, T&& v) {
    return s_->bind(i, std::forward<T>(v));
  }
  statement& bind_null(int i) { return s_->bind_null(i); }
  statement& bind_static(int i, std::string_view text) { return s_->bind_static(i, text); }
  int step() { return s_->step(); }
  void reset() { s_->reset(); }
  [[nodiscard]] bool valid() const { return s_->valid(); }
  [[nodiscard]] std::string text(int col) const { return s_->text(col); }
  [[nodiscard]] std::string_view view(int col) const { return s_->view(col); }
  [[nodiscard]] std::int64_t integer(int col) const { return s_->integer(col); }
  [[nodiscard]] bool is_null(int col) const { return s_->is_null(col); }

 private:
  statement* s_;
};

/// One step as the step log and the step packs hold it (docs/event-log.md, "The step log"): the
/// JSON array `[run_id, sequence_id, action, status, inputs, result, delta, error, attempts,
/// next_action, graph_version, committed_ms]`, with what is looked up without parsing it.
struct packed_step {
  std::string run_id;
  std::int64_t sequence_id = 0;
  std::string next_action;
  std::int64_t committed_ms = 0;
  std::int64_t delta_bytes = 0;
  std::string text;  // the JSON array
};

/// A step to write, packed up to its commit time (the last element, known only when it commits);
/// its JSON columns are embedded as they are (checked valid by the caller).
std::string pack_prefix(const step_write& w) {
  std::string out;
  out.reserve(96 + w.run_id.size() + w.action.size() + w.inputs.size() + w.result.size() + w.delta.size() +
              w.error.size() + w.next_action.size() + w.graph_version.size());
  out += '[';
  append_json_string(out, w.run_id);
  out += ',';
  out += std::to_string(w.sequence_id);
  out += ',';
  append_json_string(out, w.action);
  out += w.failed ? ",\"failed\"" : ",\"completed\"";
  for (const std::string* json : {&w.inputs, &w.result, &w.delta, &w.error}) {
    out += ',';
    out += *json;
  }
  out += ',';
  out += std::to_string(w.attempts);
  out += ',';
  append_json_string(out, w.next_action);
  out += ',';
  append_json_string(out, w.graph_version);
  out += ',';
  return out;
}

/// The packed step: its prefix (`pack_prefix`) and its commit time.
packed_step finish_pack(const step_write& w, std::string prefix, std::int64_t now) {
  char digits[24];
  const auto written = std::to_chars(std::begin(digits), std::end(digits), now);
  prefix.append(digits, written.ptr);
  prefix += ']';
  return {w.run_id, w.sequence_id, w.next_action, now, static_cast<std::int64_t>(w.delta.size()), std::move(prefix)};
}

/// Parses a JSON array of packed steps (a `step_log` row, a pack); `corrupt`, naming `where`, if it
/// is not what `pack_step` writes.
result<std::vector<value>> parse_packed(const std::string& text, const std::string& where) {
  CHOIR_TRY(value all, detail::parse_column(text, where));
  if (!all.is_array()) return make_error(store_errc::corrupt, where + " is not an array of steps");
  std::vector<value> out;
  out.reserve(all.size());
  for (value& v : all) {
    const bool shaped = v.is_array() && v.size() == 12 && v[0].is_string() && v[1].is_number_integer() &&
                        v[2].is_string() && v[3].is_string() && v[8].is_number_integer() && v[9].is_string() &&
                        v[10].is_string() && v[11].is_number_integer();
    if (!shaped) return make_error(store_errc::corrupt, where + " holds a malformed step");
    out.push_back(std::move(v));
  }
  return out;
}

/// A parsed packed step as readers see it.
step_entry entry_of(value& v) {
  step_entry e;
  e.sequence_id = v[1].get<std::int64_t>();
  e.action = v[2].get<std::string>();
  e.status = v[3].get<std::string>();
  e.inputs = std::move(v[4]);
  e.result = std::move(v[5]);
  e.delta = std::move(v[6]);
  e.error = std::move(v[7]);
  e.attempts = static_cast<int>(v[8].get<std::int64_t>());
  e.next_action = v[9].get<std::string>();
  e.graph_version = v[10].get<std::string>();
  e.committed_ms = v[11].get<std::int64_t>();
  return e;
}

class sqlite_store final : public event_store {
 public:
  sqlite_store(sqlite3* db, store_options options, const clock& time)
      : db_(db), options_(std::move(options)), clock_(&time) {
    if (options_.owner.empty()) options_.owner = default_owner();
  }
  ~sqlite_store() override {
    cached_.clear();  // statements are finalized before the connection closes
    sqlite3_close_v2(db_);
  }

  std::string_view backend() const override { return "sqlite"; }
  const std::string& owner() const override { return options_.owner; }

  /// Sizes the step log's slots for the file's pages: SQLite keeps the first `min_local` bytes
  /// of a large row on its leaf page and the rest on overflow pages of `usable - 4` bytes each, so
  /// a row of `min_local` plus two overflow pages' bytes fills them exactly.
  void size_slots(std::int64_t page_size) {
    if (page_size < 512) return;
    const auto usable = static_cast<std::size_t>(page_size);
    const std::size_t min_local = (usable - 12) * 32 / 255 - 23;
    slot_payload_ = min_local + 2 * (usable - 4);
  }

  result<void> exec(const char* sql, const std::string& what) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message != nullptr ? message : "unknown error";
      sqlite3_free(message);
      return make_error(store_errc::io_error, what + ": " + text);
    }
    return {};
  }

  result<void> put_graph(const graph_record& g) override {
    auto s = cached("INSERT OR IGNORE INTO graphs(version, name, source, created_ms) VALUES (?, ?, ?, ?)");
    s.bind(1, g.version).bind(2, g.name).bind(3, g.source).bind(4, clock_->unix_ms());
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "storing graph " + g.version);
    return {};
  }

  result<graph_record> get_graph(std::string_view version) override {
    auto s = cached("SELECT version, name, source FROM graphs WHERE version = ?");
    s.bind(1, version);
    const int rc = s.step();
    if (rc == SQLITE_DONE) {
      return make_error(store_errc::corrupt, "graph version " + std::string(version) + " is not stored");
    }
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading graph");
    return graph_record{s.text(0), s.text(1), s.text(2)};
  }

  result<void> create_run(const run_record& run, const graph::state& initial, std::int64_t start_after) override {
    CHOIR_CHECK(exec("BEGIN IMMEDIATE", "creating run"));
    auto done = [&]() -> result<void> {
      auto s = cached(
          "INSERT INTO runs(run_id, partition_key, agent, graph_version, parent_run, parent_step, status, "
          "start_action, start_after, created_ms, updated_ms, pinned, owner, lease_expires_ms, tenant, user_name, "
          "start_inputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      const std::int64_t now = clock_->unix_ms();
      s.bind(1, run.run_id).bind(2, run.partition_key).bind(3, run.agent).bind(4, run.graph_version);
      if (run.parent_run.empty()) {
        s.bind_null(5);
      } else {
        s.bind(5, run.parent_run);
      }
      if (run.parent_step) {
        s.bind(6, *run.parent_step);
      } else {
        s.bind_null(6);
      }
      s.bind(7, run.status).bind(8, run.next_action).bind(9, start_after).bind(10, now).bind(11, now);
      s.bind(12, static_cast<std::int64_t>(run.pinned ? 1 : 0)).bind(13, run.owner).bind(14, run.lease_expires_ms);
      s.bind(15, run.tenant).bind(16, run.user).bind(17, run.start_inputs);
      const int rc = s.step();
      const int extended = sqlite3_extended_errcode(db_);
      if (extended == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return make_error(store_errc::invalid_argument, "graph version " + run.graph_version + " is not stored");
      }
      if (rc == SQLITE_CONSTRAINT) {
        return make_error(store_errc::duplicate_run, "run " + run.run_id + " already exists");
      }
      if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "creating run " + run.run_id);
      CHOIR_CHECK(write_snapshot(run.run_id, start_after, initial));
      if (!run.owner.empty() && run.owner == options_.owner) held_[run.run_id] = run.lease_expires_ms;
      return {};
    }();
    return finish_transaction(std::move(done));
  }

  prepared_step prepare(step_write step) const override {
    auto checked = detail::check_step_columns(step);
    std::string prefix = checked.ok() ? pack_prefix(step) : std::string();
    return make_prepared(std::move(step), std::move(checked), std::move(prefix));
  }

  std::vector<result<void>> append_steps(std::span<const step_write> batch) override {
    std::vector<batch_item> items;
    items.reserve(batch.size());
    for (const step_write& w : batch) items.push_back({&w, nullptr, nullptr});
    return append_items(items);
  }

  std::vector<result<void>> append_prepared(std::span<const prepared_step> batch) override {
    std::vector<batch_item> items;
    items.reserve(batch.size());
    for (const prepared_step& p : batch) {
      items.push_back({&p.step(), &checked(p), form(p).empty() ? nullptr : &form(p)});
    }
    return append_items(items);
  }

  /// A step to append, and what `prepare` did of it already (if it did).
  struct batch_item {
    const step_write* step;
    const result<void>* checked;  ///< null: not checked yet
    const std::string* prefix;    ///< the packed step up to its commit time (null: not packed yet)
  };

  std::vector<result<void>> append_items(std::span<const batch_item> batch) {
    std::vector<result<void>> out;
    out.reserve(batch.size());
    fault("step.begin");
    if (auto began = exec_cached("BEGIN IMMEDIATE", "committing steps"); !began.ok()) {
      out.assign(batch.size(), began);
      return out;
    }
    const std::int64_t now = clock_->unix_ms();
    std::vector<packed_step> logged;  // the batch's steps bound for the log
    // A step committed alone goes straight to `steps`, clustered by run. The steps of a batch go
    // to the step log as one row; when the log has grown, it moves to `step_packs`, one row per
    // run holding its steps: a transaction of many runs' steps then writes a few pages instead of
    // one or more per run, and the move writes a row per run, not per step.
    const bool to_log = batch.size() > 1;
    bool merged = false;
    result<void> failure = sync_log();  // a failed write (not a refused step) fails the whole transaction
    if (failure.ok()) {
      for (const batch_item& item : batch) {
        out.push_back(insert_step(item, now, to_log ? &logged : nullptr));
        if (!out.back().ok() && !refusal(out.back().err())) {
          failure = out.back();
          break;
        }
      }
    }
    if (failure.ok() && !logged.empty()) {
      std::size_t bytes = 0;
      for (const auto& l : logged) bytes += l.text.size();
      merged = log_.size() + logged.size() >= log_merge_steps || log_bytes_ + bytes >= log_merge_bytes ||
               log_batches_ + 1 >= log_merge_batches;
      failure = merged ? move_log_to_packs(logged) : write_log_row(logged);
    }
    if (failure.ok() && std::any_of(out.begin(), out.end(), [](const auto& r) { return r.ok(); })) {
      fault("step.inserted");
    }
    result<void> committed = finish_transaction(std::move(failure));
    if (!committed.ok()) {
      out.resize(batch.size(), committed);
      for (auto& r : out) {
        if (r.ok() || !refusal(r.err())) r = committed;
      }
      return out;
    }
    // Only now, committed, does this connection's view of the log change.
    if (merged) {
      log_moved();
    } else {
      for (auto& l : logged) remember_logged(std::move(l));
    }
    fault("step.committed");
    return out;
  }

  result<void> set_status(std::string_view run_id, std::string_view status) override {
    const std::int64_t now = clock_->unix_ms();
    auto s = cached(
        "UPDATE runs SET status = ?, updated_ms = ? WHERE run_id = ? AND "
        "(owner = '' OR owner = ? OR lease_expires_ms <= ?)");
    s.bind(1, status).bind(2, now).bind(3, run_id).bind(4, options_.owner).bind(5, now);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "updating run status");
    if (sqlite3_changes(db_) != 1) return detail::why_not_written(*this, run_id, now);
    return {};
  }

  result<void> set_graph_version(std::string_view run_id, std::string_view version) override {
    const std::int64_t now = clock_->unix_ms();
    auto s = cached(
        "UPDATE runs SET graph_version = ?, updated_ms = ? WHERE run_id = ? AND "
        "(owner = '' OR owner = ? OR lease_expires_ms <= ?)");
    s.bind(1, version).bind(2, now).bind(3, run_id).bind(4, options_.owner).bind(5, now);
    const int rc = s.step();
    if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return make_error(store_errc::invalid_argument, "graph version " + std::string(version) + " is not stored");
    }
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "updating the run's graph version");
    if (sqlite3_changes(db_) != 1) return detail::why_not_written(*this, run_id, now);
    return {};
  }

  result<void> acquire_lease(std::string_view run_id, std::int64_t ttl_ms, std::string_view replacing) override {
    if (ttl_ms <= 0) return make_error(store_errc::invalid_argument, "a lease needs a positive duration");
    const std::int64_t now = clock_->unix_ms();
    auto s = cached(
        "UPDATE runs SET owner = ?, lease_expires_ms = ? WHERE run_id = ? AND "
        "(owner = '' OR owner = ? OR lease_expires_ms <= ? OR owner = ?)");
    s.bind(1, options_.owner).bind(2, now + ttl_ms).bind(3, run_id).bind(4, options_.owner).bind(5, now);
    s.bind(6, replacing.empty() ? std::string_view(options_.owner) : replacing);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "taking a lease");
    if (sqlite3_changes(db_) != 1) return detail::why_not_written(*this, run_id, now);
    held_[std::string(run_id)] = now + ttl_ms;
    return {};
  }

  result<void> renew_lease(std::string_view run_id, std::int64_t ttl_ms) override {
    if (ttl_ms <= 0) return make_error(store_errc::invalid_argument, "a lease needs a positive duration");
    const std::int64_t now = clock_->unix_ms();
    auto s = cached("UPDATE runs SET lease_expires_ms = ? WHERE run_id = ? AND owner = ?");
    s.bind(1, now + ttl_ms).bind(2, run_id).bind(3, options_.owner);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "renewing a lease");
    if (sqlite3_changes(db_) == 1) {
      held_[std::string(run_id)] = now + ttl_ms;
      return {};
    }
    held_.erase(std::string(run_id));
    CHOIR_CHECK(get_run(run_id));
    return make_error(store_errc::lease_lost,
                      "the lease on run " + std::string(run_id) + " is no longer " + options_.owner + "'s");
  }

  result<void> release_lease(std::string_view run_id) override {
    held_.erase(std::string(run_id));
    auto s = cached("UPDATE runs SET owner = '', lease_expires_ms = 0 WHERE run_id = ? AND owner = ?");
    s.bind(1, run_id).bind(2, options_.owner);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "releasing a lease");
    return {};
  }

  result<run_record> get_run(std::string_view run_id) override {
    const read_snapshot one_read(*this);
    auto s = cached(run_select("WHERE r.run_id = ?"));
    s.bind(1, run_id);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return make_error(store_errc::run_not_found, "no run " + std::string(run_id));
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading run");
    run_record r = read_run(*s);
    s.reset();
    return with_position(std::move(r));
  }

  result<std::vector<run_record>> list_runs(std::size_t limit, std::optional<run_cursor> before,
                                            const run_filter& filter) override {
    const read_snapshot one_read(*this);
    // Only the conditions that are set, so that the planner sees them (and the tenant's index).
    std::string where;
    const auto add = [&](const char* condition) {
      where += (where.empty() ? "WHERE " : " AND ") + std::string(condition);
    };
    if (!filter.tenant.empty()) add("r.tenant = ?");
    if (!filter.agent.empty()) add("r.agent = ?");
    if (!filter.status.empty()) add("r.status = ?");
    if (!filter.parent_run.empty()) add("r.parent_run = ?");
    if (filter.top_level) add("r.parent_run IS NULL");
    if (before) add("(r.created_ms < ? OR (r.created_ms = ? AND r.run_id < ?))");
    auto s = cached(run_select((where + " ORDER BY r.created_ms DESC, r.run_id DESC LIMIT ?").c_str()));
    int at = 1;
    for (const std::string* v : {&filter.tenant, &filter.agent, &filter.status, &filter.parent_run}) {
      if (!v->empty()) s.bind(at++, *v);
    }
    if (before) {
      s.bind(at++, before->created_ms);
      s.bind(at++, before->created_ms);
      s.bind(at++, before->run_id);
    }
    s.bind(at, static_cast<std::int64_t>(limit));
    std::vector<run_record> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_run(*s));
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "listing runs");
    s.reset();
    for (auto& r : out) {
      CHOIR_TRY(r, with_position(std::move(r)));
    }
    return out;
  }

  result<std::vector<step_entry>> steps(std::string_view run_id, std::int64_t from, std::size_t limit) override {
    const read_snapshot one_read(*this);
    return gather(run_id, from, std::numeric_limits<std::int64_t>::max(), limit);
  }

  result<graph::state> state_at(std::string_view run_id, std::int64_t sequence_id) override {
    const read_snapshot one_read(*this);
    auto snap = cached(
        "SELECT sequence_id, state FROM snapshots WHERE run_id = ? AND sequence_id <= ? "
        "ORDER BY sequence_id DESC LIMIT 1");
    snap.bind(1, run_id).bind(2, sequence_id);
    const int rc = snap.step();
    if (rc == SQLITE_DONE) {
      CHOIR_CHECK(get_run(run_id));  // run_not_found if there is no such run
      return make_error(store_errc::step_not_found,
                        "run " + std::string(run_id) + " has no state at step " + std::to_string(sequence_id));
    }
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading a snapshot");
    const std::int64_t base = snap.integer(0);
    const std::string snapshot = snap.text(1);
    snap.reset();
    CHOIR_TRY(auto after, deltas_after(run_id, base, sequence_id));
    std::size_t next = 0;
    return detail::rebuild_state(run_id, base, snapshot, sequence_id,
                                 [&](std::int64_t& seq, std::string& text) -> result<bool> {
                                   if (next == after.size()) return false;
                                   seq = after[next].first;
                                   text = std::move(after[next].second);
                                   ++next;
                                   return true;
                                 });
  }

  result<effect_begin> begin_effect(const effect_record& intent) override {
    if (intent.key.empty()) return make_error(store_errc::invalid_argument, "an effect needs an idempotency key");
    // Fenced like a step: only while no other live owner holds the run.
    const std::int64_t now = clock_->unix_ms();
    auto s = cached(
        "INSERT INTO effects(key, run_id, sequence_id, kind, request, status, outcome, created_ms) "
        "SELECT ?1, ?2, ?3, ?4, ?5, 'pending', 'null', ?6 WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?2 AND "
        "(owner = '' OR owner = ?7 OR lease_expires_ms <= ?6)) ON CONFLICT(key) DO NOTHING");
    s.bind(1, intent.key).bind(2, intent.run_id).bind(3, intent.sequence_id).bind(4, intent.kind);
    s.bind(5, dump_json(intent.request)).bind(6, now).bind(7, options_.owner);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "journaling an effect's intent");
    const bool fresh = sqlite3_changes(db_) == 1;
    s.reset();
    if (fresh) fault("effect.intent");
    CHOIR_TRY(auto stored, get_effect(intent.key));
    if (!stored) return detail::why_not_written(*this, intent.run_id, now);
    if (!fresh) CHOIR_CHECK(detail::not_leased_by_another(*this, stored->run_id, now));
    return effect_begin{std::move(*stored), fresh};
  }

  result<void> finish_effect(std::string_view key, std::string_view status, const value& outcome) override {
    CHOIR_CHECK(detail::check_outcome_status(status));
    auto s =
        cached("UPDATE effects SET status = ?, outcome = ?, completed_ms = ? WHERE key = ? AND status = 'pending'");
    s.bind(1, status).bind(2, dump_json(outcome)).bind(3, clock_->unix_ms()).bind(4, key);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "journaling an effect's outcome");
    if (sqlite3_changes(db_) != 1) {
      s.reset();
      CHOIR_TRY(auto stored, get_effect(key));
      if (!stored) return make_error(store_errc::invalid_argument, "no effect " + std::string(key) + " was begun");
      return make_error(store_errc::invalid_argument,
                        "effect " + std::string(key) + " already has an outcome (" + stored->status + ")");
    }
    fault("effect.outcome");
    return {};
  }

  result<std::optional<effect_record>> get_effect(std::string_view key) override {
    auto s = cached(std::string(effect_columns) + " WHERE key = ?");
    s.bind(1, key);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<effect_record>();
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading an effect");
    CHOIR_TRY(effect_record e, read_effect(*s));
    return std::optional<effect_record>(std::move(e));
  }

  result<std::vector<effect_record>> effects(std::string_view run_id) override {
    auto s = cached(std::string(effect_columns) + " WHERE run_id = ? ORDER BY created_ms, sequence_id, key");
    s.bind(1, run_id);
    std::vector<effect_record> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) {
      CHOIR_TRY(effect_record e, read_effect(*s));
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading effects");
    return out;
  }

  result<void> append_audit(std::span<const audit_row> rows) override {
    if (rows.empty()) return {};
    CHOIR_CHECK(exec_cached("BEGIN IMMEDIATE", "appending to the audit log"));
    auto done = [&]() -> result<void> {
      auto last = cached("SELECT coalesce(max(seq), 0) FROM audit");
      if (last.step() != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading the audit log");
      std::int64_t expected = last.integer(0) + 1;
      last.reset();
      auto insert = cached("INSERT INTO audit(seq, entry, mac) VALUES (?, ?, ?)");
      for (const auto& row : rows) {
        if (row.seq != expected) {
          return make_error(store_errc::conflict, "audit entry " + std::to_string(row.seq) + " is not the next (" +
                                                      std::to_string(expected) + ")");
        }
        insert.bind(1, row.seq).bind_static(2, row.entry).bind_static(3, row.mac);
        if (insert.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "appending to the audit log");
        insert.reset();
        ++expected;
      }
      return {};
    }();
    return finish_transaction(std::move(done));
  }

  result<std::optional<audit_row>> last_audit() override {
    auto s = cached("SELECT seq, entry, mac FROM audit ORDER BY seq DESC LIMIT 1");
    const int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<audit_row>();
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading the audit log");
    return std::optional<audit_row>(audit_row{s.integer(0), s.text(1), s.text(2)});
  }

  result<void> scan_audit(std::int64_t from, const std::function<bool(const audit_view&)>& visit) override {
    auto s = cached("SELECT seq, entry, mac FROM audit WHERE seq >= ? ORDER BY seq");
    s.bind(1, from);
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) {
      if (!visit(audit_view{s.integer(0), s.view(1), s.view(2)})) return {};
    }
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading the audit log");
    return {};
  }

  result<void> scan_audit_back(std::int64_t before, const std::function<bool(const audit_view&)>& visit) override {
    auto s = cached("SELECT seq, entry, mac FROM audit WHERE seq < ? ORDER BY seq DESC");
    s.bind(1, before > 0 ? before : std::numeric_limits<std::int64_t>::max());
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) {
      if (!visit(audit_view{s.integer(0), s.view(1), s.view(2)})) return {};
    }
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading the audit log");
    return {};
  }

  static constexpr const char* consent_columns =
      "SELECT id, key, tenant, user_name, agent, run_id, step, capability, argument, arguments, status, answered_by, "
      "reason, created_ms, expires_ms, answered_ms FROM consents";

  static result<consent_record> read_consent(const statement& s) {
    consent_record c;
    c.id = s.text(0);
    c.key = s.text(1);
    c.tenant = s.text(2);
    c.user = s.text(3);
    c.agent = s.text(4);
    c.run_id = s.text(5);
    if (!s.is_null(6)) c.step = s.integer(6);
    c.capability = s.text(7);
    c.argument = s.text(8);
    CHOIR_TRY(c.arguments, detail::parse_column(s.text(9), "consent " + c.id + ": arguments"));
    c.status = s.text(10);
    c.answered_by = s.text(11);
    c.reason = s.text(12);
    c.created_ms = s.integer(13);
    c.expires_ms = s.integer(14);
    c.answered_ms = s.integer(15);
    return c;
  }

  result<consent_record> raise_consent(const consent_record& r) override {
    if (r.id.empty() || r.key.empty())
      return make_error(store_errc::invalid_argument, "a consent request needs an id and a key");
    auto s = cached(
        "INSERT INTO consents(id, key, tenant, user_name, agent, run_id, step, capability, argument, arguments, "
        "status, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
        "ON CONFLICT DO NOTHING");
    s.bind(1, r.id).bind(2, r.key).bind(3, r.tenant).bind(4, r.user).bind(5, r.agent).bind(6, r.run_id);
    if (r.step) {
      s.bind(7, *r.step);
    } else {
      s.bind_null(7);
    }
    s.bind(8, r.capability).bind(9, r.argument).bind(10, dump_json(r.arguments)).bind(11, r.created_ms);
    s.bind(12, r.expires_ms);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "raising a consent request");
    s.reset();
    CHOIR_TRY(auto stored, get_consent(r.key));
    if (!stored) return make_error(store_errc::conflict, "consent id " + r.id + " is taken");
    return std::move(*stored);
  }

  result<std::optional<consent_record>> get_consent(std::string_view id_or_key) override {
    auto s = cached(std::string(consent_columns) + " WHERE id = ?1 UNION ALL " + consent_columns +
                    " WHERE key = ?1 AND id <> ?1 LIMIT 1");
    s.bind(1, id_or_key);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<consent_record>();
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading a consent request");
    CHOIR_TRY(auto c, read_consent(*s));
    return std::optional<consent_record>(std::move(c));
  }

  result<std::vector<consent_record>> list_consents(std::string_view tenant, std::string_view status,
                                                    std::size_t limit) override {
    auto s = cached(std::string(consent_columns) +
                    " WHERE tenant = ?1 AND (?2 = '' OR status = ?2) ORDER BY created_ms DESC, id DESC LIMIT ?3");
    s.bind(1, tenant).bind(2, status).bind(3, static_cast<std::int64_t>(std::min<std::size_t>(limit, 1'000'000)));
    std::vector<consent_record> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) {
      CHOIR_TRY(auto c, read_consent(*s));
      out.push_back(std::move(c));
    }
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "listing consent requests");
    return out;
  }

  result<consent_record> answer_consent(std::string_view id, std::string_view status, std::string_view by,
                                        std::string_view reason) override {
    CHOIR_CHECK(detail::check_consent_answer(status));
    auto s = cached(
        "UPDATE consents SET status = ?, answered_by = ?, reason = ?, answered_ms = ? WHERE id = ? AND "
        "status = 'pending'");
    s.bind(1, status).bind(2, by).bind(3, reason).bind(4, clock_->unix_ms()).bind(5, id);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "answering a consent request");
    const bool answered = sqlite3_changes(db_) == 1;
    s.reset();
    CHOIR_TRY(auto stored, get_consent(id));
    return detail::answered_consent(id, answered, std::move(stored));
  }

  result<std::optional<document_record>> get_document(std::string_view name) override {
    auto s = cached("SELECT name, body, version, updated_ms FROM documents WHERE name = ?");
    s.bind(1, name);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<document_record>();
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading a document");
    return std::optional<document_record>(document_record{s.text(0), s.text(1), s.integer(2), s.integer(3)});
  }

  result<std::int64_t> put_document(std::string_view name, std::string_view body,
                                    std::int64_t expected_version) override {
    const std::int64_t now = clock_->unix_ms();
    auto s = expected_version == 0
                 ? cached(
                       "INSERT INTO documents(name, body, version, updated_ms) VALUES (?1, ?2, 1, ?4) "
                       "ON CONFLICT(name) DO NOTHING")
                 : cached(
                       "UPDATE documents SET body = ?2, version = version + 1, updated_ms = ?4 "
                       "WHERE name = ?1 AND version = ?3");
    s.bind(1, name).bind(2, body).bind(4, now);
    if (expected_version != 0) s.bind(3, expected_version);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "writing a document");
    if (sqlite3_changes(db_) != 1) {
      return make_error(store_errc::conflict, "document " + std::string(name) + " is no longer at version " +
                                                  std::to_string(expected_version) + " (another writer changed it)");
    }
    return expected_version + 1;
  }

  result<prune_report> prune(const retention_policy& policy) override {
    CHOIR_CHECK(detail::check_policy(policy));
    CHOIR_CHECK(exec("BEGIN IMMEDIATE", "pruning"));
    prune_report report;
    auto done = [&]() -> result<void> {
      // Pruned runs' logged steps go with their runs: move the log to the packs first.
      CHOIR_CHECK(sync_log());
      if (!log_.empty()) CHOIR_CHECK(move_log_to_packs({}));
      const std::int64_t now = clock_->unix_ms();
      std::string sql =
          "CREATE TEMP TABLE IF NOT EXISTS pruned(run_id TEXT PRIMARY KEY); DELETE FROM pruned; "
          "INSERT INTO pruned SELECT run_id FROM (SELECT run_id, updated_ms, partition_key, owner, lease_expires_ms, "
          "row_number() OVER (PARTITION BY partition_key ORDER BY updated_ms DESC, run_id DESC) AS rank "
          "FROM runs WHERE status IN " +
          std::string(detail::finished_statuses_sql) + ") WHERE (owner = '' OR lease_expires_ms <= ?4) AND (1";
      if (policy.older_than_ms) sql += " AND updated_ms < ?1";
      if (policy.keep_last) sql += " AND rank > ?2";
      sql += ")";
      if (policy.partition) sql += " AND partition_key = ?3";
      CHOIR_CHECK(exec(sql.substr(0, sql.find("INSERT")).c_str(), "pruning"));
      statement select(db_, sql.substr(sql.find("INSERT")));
      if (!select.valid()) return sqlite_error(store_errc::io_error, db_, "pruning");
      if (policy.older_than_ms) select.bind(1, now - *policy.older_than_ms);
      if (policy.keep_last) {
        select.bind(2, static_cast<std::int64_t>(
                           std::min<std::size_t>(*policy.keep_last, std::numeric_limits<std::int64_t>::max())));
      }
      if (policy.partition) select.bind(3, *policy.partition);
      select.bind(4, now);
      if (select.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "pruning");
      report.runs = static_cast<std::size_t>(sqlite3_changes(db_));
      auto remove = [&](const char* table, std::size_t& count) -> result<void> {
        statement del(db_, std::string("DELETE FROM ") + table + " WHERE run_id IN (SELECT run_id FROM pruned)");
        if (del.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "pruning");
        count = static_cast<std::size_t>(sqlite3_changes(db_));
        return {};
      };
      std::size_t ignored = 0;
      CHOIR_CHECK(remove("effects", report.effects));
      CHOIR_CHECK(remove("snapshots", report.snapshots));
      CHOIR_CHECK(remove("steps", report.steps));
      statement packed(db_,
                       "SELECT COALESCE(sum(count), 0) FROM step_packs WHERE run_id IN (SELECT run_id FROM pruned)");
      if (packed.step() != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "pruning");
      report.steps += static_cast<std::size_t>(packed.integer(0));
      CHOIR_CHECK(remove("step_packs", ignored));
      CHOIR_CHECK(remove("runs", ignored));
      return exec("DELETE FROM pruned", "pruning");
    }();
    CHOIR_CHECK(finish_transaction(std::move(done)));
    counters_.clear();
    if (moved_to_ != 0) log_moved();
    return report;
  }

 private:
  /// One read transaction around a reader's statements (unless one is open already): the step log,
  /// the packs and `steps` are then read at one point in time, so that another process moving the
  /// log in between cannot show a step twice (in this copy of the log and in a pack) or not at all.
  class read_snapshot {
   public:
    explicit read_snapshot(sqlite_store& store)
        : store_(store), began_(sqlite3_get_autocommit(store.db_) != 0 && store.exec_cached("BEGIN", "reading").ok()) {}
    ~read_snapshot() {
      if (began_) (void)store_.exec_cached("COMMIT", "reading");
    }
    read_snapshot(const read_snapshot&) = delete;
    read_snapshot& operator=(const read_snapshot&) = delete;

   private:
    sqlite_store& store_;
    bool began_;
  };

  static constexpr const char* effect_columns =
      "SELECT key, run_id, sequence_id, kind, request, status, outcome, created_ms, completed_ms FROM effects";

  static result<effect_record> read_effect(const statement& s) {
    effect_record e;
    e.key = s.text(0);
    e.run_id = s.text(1);
    e.sequence_id = s.integer(2);
    e.kind = s.text(3);
    CHOIR_TRY(e.request, detail::parse_column(s.text(4), "effect " + e.key + ": request"));
    e.status = s.text(5);
    CHOIR_TRY(e.outcome, detail::parse_column(s.text(6), "effect " + e.key + ": outcome"));
    e.created_ms = s.integer(7);
    e.completed_ms = s.integer(8);
    return e;
  }

  static std::string run_select(const char* tail) {
    return std::string(
               "SELECT r.run_id, r.partition_key, r.agent, r.graph_version, r.parent_run, r.parent_step, r.status, "
               "r.start_action, r.created_ms, r.updated_ms, r.pinned, r.owner, r.lease_expires_ms, r.tenant, "
               "r.user_name, r.start_inputs FROM runs r ") +
           tail;
  }
  static run_record read_run(const statement& s) {
    run_record r;
    r.run_id = s.text(0);
    r.partition_key = s.text(1);
    r.agent = s.text(2);
    r.graph_version = s.text(3);
    r.parent_run = s.text(4);
    if (!s.is_null(5)) r.parent_step = s.integer(5);
    r.status = s.text(6);
    r.next_action = s.text(7);
    r.created_ms = s.integer(8);
    r.updated_ms = s.integer(9);
    r.pinned = s.integer(10) != 0;
    r.owner = s.text(11);
    r.lease_expires_ms = s.integer(12);
    r.tenant = s.text(13);
    r.user = s.text(14);
    r.start_inputs = s.text(15);
    return r;
  }

  /// A run's steps with `lo <= sequence_id <= hi`, at most `limit`, in sequence order: from
  /// `steps`, the packs and the log.
  result<std::vector<step_entry>> gather(std::string_view run_id, std::int64_t lo, std::int64_t hi, std::size_t limit) {
    CHOIR_CHECK(sync_log());
    std::vector<step_entry> out;
    auto rows = cached(
        "SELECT sequence_id, action, status, inputs, result, delta, error, attempts, next_action, graph_version, "
        "committed_ms FROM steps WHERE run_id = ?1 AND sequence_id >= ?2 AND sequence_id <= ?3 "
        "ORDER BY sequence_id LIMIT ?4");
    rows.bind(1, run_id).bind(2, lo).bind(3, hi);
    rows.bind(4, static_cast<std::int64_t>(
                     std::min<std::size_t>(limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()))));
    int rc = 0;
    while ((rc = rows.step()) == SQLITE_ROW) {
      step_entry e;
      e.sequence_id = rows.integer(0);
      e.action = rows.text(1);
      e.status = rows.text(2);
      const std::string where = "step " + std::to_string(e.sequence_id) + " of run " + std::string(run_id);
      CHOIR_TRY(e.inputs, detail::parse_column(rows.text(3), where + ": inputs"));
      CHOIR_TRY(e.result, detail::parse_column(rows.text(4), where + ": result"));
      CHOIR_TRY(e.delta, detail::parse_column(rows.text(5), where + ": delta"));
      CHOIR_TRY(e.error, detail::parse_column(rows.text(6), where + ": error"));
      e.attempts = static_cast<int>(rows.integer(7));
      e.next_action = rows.text(8);
      e.graph_version = rows.text(9);
      e.committed_ms = rows.integer(10);
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading steps");
    rows.reset();
    const auto take = [&](value& v, std::size_t& taken) {
      const auto seq = v[1].get<std::int64_t>();
      if (seq < lo || seq > hi || taken >= limit) return;
      out.push_back(entry_of(v));
      ++taken;
    };
    auto packs = cached(
        "SELECT id, steps FROM step_packs WHERE run_id = ?1 AND last_seq >= ?2 AND first_seq <= ?3 ORDER BY first_seq");
    packs.bind(1, run_id).bind(2, lo).bind(3, hi);
    std::size_t taken = 0;
    rc = SQLITE_DONE;
    while (taken < limit && (rc = packs.step()) == SQLITE_ROW) {
      CHOIR_TRY(auto pack, parse_packed(packs.text(1), "step pack " + std::to_string(packs.integer(0))));
      for (value& v : pack) take(v, taken);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading step packs");
    packs.reset();
    taken = 0;
    for (const packed_step* l : logged_steps(run_id)) {
      if (l->sequence_id < lo || l->sequence_id > hi) continue;
      CHOIR_TRY(auto one, parse_packed("[" + l->text + "]", "the logged step " + std::to_string(l->sequence_id)));
      take(one[0], taken);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const step_entry& a, const step_entry& b) { return a.sequence_id < b.sequence_id; });
    if (out.size() > limit) out.resize(limit);
    return out;
  }

  /// The deltas (as stored, unparsed) of a run's steps with `base < sequence_id <= target`, in
  /// sequence order: from `steps`, the packs and the log.
  result<std::vector<std::pair<std::int64_t, std::string>>> deltas_after(std::string_view run_id, std::int64_t base,
                                                                         std::int64_t target) {
    CHOIR_CHECK(sync_log());
    std::vector<std::pair<std::int64_t, std::string>> out;
    auto rows = cached(
        "SELECT sequence_id, delta FROM steps WHERE run_id = ?1 AND sequence_id > ?2 AND sequence_id <= ?3 "
        "ORDER BY sequence_id");
    rows.bind(1, run_id).bind(2, base).bind(3, target);
    int rc = 0;
    while ((rc = rows.step()) == SQLITE_ROW) out.emplace_back(rows.integer(0), rows.text(1));
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading deltas");
    rows.reset();
    const auto take = [&](const value& v) {
      const auto seq = v[1].get<std::int64_t>();
      if (seq > base && seq <= target) out.emplace_back(seq, dump_json(v[6]));
    };
    auto packs = cached(
        "SELECT id, steps FROM step_packs WHERE run_id = ?1 AND last_seq > ?2 AND first_seq <= ?3 ORDER BY first_seq");
    packs.bind(1, run_id).bind(2, base).bind(3, target);
    while ((rc = packs.step()) == SQLITE_ROW) {
      CHOIR_TRY(auto pack, parse_packed(packs.text(1), "step pack " + std::to_string(packs.integer(0))));
      for (const value& v : pack) take(v);
    }
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading deltas");
    packs.reset();
    for (const packed_step* l : logged_steps(run_id)) {
      if (l->sequence_id <= base || l->sequence_id > target) continue;
      CHOIR_TRY(auto one, parse_packed("[" + l->text + "]", "the logged step " + std::to_string(l->sequence_id)));
      take(one[0]);
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
  }

  /// A run's position comes from its last committed step (in `steps`, a pack or the log): its
  /// sequence id, its next action and its time.
  result<run_record> with_position(run_record r) {
    CHOIR_CHECK(sync_log());
    auto s = cached(
        "SELECT * FROM (SELECT sequence_id, next_action, committed_ms FROM steps WHERE run_id = ?1 "
        "ORDER BY sequence_id DESC LIMIT 1) UNION ALL SELECT * FROM (SELECT last_seq, next_action, committed_ms "
        "FROM step_packs WHERE run_id = ?1 ORDER BY first_seq DESC LIMIT 1) ORDER BY 1 DESC LIMIT 1");
    s.bind(1, r.run_id);
    const int rc = s.step();
    if (rc == SQLITE_ROW) {
      r.last_sequence = s.integer(0);
      r.next_action = s.text(1);
      r.updated_ms = std::max(r.updated_ms, s.integer(2));
    } else if (rc != SQLITE_DONE) {
      return sqlite_error(store_errc::io_error, db_, "reading run");
    }
    const auto logged = logged_steps(r.run_id);
    if (!logged.empty() && (!r.last_sequence || logged.back()->sequence_id > *r.last_sequence)) {
      r.last_sequence = logged.back()->sequence_id;
      r.next_action = logged.back()->next_action;
      r.updated_ms = std::max(r.updated_ms, logged.back()->committed_ms);
    }
    return r;
  }

  /// A step refused on its own (the others of its batch go on), as opposed to a failed write.
  static bool refusal(const error& e) {
    return e.code == store_errc::duplicate_step || e.code == store_errc::run_not_found ||
           e.code == store_errc::run_leased || e.code == store_errc::invalid_argument;
  }

  /// Writes one step inside the open transaction — into `steps`, or into `log` (the batch bound
  /// for the step log) when given; a refused step writes nothing.
  result<void> insert_step(const batch_item& item, std::int64_t now, std::vector<packed_step>* log) {
    const step_write& w = *item.step;
    // Every step's JSON columns are checked (a logged step's are embedded in its batch's row as
    // they are: one malformed column must not make the row, and the other steps, unreadable).
    if (item.checked != nullptr) {
      CHOIR_CHECK(*item.checked);
    } else {
      CHOIR_CHECK(detail::check_step_columns(w));
    }
    // A lease this store took and that has not run out cannot have been taken by anyone else
    // (one machine, one clock): skip reading it. Otherwise check who holds the run.
    const auto ours = held_.find(w.run_id);
    if (ours == held_.end() || now >= ours->second) {
      auto lease = cached("SELECT owner, lease_expires_ms FROM runs WHERE run_id = ?");
      lease.bind(1, w.run_id);
      const int found = lease.step();
      if (found == SQLITE_DONE) return make_error(store_errc::run_not_found, "no run " + w.run_id);
      if (found != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "committing a step");
      const std::string holder = lease.text(0);
      const std::int64_t expires = lease.integer(1);
      if (!holder.empty() && holder != options_.owner && expires > now) {
        return detail::leased_error(w.run_id, holder, expires, now);
      }
    }
    CHOIR_CHECK(load_counters(w.run_id));
    const auto duplicate = [&] {
      return make_error(store_errc::duplicate_step,
                        "run " + w.run_id + " already has step " + std::to_string(w.sequence_id));
    };
    // `(run_id, sequence_id)` is unique across `steps`, the packs, the log and the batch.
    if (logged_has(w.run_id, w.sequence_id)) return duplicate();
    CHOIR_TRY(const bool stored, is_stored(w.run_id, w.sequence_id));
    if (stored) return duplicate();
    if (log != nullptr) {
      for (const auto& l : *log) {
        if (l.sequence_id == w.sequence_id && l.run_id == w.run_id) return duplicate();
      }
      log->push_back(finish_pack(w, item.prefix != nullptr ? *item.prefix : pack_prefix(w), now));
    } else {
      auto s = cached(
          "INSERT INTO steps(run_id, sequence_id, action, status, inputs, result, delta, error, attempts, "
          "next_action, graph_version, committed_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
          "ON CONFLICT DO NOTHING");
      s.bind(1, w.run_id).bind(2, w.sequence_id).bind(3, w.action).bind(4, w.failed ? "failed" : "completed");
      s.bind(5, w.inputs).bind(6, w.result).bind(7, w.delta).bind(8, w.error);
      s.bind(9, static_cast<std::int64_t>(w.attempts)).bind(10, w.next_action).bind(11, w.graph_version).bind(12, now);
      if (s.step() != SQLITE_DONE) {
        if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_FOREIGNKEY) {
          return make_error(store_errc::run_not_found, "no run " + w.run_id);
        }
        return sqlite_error(store_errc::io_error, db_, "committing a step");
      }
      if (sqlite3_changes(db_) != 1) return duplicate();
      auto known = stored_last_.find(w.run_id);
      if (known != stored_last_.end()) known->second = std::max(known->second, w.sequence_id);
    }
    detail::snapshot_counters& counters = counters_[w.run_id];
    counters.delta_bytes_since += static_cast<std::int64_t>(w.delta.size());
    ++counters.steps_since;
    if (counters.due(options_.snapshot_interval)) {
      CHOIR_CHECK(write_snapshot(w.run_id, w.sequence_id, w.after));
      fault("step.snapshot");
    }
    return {};
  }

  // ---- the step log and the step packs (docs/event-log.md, "The step log") -----------------------
  //
  // This connection keeps the log's steps in memory: readers merge them with `steps` and the
  // packs, and writers check uniqueness against them. `PRAGMA data_version` tells when another
  // connection committed; the copy is then read again (only the new rows, unless the log moved).

  /// Brings this connection's copy of the log up to date.
  result<void> sync_log() {
    auto v = cached("PRAGMA data_version");
    if (v.step() != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading the data version");
    const std::int64_t version = v.integer(0);
    v.reset();
    if (version == data_version_) return {};
    // Another connection committed: whatever this one cached about steps may be stale.
    stored_last_.clear();
    counters_.clear();
    free_slots_.reset();
    // One statement, so one snapshot: where the log starts, and the batches this copy lacks —
    // those after the last it read, or all of them if the log moved since.
    auto rows = cached(
        "SELECT h.moved_through, l.batch, l.steps FROM step_log_head h LEFT JOIN step_log l "
        "ON l.batch > h.moved_through AND (h.moved_through <> ?1 OR l.batch > ?2) ORDER BY l.batch");
    rows.bind(1, log_moved_through_).bind(2, log_last_batch_);
    int rc = rows.step();
    if (rc == SQLITE_DONE) return make_error(store_errc::corrupt, "the step log's head is missing");
    if (rc == SQLITE_ROW && rows.integer(0) != log_moved_through_) {
      clear_log();
      log_moved_through_ = log_last_batch_ = rows.integer(0);
    }
    for (; rc == SQLITE_ROW; rc = rows.step()) {
      if (rows.is_null(1)) continue;  // the head alone: no batch to read
      const std::int64_t batch = rows.integer(1);
      auto parsed = parse_packed(rows.text(2), "step log batch " + std::to_string(batch));
      if (!parsed.ok()) {
        clear_log();
        return std::move(parsed).err();
      }
      for (auto& step : *parsed) {
        packed_step p{step[0].get<std::string>(),
                      step[1].get<std::int64_t>(),
                      step[9].get<std::string>(),
                      step[11].get<std::int64_t>(),
                      static_cast<std::int64_t>(dump_json(step[6]).size()),
                      dump_json(step)};
        remember_logged(std::move(p));
      }
      log_last_batch_ = batch;
      ++log_batches_;
    }
    if (rc != SQLITE_DONE) {
      clear_log();
      return sqlite_error(store_errc::io_error, db_, "reading the step log");
    }
    data_version_ = version;
    return {};
  }

  void remember_logged(packed_step s) {
    log_bytes_ += s.text.size();
    logged_run& run = log_by_run_[s.run_id];
    run.max_sequence = run.indices.empty() ? s.sequence_id : std::max(run.max_sequence, s.sequence_id);
    run.indices.push_back(log_.size());
    log_.push_back(std::move(s));
  }

  /// The log moved to the packs, through batch `moved_to_`, in the transaction that just
  /// committed: every slot is free again.
  void log_moved() {
    clear_log();
    log_moved_through_ = log_last_batch_ = std::exchange(moved_to_, 0);
  }

  /// Forgets the log (it moved to the packs, or must be read again), and which slots are free.
  void clear_log() {
    free_slots_.reset();
    log_.clear();
    log_by_run_.clear();
    log_bytes_ = 0;
    log_batches_ = 0;
    log_moved_through_ = -1;
    log_last_batch_ = -1;
  }

  /// The run's logged steps, in sequence order.
  std::vector<const packed_step*> logged_steps(std::string_view run_id) const {
    std::vector<const packed_step*> out;
    const auto it = log_by_run_.find(std::string(run_id));
    if (it == log_by_run_.end()) return out;
    out.reserve(it->second.indices.size());
    for (const std::size_t i : it->second.indices) out.push_back(&log_[i]);
    std::sort(out.begin(), out.end(),
              [](const packed_step* a, const packed_step* b) { return a->sequence_id < b->sequence_id; });
    return out;
  }

  bool logged_has(const std::string& run_id, std::int64_t seq) const {
    const auto it = log_by_run_.find(run_id);
    if (it == log_by_run_.end() || seq > it->second.max_sequence) return false;  // a run's next step: at once
    const auto& indices = it->second.indices;
    return std::any_of(indices.begin(), indices.end(), [&](std::size_t i) { return log_[i].sequence_id == seq; });
  }

  /// Whether `steps` or a pack holds the step. The last stored sequence id of each run is cached,
  /// so a step after it needs no lookup.
  result<bool> is_stored(const std::string& run_id, std::int64_t seq) {
    auto known = stored_last_.find(run_id);
    if (known == stored_last_.end()) {
      auto last = cached(
          "SELECT max(m) FROM (SELECT max(sequence_id) AS m FROM steps WHERE run_id = ?1 UNION ALL "
          "SELECT max(last_seq) FROM step_packs WHERE run_id = ?1)");
      last.bind(1, run_id);
      if (last.step() != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading a run's steps");
      known = stored_last_.emplace(run_id, last.is_null(0) ? std::int64_t{-2} : last.integer(0)).first;
    }
    if (seq > known->second) return false;
    auto exists = cached("SELECT 1 FROM steps WHERE run_id = ? AND sequence_id = ?");
    exists.bind(1, run_id).bind(2, seq);
    const int rc = exists.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading a step");
    if (rc == SQLITE_ROW) return true;
    exists.reset();
    return in_packs(run_id, seq);
  }

  /// Whether a pack holds the step.
  result<bool> in_packs(const std::string& run_id, std::int64_t seq) {
    auto s = cached("SELECT id, steps FROM step_packs WHERE run_id = ?1 AND first_seq <= ?2 AND last_seq >= ?2");
    s.bind(1, run_id).bind(2, seq);
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) {
      CHOIR_TRY(auto steps, parse_packed(s.text(1), "step pack " + std::to_string(s.integer(0))));
      for (const auto& v : steps) {
        if (v[1].get<std::int64_t>() == seq) return true;
      }
    }
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading the step packs");
    return false;
  }

  /// Writes the batch's steps as the log's next batch (inside the open transaction): over a free
  /// slot when they fit one, so that no page is allocated and only the pages whose bytes change
  /// are written; else in a new slot, or in a row of their own size when they do not fit one.
  result<void> write_log_row(const std::vector<packed_step>& batch) {
    if (log_last_batch_ == std::numeric_limits<std::int64_t>::max()) {
      return make_error(store_errc::corrupt, "the step log's batch numbers have run out");
    }
    const std::int64_t number = log_last_batch_ + 1;
    std::string text;
    text.reserve(slot_payload_ +
                 std::accumulate(batch.begin(), batch.end(), std::size_t{0},
                                 [](std::size_t n, const packed_step& p) { return n + p.text.size() + 1; }));
    text += '[';
    for (const auto& p : batch) {
      if (text.size() > 1) text += ',';
      text += p.text;
    }
    text += ']';
    const std::size_t room = slot_text_size(number);
    const bool in_slot = text.size() <= room;
    if (in_slot) {
      text.resize(room, ' ');  // JSON allows the spaces; the row keeps its size
      if (!free_slots_) CHOIR_CHECK(load_free_slots());
    }
    if (in_slot && !free_slots_->empty()) {
      const std::int64_t id = free_slots_->back();
      free_slots_->pop_back();
      auto s = cached("UPDATE step_log SET batch = ?2, steps = ?3 WHERE id = ?1 AND slot = 1");
      s.bind(1, id).bind(2, number).bind_static(3, text);
      if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "writing the step log");
      if (sqlite3_changes(db_) != 1) {
        return make_error(store_errc::corrupt, "step log slot " + std::to_string(id) + " is gone");
      }
    } else {
      auto s = cached("INSERT INTO step_log(batch, slot, steps) VALUES (?1, ?2, ?3)");
      s.bind(1, number).bind(2, std::int64_t{in_slot ? 1 : 0}).bind_static(3, text);
      if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "writing the step log");
    }
    // This connection's copy takes the batch once the transaction commits (`append_items`).
    log_last_batch_ = number;
    ++log_batches_;
    return {};
  }

  /// The free slots: those holding batches that moved to the packs.
  result<void> load_free_slots() {
    std::vector<std::int64_t> ids;
    auto s = cached("SELECT id FROM step_log WHERE slot = 1 AND batch <= ?1 ORDER BY id DESC");
    s.bind(1, log_moved_through_);
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) ids.push_back(s.integer(0));
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading the step log");
    free_slots_ = std::move(ids);
    return {};
  }

  /// How many bytes of text make a slot's row, holding batch `number`, exactly `slot_payload_`
  /// bytes long (SQLite's record format: a header of varints, then the integer, then the text).
  /// The same size is what lets SQLite write the new row over the old one in place.
  [[nodiscard]] std::size_t slot_text_size(std::int64_t number) const {
    const auto varint_size = [](std::uint64_t v) {
      std::size_t n = 1;
      while (v >= 0x80 && n < 9) {
        v >>= 7;
        ++n;
      }
      return n;
    };
    const auto integer_size = [](std::int64_t v) -> std::size_t {
      if (v == 0 || v == 1) return 0;  // serial types 8 and 9
      if (v >= -128 && v <= 127) return 1;
      if (v >= -32768 && v <= 32767) return 2;
      if (v >= -8388608 && v <= 8388607) return 3;
      if (v >= -2147483648LL && v <= 2147483647LL) return 4;
      if (v >= -(1LL << 47) && v < (1LL << 47)) return 6;
      return 8;
    };
    // Header: its own size, then the serial types of `id` (the rowid's alias, stored as NULL),
    // `batch`, `slot` (1: no bytes) and `steps`.
    for (std::size_t text_varint = 1; text_varint <= 3; ++text_varint) {
      const std::size_t header = 1 + 1 + 1 + 1 + text_varint;
      const std::size_t fixed = header + integer_size(number);
      if (fixed >= slot_payload_) return 0;
      const std::size_t text = slot_payload_ - fixed;
      if (varint_size(2 * text + 13) == text_varint) return text;
    }
    return 0;
  }

  /// Moves the log, and `batch` with it, into packs: each run's steps in sequence order, at most
  /// `pack_steps` or `pack_bytes` to a pack (inside the open transaction).
  result<void> move_log_to_packs(const std::vector<packed_step>& batch) {
    std::vector<const packed_step*> all;
    all.reserve(log_.size() + batch.size());
    for (const auto& l : log_) all.push_back(&l);
    for (const auto& l : batch) all.push_back(&l);
    std::sort(all.begin(), all.end(), [](const packed_step* a, const packed_step* b) {
      return std::tie(a->run_id, a->sequence_id) < std::tie(b->run_id, b->sequence_id);
    });
    auto insert = cached(
        "INSERT INTO step_packs(run_id, first_seq, last_seq, count, delta_bytes, next_action, committed_ms, steps) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    std::string text;
    for (std::size_t i = 0; i < all.size();) {
      std::size_t j = i;
      std::int64_t delta_bytes = 0;
      text.assign(1, '[');
      while (j < all.size() && all[j]->run_id == all[i]->run_id && j - i < pack_steps &&
             (j == i || text.size() + all[j]->text.size() < pack_bytes)) {
        if (j > i) text += ',';
        text += all[j]->text;
        delta_bytes += all[j]->delta_bytes;
        ++j;
      }
      text += ']';
      const packed_step& last = *all[j - 1];
      insert.bind_static(1, all[i]->run_id).bind(2, all[i]->sequence_id).bind(3, last.sequence_id);
      insert.bind(4, static_cast<std::int64_t>(j - i)).bind(5, delta_bytes).bind_static(6, last.next_action);
      insert.bind(7, last.committed_ms).bind_static(8, text);
      if (insert.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "moving the step log");
      insert.reset();
      i = j;
    }
    // The head says where the log now starts; a reader that sees it change reads the log again.
    // The slots stay, free, to be written over; rows of their own size go.
    auto head = cached("UPDATE step_log_head SET moved_through = ?1");
    head.bind(1, log_last_batch_);
    if (head.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "moving the step log");
    auto own = cached("DELETE FROM step_log WHERE slot = 0 AND batch <= ?1");
    own.bind(1, log_last_batch_);
    if (own.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "moving the step log");
    moved_to_ = log_last_batch_;
    stored_last_.clear();
    return {};
  }

  /// Stores the whole state after step `seq` and restarts the run's snapshot counters.
  result<void> write_snapshot(std::string_view run_id, std::int64_t seq, const graph::state& st) {
    const std::string text = dump_json(st.to_json());
    auto s = cached("INSERT OR REPLACE INTO snapshots(run_id, sequence_id, state) VALUES (?, ?, ?)");
    s.bind(1, run_id).bind(2, seq).bind(3, text);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "writing a snapshot");
    counters_[std::string(run_id)] = detail::snapshot_counters{static_cast<std::int64_t>(text.size()), 0, 0};
    return {};
  }

  void fault(std::string_view point) const {
    if (options_.fault) options_.fault(point);
  }

  /// Reads a run's snapshot counters from the tables the first time this process appends to it.
  result<void> load_counters(const std::string& run_id) {
    if (counters_.count(run_id) != 0) return {};
    auto snap =
        cached("SELECT sequence_id, length(state) FROM snapshots WHERE run_id = ? ORDER BY sequence_id DESC LIMIT 1");
    snap.bind(1, run_id);
    const int rc = snap.step();
    if (rc == SQLITE_DONE) return {};
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading snapshot counters");
    detail::snapshot_counters c{snap.integer(1), 0, 0};
    const std::int64_t base = snap.integer(0);
    snap.reset();
    auto since =
        cached("SELECT count(*), COALESCE(sum(length(delta)), 0) FROM steps WHERE run_id = ?1 AND sequence_id > ?2");
    since.bind(1, run_id).bind(2, base);
    if (since.step() != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading snapshot counters");
    c.steps_since = since.integer(0);
    c.delta_bytes_since = since.integer(1);
    since.reset();
    auto packs =
        cached("SELECT id, first_seq, count, delta_bytes, steps FROM step_packs WHERE run_id = ?1 AND last_seq > ?2");
    packs.bind(1, run_id).bind(2, base);
    int rc_packs = 0;
    while ((rc_packs = packs.step()) == SQLITE_ROW) {
      if (packs.integer(1) > base) {
        c.steps_since += packs.integer(2);
        c.delta_bytes_since += packs.integer(3);
        continue;
      }
      CHOIR_TRY(auto pack, parse_packed(packs.text(4), "step pack " + std::to_string(packs.integer(0))));
      for (const value& v : pack) {
        if (v[1].get<std::int64_t>() <= base) continue;
        ++c.steps_since;
        c.delta_bytes_since += static_cast<std::int64_t>(dump_json(v[6]).size());
      }
    }
    if (rc_packs != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading snapshot counters");
    for (const packed_step* l : logged_steps(run_id)) {
      if (l->sequence_id <= base) continue;
      ++c.steps_since;
      c.delta_bytes_since += l->delta_bytes;
    }
    counters_[run_id] = c;
    return {};
  }

  /// A statement prepared once per connection, lent out until the end of the scope.
  statement_use cached(const std::string& sql) {
    auto it = cached_.find(sql);
    if (it == cached_.end()) it = cached_.emplace(sql, std::make_unique<statement>(db_, sql)).first;
    return statement_use(*it->second);
  }

  result<void> exec_cached(const char* sql, const std::string& what) {
    auto s = cached(sql);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, what);
    return {};
  }

  /// Commits if `outcome` succeeded, rolls back otherwise; returns the first error.
  result<void> finish_transaction(result<void> outcome) {
    if (!outcome.ok()) {
      (void)exec_cached("ROLLBACK", "rolling back");
      forget_cached();
      return outcome;
    }
    auto committed = exec_cached("COMMIT", "committing");
    if (!committed.ok()) {
      (void)exec_cached("ROLLBACK", "rolling back");
      forget_cached();
    }
    return committed;
  }

  /// After a rollback: what this connection cached may describe writes that are not there.
  void forget_cached() {
    counters_.clear();
    held_.clear();  // a lease written in the transaction may not be there
    stored_last_.clear();
    clear_log();
    moved_to_ = 0;
    data_version_ = -1;  // read the log again
  }

  sqlite3* db_;
  store_options options_;
  const clock* clock_;
  std::unordered_map<std::string, detail::snapshot_counters> counters_;
  std::unordered_map<std::string, std::int64_t> held_;  // leases this store took: run -> expiry
  /// The last sequence id of each run in `steps` and the packs (-2: none), as far as this
  /// connection knows.
  std::unordered_map<std::string, std::int64_t> stored_last_;
  /// This connection's copy of the step log, in commit order, and where each run's steps are.
  std::vector<packed_step> log_;
  /// Where a run's steps are in the log, and the last of them.
  struct logged_run {
    std::vector<std::size_t> indices;
    std::int64_t max_sequence = 0;
  };
  std::unordered_map<std::string, logged_run> log_by_run_;
  std::size_t log_bytes_ = 0;                            // of the logged steps' JSON
  std::size_t log_batches_ = 0;                          // batches in the log
  std::int64_t log_moved_through_ = -1;                  // the batches up to this one moved to the packs (-1: unknown)
  std::int64_t log_last_batch_ = -1;                     // the last batch this copy holds
  std::int64_t data_version_ = -1;                       // PRAGMA data_version when the copy was read (-1: never)
  std::int64_t moved_to_ = 0;                            // the last batch the open transaction moved to the packs
  std::optional<std::vector<std::int64_t>> free_slots_;  // slots to write over (unknown: not read yet)
  /// A slot's row is this many bytes: a leaf page holds several slots' first bytes, each with
  /// two overflow pages of its own. Set from the page size when the store opens.
  std::size_t slot_payload_ = 8673;
  /// The log moves to the packs when it holds this many steps, JSON bytes or batches.
  static constexpr std::size_t log_merge_steps = 4096;
  static constexpr std::size_t log_merge_bytes = 8 << 20;
  static constexpr std::size_t log_merge_batches = 512;
  /// A pack holds at most this many steps or (unless it holds one) bytes.
  static constexpr std::size_t pack_steps = 256;
  static constexpr std::size_t pack_bytes = 1 << 20;
  std::unordered_map<std::string, std::unique_ptr<statement>> cached_;
};

result<std::int64_t> single_integer(sqlite3* db, const char* sql) {
  statement s(db, sql);
  if (!s.valid() || s.step() != SQLITE_ROW) return sqlite_error(store_errc::not_a_store, db, "reading the file");
  return s.integer(0);
}

std::string single_text(sqlite3* db, const char* sql) {
  statement s(db, sql);
  if (!s.valid() || s.step() != SQLITE_ROW) return {};
  return s.text(0);
}

}  // namespace

result<std::unique_ptr<event_store>> open_sqlite_store(const std::string& path, const store_options& options,
                                                       const clock& time) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool existed = fs::exists(path, ec);
  if (!existed) {
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    if (ec) return make_error(store_errc::open_failed, path + ": cannot create its folder: " + ec.message());
  }
  // A file that is not a SQLite database is refused by SQLite at its first read, below, before
  // anything is written. Never read the file through a descriptor of our own: closing it would
  // release every lock this process holds on the file — also those of a store already open here
  // — and another process closing the database would then believe itself its last user and
  // delete the write-ahead log still in use here.
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    auto e = sqlite_error(store_errc::open_failed, raw, path);
    sqlite3_close_v2(raw);
    return e;
  }
  auto store = std::make_unique<sqlite_store>(raw, options, time);
  sqlite3_busy_timeout(raw, 5000);

  auto app_id = single_integer(raw, "PRAGMA application_id");
  if (!app_id.ok()) {
    if (sqlite3_errcode(raw) == SQLITE_NOTADB) {
      return make_error(store_errc::not_a_store, path + ": not a ChoirOS store (not a SQLite database)");
    }
    return make_error(store_errc::not_a_store, path + ": " + app_id.err().message);
  }
  auto user_version = single_integer(raw, "PRAGMA user_version");
  if (!user_version.ok()) return make_error(store_errc::not_a_store, path + ": " + user_version.err().message);
  if (options.create_schema_version < 0 || options.create_schema_version > schema_version) {
    return make_error(store_errc::invalid_argument,
                      "no schema version " + std::to_string(options.create_schema_version));
  }
  if (*app_id == 0) {
    // Possibly a new store: create the schema in one transaction. Another process may be doing
    // the same right now, so decide only once the write lock is held.
    CHOIR_CHECK(store->exec("BEGIN IMMEDIATE", path));
    auto created = [&]() -> result<void> {
      auto tables = single_integer(raw, "SELECT count(*) FROM sqlite_master");
      if (!tables.ok()) return make_error(store_errc::corrupt, path + ": " + tables.err().message);
      if (*tables != 0) return {};  // someone else's database, or a store another process just made
      const std::int64_t target = options.create_schema_version > 0 ? options.create_schema_version : schema_version;
      for (std::int64_t v = 0; v < target; ++v) {
        CHOIR_CHECK(store->exec(migrations[v], path + ": creating the schema (version " + std::to_string(v + 1) + ")"));
      }
      const std::string stamp = "PRAGMA application_id = " + std::to_string(application_id) +
                                "; PRAGMA user_version = " + std::to_string(target) + ";";
      return store->exec(stamp.c_str(), path + ": stamping the schema");
    }();
    if (!created.ok()) {
      (void)store->exec("ROLLBACK", path);
      return std::move(created).err();
    }
    CHOIR_CHECK(store->exec("COMMIT", path));
    CHOIR_TRY(app_id, single_integer(raw, "PRAGMA application_id"));
    CHOIR_TRY(user_version, single_integer(raw, "PRAGMA user_version"));
  }
  if (*app_id != application_id) {
    return make_error(store_errc::not_a_store, path + ": not a ChoirOS store (a database of another program)");
  }
  if (*user_version > schema_version) {
    return make_error(store_errc::newer_schema, path + ": written by a newer ChoirOS (schema " +
                                                    std::to_string(*user_version) + ", this one reads up to " +
                                                    std::to_string(schema_version) + "); nothing was changed");
  }
  if (*user_version < 1 ||
      single_text(raw, "SELECT value FROM choir_meta WHERE key = 'format'") != "choir-event-store") {
    return make_error(store_errc::corrupt, path + ": a ChoirOS store without its schema");
  }
  if (single_text(raw, "PRAGMA quick_check") != "ok") {
    return make_error(store_errc::corrupt, path + ": fails SQLite's integrity check");
  }
  if (*user_version < schema_version && options.create_schema_version == 0) {
    // Migrate forward in one transaction; re-read the version under the write lock, since
    // another process may have migrated it meanwhile.
    CHOIR_CHECK(store->exec("BEGIN IMMEDIATE", path));
    auto migrated = [&]() -> result<void> {
      CHOIR_TRY(std::int64_t from, single_integer(raw, "PRAGMA user_version"));
      for (std::int64_t v = from; v < schema_version; ++v) {
        CHOIR_CHECK(store->exec(migrations[v], path + ": migrating the schema from version " + std::to_string(v)));
      }
      const std::string stamp = "PRAGMA user_version = " + std::to_string(schema_version) + ";";
      return store->exec(stamp.c_str(), path + ": stamping the schema");
    }();
    if (!migrated.ok()) {
      (void)store->exec("ROLLBACK", path);
      return std::move(migrated).err();
    }
    CHOIR_CHECK(store->exec("COMMIT", path));
  }
  // Switching to WAL needs the file to itself, and SQLite reports a busy file at once rather than
  // calling the busy handler: retry while other processes open the same new store.
  for (int attempt = 0;; ++attempt) {
    if (single_text(raw, "PRAGMA journal_mode") == "wal") break;
    auto wal = store->exec("PRAGMA journal_mode = WAL", path + ": switching to WAL");
    if (wal.ok()) break;
    if (sqlite3_errcode(raw) != SQLITE_BUSY || attempt >= 1000) return std::move(wal).err();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHOIR_CHECK(store->exec(options.full_sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", path));
  CHOIR_CHECK(store->exec("PRAGMA foreign_keys = ON", path));
  if (auto page_size = single_integer(raw, "PRAGMA page_size"); page_size.ok()) store->size_slots(*page_size);
  return std::unique_ptr<event_store>(std::move(store));
}

}  // namespace choir::store
