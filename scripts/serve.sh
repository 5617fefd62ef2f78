#!/usr/bin/env bash
# Set up, train the default bundle if the model has no version yet, and serve on port 8000.
# Settings come from the environment (see docs/configuration.md), e.g. PORT=9000 scripts/serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh train
.venv/bin/python -m training --if-missing \
  --model-dir "${MODEL_DIR:-models}" --model-name "${MODEL_NAME:-default}" >/dev/null
exec .venv/bin/python -m app
