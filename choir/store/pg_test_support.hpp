#pragma once
/// For tests and benchmarks that use a real PostgreSQL: the database `CHOIR_TEST_PG` names (a libpq
/// `key=value` string), and fresh schemas in it. `CHOIR_REQUIRE_PG=1` (as in CI) makes a missing
/// database a failure instead of a skip. Header-only; test code only.
#include <libpq-fe.h>

#include <cstdlib>
#include <string>

namespace choir::store::test_support {

/// `CHOIR_TEST_PG`, or empty.
inline std::string test_pg() {
  const char* pg = std::getenv("CHOIR_TEST_PG");
  return pg != nullptr ? std::string(pg) : std::string();
}

/// Whether a missing test database is a failure (`CHOIR_REQUIRE_PG=1`).
inline bool pg_required() {
  const char* require = std::getenv("CHOIR_REQUIRE_PG");
  return require != nullptr && std::string(require) == "1";
}

/// Runs `sql` (several statements allowed) on `conninfo`; false if it fails.
inline bool pg_exec(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  PGresult* r = PQexec(conn, ("SET client_min_messages = warning; " + sql).c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  PQclear(r);
  PQfinish(conn);
  return ok;
}

/// Creates `schema` afresh in the database and returns a connection string that uses it, or empty.
inline std::string fresh_pg_schema(const std::string& conninfo, const std::string& schema) {
  if (!pg_exec(conninfo, "DROP SCHEMA IF EXISTS " + schema + " CASCADE; CREATE SCHEMA " + schema)) return {};
  return conninfo + " options='-csearch_path=" + schema + "'";
}

inline void drop_pg_schema(const std::string& conninfo, const std::string& schema) {
  pg_exec(conninfo, "DROP SCHEMA IF EXISTS " + schema + " CASCADE");
}

}  // namespace choir::store::test_support
