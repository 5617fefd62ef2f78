"""GET /metrics: the Prometheus exposition of the service's metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.ops.metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    """Requests, latency, rows, batch sizes, model loads and versions, process figures."""
    registry: Metrics = request.app.state.metrics
    return Response(registry.exposition(), media_type=CONTENT_TYPE)
