#!/usr/bin/env bash
# Train on CSV data several times larger than a memory budget and check that training's peak
# resident memory stays below the budget (the data is streamed, not loaded).
# Usage: scripts/benchmark-streaming.sh [--budget-mb 1536] [--size-factor 3 | --size-mb N] [--shards 8]
#        [--workdir DIR] [--timeout 3600] ... [-- TRAINING ARGS]
# Prints a table; writes benchmarks/results/streaming-latest.json. Exit 0 passed, 1 over the
# budget, 2 could not run.
set -euo pipefail
# The same set-up as the benchmark (venv), then benchmarks.streaming.
exec "$(dirname "$0")/benchmark.sh" streaming "$@"
