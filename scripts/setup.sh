#!/usr/bin/env bash
# Create .venv and install the project with the given extras from the lock files in requirements/
# (every package pinned and hash-checked; scripts/lock.sh refreshes them from pyproject.toml).
# Reinstall only when pyproject.toml, a lock or the extras change.
# Usage: scripts/setup.sh [EXTRAS], e.g. "train" (the default), "dev", or "serve" for the service alone.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-train}"
python="${PYTHON:-python3}"
venv=.venv
stamp="$venv/.installed"

# The smallest lock that holds every extra asked for: serve (none) < train (train, savedmodel) <
# dev (everything: a venv set up for the tests serves and trains as it is).
rank() { case "$1" in serve) echo 0 ;; train) echo 1 ;; dev) echo 2 ;; *) echo -1 ;; esac; }
set=serve
IFS=, read -ra names <<< "$extras"
for name in "${names[@]}"; do
  case "$name" in
    "") continue ;;
    serve) need=serve ;;
    savedmodel | train) need=train ;;
    dev) need=dev ;;
    *)
      echo "setup.sh: no lock in requirements/ holds the extra '$name' (serve, train or dev)" >&2
      exit 2
      ;;
  esac
  if [ "$(rank "$need")" -gt "$(rank "$set")" ]; then set="$need"; fi
done

hash="$(cat pyproject.toml requirements/serve.txt requirements/train.txt requirements/dev.txt \
  | sha256sum | cut -d' ' -f1)"
want="$hash $set"
# A venv that holds a bigger set of the same locks is kept as it is.
if [ -f "$stamp" ]; then
  read -r had_hash had_set < "$stamp" || true
  if [ "${had_hash:-}" = "$hash" ] && [ "$(rank "${had_set:-}")" -ge "$(rank "$set")" ]; then
    want="$hash $had_set"
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if ! "$venv/bin/python" -c 'import platform, sys; sys.exit(not (sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))'; then
    echo "setup.sh: the locks in requirements/ are for CPython 3.11 on Linux x86_64;" \
      "$venv was made by another Python (remove it and set PYTHON)" >&2
    exit 1
  fi
  "$venv/bin/python" -m pip install --quiet --require-hashes -r "requirements/$set.txt"
  # The project itself, built by the locked setuptools (no download of a build backend).
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

# The dev set's pyspark (the Spark engine and its tests) needs a Java runtime (17 or newer).
if [ "$set" = dev ] && ! command -v java >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup.sh: installing a Java runtime (default-jre-headless) for pyspark" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q --no-install-recommends default-jre-headless >&2; then
    $sudo apt-get update -q >&2
    $sudo apt-get install -y -q --no-install-recommends default-jre-headless >&2
  fi
fi

# The dev set's tests also drive the gRPC server with kserve's and tritonclient's own clients,
# whose pins (protobuf, pandas, psutil) are below the project's: a virtualenv of their own.
if [ "$set" = dev ]; then
  clients=.venv-clients
  clients_want="$(sha256sum requirements/grpc-clients.txt | cut -d' ' -f1)"
  if [ ! -f "$clients/.installed" ] || [ "$(cat "$clients/.installed")" != "$clients_want" ]; then
    rm -rf "$clients"
    "$venv/bin/python" -m venv "$clients"
    "$clients/bin/python" -m pip install --quiet --require-hashes -r requirements/grpc-clients.txt
    echo "$clients_want" > "$clients/.installed"
  fi
fi
