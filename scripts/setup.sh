#!/usr/bin/env bash
# Installs everything ChoirOS needs to build, test and run on Debian 12 (bookworm), as root.
# Idempotent: running it again installs nothing new; it also builds the web desktop (web/dist) when
# Node.js and npm are here. Usage: scripts/setup.sh
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

packages=(
  build-essential cmake ninja-build pkg-config ccache mold git
  clang-14 libclang-rt-14-dev clang-format clang-tidy
  libboost1.81-dev libssl-dev libsqlite3-dev sqlite3 libpq-dev postgresql
  libyaml-cpp-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcaf-dev
  libgit2-dev  # the git.* tools
  bubblewrap   # the sandbox shell.exec runs in
  chromium     # the desktop's browser tests (headless)
  wrk          # the API load test
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup.sh: all Debian packages present"
fi

# The web desktop: `choir serve` serves web/dist; without it, `/` explains how to build it.
cd "$(dirname "$0")/.."
if command -v npm >/dev/null && [ -f web/package-lock.json ]; then
  if [ ! -f web/dist/index.html ] || [ -n "$(find web/src web/index.html web/package-lock.json -newer web/dist/index.html 2>/dev/null | head -1)" ]; then
    echo "setup.sh: building the web desktop"
    (npm ci --prefix web --no-audit --no-fund --loglevel=error && npm run build --prefix web --silent) ||
      echo "setup.sh: the web desktop did not build; choir serve still runs and / says how to build it"
  else
    echo "setup.sh: the web desktop is built"
  fi
else
  echo "setup.sh: no npm here; the web desktop is not built (choir serve still runs)"
fi
