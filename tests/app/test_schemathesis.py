"""The service against its own OpenAPI document, with schemathesis.

The app serves the diabetes model in-process (ASGI; no socket). schemathesis reads GET
/openapi.json, generates requests for every documented operation (the document's examples, its
coverage cases, then `MAX_EXAMPLES` fuzzed cases each, positive and negative) and checks every
response: never a 5xx, and its status code, content type and body are the ones documented.

Deterministic: a fixed seed, Hypothesis derandomised, no example database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.http.factory import create_app
from tests.helpers.service import settings_for

MAX_EXAMPLES = 30
SEED = 20_240_601

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,  # Hypothesis' derandomize
            "database": "none",  # no replay of earlier runs' failures: each run is the same
        },
    }
)

# Exactly these: no 5xx, and the status code, content type and body of every response are
# documented. Every operation of the document is tested; none is excluded, and no Hypothesis
# health check is suppressed (none fires at this size).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(model_root: Path) -> Iterator[schemathesis.BaseSchema]:
    """The live document of an app serving `diabetes` (all models under the root are loaded).

    schemathesis runs the app's lifespan itself (loading the models) on first contact and
    keeps it until `shutdown_lifespans`, which stops the batchers at the end of the module.
    """
    app = create_app(settings_for(model_root))
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    finally:
        shutdown_lifespans()


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32.5's `from_fixture` reads and rewrites `item._nodeid`, which pytest 9.2
    no longer has (AttributeError before any request is made); give the item one."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any],
) -> None:
    case.call_and_validate(checks=CHECKS)
