#!/usr/bin/env bash
# Create .venv and install the project with the given extras; reinstall only when
# pyproject.toml or the extras change. Usage: scripts/setup.sh [EXTRAS], e.g. "train" or "dev".
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-train}"
python="${PYTHON:-python3}"
venv=.venv
stamp="$venv/.installed"
hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
want="$hash $extras"
# `dev` includes every other extra: a venv set up for the tests serves and trains as it is.
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash dev" ]; then
  want="$hash dev"
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e ".[$extras]"
  echo "$want" > "$stamp"
fi
