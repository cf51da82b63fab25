// The PostgreSQL event store: the same tables and guarantees as the SQLite store (docs/event-log.md),
// for several processes or machines sharing one database. One connection, used from one thread at
// a time; a step batch is one transaction of a few round trips whatever its size.
#include <libpq-fe.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "choir/store/event_store.hpp"
#include "choir/store/store_detail.hpp"

namespace choir::store {
namespace {

/// The schema as migrations (as in the SQLite store; `choir_meta.schema_version` holds the version).
constexpr const char* migrations[] = {
    // 0 -> 1: graphs, runs, steps, snapshots.
    R"sql(
CREATE TABLE choir_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO choir_meta VALUES ('format', 'choir-event-store'), ('schema_version', '0');
CREATE TABLE graphs (
  version TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  source TEXT NOT NULL,
  created_ms BIGINT NOT NULL
);
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  partition_key TEXT NOT NULL DEFAULT '',
  agent TEXT NOT NULL,
  graph_version TEXT NOT NULL REFERENCES graphs(version),
  parent_run TEXT,
  parent_step BIGINT,
  status TEXT NOT NULL,
  start_action TEXT NOT NULL DEFAULT '',
  start_after BIGINT NOT NULL,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL
);
CREATE INDEX runs_by_created ON runs(created_ms DESC);
CREATE TABLE steps (
  run_id TEXT NOT NULL,  -- no foreign key: append_steps checks the run (FOR SHARE) once per batch
  sequence_id BIGINT NOT NULL,
  action TEXT NOT NULL,
  status TEXT NOT NULL,
  inputs TEXT NOT NULL,
  result TEXT NOT NULL,
  delta TEXT NOT NULL,
  error TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  next_action TEXT NOT NULL,
  graph_version TEXT NOT NULL,
  committed_ms BIGINT NOT NULL,
  PRIMARY KEY (run_id, sequence_id)
);
CREATE TABLE snapshots (
  run_id TEXT NOT NULL,
  sequence_id BIGINT NOT NULL,
  state TEXT NOT NULL,
  PRIMARY KEY (run_id, sequence_id)
);
)sql",
    // 1 -> 2: owner leases, version pinning, the effect journal, retention by partition.
    R"sql(
ALTER TABLE runs ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN lease_expires_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX runs_by_partition ON runs(partition_key, updated_ms);
CREATE TABLE effects (
  key TEXT PRIMARY KEY,
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  sequence_id BIGINT NOT NULL,
  kind TEXT NOT NULL,
  request TEXT NOT NULL,
  status TEXT NOT NULL,
  outcome TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  completed_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX effects_by_run ON effects(run_id, created_ms);
)sql",
    // 2 -> 3: who started a run, the kernel's audit log (append-only through SQL) and documents.
    R"sql(
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
CREATE TABLE audit (
  seq BIGINT PRIMARY KEY,
  entry TEXT NOT NULL,
  mac TEXT NOT NULL
);
CREATE FUNCTION choir_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
  FOR EACH ROW EXECUTE FUNCTION choir_audit_append_only();
CREATE TABLE documents (
  name TEXT PRIMARY KEY,
  body TEXT NOT NULL,
  version BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL
);
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
  step BIGINT,
  capability TEXT NOT NULL,
  argument TEXT NOT NULL,
  arguments TEXT NOT NULL,
  status TEXT NOT NULL,
  answered_by TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT '',
  created_ms BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL,
  answered_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX consents_by_tenant ON consents(tenant, created_ms DESC);
)sql",
    // 4 -> 5: the inputs a run's first step was started with (and on SQLite the step log).
    "ALTER TABLE runs ADD COLUMN start_inputs TEXT NOT NULL DEFAULT '{}'",
    // 5 -> 6: a tenant's runs, newest first, without reading everyone's (`list_runs`).
    "CREATE INDEX runs_by_tenant ON runs(tenant, created_ms, run_id)",
    // 6 -> 7: on SQLite the step log's rows become slots written over in place; nothing changes
    // here (PostgreSQL writes a batch's steps as rows of `steps`).
    "SELECT 1",
};
constexpr std::int64_t schema_version = std::size(migrations);
/// Serializes schema creation and migration between processes (`pg_advisory_xact_lock`).
constexpr const char* schema_lock = "SELECT pg_advisory_xact_lock(1128812370)";  // "CHOR"

struct result_deleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using pg_result = std::unique_ptr<PGresult, result_deleter>;

/// A query's outcome: rows, or an error with its SQLSTATE.
struct reply {
  pg_result res;
  std::string sqlstate;
  std::string message;

  [[nodiscard]] bool ok() const { return message.empty(); }
  [[nodiscard]] int rows() const { return res ? PQntuples(res.get()) : 0; }
  [[nodiscard]] std::string text(int row, int col) const {
    return std::string(PQgetvalue(res.get(), row, col), static_cast<std::size_t>(PQgetlength(res.get(), row, col)));
  }
  [[nodiscard]] std::int64_t integer(int row, int col) const { return std::stoll(text(row, col)); }
  [[nodiscard]] bool is_null(int row, int col) const { return PQgetisnull(res.get(), row, col) != 0; }
  [[nodiscard]] int affected() const {
    const char* n = res ? PQcmdTuples(res.get()) : "";
    return *n != '\0' ? std::atoi(n) : 0;
  }
};

/// Query parameters, all sent as text (NULL for a missing optional).
class params {
 public:
  params& add(std::string v) {
    values_.push_back(std::move(v));
    nulls_.push_back(false);
    return *this;
  }
  params& add(std::string_view v) { return add(std::string(v)); }
  params& add(const char* v) { return add(std::string(v)); }
  params& add(std::int64_t v) { return add(std::to_string(v)); }
  params& add_null() {
    values_.emplace_back();
    nulls_.push_back(true);
    return *this;
  }
  [[nodiscard]] int size() const { return static_cast<int>(values_.size()); }
  [[nodiscard]] std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (std::size_t i = 0; i < values_.size(); ++i) out.push_back(nulls_[i] ? nullptr : values_[i].c_str());
    return out;
  }

 private:
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
};

/// A PostgreSQL array literal of text values: `{"a","b"}`.
std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

class pg_store final : public event_store {
 public:
  pg_store(PGconn* conn, store_options options, const clock& time)
      : conn_(conn), options_(std::move(options)), clock_(&time) {
    if (options_.owner.empty()) options_.owner = default_owner();
  }
  ~pg_store() override { PQfinish(conn_); }

  std::string_view backend() const override { return "postgresql"; }
  const std::string& owner() const override { return options_.owner; }

  /// Runs a statement (prepared once per connection when `prepare` is set).
  reply run(const std::string& sql, const params& p = {}, bool prepare = true) {
    const auto values = p.pointers();
    PGresult* raw = nullptr;
    if (prepare) {
      auto it = prepared_.find(sql);
      if (it == prepared_.end()) {
        const std::string name = "choir_" + std::to_string(prepared_.size());
        pg_result made(PQprepare(conn_, name.c_str(), sql.c_str(), p.size(), nullptr));
        if (PQresultStatus(made.get()) != PGRES_COMMAND_OK) return failure(made.get());
        it = prepared_.emplace(sql, name).first;
      }
      raw = PQexecPrepared(conn_, it->second.c_str(), p.size(), values.data(), nullptr, nullptr, 0);
    } else if (p.size() == 0) {
      raw = PQexec(conn_, sql.c_str());
    } else {
      raw = PQexecParams(conn_, sql.c_str(), p.size(), nullptr, values.data(), nullptr, nullptr, 0);
    }
    const auto status = PQresultStatus(raw);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      reply r = failure(raw);
      PQclear(raw);
      return r;
    }
    return reply{pg_result(raw), {}, {}};
  }

  result<void> exec(const std::string& sql, const std::string& what) {
    reply r = run(sql, {}, /*prepare=*/false);
    if (!r.ok()) return make_error(store_errc::io_error, what + ": " + r.message);
    return {};
  }

  result<void> put_graph(const graph_record& g) override {
    reply r =
        run("INSERT INTO graphs(version, name, source, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            params().add(g.version).add(g.name).add(g.source).add(clock_->unix_ms()));
    if (!r.ok()) return io("storing graph " + g.version, r);
    return {};
  }

  result<graph_record> get_graph(std::string_view version) override {
    reply r = run("SELECT version, name, source FROM graphs WHERE version = $1", params().add(version));
    if (!r.ok()) return io("reading graph", r);
    if (r.rows() == 0) {
      return make_error(store_errc::corrupt, "graph version " + std::string(version) + " is not stored");
    }
    return graph_record{r.text(0, 0), r.text(0, 1), r.text(0, 2)};
  }

  result<void> create_run(const run_record& run_rec, const graph::state& initial, std::int64_t start_after) override {
    CHOIR_CHECK(exec("BEGIN", "creating run"));
    auto done = [&]() -> result<void> {
      const std::int64_t now = clock_->unix_ms();
      params p;
      p.add(run_rec.run_id).add(run_rec.partition_key).add(run_rec.agent).add(run_rec.graph_version);
      if (run_rec.parent_run.empty()) {
        p.add_null();
      } else {
        p.add(run_rec.parent_run);
      }
      if (run_rec.parent_step) {
        p.add(*run_rec.parent_step);
      } else {
        p.add_null();
      }
      p.add(run_rec.status).add(run_rec.next_action).add(start_after).add(now).add(now);
      p.add(static_cast<std::int64_t>(run_rec.pinned ? 1 : 0)).add(run_rec.owner).add(run_rec.lease_expires_ms);
      p.add(run_rec.tenant).add(run_rec.user).add(run_rec.start_inputs);
      reply r =
          run("INSERT INTO runs(run_id, partition_key, agent, graph_version, parent_run, parent_step, status, "
              "start_action, start_after, created_ms, updated_ms, pinned, owner, lease_expires_ms, tenant, user_name, "
              "start_inputs) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
              p);
      if (r.sqlstate == "23503") {
        return make_error(store_errc::invalid_argument, "graph version " + run_rec.graph_version + " is not stored");
      }
      if (r.sqlstate == "23505")
        return make_error(store_errc::duplicate_run, "run " + run_rec.run_id + " already exists");
      if (!r.ok()) return io("creating run " + run_rec.run_id, r);
      return write_snapshots({{run_rec.run_id, start_after, dump_json(initial.to_json())}});
    }();
    return finish_transaction(std::move(done));
  }

  std::vector<result<void>> append_steps(std::span<const step_write> batch) override {
    std::vector<result<void>> out(batch.size());
    if (batch.empty()) return out;
    fault("step.begin");
    const std::int64_t now = clock_->unix_ms();
    // Snapshot counters as of before this batch (one query per run, the first time only).
    for (const auto& w : batch) {
      if (auto loaded = load_counters(w.run_id); !loaded.ok()) {
        out.assign(batch.size(), loaded);
        return out;
      }
    }
    // One statement checks every run's lease (locking the runs until the commit, so a lease
    // cannot change under it) and inserts the steps that may be written; the rows it returns are
    // the steps it committed. BEGIN travels in the same round trip.
    // Each column travels as one array, so that one prepared statement serves every batch size.
    // A step with a malformed JSON column is refused on its own, as in every store.
    std::vector<char> malformed(batch.size(), 0);
    std::vector<std::string> cols[9];
    std::string seqs = "{";
    std::string attempts = "{";
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& w = batch[i];
      if (auto checked = detail::check_step_columns(w); !checked.ok()) {
        out[i] = std::move(checked);
        malformed[i] = 1;
        continue;
      }
      cols[0].push_back(w.run_id);
      cols[1].push_back(w.action);
      cols[2].push_back(w.failed ? "failed" : "completed");
      cols[3].push_back(w.inputs);
      cols[4].push_back(w.result);
      cols[5].push_back(w.delta);
      cols[6].push_back(w.error);
      cols[7].push_back(w.next_action);
      cols[8].push_back(w.graph_version);
      seqs += (seqs.size() == 1 ? "" : ",") + std::to_string(w.sequence_id);
      attempts += (attempts.size() == 1 ? "" : ",") + std::to_string(w.attempts);
    }
    params p;
    p.add(text_array(cols[0])).add(seqs + "}").add(text_array(cols[1])).add(text_array(cols[2]));
    p.add(text_array(cols[3])).add(text_array(cols[4])).add(text_array(cols[5])).add(text_array(cols[6]));
    p.add(attempts + "}").add(text_array(cols[7])).add(text_array(cols[8])).add(now).add(options_.owner);
    const std::string sql = insert_steps_sql;
    auto replies = pipeline({{"BEGIN", params()}, {sql, p}}, /*prepare_last=*/true);
    // A failed write rolls the batch back: every step not refused on its own gets the error.
    auto abort = [&](const error& e) {
      (void)exec("ROLLBACK", "rolling back");
      counters_.clear();
      for (auto& r : out) {
        if (r.ok()) r = e;
      }
      return out;
    };
    if (!replies[0].ok()) return abort(io("committing steps", replies[0]));
    if (!replies[1].ok()) return abort(io("committing steps", replies[1]));
    // The steps it wrote; each is claimed by the first batch entry with its key, so a second entry
    // for the same step in this batch is a duplicate.
    std::unordered_set<std::string> committed;
    for (int i = 0; i < replies[1].rows(); ++i) {
      committed.insert(replies[1].text(i, 0) + "#" + replies[1].text(i, 1));
    }
    std::vector<char> wrote(batch.size(), 0);
    std::vector<std::string> refused_runs;
    std::vector<std::string> refused_keys;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& w = batch[i];
      if (malformed[i] != 0) continue;
      const std::string key = w.run_id + "#" + std::to_string(w.sequence_id);
      if (committed.erase(key) == 1) {
        wrote[i] = 1;
      } else {
        refused_runs.push_back(w.run_id);
        refused_keys.push_back(key);
      }
    }
    // Why the others were refused (rare: a second read, only then): whether the step exists, and
    // who holds the run.
    std::unordered_map<std::string, std::pair<std::string, std::int64_t>> holders;
    std::unordered_set<std::string> existing;
    if (!refused_runs.empty()) {
      reply leases = run("SELECT run_id, owner, lease_expires_ms FROM runs WHERE run_id = ANY($1::text[])",
                         params().add(text_array(refused_runs)));
      if (!leases.ok()) return abort(io("committing steps", leases));
      for (int i = 0; i < leases.rows(); ++i) holders[leases.text(i, 0)] = {leases.text(i, 1), leases.integer(i, 2)};
      std::string refused_seqs = "{";
      for (std::size_t k = 0; k < refused_keys.size(); ++k) {
        refused_seqs += (k == 0 ? "" : ",") + refused_keys[k].substr(refused_keys[k].rfind('#') + 1);
      }
      reply found =
          run("SELECT s.run_id || '#' || s.sequence_id FROM unnest($1::text[], $2::bigint[]) AS k(run_id, sequence_id) "
              "JOIN steps s ON s.run_id = k.run_id AND s.sequence_id = k.sequence_id",
              params().add(text_array(refused_runs)).add(refused_seqs + "}"));
      if (!found.ok()) return abort(io("committing steps", found));
      for (int i = 0; i < found.rows(); ++i) existing.insert(found.text(i, 0));
    }
    std::vector<snapshot_row> snapshots;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& w = batch[i];
      if (malformed[i] != 0) continue;
      if (wrote[i] == 0) {
        auto h = holders.find(w.run_id);
        if (h == holders.end()) {
          out[i] = make_error(store_errc::run_not_found, "no run " + w.run_id);
        } else if (existing.count(w.run_id + "#" + std::to_string(w.sequence_id)) != 0) {
          out[i] = make_error(store_errc::duplicate_step,
                              "run " + w.run_id + " already has step " + std::to_string(w.sequence_id));
        } else if (!h->second.first.empty() && h->second.first != options_.owner && h->second.second > now) {
          out[i] = detail::leased_error(w.run_id, h->second.first, h->second.second, now);
        } else {
          out[i] = make_error(store_errc::run_leased,
                              "run " + w.run_id + " was leased by another owner while the step was written");
        }
        continue;
      }
      detail::snapshot_counters& counters = counters_[w.run_id];
      counters.delta_bytes_since += static_cast<std::int64_t>(w.delta.size());
      ++counters.steps_since;
      if (counters.due(options_.snapshot_interval)) {
        snapshots.push_back({w.run_id, w.sequence_id, dump_json(w.after.to_json())});
        counters = detail::snapshot_counters{static_cast<std::int64_t>(snapshots.back().state.size()), 0, 0};
      }
    }
    if (std::find(wrote.begin(), wrote.end(), 1) != wrote.end()) fault("step.inserted");
    if (!snapshots.empty()) {
      if (auto written = write_snapshots(snapshots); !written.ok()) return abort(written.err());
      fault("step.snapshot");
    }
    if (auto done = exec("COMMIT", "committing steps"); !done.ok()) return abort(done.err());
    fault("step.committed");
    return out;
  }

  /// Sends `queries` in one round trip (libpq pipeline mode), one reply each; the last one as a
  /// statement prepared once per connection if `prepare_last`. Once one fails, the rest are not
  /// run and report that.
  std::vector<reply> pipeline(const std::vector<std::pair<std::string, params>>& queries, bool prepare_last = false) {
    std::vector<reply> out;
    std::string prepared_name;
    if (prepare_last) {
      const auto& [sql, p] = queries.back();
      auto it = prepared_.find(sql);
      if (it == prepared_.end()) {
        const std::string name = "choir_" + std::to_string(prepared_.size());
        pg_result made(PQprepare(conn_, name.c_str(), sql.c_str(), p.size(), nullptr));
        if (PQresultStatus(made.get()) != PGRES_COMMAND_OK) {
          for (std::size_t i = 0; i < queries.size(); ++i) out.push_back(failure(made.get()));
          return out;
        }
        it = prepared_.emplace(sql, name).first;
      }
      prepared_name = it->second;
    }
    if (PQenterPipelineMode(conn_) != 1) {
      for (const auto& [sql, p] : queries) out.push_back(run(sql, p, &sql == &queries.back().first && prepare_last));
      return out;
    }
    bool sent = true;
    for (std::size_t i = 0; i < queries.size(); ++i) {
      const auto& [sql, p] = queries[i];
      const auto values = p.pointers();
      if (prepare_last && i + 1 == queries.size()) {
        sent = sent &&
               PQsendQueryPrepared(conn_, prepared_name.c_str(), p.size(), values.data(), nullptr, nullptr, 0) == 1;
      } else {
        sent =
            sent && PQsendQueryParams(conn_, sql.c_str(), p.size(), nullptr, values.data(), nullptr, nullptr, 0) == 1;
      }
    }
    sent = sent && PQpipelineSync(conn_) == 1;
    for (std::size_t i = 0; i < queries.size(); ++i) {
      PGresult* raw = sent ? PQgetResult(conn_) : nullptr;
      if (raw == nullptr) {
        out.push_back(failure(nullptr));
        continue;
      }
      const auto status = PQresultStatus(raw);
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        out.push_back(reply{pg_result(raw), {}, {}});
      } else if (status == PGRES_PIPELINE_ABORTED) {
        PQclear(raw);
        reply r;
        r.message = "not run: an earlier statement of its pipeline failed";
        out.push_back(std::move(r));
      } else {
        out.push_back(failure(raw));
        PQclear(raw);
      }
      while (PGresult* rest = PQgetResult(conn_)) PQclear(rest);  // the end of this query's results
    }
    // The sync's own result, then back to ordinary mode.
    while (PGresult* rest = PQgetResult(conn_)) {
      const bool sync = PQresultStatus(rest) == PGRES_PIPELINE_SYNC;
      PQclear(rest);
      if (sync) break;
    }
    PQexitPipelineMode(conn_);
    return out;
  }

  result<void> set_status(std::string_view run_id, std::string_view status) override {
    const std::int64_t now = clock_->unix_ms();
    reply r =
        run("UPDATE runs SET status = $1, updated_ms = $2 WHERE run_id = $3 AND "
            "(owner = '' OR owner = $4 OR lease_expires_ms <= $2)",
            params().add(status).add(now).add(run_id).add(options_.owner));
    if (!r.ok()) return io("updating run status", r);
    if (r.affected() != 1) return detail::why_not_written(*this, run_id, now);
    return {};
  }

  result<void> set_graph_version(std::string_view run_id, std::string_view version) override {
    const std::int64_t now = clock_->unix_ms();
    reply r =
        run("UPDATE runs SET graph_version = $1, updated_ms = $2 WHERE run_id = $3 AND "
            "(owner = '' OR owner = $4 OR lease_expires_ms <= $2)",
            params().add(version).add(now).add(run_id).add(options_.owner));
    if (r.sqlstate == "23503") {
      return make_error(store_errc::invalid_argument, "graph version " + std::string(version) + " is not stored");
    }
    if (!r.ok()) return io("updating the run's graph version", r);
    if (r.affected() != 1) return detail::why_not_written(*this, run_id, now);
    return {};
  }

  result<void> acquire_lease(std::string_view run_id, std::int64_t ttl_ms, std::string_view replacing) override {
    if (ttl_ms <= 0) return make_error(store_errc::invalid_argument, "a lease needs a positive duration");
    const std::int64_t now = clock_->unix_ms();
    reply r =
        run("UPDATE runs SET owner = $1, lease_expires_ms = $2 WHERE run_id = $3 AND "
            "(owner = '' OR owner = $1 OR lease_expires_ms <= $4 OR owner = $5)",
            params()
                .add(options_.owner)
                .add(now + ttl_ms)
                .add(run_id)
                .add(now)
                .add(replacing.empty() ? std::string_view(options_.owner) : replacing));
    if (!r.ok()) return io("taking a lease", r);
    if (r.affected() != 1) return detail::why_not_written(*this, run_id, now);
    return {};
  }

  result<void> renew_lease(std::string_view run_id, std::int64_t ttl_ms) override {
    if (ttl_ms <= 0) return make_error(store_errc::invalid_argument, "a lease needs a positive duration");
    reply r = run("UPDATE runs SET lease_expires_ms = $1 WHERE run_id = $2 AND owner = $3",
                  params().add(clock_->unix_ms() + ttl_ms).add(run_id).add(options_.owner));
    if (!r.ok()) return io("renewing a lease", r);
    if (r.affected() == 1) return {};
    CHOIR_CHECK(get_run(run_id));
    return make_error(store_errc::lease_lost,
                      "the lease on run " + std::string(run_id) + " is no longer " + options_.owner + "'s");
  }

  result<void> release_lease(std::string_view run_id) override {
    reply r = run("UPDATE runs SET owner = '', lease_expires_ms = 0 WHERE run_id = $1 AND owner = $2",
                  params().add(run_id).add(options_.owner));
    if (!r.ok()) return io("releasing a lease", r);
    return {};
  }

  result<run_record> get_run(std::string_view run_id) override {
    reply r = run(run_select("WHERE r.run_id = $1"), params().add(run_id));
    if (!r.ok()) return io("reading run", r);
    if (r.rows() == 0) return make_error(store_errc::run_not_found, "no run " + std::string(run_id));
    return read_run(r, 0);
  }

  result<std::vector<run_record>> list_runs(std::size_t limit, std::optional<run_cursor> before,
                                            const run_filter& filter) override {
    std::string where;
    auto p = params();
    int n = 0;
    const auto add = [&](const std::string& condition) { where += (where.empty() ? "WHERE " : " AND ") + condition; };
    for (const auto& [column, v] : {std::pair{"tenant", &filter.tenant}, std::pair{"agent", &filter.agent},
                                    std::pair{"status", &filter.status}, std::pair{"parent_run", &filter.parent_run}}) {
      if (v->empty()) continue;
      add(std::string("r.") + column + " = $" + std::to_string(++n));
      p.add(*v);
    }
    if (filter.top_level) add("r.parent_run IS NULL");
    if (before) {
      const std::string c = std::to_string(++n);
      const std::string id = std::to_string(++n);
      add("(r.created_ms < $" + c + " OR (r.created_ms = $" + c + " AND r.run_id < $" + id + "))");
      p.add(before->created_ms).add(before->run_id);
    }
    p.add(static_cast<std::int64_t>(limit));
    const std::string tail = where + " ORDER BY r.created_ms DESC, r.run_id DESC LIMIT $" + std::to_string(++n);
    reply r = run(run_select(tail.c_str()), p);
    if (!r.ok()) return io("listing runs", r);
    std::vector<run_record> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_run(r, i));
    return out;
  }

  result<std::vector<step_entry>> steps(std::string_view run_id, std::int64_t from, std::size_t limit) override {
    reply r =
        run("SELECT sequence_id, action, status, inputs, result, delta, error, attempts, next_action, "
            "graph_version, committed_ms FROM steps WHERE run_id = $1 AND sequence_id >= $2 "
            "ORDER BY sequence_id LIMIT $3",
            params().add(run_id).add(from).add(static_cast<std::int64_t>(limit)));
    if (!r.ok()) return io("reading steps", r);
    std::vector<step_entry> out;
    for (int i = 0; i < r.rows(); ++i) {
      step_entry e;
      e.sequence_id = r.integer(i, 0);
      e.action = r.text(i, 1);
      e.status = r.text(i, 2);
      const std::string where = "step " + std::to_string(e.sequence_id) + " of run " + std::string(run_id);
      CHOIR_TRY(e.inputs, detail::parse_column(r.text(i, 3), where + ": inputs"));
      CHOIR_TRY(e.result, detail::parse_column(r.text(i, 4), where + ": result"));
      CHOIR_TRY(e.delta, detail::parse_column(r.text(i, 5), where + ": delta"));
      CHOIR_TRY(e.error, detail::parse_column(r.text(i, 6), where + ": error"));
      e.attempts = static_cast<int>(r.integer(i, 7));
      e.next_action = r.text(i, 8);
      e.graph_version = r.text(i, 9);
      e.committed_ms = r.integer(i, 10);
      out.push_back(std::move(e));
    }
    return out;
  }

  result<graph::state> state_at(std::string_view run_id, std::int64_t sequence_id) override {
    reply snap =
        run("SELECT sequence_id, state FROM snapshots WHERE run_id = $1 AND sequence_id <= $2 "
            "ORDER BY sequence_id DESC LIMIT 1",
            params().add(run_id).add(sequence_id));
    if (!snap.ok()) return io("reading a snapshot", snap);
    if (snap.rows() == 0) {
      CHOIR_CHECK(get_run(run_id));
      return make_error(store_errc::step_not_found,
                        "run " + std::string(run_id) + " has no state at step " + std::to_string(sequence_id));
    }
    const std::int64_t base = snap.integer(0, 0);
    reply deltas =
        run("SELECT sequence_id, delta FROM steps WHERE run_id = $1 AND sequence_id > $2 AND sequence_id <= $3 "
            "ORDER BY sequence_id",
            params().add(run_id).add(base).add(sequence_id));
    if (!deltas.ok()) return io("reading deltas", deltas);
    int row = 0;
    return detail::rebuild_state(run_id, base, snap.text(0, 1), sequence_id,
                                 [&](std::int64_t& seq, std::string& text) -> result<bool> {
                                   if (row >= deltas.rows()) return false;
                                   seq = deltas.integer(row, 0);
                                   text = deltas.text(row, 1);
                                   ++row;
                                   return true;
                                 });
  }

  result<effect_begin> begin_effect(const effect_record& intent) override {
    if (intent.key.empty()) return make_error(store_errc::invalid_argument, "an effect needs an idempotency key");
    // Fenced like a step: only while no other live owner holds the run.
    const std::int64_t now = clock_->unix_ms();
    reply r =
        run("INSERT INTO effects(key, run_id, sequence_id, kind, request, status, outcome, created_ms) "
            "SELECT $1, $2, $3::bigint, $4, $5, 'pending', 'null', $6::bigint WHERE EXISTS (SELECT 1 FROM runs "
            "WHERE run_id = $2 AND (owner = '' OR owner = $7 OR lease_expires_ms <= $6::bigint) FOR SHARE) "
            "ON CONFLICT (key) DO NOTHING RETURNING key",
            params()
                .add(intent.key)
                .add(intent.run_id)
                .add(intent.sequence_id)
                .add(intent.kind)
                .add(dump_json(intent.request))
                .add(now)
                .add(options_.owner));
    if (!r.ok()) return io("journaling an effect's intent", r);
    const bool fresh = r.rows() == 1;
    if (fresh) fault("effect.intent");
    CHOIR_TRY(auto stored, get_effect(intent.key));
    if (!stored) return detail::why_not_written(*this, intent.run_id, now);
    if (!fresh) CHOIR_CHECK(detail::not_leased_by_another(*this, stored->run_id, now));
    return effect_begin{std::move(*stored), fresh};
  }

  result<void> finish_effect(std::string_view key, std::string_view status, const value& outcome) override {
    CHOIR_CHECK(detail::check_outcome_status(status));
    reply r =
        run("UPDATE effects SET status = $1, outcome = $2, completed_ms = $3 WHERE key = $4 AND status = 'pending'",
            params().add(status).add(dump_json(outcome)).add(clock_->unix_ms()).add(key));
    if (!r.ok()) return io("journaling an effect's outcome", r);
    if (r.affected() != 1) {
      CHOIR_TRY(auto stored, get_effect(key));
      if (!stored) return make_error(store_errc::invalid_argument, "no effect " + std::string(key) + " was begun");
      return make_error(store_errc::invalid_argument,
                        "effect " + std::string(key) + " already has an outcome (" + stored->status + ")");
    }
    fault("effect.outcome");
    return {};
  }

  result<std::optional<effect_record>> get_effect(std::string_view key) override {
    reply r = run(std::string(effect_columns) + " WHERE key = $1", params().add(key));
    if (!r.ok()) return io("reading an effect", r);
    if (r.rows() == 0) return std::optional<effect_record>();
    CHOIR_TRY(effect_record e, read_effect(r, 0));
    return std::optional<effect_record>(std::move(e));
  }

  result<std::vector<effect_record>> effects(std::string_view run_id) override {
    reply r = run(std::string(effect_columns) + " WHERE run_id = $1 ORDER BY created_ms, sequence_id, key",
                  params().add(run_id));
    if (!r.ok()) return io("reading effects", r);
    std::vector<effect_record> out;
    for (int i = 0; i < r.rows(); ++i) {
      CHOIR_TRY(effect_record e, read_effect(r, i));
      out.push_back(std::move(e));
    }
    return out;
  }

  result<void> append_audit(std::span<const audit_row> rows) override {
    if (rows.empty()) return {};
    CHOIR_CHECK(exec("BEGIN", "appending to the audit log"));
    auto done = [&]() -> result<void> {
      // One appender at a time across every node sharing the database; the primary key catches
      // any writer that does not take the lock.
      reply locked = run("SELECT pg_advisory_xact_lock(4848571948219137)");
      if (!locked.ok()) return io("appending to the audit log", locked);
      reply last = run("SELECT coalesce(max(seq), 0) FROM audit");
      if (!last.ok()) return io("reading the audit log", last);
      std::int64_t expected = last.integer(0, 0) + 1;
      for (const auto& row : rows) {
        if (row.seq != expected) {
          return make_error(store_errc::conflict, "audit entry " + std::to_string(row.seq) + " is not the next (" +
                                                      std::to_string(expected) + ")");
        }
        ++expected;
      }
      std::vector<std::string> seqs, entries, macs;
      for (const auto& row : rows) {
        seqs.push_back(std::to_string(row.seq));
        entries.push_back(row.entry);
        macs.push_back(row.mac);
      }
      reply r = run("INSERT INTO audit(seq, entry, mac) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])",
                    params().add(text_array(seqs)).add(text_array(entries)).add(text_array(macs)));
      if (r.sqlstate == "23505") return make_error(store_errc::conflict, "another writer appended to the audit log");
      if (!r.ok()) return io("appending to the audit log", r);
      return {};
    }();
    return finish_transaction(std::move(done));
  }

  result<std::optional<audit_row>> last_audit() override {
    reply r = run("SELECT seq, entry, mac FROM audit ORDER BY seq DESC LIMIT 1");
    if (!r.ok()) return io("reading the audit log", r);
    if (r.rows() == 0) return std::optional<audit_row>();
    return std::optional<audit_row>(audit_row{r.integer(0, 0), r.text(0, 1), r.text(0, 2)});
  }

  /// Row `i` of a `SELECT seq, entry, mac FROM audit` answer, as a view into it.
  static audit_view audit_at(const reply& r, int i) {
    const auto text = [&](int col) {
      return std::string_view(PQgetvalue(r.res.get(), i, col),
                              static_cast<std::size_t>(PQgetlength(r.res.get(), i, col)));
    };
    return audit_view{r.integer(i, 0), text(1), text(2)};
  }

  result<void> scan_audit(std::int64_t from, const std::function<bool(const audit_view&)>& visit) override {
    constexpr std::int64_t page = 10'000;
    for (std::int64_t next = from;;) {
      reply r = run("SELECT seq, entry, mac FROM audit WHERE seq >= $1::bigint ORDER BY seq LIMIT $2::bigint",
                    params().add(next).add(page));
      if (!r.ok()) return io("reading the audit log", r);
      for (int i = 0; i < r.rows(); ++i) {
        const audit_view row = audit_at(r, i);
        if (!visit(row)) return {};
        next = row.seq + 1;
      }
      if (r.rows() < page) return {};
    }
  }

  result<void> scan_audit_back(std::int64_t before, const std::function<bool(const audit_view&)>& visit) override {
    constexpr std::int64_t page = 1'000;  // a page of the newest first: callers usually stop early
    for (std::int64_t next = before > 0 ? before : std::numeric_limits<std::int64_t>::max();;) {
      reply r = run("SELECT seq, entry, mac FROM audit WHERE seq < $1::bigint ORDER BY seq DESC LIMIT $2::bigint",
                    params().add(next).add(page));
      if (!r.ok()) return io("reading the audit log", r);
      for (int i = 0; i < r.rows(); ++i) {
        const audit_view row = audit_at(r, i);
        if (!visit(row)) return {};
        next = row.seq;
      }
      if (r.rows() < page) return {};
    }
  }

  static constexpr const char* consent_columns =
      "SELECT id, key, tenant, user_name, agent, run_id, step, capability, argument, arguments, status, answered_by, "
      "reason, created_ms, expires_ms, answered_ms FROM consents";

  static result<consent_record> read_consent(const reply& r, int i) {
    consent_record c;
    c.id = r.text(i, 0);
    c.key = r.text(i, 1);
    c.tenant = r.text(i, 2);
    c.user = r.text(i, 3);
    c.agent = r.text(i, 4);
    c.run_id = r.text(i, 5);
    if (!r.is_null(i, 6)) c.step = r.integer(i, 6);
    c.capability = r.text(i, 7);
    c.argument = r.text(i, 8);
    CHOIR_TRY(c.arguments, detail::parse_column(r.text(i, 9), "consent " + c.id + ": arguments"));
    c.status = r.text(i, 10);
    c.answered_by = r.text(i, 11);
    c.reason = r.text(i, 12);
    c.created_ms = r.integer(i, 13);
    c.expires_ms = r.integer(i, 14);
    c.answered_ms = r.integer(i, 15);
    return c;
  }

  result<consent_record> raise_consent(const consent_record& c) override {
    if (c.id.empty() || c.key.empty())
      return make_error(store_errc::invalid_argument, "a consent request needs an id and a key");
    params p;
    p.add(c.id).add(c.key).add(c.tenant).add(c.user).add(c.agent).add(c.run_id);
    if (c.step) {
      p.add(*c.step);
    } else {
      p.add_null();
    }
    p.add(c.capability).add(c.argument).add(dump_json(c.arguments)).add(c.created_ms).add(c.expires_ms);
    reply r =
        run("INSERT INTO consents(id, key, tenant, user_name, agent, run_id, step, capability, argument, arguments, "
            "status, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, $8, $9, $10, 'pending', "
            "$11::bigint, $12::bigint) ON CONFLICT DO NOTHING",
            p);
    if (!r.ok()) return io("raising a consent request", r);
    CHOIR_TRY(auto stored, get_consent(c.key));
    if (!stored) return make_error(store_errc::conflict, "consent id " + c.id + " is taken");
    return std::move(*stored);
  }

  result<std::optional<consent_record>> get_consent(std::string_view id_or_key) override {
    reply r = run(std::string(consent_columns) + " WHERE id = $1 UNION ALL " + consent_columns +
                      " WHERE key = $1 AND id <> $1 LIMIT 1",
                  params().add(id_or_key));
    if (!r.ok()) return io("reading a consent request", r);
    if (r.rows() == 0) return std::optional<consent_record>();
    CHOIR_TRY(auto c, read_consent(r, 0));
    return std::optional<consent_record>(std::move(c));
  }

  result<std::vector<consent_record>> list_consents(std::string_view tenant, std::string_view status,
                                                    std::size_t limit) override {
    reply r =
        run(std::string(consent_columns) +
                " WHERE tenant = $1 AND ($2 = '' OR status = $2) ORDER BY created_ms DESC, id DESC "
                "LIMIT $3::bigint",
            params().add(tenant).add(status).add(static_cast<std::int64_t>(std::min<std::size_t>(limit, 1'000'000))));
    if (!r.ok()) return io("listing consent requests", r);
    std::vector<consent_record> out;
    for (int i = 0; i < r.rows(); ++i) {
      CHOIR_TRY(auto c, read_consent(r, i));
      out.push_back(std::move(c));
    }
    return out;
  }

  result<consent_record> answer_consent(std::string_view id, std::string_view status, std::string_view by,
                                        std::string_view reason) override {
    CHOIR_CHECK(detail::check_consent_answer(status));
    reply r = run(
        "UPDATE consents SET status = $1, answered_by = $2, reason = $3, answered_ms = $4::bigint WHERE id = $5 AND "
        "status = 'pending'",
        params().add(status).add(by).add(reason).add(clock_->unix_ms()).add(id));
    if (!r.ok()) return io("answering a consent request", r);
    const bool answered = r.affected() == 1;
    CHOIR_TRY(auto stored, get_consent(id));
    return detail::answered_consent(id, answered, std::move(stored));
  }

  result<std::optional<document_record>> get_document(std::string_view name) override {
    reply r = run("SELECT name, body, version, updated_ms FROM documents WHERE name = $1", params().add(name));
    if (!r.ok()) return io("reading a document", r);
    if (r.rows() == 0) return std::optional<document_record>();
    return std::optional<document_record>(
        document_record{r.text(0, 0), r.text(0, 1), r.integer(0, 2), r.integer(0, 3)});
  }

  result<std::int64_t> put_document(std::string_view name, std::string_view body,
                                    std::int64_t expected_version) override {
    const std::int64_t now = clock_->unix_ms();
    reply r = expected_version == 0
                  ? run("INSERT INTO documents(name, body, version, updated_ms) VALUES ($1, $2, 1, $3::bigint) "
                        "ON CONFLICT (name) DO NOTHING",
                        params().add(name).add(body).add(now))
                  : run("UPDATE documents SET body = $1, version = version + 1, updated_ms = $2::bigint "
                        "WHERE name = $3 AND version = $4::bigint",
                        params().add(body).add(now).add(name).add(expected_version));
    if (!r.ok()) return io("writing a document", r);
    if (r.affected() != 1) {
      return make_error(store_errc::conflict, "document " + std::string(name) + " is no longer at version " +
                                                  std::to_string(expected_version) + " (another writer changed it)");
    }
    return expected_version + 1;
  }

  result<prune_report> prune(const retention_policy& policy) override {
    CHOIR_CHECK(detail::check_policy(policy));
    CHOIR_CHECK(exec("BEGIN", "pruning"));
    prune_report report;
    auto done = [&]() -> result<void> {
      params p;
      std::string where = "true";
      if (policy.older_than_ms) {
        p.add(clock_->unix_ms() - *policy.older_than_ms);
        where += " AND updated_ms < $" + std::to_string(p.size()) + "::bigint";
      }
      if (policy.keep_last) {
        p.add(static_cast<std::int64_t>(
            std::min<std::size_t>(*policy.keep_last, std::numeric_limits<std::int64_t>::max())));
        where += " AND rank > $" + std::to_string(p.size()) + "::bigint";
      }
      where = "(" + where + ")";
      if (policy.partition) {
        p.add(*policy.partition);
        where += " AND partition_key = $" + std::to_string(p.size());
      }
      CHOIR_CHECK(
          exec("CREATE TEMP TABLE IF NOT EXISTS pruned(run_id TEXT PRIMARY KEY) ON COMMIT DELETE ROWS", "pruning"));
      p.add(clock_->unix_ms());
      const std::string now_param = "$" + std::to_string(p.size()) + "::bigint";
      reply chosen =
          run("INSERT INTO pruned SELECT run_id FROM (SELECT run_id, updated_ms, partition_key, owner, "
              "lease_expires_ms, row_number() OVER (PARTITION BY partition_key ORDER BY updated_ms DESC, run_id DESC) "
              "AS rank FROM runs WHERE status IN " +
                  std::string(detail::finished_statuses_sql) + ") AS finished WHERE " + where +
                  " AND (owner = '' OR lease_expires_ms <= " + now_param + ")",
              p, /*prepare=*/false);
      if (!chosen.ok()) return io("pruning", chosen);
      // Lock them against writers (who read runs FOR SHARE), then drop any that a writer took or
      // changed meanwhile: a run being resumed is never pruned under it.
      reply locked = run("SELECT 1 FROM runs WHERE run_id IN (SELECT run_id FROM pruned) FOR UPDATE", {}, false);
      if (!locked.ok()) return io("pruning", locked);
      reply recheck = run("DELETE FROM pruned p USING runs r WHERE r.run_id = p.run_id AND (r.status NOT IN " +
                              std::string(detail::finished_statuses_sql) +
                              " OR (r.owner <> '' AND r.lease_expires_ms > $1::bigint))",
                          params().add(clock_->unix_ms()), false);
      if (!recheck.ok()) return io("pruning", recheck);
      reply counted = run("SELECT count(*) FROM pruned", {}, false);
      if (!counted.ok()) return io("pruning", counted);
      report.runs = static_cast<std::size_t>(counted.integer(0, 0));
      auto remove = [&](const char* table, std::size_t& count) -> result<void> {
        reply r = run(std::string("DELETE FROM ") + table + " WHERE run_id IN (SELECT run_id FROM pruned)", {},
                      /*prepare=*/false);
        if (!r.ok()) return io("pruning", r);
        count = static_cast<std::size_t>(r.affected());
        return {};
      };
      std::size_t ignored = 0;
      CHOIR_CHECK(remove("effects", report.effects));
      CHOIR_CHECK(remove("snapshots", report.snapshots));
      CHOIR_CHECK(remove("steps", report.steps));
      return remove("runs", ignored);
    }();
    CHOIR_CHECK(finish_transaction(std::move(done)));
    counters_.clear();
    return report;
  }

 private:
  struct snapshot_row {
    std::string run_id;
    std::int64_t sequence_id;
    std::string state;
  };

  /// Inserts a batch of steps given as column arrays, those of runs whose lease allows it (the
  /// runs are locked until the commit), and returns the steps it committed.
  static constexpr const char* insert_steps_sql =
      "INSERT INTO steps(run_id, sequence_id, action, status, inputs, result, delta, error, attempts, next_action, "
      "graph_version, committed_ms) "
      "SELECT v.run_id, v.sequence_id, v.action, v.status, v.inputs, v.result, v.delta, v.error, v.attempts, "
      "v.next_action, v.graph_version, $12::bigint FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], "
      "$5::text[], $6::text[], $7::text[], $8::text[], $9::integer[], $10::text[], $11::text[]) WITH ORDINALITY "
      "AS v(run_id, sequence_id, action, status, inputs, result, delta, error, attempts, next_action, graph_version, "
      "n) "
      "JOIN runs r ON r.run_id = v.run_id WHERE r.owner = '' OR r.owner = $13 OR r.lease_expires_ms <= $12::bigint "
      "ORDER BY v.run_id, v.sequence_id, v.n FOR SHARE OF r ON CONFLICT DO NOTHING RETURNING run_id, sequence_id";

  static constexpr const char* effect_columns =
      "SELECT key, run_id, sequence_id, kind, request, status, outcome, created_ms, completed_ms FROM effects";

  static result<effect_record> read_effect(const reply& r, int i) {
    effect_record e;
    e.key = r.text(i, 0);
    e.run_id = r.text(i, 1);
    e.sequence_id = r.integer(i, 2);
    e.kind = r.text(i, 3);
    CHOIR_TRY(e.request, detail::parse_column(r.text(i, 4), "effect " + e.key + ": request"));
    e.status = r.text(i, 5);
    CHOIR_TRY(e.outcome, detail::parse_column(r.text(i, 6), "effect " + e.key + ": outcome"));
    e.created_ms = r.integer(i, 7);
    e.completed_ms = r.integer(i, 8);
    return e;
  }

  static std::string run_select(const char* tail) {
    return std::string(
               "SELECT r.run_id, r.partition_key, r.agent, r.graph_version, r.parent_run, r.parent_step, r.status, "
               "COALESCE(s.next_action, r.start_action), s.sequence_id, r.created_ms, "
               "GREATEST(r.updated_ms, COALESCE(s.committed_ms, 0)), r.pinned, r.owner, r.lease_expires_ms, r.tenant, "
               "r.user_name, r.start_inputs FROM runs r LEFT JOIN steps s ON s.run_id = r.run_id AND s.sequence_id = "
               "(SELECT max(sequence_id) FROM steps WHERE run_id = r.run_id) ") +
           tail;
  }
  static run_record read_run(const reply& r, int i) {
    run_record out;
    out.run_id = r.text(i, 0);
    out.partition_key = r.text(i, 1);
    out.agent = r.text(i, 2);
    out.graph_version = r.text(i, 3);
    if (!r.is_null(i, 4)) out.parent_run = r.text(i, 4);
    if (!r.is_null(i, 5)) out.parent_step = r.integer(i, 5);
    out.status = r.text(i, 6);
    out.next_action = r.text(i, 7);
    if (!r.is_null(i, 8)) out.last_sequence = r.integer(i, 8);
    out.created_ms = r.integer(i, 9);
    out.updated_ms = r.integer(i, 10);
    out.pinned = r.integer(i, 11) != 0;
    out.owner = r.text(i, 12);
    out.lease_expires_ms = r.integer(i, 13);
    out.tenant = r.text(i, 14);
    out.user = r.text(i, 15);
    out.start_inputs = r.text(i, 16);
    return out;
  }

  reply failure(const PGresult* res) const {
    reply r;
    const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    r.sqlstate = state != nullptr ? state : "";
    std::string message = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    r.message = message.empty() ? "unknown PostgreSQL error" : message;
    return r;
  }

  static error io(const std::string& what, const reply& r) {
    return make_error(store_errc::io_error, what + ": " + r.message);
  }

  result<void> write_snapshots(const std::vector<snapshot_row>& rows) {
    std::string sql = "INSERT INTO snapshots(run_id, sequence_id, state) VALUES ";
    params p;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const int n = static_cast<int>(i) * 3;
      sql += (i == 0 ? "($" : ", ($") + std::to_string(n + 1) + ", $" + std::to_string(n + 2) + ", $" +
             std::to_string(n + 3) + ")";
      p.add(rows[i].run_id).add(rows[i].sequence_id).add(rows[i].state);
    }
    sql += " ON CONFLICT (run_id, sequence_id) DO UPDATE SET state = EXCLUDED.state";
    reply r = run(sql, p, /*prepare=*/rows.size() == 1);
    if (!r.ok()) return io("writing a snapshot", r);
    for (const auto& row : rows) {
      counters_[row.run_id] = detail::snapshot_counters{static_cast<std::int64_t>(row.state.size()), 0, 0};
    }
    return {};
  }

  /// Reads a run's snapshot counters the first time this process appends to it.
  result<void> load_counters(const std::string& run_id) {
    if (counters_.count(run_id) != 0) return {};
    reply snap =
        run("SELECT sequence_id, length(state) FROM snapshots WHERE run_id = $1 ORDER BY sequence_id DESC LIMIT 1",
            params().add(run_id));
    if (!snap.ok()) return io("reading snapshot counters", snap);
    if (snap.rows() == 0) return {};  // no such run: its steps are refused as run_not_found
    detail::snapshot_counters c{snap.integer(0, 1), 0, 0};
    reply since =
        run("SELECT count(*), COALESCE(sum(length(delta)), 0) FROM steps WHERE run_id = $1 AND sequence_id > $2",
            params().add(run_id).add(snap.integer(0, 0)));
    if (!since.ok()) return io("reading snapshot counters", since);
    c.steps_since = since.integer(0, 0);
    c.delta_bytes_since = since.integer(0, 1);
    counters_[run_id] = c;
    return {};
  }

  void fault(std::string_view point) const {
    if (options_.fault) options_.fault(point);
  }

  result<void> finish_transaction(result<void> outcome) {
    if (!outcome.ok()) {
      (void)exec("ROLLBACK", "rolling back");
      counters_.clear();
      return outcome;
    }
    auto committed = exec("COMMIT", "committing");
    if (!committed.ok()) {
      (void)exec("ROLLBACK", "rolling back");
      counters_.clear();
    }
    return committed;
  }

  PGconn* conn_;
  store_options options_;
  const clock* clock_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name
  std::unordered_map<std::string, detail::snapshot_counters> counters_;
};

void ignore_notice(void* /*arg*/, const char* /*message*/) {}

}  // namespace

result<std::unique_ptr<event_store>> open_pg_store(const std::string& conninfo, const store_options& options,
                                                   const clock& time) {
  if (options.create_schema_version < 0 || options.create_schema_version > schema_version) {
    return make_error(store_errc::invalid_argument,
                      "no schema version " + std::to_string(options.create_schema_version));
  }
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) return make_error(store_errc::open_failed, "PostgreSQL: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    PQfinish(conn);
    return make_error(store_errc::open_failed, "cannot connect to PostgreSQL: " + message);
  }
  PQsetNoticeProcessor(conn, ignore_notice, nullptr);
  auto store = std::make_unique<pg_store>(conn, options, time);
  const std::string where = "PostgreSQL store";

  // Create or migrate the schema under an advisory lock, in one transaction: a refused store is
  // left exactly as it was.
  CHOIR_CHECK(store->exec("BEGIN", where));
  auto ready = [&]() -> result<void> {
    CHOIR_CHECK(store->exec(schema_lock, where));
    reply meta = store->run(
        "SELECT to_regclass('choir_meta') IS NOT NULL, to_regclass('runs') IS NOT NULL OR "
        "to_regclass('graphs') IS NOT NULL OR to_regclass('snapshots') IS NOT NULL OR to_regclass('effects') IS NOT "
        "NULL, to_regclass('steps') IS NOT NULL",
        {}, false);
    if (!meta.ok()) return make_error(store_errc::io_error, where + ": " + meta.message);
    std::int64_t version = 0;
    if (meta.text(0, 0) == "t") {
      reply rows = store->run("SELECT key, value FROM choir_meta", {}, false);
      if (!rows.ok()) return make_error(store_errc::not_a_store, where + ": " + rows.message);
      std::string format;
      for (int i = 0; i < rows.rows(); ++i) {
        if (rows.text(i, 0) == "format") format = rows.text(i, 1);
        if (rows.text(i, 0) == "schema_version") version = std::atoll(rows.text(i, 1).c_str());
      }
      if (format != "choir-event-store") {
        return make_error(store_errc::not_a_store, where + ": not a ChoirOS store (its choir_meta is another's)");
      }
      if (version > schema_version) {
        return make_error(store_errc::newer_schema, where + ": written by a newer ChoirOS (schema " +
                                                        std::to_string(version) + ", this one reads up to " +
                                                        std::to_string(schema_version) + "); nothing was changed");
      }
      if (version < 1) return make_error(store_errc::corrupt, where + ": a ChoirOS store without its schema");
    } else if (meta.text(0, 1) == "t" || meta.text(0, 2) == "t") {
      return make_error(store_errc::not_a_store,
                        where + ": the schema holds tables named like ChoirOS's that ChoirOS did not create");
    }
    const std::int64_t target =
        version == 0 && options.create_schema_version > 0 ? options.create_schema_version : schema_version;
    if (version > 0 && options.create_schema_version > 0) return {};  // tests of migrations: leave it as it is
    for (std::int64_t v = version; v < target; ++v) {
      CHOIR_CHECK(store->exec(migrations[v], where + ": migrating the schema from version " + std::to_string(v)));
    }
    if (version < target) {
      CHOIR_CHECK(store->exec(
          "UPDATE choir_meta SET value = '" + std::to_string(target) + "' WHERE key = 'schema_version'", where));
    }
    return {};
  }();
  if (!ready.ok()) {
    (void)store->exec("ROLLBACK", where);
    return std::move(ready).err();
  }
  CHOIR_CHECK(store->exec("COMMIT", where));
  return std::unique_ptr<event_store>(std::move(store));
}

}  // namespace choir::store
