#!/usr/bin/env bash
# Runs every test of ChoirOS, stage by stage, printing each stage's time:
#   1. ASan+UBSan build (-O1) and every unit, cross-layer and CLI test
#   2. TSan build of the runtime's and store's tests (when those layers exist)
#   3. libFuzzer targets: replay the corpus, then a few seconds of fuzzing each
#   4. benchmarks as a smoke test (tiny iteration counts)
#   5. the API load test at CI size (CHOIR_LOAD_CLIENTS WebSocket clients, default 200)
# The browser tests (headless Chromium against `choir serve`) run with the ASan tests in stage 1.
# The store's conformance suite and benchmarks also run against a throwaway PostgreSQL cluster on
# 127.0.0.1 that this script starts and stops (scripts/pg-throwaway.sh), unless CHOIR_TEST_PG
# already names a database. Without PostgreSQL's server binaries those cases skip.
# Environment for stage 3: CHOIR_FUZZ_SECONDS (default 5: a cap per target) and CHOIR_FUZZ_RUNS
# (default 20000 inputs per target, from a fixed seed so that CI is reproducible; long, randomly
# seeded runs happen locally: `build/fuzz/fuzz/<name>_fuzz -max_total_time=60 <scratch> fuzz/corpus/<name>`).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds="${CHOIR_FUZZ_SECONDS:-5}"
fuzz_runs="${CHOIR_FUZZ_RUNS:-20000}"
start_all=$(date +%s)
stage() { echo; echo "=== $1"; stage_start=$(date +%s); }
stage_done() { echo "=== $1 took $(( $(date +%s) - stage_start ))s"; }

stage "postgresql: a throwaway cluster"
if [ -z "${CHOIR_TEST_PG:-}" ]; then
  if pg_env=$(scripts/pg-throwaway.sh start); then
    eval "$pg_env"
    export CHOIR_REQUIRE_PG=1
    trap 'scripts/pg-throwaway.sh stop "$CHOIR_PG_ROOT"' EXIT
    echo "started: $CHOIR_TEST_PG"
  else
    echo "no PostgreSQL server here: its conformance cases skip"
  fi
else
  export CHOIR_REQUIRE_PG=1
  echo "using CHOIR_TEST_PG"
fi
stage_done "postgresql"

stage "npm: the official SDKs, the desktop and its unit tests, playwright"
if command -v npm >/dev/null && [ -f tests/interop/package-lock.json ]; then
  npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error || echo "npm ci failed: the interop tests will skip"
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error || echo "npm ci failed: the browser tests will skip"
  if [ ! -f web/dist/index.html ]; then
    (npm ci --prefix web --no-audit --no-fund --loglevel=error && npm run build --prefix web --silent) ||
      echo "the web desktop did not build: the browser tests will skip"
  fi
  if [ -d web/node_modules ]; then
    npm test --prefix web --silent   # the desktop's unit tests (vitest)
  fi
else
  echo "no npm here: the interop tests will skip"
fi
stage_done "interop packages"

stage "asan: configure and build"
cmake --preset asan >/dev/null
cmake --build --preset asan
stage_done "asan build"

stage "asan: tests"
ctest --preset asan
stage_done "asan tests"

stage "tsan: runtime, store and MCP tests"
if [ -d choir/runtime ] || [ -d choir/store ]; then
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan
  ctest --preset tsan -L 'runtime|store|mcp'
else
  echo "no runtime or store layer yet: nothing to run under TSan"
fi
stage_done "tsan"

stage "fuzz: replay corpora and fuzz ${fuzz_seconds}s each"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
for target in build/fuzz/fuzz/*_fuzz; do
  name=$(basename "$target" _fuzz)
  corpus="fuzz/corpus/$name"
  scratch=$(mktemp -d)
  # New inputs go to the scratch folder; the committed corpus is only read.
  "$target" -seed=1 -runs="$fuzz_runs" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
    "$scratch" "$corpus" 2>&1 | tail -n 2
  rm -rf "$scratch"
done
stage_done "fuzz"

stage "bench: smoke run"
for bench in build/asan/bench/*_bench; do
  CHOIR_BENCH_SCALE=0.001 "$bench" --benchmark_min_time=0.01 --benchmark_filter='.' >/dev/null
  echo "$(basename "$bench"): ok"
done
stage_done "bench smoke"

stage "load: the API with ${CHOIR_LOAD_CLIENTS:-200} WebSocket clients (CI size; 1000 locally)"
if command -v node >/dev/null && [ -f bench/load/package-lock.json ] &&
   npm ci --prefix bench/load --no-audit --no-fund --loglevel=error; then
  CHOIR_BIN="$PWD/build/asan/apps/choir/choir" WRK_SECONDS=3 bench/load/run.sh "${CHOIR_LOAD_CLIENTS:-200}" 2
else
  echo "no node or npm here: the load test is skipped"
fi
stage_done "load"

echo
echo "all stages passed in $(( $(date +%s) - start_all ))s"
