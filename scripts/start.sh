#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install what ChoirOS needs, build it, and
# run the example agent, printing each of its steps.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
echo
./build/release/apps/choir/choir run examples/counter.yaml --input n=3
