#!/usr/bin/env bash
# Create .venv and install the project with the given extras; reinstall only when
# pyproject.toml or the extras change. Usage: scripts/setup.sh [EXTRAS], e.g. "train,dev".
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-train}"
python="${PYTHON:-python3}"
venv=.venv
stamp="$venv/.installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e ".[$extras]"
  echo "$want" > "$stamp"
fi
