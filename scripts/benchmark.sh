#!/usr/bin/env bash
# Benchmark the service against reference servers on this machine (loopback only).
# Usage: scripts/benchmark.sh [--quick] [--servers a,b] [--concurrency 16,64] [--duration N] ...
# Prints a table and the ratios to the targets; writes benchmarks/results/latest.json.
# service-litert is also measured over gRPC (v2 ModelInfer, single-row and --batch-rows-row
# requests at the same concurrencies) with benchmarks/grpc_load.py, a grpc.aio client in its
# own process (ghz is not available here), and the gRPC / REST ratios are printed.
# The targets of the defaults, the request log and shadow scoring come from a side-by-side
# phase after the rounds (benchmarks/paired.py): those servers run at once and short windows
# alternate between them.
# `scripts/benchmark.sh soak [...]` runs the soak instead (scripts/soak.sh).
# `scripts/benchmark.sh streaming [...]` runs the streaming-training benchmark instead
# (scripts/benchmark-streaming.sh; it needs no wrk).
# `scripts/benchmark.sh training [...]` runs the training-cost benchmark instead
# (scripts/benchmark-training.sh; it needs no wrk).
# `scripts/benchmark.sh retrain [...]` runs the retraining benchmark instead: warm start against
# training from scratch on drifted data, and the promotion gate (it needs no wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/setup.sh ]; then
  scripts/setup.sh dev
fi
module=benchmarks.run
if [ "${1:-}" = soak ]; then
  module=benchmarks.soak
  shift
elif [ "${1:-}" = streaming ]; then
  module=benchmarks.streaming
  shift
elif [ "${1:-}" = training ]; then
  module=benchmarks.training
  shift
elif [ "${1:-}" = retrain ]; then
  module=benchmarks.retrain
  shift
fi
if [ "$module" != benchmarks.streaming ] && [ "$module" != benchmarks.training ] \
  && [ "$module" != benchmarks.retrain ] && ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk" >&2
  if ! apt-get install -y wrk >&2; then
    apt-get update >&2
    apt-get install -y wrk >&2
  fi
fi
exec .venv/bin/python -m "$module" "$@"
