#!/usr/bin/env bash
# Soak the service on loopback: one server under steady load for a bounded time and request
# count, watching errors, latency and resident memory.
# Usage: scripts/soak.sh [--duration 60] [--max-requests N] [--concurrency 64] [--rows 1] [--mix] ...
# Prints a table; writes benchmarks/results/soak-latest.json. Exit 0 passed, 1 failed, 2 could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/setup.sh ]; then
  scripts/setup.sh dev
fi
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk" >&2
  if ! apt-get install -y wrk >&2; then
    apt-get update >&2
    apt-get install -y wrk >&2
  fi
fi
exec .venv/bin/python -m benchmarks.soak "$@"
