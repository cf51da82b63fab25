#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install what ChoirOS needs, build it, and
# run the example agents, printing each of their steps: a counter, and an orchestrator that fans out
# to researcher agents as parallel child runs. Runs are recorded in .choir/choir.db.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
echo
./build/release/apps/choir/choir run examples/counter.yaml --input n=3
echo
./build/release/apps/choir/choir run examples/orchestrator.yaml --input goal=owls
echo
./build/release/apps/choir/choir runs list --limit 6
