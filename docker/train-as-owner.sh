#!/bin/sh
# Entry point of the compose `train` service. It starts as root only to step down: training
# runs as the owner of the bind-mounted model directory, so the bundles it writes to the
# host's ./models belong to whoever owns that directory. A root-owned directory (one that
# Docker created, or a clone made by root) is handed to the image's unprivileged user first.
set -eu
dir="${MODEL_DIR:-/app/models}"
if [ "$(id -u)" != 0 ]; then
  exec "$@"
fi
uid=$(stat -c %u "$dir")
gid=$(stat -c %g "$dir")
if [ "$uid" = 0 ]; then
  chown app:app "$dir"
  uid=$(id -u app)
  gid=$(id -g app)
fi
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups "$@"
