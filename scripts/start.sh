#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install what ChoirOS needs, build it and the
# web desktop, run two example agents in the terminal, then start `choir serve` on 127.0.0.1:8080
# with the embedded default: SQLite under ./.choir/, the offline scripted model, the example agents.
# It prints the desktop's URL and, on the first start, the admin token to sign in with (only its
# hash is kept). Ctrl-C stops it. Every kernel decision is in the audit log: choir audit list.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
choir=./build/release/apps/choir/choir
echo
# Deny by default: the examples run under examples/policy.yaml (tenant local, user local).
"$choir" policy show >/dev/null 2>&1 || "$choir" policy apply examples/policy.yaml
echo
"$choir" run examples/orchestrator.yaml --input goal=owls
echo
"$choir" run examples/notes.yaml --input 'request=note: buy milk'
echo
"$choir" audit verify
echo
exec "$choir" serve --listen "${CHOIR_LISTEN:-127.0.0.1:8080}"
