"""Drive the service's Open Inference Protocol v2 gRPC server with a real client, in a process
of its own: `python oip_grpc.py triton|kserve` reads one request as JSON on standard input
and writes what the client saw as JSON; `python oip_grpc.py describe triton|kserve` writes the
client's own v2 message descriptors (field names, numbers, types), for the wire check.

Each client defines the protocol's messages in package `inference` (tritonclient in
grpc_service.proto, kserve in grpc_predict_v2.proto): two of them cannot load in one
process, hence a process per client. It runs in the clients' virtualenv (`.venv-clients`,
from requirements/grpc-clients.txt): kserve pins protobuf, pandas and psutil below the
project's own versions.

Request: {"target": "host:port", "model": "m", "id": "...", "outputs": [names] | null,
          "inputs": [{"name", "datatype", "shape", "data": flat list}]}
Answer:  {"live", "ready", "model_ready", "model_version", "id",
          "outputs": {name: flat list (text for BYTES)}, "metadata": {...} (triton only)}
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np

_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "BYTES": np.object_}


def _array(tensor: dict[str, Any]) -> Any:
    data = tensor["data"]
    if tensor["datatype"] == "BYTES":
        data = [str(v).encode() for v in data]
    return np.array(data, dtype=_NUMPY[tensor["datatype"]]).reshape(tensor["shape"])


def _plain(values: Any) -> list[Any]:
    flat = np.asarray(values).ravel().tolist()
    return [v.decode() if isinstance(v, bytes) else v for v in flat]


def triton(request: dict[str, Any]) -> dict[str, Any]:
    import tritonclient.grpc as client  # raw_input_contents, as Triton's clients send

    with client.InferenceServerClient(request["target"]) as c:
        inputs = []
        for tensor in request["inputs"]:
            given = client.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
            given.set_data_from_numpy(_array(tensor))
            inputs.append(given)
        outputs = [client.InferRequestedOutput(n) for n in request["outputs"] or []] or None
        result = c.infer(request["model"], inputs, outputs=outputs, request_id=request["id"])
        answer = result.get_response(as_json=True)
        return {
            "live": c.is_server_live(),
            "ready": c.is_server_ready(),
            "model_ready": c.is_model_ready(request["model"]),
            "metadata": c.get_model_metadata(request["model"], as_json=True),
            "model_version": answer["model_version"],
            "id": answer.get("id", ""),
            "outputs": {o["name"]: _plain(result.as_numpy(o["name"])) for o in answer["outputs"]},
        }


async def kserve(request: dict[str, Any]) -> dict[str, Any]:
    from kserve import InferenceGRPCClient, InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    async with InferenceGRPCClient(request["target"]) as c:
        inputs = [  # typed `contents`, as KServe's client sends data given as lists
            InferInput(t["name"], t["shape"], t["datatype"], data=list(_array(t).ravel()))
            for t in request["inputs"]
        ]
        outputs = [RequestedOutput(n) for n in request["outputs"] or []] or None
        infer = InferRequest(
            request["model"], inputs, request_id=request["id"], request_outputs=outputs
        )
        result = await c.infer(infer)
        return {
            "live": await c.is_server_live(),
            "ready": await c.is_server_ready(),
            "model_ready": await c.is_model_ready(request["model"]),
            "model_version": result.model_version,
            "id": result.id,
            "outputs": {o.name: _plain(o.as_numpy()) for o in result.outputs},
        }


def describe(client: str) -> dict[str, Any]:
    """Every message of the client's v2 module: {name without package: {field: [number, type,
    label, message type, enum type]}}, types named without package as tests/app/
    test_grpc_clients.py names them."""
    if client == "triton":
        from tritonclient.grpc import service_pb2 as module
    else:
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as module
    found: dict[str, Any] = {}

    def visit(message: Any) -> None:
        name = message.full_name.removeprefix("inference.")
        found[name] = {
            f.name: [f.number, f.type, f.is_repeated, _short(f.message_type), _short(f.enum_type)]
            for f in message.fields
        }
        for nested in message.nested_types:
            visit(nested)

    for message in module.DESCRIPTOR.message_types_by_name.values():
        visit(message)
    return found


def _short(t: Any) -> str | None:
    return None if t is None else t.full_name.removeprefix(t.file.package + ".")


def main() -> None:
    if sys.argv[1] == "describe":
        answer = describe(sys.argv[2])
    else:
        request = json.load(sys.stdin)
        answer = triton(request) if sys.argv[1] == "triton" else asyncio.run(kserve(request))
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
