#!/usr/bin/env bash
# What a training run costs: `python -m training` (default flags, and batch 32 for a bounded
# number of epochs) next to plain Keras (batch 32 and 1024) and HistGradientBoostingRegressor,
# each as a process of its own on the same generated CSV: wall and CPU seconds, peak RSS,
# training rows/s per epoch, test R2; the project's default run is held to targets against
# Keras at batch 1024.
# Usage: scripts/benchmark-training.sh [--rows 1000000] [--contenders a,b] [--batch32-epochs 2]
#        [--timeout 1800] [--workdir DIR] [--keep] ... [-- TRAINING ARGS]
# Prints a table; writes benchmarks/results/training-latest.json. Exit 0 every target passed,
# 1 some target failed, 2 could not run.
set -euo pipefail
# The same set-up as the benchmark (venv), then benchmarks.training.
exec "$(dirname "$0")/benchmark.sh" training "$@"
