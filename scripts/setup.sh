#!/usr/bin/env bash
# Installs everything ChoirOS needs to build, test and run on Debian 12 (bookworm), as root.
# Idempotent: running it again installs nothing new. Usage: scripts/setup.sh [--with-browser]
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
  bubblewrap   # the sandbox shell.exec runs in
)
if [ "${1:-}" = "--with-browser" ]; then
  packages+=(chromium nodejs npm)
fi

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
