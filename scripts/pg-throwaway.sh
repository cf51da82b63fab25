#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster on 127.0.0.1 for the tests and benchmarks.
#   eval "$(scripts/pg-throwaway.sh start)"   # exports CHOIR_TEST_PG and CHOIR_PG_ROOT
#   scripts/pg-throwaway.sh stop "$CHOIR_PG_ROOT"
# As root it runs the server as the `postgres` user; as anyone else, as that user.
set -euo pipefail

pgbin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" ]] && { echo "$d"; return 0; }
  done
  echo "pg-throwaway: no PostgreSQL server binaries (apt-get install postgresql)" >&2
  return 1
}

as_server_user() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    bin=$(pgbin)
    root=$(mktemp -d /tmp/choir-pg.XXXXXX)
    port=${CHOIR_PG_PORT:-$((20000 + RANDOM % 20000))}
    if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$root"; fi
    chmod 700 "$root"
    user=$(if [[ $(id -u) -eq 0 ]]; then echo postgres; else id -un; fi)
    as_server_user "$bin/initdb" -D "$root/data" -U "$user" -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
      >"$root/initdb.log" 2>&1 || { cat "$root/initdb.log" >&2; exit 1; }
    as_server_user "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $root -c max_connections=200" start >/dev/null \
      || { cat "$root/server.log" >&2; exit 1; }
    as_server_user "$bin/createdb" -h "$root" -p "$port" -U "$user" choir
    echo "export CHOIR_PG_ROOT=$root"
    echo "export CHOIR_TEST_PG='host=127.0.0.1 port=$port user=$user dbname=choir'"
    ;;
  stop)
    root=${2:?usage: pg-throwaway.sh stop ROOT}
    bin=$(pgbin)
    [[ -d "$root/data" ]] && as_server_user "$bin/pg_ctl" -D "$root/data" -m fast -w stop >/dev/null || true
    rm -rf "$root"
    ;;
  *)
    echo "usage: pg-throwaway.sh start | stop ROOT" >&2
    exit 2
    ;;
esac
