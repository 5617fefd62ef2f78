"""The HTML pages: the landing page, and /docs and /redoc with their assets from the service."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from fastapi.testclient import TestClient

from app.http.factory import create_app
from app.http.routes.pages import landing_html
from app.http.schemas import DriftFigures, DriftReport
from app.model.loading import load_predictor
from app.ops.live_cost import LiveCost
from tests.helpers.service import settings_for

# Any reference a browser would follow: src/href attributes and CSS url(...).
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""")


def references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


def test_the_landing_page_shows_the_model_its_metrics_and_links(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<span id="model-name">diabetes</span>' in html
    assert '<span id="model-version">1</span>' in html
    metadata = client.get("/model").json()
    r2 = metadata["test"]["metrics"]["r2"]
    linear = metadata["baselines"]["linear"]["metrics"]["r2"]
    assert re.search(rf'<tr class="primary"><td>r2</td><td class="num">{r2:.4g}</td>', html)
    assert f"{linear:.4g}" in html
    assert "labels (version 1), messy (version 1)" in html  # the other models served
    assert '<h2 id="cost">Cost</h2>' in html
    assert "CPU-seconds per 1,000 predictions" in html or "no predictions in the last" in html
    assert set(references(html)) == {
        "/docs", "/redoc", "/model/report", "/model", "/metrics", "/readyz", "/healthz"
    }  # fmt: skip


def test_the_landing_page_escapes_what_it_shows(model_root: Path) -> None:
    predictor = load_predictor(settings_for(model_root))
    hostile = predictor.metadata.model_copy(update={"target": "<script>alert(1)</script>"})
    live = LiveCost(window_seconds=60).figures()
    figures = DriftFigures(kind="numeric", psi=0.3, js=0.2, status="alert")
    drift = DriftReport(
        model_name="diabetes",
        model_version=1,
        status="alert",
        window_rows=10_000,
        rows=5_000,
        features={"<i>f</i>": figures},
        output=None,
    )
    html = landing_html(
        dataclasses.replace(predictor, metadata=hostile), {"<b>x</b>": 2}, live, drift
    )
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt; (version 2)" in html
    assert "<td>&lt;i&gt;f&lt;/i&gt;</td>" in html


def test_the_landing_page_is_503_until_a_model_is_loaded(model_root: Path) -> None:
    assert TestClient(create_app(settings_for(model_root))).get("/").status_code == 503


def test_docs_and_redoc_load_their_assets_from_the_service(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = references(html)
        assert assets, page
        assert all(a.startswith("/docs-assets/") for a in assets), (page, assets)
        assert "http://" not in html and "https://" not in html, page
        for asset in assets:
            answer = client.get(asset)
            assert answer.status_code == 200, asset
            assert len(answer.content) > 1000, asset
