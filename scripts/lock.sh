#!/usr/bin/env bash
# Refresh the lock files requirements/{serve,train,dev}.txt from pyproject.toml: every package of
# each install set pinned, with the sha256 of every file of that release, so that
# `pip install --require-hashes -r requirements/SET.txt` installs the same thing everywhere.
#   serve  the dependencies alone: the `serve` image
#   train  + the train extra (and savedmodel, which it pulls in): scripts/serve.sh, the `full` image
#   dev    + the dev extra, which holds every other extra: the tests (scripts/setup.sh dev)
# All three also pin pyproject's build-system requirements, so the project itself builds offline
# from the lock (pip install --no-build-isolation). pip's own resolver (pip-tools) picks the
# versions, for the interpreter that runs this script: CPython 3.11 on Linux x86_64, like the
# machines and the python:3.11-slim images. dev is resolved first; serve and train are then
# constrained to dev's pins, so a package has one version in every set.
#
# Usage: scripts/lock.sh [PIP-COMPILE OPTIONS]
#   scripts/lock.sh                              follow pyproject.toml, keep every other pin
#   scripts/lock.sh --upgrade                    move every package to its newest allowed release
#   scripts/lock.sh --upgrade-package fastapi    move one package (repeatable)
# Each lock's header records a digest of pyproject's dependency tables; tests/test_lock.py fails
# until this script is run after they change.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
pip_version=26.3
pip_tools_version=7.6.2

if ! "$python" -c 'import platform, sys; sys.exit(not (sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))'; then
  echo "lock.sh: the locks are resolved for CPython 3.11 on Linux x86_64; $python is not that (set PYTHON)" >&2
  exit 1
fi

# The lock tool, in a venv of its own outside the project.
tools="${XDG_CACHE_HOME:-$HOME/.cache}/tabserve-lock/pip-$pip_version-pip-tools-$pip_tools_version"
if [ ! -x "$tools/bin/pip-compile" ]; then
  rm -rf "$tools"
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet "pip==$pip_version" "pip-tools==$pip_tools_version"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# One input file per set, from pyproject.toml, and the digest of its dependency tables.
# The digest is recomputed by tests/test_lock.py (dependency_digest): change both together.
"$tools/bin/python" - "$work" <<'PY'
import hashlib
import json
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

work = Path(sys.argv[1])
pyproject = tomllib.loads(Path("pyproject.toml").read_text())
project = pyproject["project"]
build = pyproject.get("build-system", {}).get("requires", [])


def normalised(requirements):
    return sorted("".join(text.split()).lower() for text in requirements)


table = {
    "build-system.requires": normalised(build),
    "dependencies": normalised(project.get("dependencies", [])),
    "optional-dependencies": {
        str(canonicalize_name(extra)): normalised(requirements)
        for extra, requirements in project.get("optional-dependencies", {}).items()
    },
    "requires-python": "".join(project.get("requires-python", "").split()),
}
digest = hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()
(work / "digest").write_text(digest + "\n")

own = canonicalize_name(project["name"])
optional = {
    canonicalize_name(extra): requirements
    for extra, requirements in project.get("optional-dependencies", {}).items()
}
for name, extras in {"serve": [], "train": ["train"], "dev": ["dev"]}.items():
    lines = list(project.get("dependencies", []))
    pending, seen = list(extras), []
    while pending:
        extra = canonicalize_name(pending.pop(0))
        if extra in seen:
            continue
        seen.append(extra)
        for text in optional[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == own:
                pending.extend(requirement.extras)
            else:
                lines.append(text)
    lines.extend(build)
    (work / f"{name}.in").write_text("\n".join(lines) + "\n")
    (work / f"{name}.extras").write_text(", ".join(sorted(seen)) or "none")
PY

# pip's configuration files may add indexes or find-links of this machine only: leave them out.
compile() {
  (cd "$work" && PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="scripts/lock.sh" \
    "$tools/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-options "$@")
}

mkdir -p requirements
# The current pins are pip-compile's preferences, so only what pyproject changed moves.
if [ -f requirements/dev.txt ]; then cp requirements/dev.txt "$work/dev.txt"; fi
compile --output-file dev.txt "$@" dev.in
sed -n 's/^\([A-Za-z0-9][^ ]*==[^ ]*\).*/\1/p' "$work/dev.txt" > "$work/pins.txt"
for set in serve train; do
  compile --output-file "$set.txt" --constraint pins.txt "$set.in"
done

digest="$(cat "$work/digest")"
for set in serve train dev; do
  {
    echo "# Lock of the $set set (pyproject.toml's dependencies, extras: $(cat "$work/$set.extras"), and"
    echo "# build-system requirements) for CPython 3.11 on Linux x86_64. Written by scripts/lock.sh: do"
    echo "# not edit. Install with: pip install --require-hashes -r requirements/$set.txt"
    echo "# pyproject-dependencies-sha256: $digest"
    # "via -c pins.txt" (dev's pins) would stand under every package of serve and train: drop it.
    sed -e 's/-r \(serve\|train\|dev\)\.in/pyproject.toml/' -e '/^    #   -c pins\.txt$/d' "$work/$set.txt"
  } > "$work/$set.lock"
done
for set in serve train dev; do
  mv "$work/$set.lock" "requirements/$set.txt"
done

# The test suite's third-party gRPC clients: a set of their own, resolved alone.
cp requirements/grpc-clients.in "$work/grpc-clients.in"
if [ -f requirements/grpc-clients.txt ]; then cp requirements/grpc-clients.txt "$work/"; fi
compile --output-file grpc-clients.txt "$@" grpc-clients.in
mv "$work/grpc-clients.txt" requirements/grpc-clients.txt
echo "lock.sh: wrote requirements/serve.txt, train.txt, dev.txt and grpc-clients.txt" >&2
