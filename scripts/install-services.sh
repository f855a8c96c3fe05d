#!/usr/bin/env bash
# Installs the system programs the test suite (or, with "bench", the benchmarks) start on loopback.
# Idempotent: each program is installed only when it is missing.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
if [ "${1:-}" = "bench" ]; then
  command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
  command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)  # bench/logging_instructions.py
else
  command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)  # for Azurite, the Azure Blob emulator, and jsii (CDK synthesis)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "missing ${need_apt[*]} and not root: install them with your package manager" >&2
    exit 1
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing ${need_apt[*]} from the Debian archive"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Azurite (Azure Blob emulator for the request-log tests), from npm into .cache/azurite (git-ignored).
# 3.35.0: the newest release that runs on node 20 (3.37 needs node >= 22).
if [ "${1:-}" != "bench" ]; then
  root="$(cd "$(dirname "$0")/.." && pwd)"
  if ! command -v azurite-blob >/dev/null 2>&1 && [ ! -x "$root/.cache/azurite/node_modules/.bin/azurite-blob" ]; then
    echo "installing Azurite 3.35.0 from npm into .cache/azurite"
    mkdir -p "$root/.cache/azurite"
    printf '# Test services installed by scripts/install-services.sh: never committed.\n*\n' > "$root/.cache/.gitignore"
    npm install --prefix "$root/.cache/azurite" --no-audit --no-fund --loglevel=error azurite@3.35.0 >/dev/null
  fi
fi
