"""The servers compared: our service with each runtime, and the reference servers."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.process import HOST, ServerSpec

LITERT = "service-litert"
SAVEDMODEL = "service-savedmodel"
LITERT_UNBATCHED = "service-litert-unbatched"
LITERT_LOGGED = "service-litert-logged"
LITERT_NODRIFT = "service-litert-nodrift"
LITERT_PAYLOAD = "service-litert-payload"
LITERT_SHADOW = "service-litert-shadow"
SAVEDMODEL_UNBATCHED = "service-savedmodel-unbatched"
NOOP = "fastapi-noop"
RAW = "raw-asgi"
KERAS = "fastapi-keras-predict"
FASTAPI_SAVEDMODEL = "fastapi-savedmodel"

SERVICES = (LITERT, SAVEDMODEL)
"""Our service; the targets hold for the first, with default settings. The first is also
measured over gRPC (`benchmarks/grpc_load.py`), against itself over REST."""
BATCHING = (LITERT_UNBATCHED, SAVEDMODEL_UNBATCHED)
"""Our service with batching off (it is on by default): what does batching buy?"""
DEFAULTS = LITERT_LOGGED
"""Our service with every default setting (access log at LOG_LEVEL=info, drift on, no request
log): the service as deployed, held to its own targets against the FastAPI no-op."""
FEATURES = (LITERT_NODRIFT, LITERT_PAYLOAD, LITERT_SHADOW)
"""`DEFAULTS` with one feature changed: drift off (what drift costs), the request log on to a
local directory (what it costs, and whether it drops entries), a shadow version scoring every
request (what shadow scoring costs)."""
SHADOW_VERSION = 1
"""The version the shadow contender scores with, while every service serves version 2."""
PAYLOAD_LOG_ENV = "PAYLOAD_LOG_DIR"
"""A server whose environment sets this writes the request log; the benchmark reads its
dropped entries from /metrics after the loads."""
ALL = (
    LITERT,
    LITERT_LOGGED,
    *FEATURES,
    SAVEDMODEL,
    *BATCHING,
    NOOP,
    RAW,
    KERAS,
    FASTAPI_SAVEDMODEL,
)
"""Every server, in the order each round runs them."""


def service_spec(
    model_root: Path,
    model_name: str,
    runtime: str,
    *,
    name: str = "",
    description: str = "",
    batching: str = "on",
    log_level: str = "warning",
    env: dict[str, str] | None = None,
    cost_window_s: float | None = None,
    measure_grpc: bool = False,
) -> ServerSpec:
    """Our service, `python -m app`, on loopback with the given runtime and settings.

    Its gRPC server is on (as by default), on a free port rather than 8081, which something
    else may hold. `cost_window_s` sets COST_WINDOW_SECONDS, for a caller that reads its live
    cost figures; `measure_grpc` has the benchmark measure it over gRPC too.
    """
    window = {} if cost_window_s is None else {"COST_WINDOW_SECONDS": f"{cost_window_s:g}"}
    return ServerSpec(
        name=name or f"service-{runtime}",
        description=description or f"python -m app, MODEL_RUNTIME={runtime}",
        args=["-m", "app"],
        env={
            "MODEL_DIR": str(model_root),
            "MODEL_NAME": model_name,
            "MODEL_RUNTIME": runtime,
            "BATCHING": batching,
            "PORT": "{port}",
            "GRPC_PORT": "{grpc_port}",
            "HOST": HOST,
            "LOG_LEVEL": log_level,
            **window,
            **(env or {}),
        },
        cost_window_s=cost_window_s,
        measure_grpc=measure_grpc,
    )


def server_specs(
    model_root: Path, model_name: str, version_dir: Path, cost_window_s: float
) -> dict[str, ServerSpec]:
    """How to start each server on the trained bundle; our service's live cost figures cover
    `cost_window_s` (see benchmarks/cost.py)."""

    def service(
        runtime: str,
        description: str,
        batching: str = "on",
        name: str = "",
        log: str = "warning",
        *,
        env: dict[str, str] | None = None,
        grpc: bool = False,
    ) -> ServerSpec:
        return service_spec(
            model_root,
            model_name,
            runtime,
            name=name,
            description=description,
            batching=batching,
            log_level=log,
            env=env,
            cost_window_s=cost_window_s,
            measure_grpc=grpc,
        )

    def reference(module: str, description: str, *, checks: bool = True) -> ServerSpec:
        return ServerSpec(
            name=module,
            description=description,
            args=[
                "-m",
                "uvicorn",
                f"benchmarks.servers.{module.replace('-', '_')}:app",
                "--host",
                HOST,
                "--port",
                "{port}",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env={"BENCH_VERSION_DIR": str(version_dir)},
            checks_predictions=checks,
        )

    specs = [
        service("litert", "python -m app, MODEL_RUNTIME=litert; also over gRPC", grpc=True),
        service(
            "litert",
            "MODEL_RUNTIME=litert, LOG_LEVEL=info: a JSON access line per request, to a file",
            name=LITERT_LOGGED,
            log="info",
        ),
        service(
            "litert",
            f"{LITERT_LOGGED} with DRIFT=off: what live drift costs",
            name=LITERT_NODRIFT,
            log="info",
            env={"DRIFT": "off"},
        ),
        service(
            "litert",
            f"{LITERT_LOGGED} with {PAYLOAD_LOG_ENV} set: the request log, to a new directory "
            "in the work directory",
            name=LITERT_PAYLOAD,
            log="info",
            env={PAYLOAD_LOG_ENV: "{scratch}"},
        ),
        service(
            "litert",
            f"{LITERT_LOGGED} with SHADOW_VERSIONS naming version {SHADOW_VERSION} while "
            "version 2 is served: what shadow scoring costs",
            name=LITERT_SHADOW,
            log="info",
            # Environment values are format strings ({port}, {scratch}): JSON's braces doubled.
            env={"SHADOW_VERSIONS": _literal(json.dumps({model_name: SHADOW_VERSION}))},
        ),
        service("savedmodel", "python -m app, MODEL_RUNTIME=savedmodel"),
        service("litert", "MODEL_RUNTIME=litert, BATCHING=off", "off", LITERT_UNBATCHED),
        service(
            "savedmodel", "MODEL_RUNTIME=savedmodel, BATCHING=off", "off", SAVEDMODEL_UNBATCHED
        ),
        reference(NOOP, "FastAPI, same request schema, no model (our stack's ceiling)"),
        reference(RAW, "bare ASGI, constant answer (the server's ceiling)", checks=False),
        reference(KERAS, "FastAPI calling Keras model.predict per request"),
        reference(FASTAPI_SAVEDMODEL, "FastAPI calling the SavedModel signature per request"),
    ]
    return {spec.name: spec for spec in specs}


def _literal(value: str) -> str:
    """`value` as a format string that formats to itself."""
    return value.replace("{", "{{").replace("}", "}}")
