// The SQLite event store: the embedded default. Schema and formats: docs/event-log.md.
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_map>
#include <utility>

#include "choir/store/event_store.hpp"

namespace choir::store {
namespace {

/// The schema version this code writes. Opening a store with a higher version is refused.
constexpr std::int64_t schema_version = 1;
/// Written as SQLite's application_id so that other tools (and we) can tell the file apart.
constexpr std::int32_t application_id = 0x43484F52;  // "CHOR"

constexpr const char* schema_v1 = R"sql(
CREATE TABLE choir_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
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
)sql";

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
  [[nodiscard]] std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  [[nodiscard]] bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

result<value> parse_column(const std::string& text, const std::string& what) {
  value v = value::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return make_error(store_errc::corrupt, what + " is not valid JSON");
  return v;
}

/// What decides a run's next snapshot (see `sqlite_store::snapshot_due`).
struct snapshot_counters {
  std::int64_t snapshot_bytes = 0;
  std::int64_t delta_bytes_since = 0;
  std::int64_t steps_since = 0;
};

class sqlite_store final : public event_store {
 public:
  sqlite_store(sqlite3* db, store_options options, const clock& time) : db_(db), options_(options), clock_(&time) {}
  ~sqlite_store() override {
    begin_.reset();
    commit_.reset();
    insert_step_.reset();
    sqlite3_close_v2(db_);
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
    statement s(db_, "INSERT OR IGNORE INTO graphs(version, name, source, created_ms) VALUES (?, ?, ?, ?)");
    if (!s.valid()) return sqlite_error(store_errc::io_error, db_, "storing graph " + g.version);
    s.bind(1, g.version).bind(2, g.name).bind(3, g.source).bind(4, clock_->unix_ms());
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "storing graph " + g.version);
    return {};
  }

  result<graph_record> get_graph(std::string_view version) override {
    statement s(db_, "SELECT version, name, source FROM graphs WHERE version = ?");
    s.bind(1, version);
    const int rc = s.step();
    if (rc == SQLITE_DONE)
      return make_error(store_errc::corrupt, "graph version " + std::string(version) + " is not stored");
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading graph");
    return graph_record{s.text(0), s.text(1), s.text(2)};
  }

  result<void> create_run(const run_record& run, const graph::state& initial, std::int64_t start_after) override {
    CHOIR_CHECK(exec("BEGIN IMMEDIATE", "creating run"));
    auto done = [&]() -> result<void> {
      statement s(db_,
                  "INSERT INTO runs(run_id, partition_key, agent, graph_version, parent_run, parent_step, status, "
                  "start_action, start_after, created_ms, updated_ms) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
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
      const int rc = s.step();
      if (rc == SQLITE_CONSTRAINT)
        return make_error(store_errc::duplicate_run, "run " + run.run_id + " already exists");
      if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "creating run " + run.run_id);
      return write_snapshot(run.run_id, start_after, initial);
    }();
    return finish_transaction(std::move(done));
  }

  result<void> append_step(std::string_view run_id, const graph::step_record& step, const graph::state& after,
                           std::string_view graph_version) override {
    if (!prepare_step_statements()) return sqlite_error(store_errc::io_error, db_, "preparing the step statements");
    fault("step.begin");
    if (begin_->step() != SQLITE_DONE) {
      auto e = sqlite_error(store_errc::io_error, db_, "committing a step");
      begin_->reset();
      return e;
    }
    begin_->reset();
    auto done = [&]() -> result<void> {
      const auto seq = static_cast<std::int64_t>(step.sequence_id);
      value err;
      if (step.failure) err = {{"code", step.failure->code.message()}, {"message", step.failure->message}};
      const std::int64_t now = clock_->unix_ms();
      const std::string delta = dump_json(step.delta.to_json());
      statement& s = *insert_step_;
      s.bind(1, run_id).bind(2, seq).bind(3, step.action);
      s.bind(4, step.status == graph::step_status::completed ? "completed" : "failed");
      s.bind(5, dump_json(step.inputs)).bind(6, dump_json(step.result)).bind(7, delta);
      s.bind(8, dump_json(err)).bind(9, static_cast<std::int64_t>(step.attempts)).bind(10, step.next_action);
      s.bind(11, graph_version).bind(12, now);
      CHOIR_CHECK(load_counters(run_id));
      const int rc = s.step();
      const int extended = sqlite3_extended_errcode(db_);
      s.reset();
      if (extended == SQLITE_CONSTRAINT_FOREIGNKEY)
        return make_error(store_errc::run_not_found, "no run " + std::string(run_id));
      if (rc == SQLITE_CONSTRAINT) {
        return make_error(store_errc::duplicate_step,
                          "run " + std::string(run_id) + " already has step " + std::to_string(seq));
      }
      if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "committing a step");
      fault("step.inserted");
      snapshot_counters& counters = counters_[std::string(run_id)];
      counters.delta_bytes_since += static_cast<std::int64_t>(delta.size());
      ++counters.steps_since;
      if (snapshot_due(counters)) {
        CHOIR_CHECK(write_snapshot(run_id, seq, after));
        fault("step.snapshot");
      }
      return {};
    }();
    CHOIR_CHECK(finish_step_transaction(std::move(done)));
    fault("step.committed");
    return {};
  }

  result<void> set_status(std::string_view run_id, std::string_view status) override {
    statement s(db_, "UPDATE runs SET status = ?, updated_ms = ? WHERE run_id = ?");
    s.bind(1, status).bind(2, clock_->unix_ms()).bind(3, run_id);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "updating run status");
    if (sqlite3_changes(db_) != 1) return make_error(store_errc::run_not_found, "no run " + std::string(run_id));
    return {};
  }

  result<run_record> get_run(std::string_view run_id) override {
    statement s(db_, run_select("WHERE r.run_id = ?"));
    s.bind(1, run_id);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return make_error(store_errc::run_not_found, "no run " + std::string(run_id));
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading run");
    return read_run(s);
  }

  result<std::vector<run_record>> list_runs(std::size_t limit) override {
    statement s(db_, run_select("ORDER BY r.created_ms DESC, r.run_id DESC LIMIT ?"));
    s.bind(1, static_cast<std::int64_t>(limit));
    std::vector<run_record> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_run(s));
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "listing runs");
    return out;
  }

  result<std::vector<step_entry>> steps(std::string_view run_id, std::int64_t from, std::size_t limit) override {
    statement s(db_,
                "SELECT sequence_id, action, status, inputs, result, delta, error, attempts, next_action, "
                "graph_version, committed_ms FROM steps WHERE run_id = ? AND sequence_id >= ? "
                "ORDER BY sequence_id LIMIT ?");
    s.bind(1, run_id).bind(2, from).bind(3, static_cast<std::int64_t>(limit));
    std::vector<step_entry> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) {
      step_entry e;
      e.sequence_id = s.integer(0);
      e.action = s.text(1);
      e.status = s.text(2);
      const std::string where = "step " + std::to_string(e.sequence_id) + " of run " + std::string(run_id);
      CHOIR_TRY(e.inputs, parse_column(s.text(3), where + ": inputs"));
      CHOIR_TRY(e.result, parse_column(s.text(4), where + ": result"));
      CHOIR_TRY(e.delta, parse_column(s.text(5), where + ": delta"));
      CHOIR_TRY(e.error, parse_column(s.text(6), where + ": error"));
      e.attempts = static_cast<int>(s.integer(7));
      e.next_action = s.text(8);
      e.graph_version = s.text(9);
      e.committed_ms = s.integer(10);
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading steps");
    return out;
  }

  result<graph::state> state_at(std::string_view run_id, std::int64_t sequence_id) override {
    statement snap(db_,
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
    CHOIR_TRY(value snapshot, parse_column(snap.text(1), "snapshot " + std::to_string(base)));
    auto parsed = graph::state::from_json(snapshot);
    if (!parsed.ok())
      return make_error(store_errc::corrupt, "snapshot " + std::to_string(base) + ": " + parsed.err().message);
    graph::state s = std::move(parsed).value();
    if (base == sequence_id) return s;

    statement deltas(db_,
                     "SELECT sequence_id, delta FROM steps WHERE run_id = ? AND sequence_id > ? AND sequence_id <= ? "
                     "ORDER BY sequence_id");
    deltas.bind(1, run_id).bind(2, base).bind(3, sequence_id);
    std::int64_t expected = base + 1;
    int step_rc = 0;
    while ((step_rc = deltas.step()) == SQLITE_ROW) {
      const std::int64_t seq = deltas.integer(0);
      if (seq != expected)
        return make_error(store_errc::corrupt,
                          "run " + std::string(run_id) + " is missing step " + std::to_string(expected));
      CHOIR_TRY(value json, parse_column(deltas.text(1), "delta of step " + std::to_string(seq)));
      auto delta = graph::state_delta::from_json(json);
      if (!delta.ok())
        return make_error(store_errc::corrupt, "step " + std::to_string(seq) + ": " + delta.err().message);
      auto applied = s.apply(*delta);
      if (!applied.ok())
        return make_error(store_errc::corrupt, "step " + std::to_string(seq) + ": " + applied.err().message);
      s = std::move(applied).value();
      ++expected;
    }
    if (step_rc != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "reading deltas");
    if (expected != sequence_id + 1) {
      return make_error(store_errc::step_not_found,
                        "run " + std::string(run_id) + " has no step " + std::to_string(sequence_id));
    }
    return s;
  }

 private:
  static std::string run_select(const char* tail) {
    return std::string(
               "SELECT r.run_id, r.partition_key, r.agent, r.graph_version, r.parent_run, r.parent_step, r.status, "
               "COALESCE(s.next_action, r.start_action), s.sequence_id, r.created_ms, "
               "max(r.updated_ms, COALESCE(s.committed_ms, 0)) FROM runs r LEFT JOIN steps s "
               "ON s.run_id = r.run_id AND s.sequence_id = "
               "(SELECT max(sequence_id) FROM steps WHERE run_id = r.run_id) ") +
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
    if (!s.is_null(8)) r.last_sequence = s.integer(8);
    r.created_ms = s.integer(9);
    r.updated_ms = s.integer(10);
    return r;
  }

  /// Stores the whole state after step `seq` and restarts the run's snapshot counters.
  result<void> write_snapshot(std::string_view run_id, std::int64_t seq, const graph::state& st) {
    const std::string text = dump_json(st.to_json());
    statement s(db_, "INSERT OR REPLACE INTO snapshots(run_id, sequence_id, state) VALUES (?, ?, ?)");
    s.bind(1, run_id).bind(2, seq).bind(3, text);
    if (s.step() != SQLITE_DONE) return sqlite_error(store_errc::io_error, db_, "writing a snapshot");
    counters_[std::string(run_id)] = snapshot_counters{static_cast<std::int64_t>(text.size()), 0, 0};
    return {};
  }

  /// The snapshot policy (docs/event-log.md): a new snapshot once the deltas since the last one
  /// weigh as much as it did (at least 4 KiB), so snapshots add at most as many bytes as the deltas
  /// and storage stays linear in a run's length however large its state grows; and, for states
  /// under 64 KiB, also every `snapshot_interval` steps, so that few deltas are replayed.
  void fault(std::string_view point) const {
    if (options_.fault) options_.fault(point);
  }

  [[nodiscard]] bool snapshot_due(const snapshot_counters& c) const {
    constexpr std::int64_t min_bytes = 4 << 10;
    constexpr std::int64_t small_state = 64 << 10;
    if (c.delta_bytes_since >= std::max(c.snapshot_bytes, min_bytes)) return true;
    return options_.snapshot_interval > 0 && c.steps_since >= options_.snapshot_interval &&
           c.snapshot_bytes < small_state;
  }

  /// Reads a run's snapshot counters from the tables the first time this process appends to it.
  result<void> load_counters(std::string_view run_id) {
    if (counters_.count(std::string(run_id)) != 0) return {};
    statement snap(db_,
                   "SELECT sequence_id, length(state) FROM snapshots WHERE run_id = ? "
                   "ORDER BY sequence_id DESC LIMIT 1");
    snap.bind(1, run_id);
    const int rc = snap.step();
    if (rc == SQLITE_DONE) return {};  // no such run: the insert reports it
    if (rc != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading snapshot counters");
    snapshot_counters c{snap.integer(1), 0, 0};
    statement since(db_,
                    "SELECT count(*), COALESCE(sum(length(delta)), 0) FROM steps WHERE run_id = ? AND sequence_id > ?");
    since.bind(1, run_id).bind(2, snap.integer(0));
    if (since.step() != SQLITE_ROW) return sqlite_error(store_errc::io_error, db_, "reading snapshot counters");
    c.steps_since = since.integer(0);
    c.delta_bytes_since = since.integer(1);
    counters_[std::string(run_id)] = c;
    return {};
  }

  bool prepare_step_statements() {
    if (insert_step_) return insert_step_->valid() && begin_->valid() && commit_->valid();
    begin_ = std::make_unique<statement>(db_, "BEGIN IMMEDIATE");
    commit_ = std::make_unique<statement>(db_, "COMMIT");
    insert_step_ = std::make_unique<statement>(
        db_,
        "INSERT INTO steps(run_id, sequence_id, action, status, inputs, result, delta, error, attempts, "
        "next_action, graph_version, committed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    return insert_step_->valid() && begin_->valid() && commit_->valid();
  }

  /// Like `finish_transaction`, with the cached COMMIT.
  result<void> finish_step_transaction(result<void> outcome) {
    if (!outcome.ok()) {
      (void)exec("ROLLBACK", "rolling back");
      return outcome;
    }
    const int rc = commit_->step();
    commit_->reset();
    if (rc != SQLITE_DONE) {
      auto e = sqlite_error(store_errc::io_error, db_, "committing");
      (void)exec("ROLLBACK", "rolling back");
      return e;
    }
    return {};
  }

  /// Commits if `outcome` succeeded, rolls back otherwise; returns the first error.
  result<void> finish_transaction(result<void> outcome) {
    if (!outcome.ok()) {
      (void)exec("ROLLBACK", "rolling back");
      return outcome;
    }
    auto committed = exec("COMMIT", "committing");
    if (!committed.ok()) (void)exec("ROLLBACK", "rolling back");
    return committed;
  }

  sqlite3* db_;
  store_options options_;
  const clock* clock_;
  std::unordered_map<std::string, snapshot_counters> counters_;
  // Statements of the hot path, prepared once (finalized before the connection closes).
  std::unique_ptr<statement> begin_;
  std::unique_ptr<statement> commit_;
  std::unique_ptr<statement> insert_step_;
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
  } else if (fs::file_size(path, ec) > 0) {
    // Refuse anything that is not a SQLite file before SQLite touches it.
    std::ifstream in(path, std::ios::binary);
    char header[16] = {};
    in.read(header, sizeof header);
    if (std::string_view(header, sizeof header) != std::string_view("SQLite format 3\0", 16)) {
      return make_error(store_errc::not_a_store, path + ": not a ChoirOS store (not a SQLite database)");
    }
  }
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
  if (!app_id.ok()) return make_error(store_errc::not_a_store, path + ": " + app_id.err().message);
  auto user_version = single_integer(raw, "PRAGMA user_version");
  if (!user_version.ok()) return make_error(store_errc::not_a_store, path + ": " + user_version.err().message);
  if (*app_id == 0) {
    // Possibly a new store: create the schema in one transaction. Another process may be doing
    // the same right now, so decide only once the write lock is held.
    CHOIR_CHECK(store->exec("BEGIN IMMEDIATE", path));
    auto created = [&]() -> result<void> {
      auto tables = single_integer(raw, "SELECT count(*) FROM sqlite_master");
      if (!tables.ok()) return make_error(store_errc::corrupt, path + ": " + tables.err().message);
      if (*tables != 0) return {};  // someone else's database, or a store another process just made
      CHOIR_CHECK(store->exec(schema_v1, path + ": creating the schema"));
      const std::string stamp = "PRAGMA application_id = " + std::to_string(application_id) +
                                "; PRAGMA user_version = " + std::to_string(schema_version) +
                                "; INSERT INTO choir_meta VALUES ('format', 'choir-event-store');";
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
  } else if (*user_version > schema_version) {
    return make_error(store_errc::newer_schema, path + ": written by a newer ChoirOS (schema " +
                                                    std::to_string(*user_version) + ", this one reads up to " +
                                                    std::to_string(schema_version) + "); nothing was changed");
  }
  if (single_text(raw, "PRAGMA quick_check") != "ok") {
    return make_error(store_errc::corrupt, path + ": fails SQLite's integrity check");
  }
  CHOIR_CHECK(store->exec("PRAGMA journal_mode = WAL", path));
  CHOIR_CHECK(store->exec(options.full_sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", path));
  CHOIR_CHECK(store->exec("PRAGMA foreign_keys = ON", path));
  return std::unique_ptr<event_store>(std::move(store));
}

}  // namespace choir::store
