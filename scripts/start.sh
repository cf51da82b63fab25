#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install what ChoirOS needs, build it, and
# run the example agents, printing each of their steps: a counter, an orchestrator that fans out
# to researcher agents as parallel child runs, and a note taker that thinks through the offline
# scripted model and acts through tools (a file write, a sandboxed shell command). Runs are recorded in .choir/choir.db; every kernel
# decision (the policy change, each admission, each call to another agent, model or tool) in its
# audit log.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
echo
# Deny by default: the examples run under examples/policy.yaml (tenant local, user local).
./build/release/apps/choir/choir policy apply examples/policy.yaml
echo
./build/release/apps/choir/choir run examples/counter.yaml --input n=3
echo
./build/release/apps/choir/choir run examples/orchestrator.yaml --input goal=owls
echo
./build/release/apps/choir/choir run examples/notes.yaml --input 'request=note: buy milk'
echo
./build/release/apps/choir/choir runs list --limit 6
echo
./build/release/apps/choir/choir audit list --limit 6
./build/release/apps/choir/choir audit verify
