#!/usr/bin/env bash
# Regenerate the gRPC messages' Python modules (app/grpc/protos/*_pb2.py and their .pyi type
# stubs) from the .proto files beside them, with the grpcio-tools of the dev install. The
# modules are committed, so that the serving image needs neither grpcio-tools nor TensorFlow;
# tests/app/test_grpc_protos.py fails until this is run after a .proto changes.
#   scripts/protos.sh [OUTPUT-DIR]   (default: app/grpc/protos)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
out="${1:-app/grpc/protos}"
mkdir -p "$out"
"$python" -m grpc_tools.protoc --proto_path=app/grpc/protos \
  --python_out="$out" --pyi_out="$out" \
  app/grpc/protos/oip_v2.proto app/grpc/protos/tf_serving.proto
