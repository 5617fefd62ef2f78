#!/usr/bin/env bash
# Build the image and bring up the compose stack for real, on a throwaway copy of the repo:
# `train` must write a bundle, `api` must turn healthy and answer /predict. Needs a Docker
# engine with the compose plugin; not part of CI. Prints the image size and the time to healthy.
set -euo pipefail
cd "$(dirname "$0")/.."

project="tabserve-check-$$"
port="${API_PORT:-18000}"
grpc_port="${API_GRPC_PORT:-18081}"
work=$(mktemp -d)
git ls-files -z | xargs -0 cp --parents -t "$work"
cleanup() {
  (cd "$work" && docker compose -p "$project" down -v -t 5 >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
docker compose -p "$project" build
for image in tabserve:serve tabserve:full; do
  echo "image $image: $(docker image inspect "$image" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
done

started=$(date +%s)
API_PORT="$port" API_GRPC_PORT="$grpc_port" docker compose -p "$project" up -d
for _ in $(seq 1 120); do
  status=$(docker inspect --format '{{.State.Health.Status}}' "$(docker compose -p "$project" ps -q api)" 2>/dev/null || true)
  [ "$status" = healthy ] && break
  sleep 2
done
if [ "${status:-}" != healthy ]; then
  docker compose -p "$project" logs
  echo "api did not become healthy" >&2
  exit 1
fi
echo "compose up -> api healthy: $(( $(date +%s) - started )) s"
ls -ln models/default
body='{"instances": [{"age": 0.038, "sex": 0.051, "bmi": 0.062, "bp": 0.022, "s1": -0.044, "s2": -0.035, "s3": -0.043, "s4": -0.003, "s5": 0.020, "s6": null}]}'
curl -fsS -X POST "http://127.0.0.1:$port/predict" -H 'Content-Type: application/json' -d "$body"
echo
docker compose -p "$project" exec -T api id
docker compose -p "$project" exec -T api python -c "import importlib.util as u; print('tensorflow installed in api:', u.find_spec('tensorflow') is not None)"
curl -fsS "http://127.0.0.1:$port/readyz"
echo
curl -fsS "http://127.0.0.1:$port/metrics" | grep '^tabserve_model_info'
# gRPC in the container: grpc.health.v1 (what a Kubernetes gRPC probe asks) and a v2 ModelInfer.
docker compose -p "$project" exec -T api python - <<'PY'
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.grpc.protos import oip_v2_pb2 as pb

with grpc.insecure_channel("127.0.0.1:8081") as channel:
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    print("grpc health:", health_pb2.HealthCheckResponse.ServingStatus.Name(health.status))
    request = pb.ModelInferRequest(model_name="default")
    tensor = request.inputs.add(name="rows", datatype="FP64", shape=[1, 10])
    tensor.contents.fp64_contents.extend([0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, 0.0])
    infer = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    print("grpc ModelInfer:", list(infer(request, timeout=5).outputs[0].contents.fp64_contents))
PY
# The pages, with their assets from the image itself.
curl -fsS "http://127.0.0.1:$port/" | grep -o '<span id="model-name">[^<]*</span>'
curl -fsS -o /dev/null -w 'docs asset: %{http_code} %{size_download} bytes\n' \
  "http://127.0.0.1:$port/docs-assets/swagger-ui-bundle.js"
docker compose -p "$project" exec -T api sh -c 'touch /app/probe 2>&1 || true'  # read-only root
# A new version published into ./models is picked up by the running api (MODEL_POLL_SECONDS):
# version 1 copied as it is to 2, served as 2 (the directory names the version).
cp -a models/default/1 models/default/.partial-2
mv models/default/.partial-2 models/default/2
for _ in $(seq 1 30); do
  curl -fsS "http://127.0.0.1:$port/readyz" | grep -q '"model_version":2' && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/readyz"
echo
curl -fsS "http://127.0.0.1:$port/model" | grep -o '"version":2,.*"trained_as":{[^}]*}' | sed 's/"version":2,.*"trained_as"/version 2, trained_as/'
# SIGTERM drains and exits 0.
container=$(docker compose -p "$project" ps -q api)
docker compose -p "$project" stop -t 30 api
echo "api exit status after stop: $(docker inspect --format '{{.State.ExitCode}}' "$container")"
test "$(docker inspect --format '{{.State.ExitCode}}' "$container")" = 0
