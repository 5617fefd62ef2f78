#!/usr/bin/env bash
# Set up, then run everything CI checks: lint, format, types and the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k parity
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh dev
# The browser tests drive Debian's Chromium through its WebDriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing chromium and chromium-driver" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q --no-install-recommends chromium chromium-driver >&2; then
    $sudo apt-get update -q >&2
    $sudo apt-get install -y -q --no-install-recommends chromium chromium-driver >&2
  fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
