#!/usr/bin/env bash
# The API load test (bench/load/ws_load.mjs): CLIENTS concurrent WebSocket clients (default 1000),
# each driving a conversation of MESSAGES messages (default 3), then wrk on a read endpoint.
#   bench/load/run.sh [CLIENTS] [MESSAGES]
# CHOIR_BIN defaults to the release build's choir. Needs node and `npm ci --prefix bench/load`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export CHOIR_BIN="${CHOIR_BIN:-$PWD/build/release/apps/choir/choir}"
export CHOIR_EXAMPLES="${CHOIR_EXAMPLES:-$PWD/examples}"
exec node bench/load/ws_load.mjs "${1:-1000}" "${2:-3}"
