#!/usr/bin/env bash
# Soak the service on loopback: one server under steady load for a bounded time and request
# count, watching errors, latency and resident memory.
# Usage: scripts/soak.sh [--duration 60] [--max-requests N] [--concurrency 64] [--rows 1] [--mix] ...
# Prints a table; writes benchmarks/results/soak-latest.json. Exit 0 passed, 1 failed, 2 could not run.
set -euo pipefail
# The same set-up as the benchmark (venv, wrk), then benchmarks.soak.
exec "$(dirname "$0")/benchmark.sh" soak "$@"
