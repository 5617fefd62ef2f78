"""Service settings, read from the environment (and an optional `.env` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RuntimeName = Literal["auto", "savedmodel", "litert", "litert-quantized"]


class Settings(BaseSettings):
    """Every setting has a plain upper-case environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    @model_validator(mode="after")
    def _one_payload_log(self) -> Settings:
        if self.payload_log_dir is not None and self.payload_log_url is not None:
            raise ValueError("set PAYLOAD_LOG_DIR or PAYLOAD_LOG_URL, not both")
        return self

    def pinned_version(self, name: str) -> int | None:
        """The version of model `name` to serve, or None for its newest."""
        return self.model_version if name == self.model_name else self.model_versions.get(name)

    model_dir: Path = Path("models")
    """Root directory holding bundles as `<model_dir>/<name>/<version>/`."""

    model_name: str = Field(default="default", min_length=1)
    """The default model: the one POST /predict answers with. It must exist."""

    model_version: int | None = Field(default=None, ge=1)
    """Pin this version of MODEL_NAME; unset serves the newest version found at start-up."""

    model_versions: dict[str, int] = Field(default_factory=dict)
    """Pins for the other models, as JSON: `{"churn": 3}`. Every model under MODEL_DIR is
    served, each at its newest version unless pinned here."""

    model_runtime: RuntimeName = "auto"
    """`savedmodel` (TensorFlow), `litert` (the bundle's LiteRT flatbuffer, no TensorFlow
    import), `litert-quantized` (its dynamic-range quantised flatbuffer, if trained with
    --quantize), or `auto`: LiteRT when the bundle has a flatbuffer that training measured
    within tolerance of the SavedModel and ai-edge-litert is installed, else the SavedModel."""

    batching: Literal["on", "off"] = "on"
    """Coalesce concurrent small requests into one model call. On LiteRT, the requests read in
    one turn of the event loop are encoded, run, counted for drift and decoded together on
    the loop; on the SavedModel, one worker thread makes the calls. Requests of more than 64
    rows always run alone."""

    batch_max_size: int = Field(default=256, ge=1)
    """Most rows in one batched model call (TF Serving's max_batch_size)."""

    batch_timeout_micros: int = Field(default=500, ge=0)
    """How long rows wait for company while the model is idle (TF Serving's
    batch_timeout_micros); rows that arrive during a call always go in the next one. SavedModel
    only: on LiteRT a call takes microseconds, and nothing waits."""

    max_rows: int = Field(default=10_000, ge=1)
    """Most rows accepted in one prediction request; more is answered with 413."""

    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Largest request body accepted, in bytes; a larger one is answered with 413 before it
    is read in full."""

    request_timeout_seconds: float = Field(default=30.0, gt=0)
    """A request that has not started answering after this long gets 504; the model call
    it was waiting for still finishes in the background."""

    model_poll_seconds: float = Field(default=2.0, ge=0)
    """How often MODEL_DIR is scanned for new, broken or removed versions (TF Serving's
    file_system_poll_wait_seconds); 0 turns watching off."""

    drain_timeout_seconds: float = Field(default=25.0, ge=0)
    """After SIGTERM, how long requests in flight and queued batches get to finish before the
    process exits. Keep it below the orchestrator's grace period (Kubernetes' default: 30 s)."""

    drift: Literal["on", "off"] = "on"
    """Count the rows each served model version predicts into its training data's bins and
    report how far they have drifted (GET /model/drift, /metrics, the landing page)."""

    drift_window_rows: int = Field(default=10_000, ge=100)
    """Rows the drift figures cover: the most recent this many (and up to one call more)."""

    shadow_versions: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    """Shadow scoring, as JSON: `{"default": 3}` also loads version 3 of model `default` and
    scores every request's rows with it off the request's path, comparing its predictions
    with the served ones (GET /model/shadow, /metrics, the landing page). Answers never come
    from a shadow; one that fails to load is reported and skipped."""

    shadow_window_rows: int = Field(default=10_000, ge=100)
    """Rows the shadow figures cover (mean and p99 difference, agreement): the most recent
    this many compared."""

    shadow_queue_rows: int = Field(default=10_000, ge=1)
    """Rows waiting to be shadow-scored at most; a request that would not fit is not
    compared and its rows are counted (tabserve_shadow_dropped_total), never waited for."""

    payload_log_dir: Path | None = None
    """Log every prediction request (its rows as received after validation, and its
    predictions) as gzip-compressed JSON lines into this directory, to retrain on. Unset:
    feature values are written nowhere."""

    payload_log_url: str | None = None
    """Instead of a directory, POST each request and its response to this URL as CloudEvents
    in binary mode, as KServe's inference logger does."""

    payload_log_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """A payload log file is closed and a new one begun past this many bytes of JSON."""

    payload_log_rotate_seconds: float = Field(default=3600.0, gt=0)
    """... or once it is this old."""

    payload_log_queue_rows: int = Field(default=100_000, ge=1)
    """Rows waiting to be logged at most (with their requests); a request that would not fit
    is dropped from the log and counted (tabserve_payload_log_dropped_total), never delayed."""

    cost_per_cpu_hour: float | None = Field(default=None, gt=0)
    """What a CPU-hour costs, in any currency: the live cost per million predictions is then
    shown (landing page, GET /model, /metrics) beside the CPU-seconds. Unset: CPU-seconds only."""

    cost_window_seconds: float = Field(default=60.0, gt=0)
    """The span the live cost figures cover: CPU-seconds per 1,000 predictions over about the
    last this many seconds."""

    api_keys: str = Field(default="", repr=False)
    """Comma-separated API keys. When any is set, prediction and model endpoints need
    `Authorization: Bearer <key>` or `X-API-Key: <key>`; probes and /metrics stay open."""

    api_keys_file: Path | None = None
    """A file with one API key per line (blank lines and `#` comments ignored), read at
    start-up; used with API_KEYS when both are set. Suits a mounted Kubernetes Secret."""

    host: str = "0.0.0.0"  # noqa: S104 (a container's port is reached through all interfaces)
    """Address the server binds to (used by `python -m app`)."""

    port: int = Field(default=8000, ge=1, le=65535)
    """Port the server listens on (used by `python -m app` and the container health check)."""

    grpc_port: int = Field(default=8081, ge=0, le=65535)
    """Port of the gRPC server, in the same process as HTTP and over the same models: the
    Open Inference Protocol v2 (`inference.GRPCInferenceService`), TF Serving's
    `PredictionService` and `ModelService`, and `grpc.health.v1.Health`. 0 turns it off."""

    workers: int = Field(default=1, ge=1)
    """Server processes `python -m app` runs on PORT, each loading every model: 1 is one
    process, as `uvicorn app.main:app` runs; more start a supervisor and that many workers
    sharing the port (Linux, SO_REUSEPORT), with /metrics adding up across them."""

    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    """Log level of the service and of uvicorn."""
