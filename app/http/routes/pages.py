"""GET /: a page for people who open the service in a browser. Plain HTML and CSS, nothing
loaded from elsewhere, so it works where there is no internet."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.http.dependencies import service_state
from app.http.schemas import error_responses
from app.model.predictor import Predictor

router = APIRouter(tags=["pages"])

_LINKS = (
    ("/docs", "API documentation", "try /predict in the browser"),
    ("/redoc", "API reference", "the same document, for reading"),
    ("/model/report", "Model card", "data, metrics against baselines, plots"),
    ("/model", "Model metadata", "JSON"),
    ("/metrics", "Metrics", "Prometheus"),
    ("/readyz", "Readiness", "200 once every model is loaded"),
    ("/healthz", "Liveness", "200 while the process answers"),
)

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1f2328; background: #f6f8fa; }
main { max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; }
.sub { color: #59636e; margin: 0; }
.card { background: #fff; border: 1px solid #d1d9e0; border-radius: 8px; padding: 1rem 1.25rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e5e9ee; }
th { font-weight: 600; color: #59636e; }
td.num { font-variant-numeric: tabular-nums; }
.primary td { font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dt { color: #59636e; }
dd { margin: 0; }
ul.links { list-style: none; padding: 0; margin: 0; display: grid;
           grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .5rem; }
ul.links a { display: block; padding: .6rem .8rem; background: #fff; border: 1px solid #d1d9e0;
             border-radius: 8px; text-decoration: none; color: #0969da; }
ul.links span { display: block; color: #59636e; font-size: .85rem; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
"""


@router.get("/", response_class=HTMLResponse, responses=error_responses(503))
def landing(request: Request) -> HTMLResponse:
    """Which model and version is served, its test metrics, and where to go next."""
    state = service_state(request)
    predictor = state.require().predictor
    others = {n: s.predictor.version for n, s in state.models.items() if n != predictor.name}
    return HTMLResponse(landing_html(predictor, others))


def landing_html(predictor: Predictor, others: dict[str, int]) -> str:
    meta = predictor.metadata
    name = escape(meta.name)
    facts = {
        "model": f'<span id="model-name">{name}</span>',
        "version": f'<span id="model-version">{meta.version}</span>',
        "runtime": escape(predictor.runtime.name),
        "task": escape(meta.task),
        "target": f"<code>{escape(meta.target)}</code>",
        "features": str(len(meta.features)),
        "trained": f"{meta.created_at:%Y-%m-%d %H:%M} UTC on {escape(meta.data.source)}",
        "rows": f"{meta.rows.train} train, {meta.rows.validation} validation, "
        f"{meta.rows.test} test",
    }
    if others:
        facts["also served"] = ", ".join(
            f"{escape(n)} (version {v})" for n, v in sorted(others.items())
        )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} {meta.version} · tabserve</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>tabserve</h1>
<p class="sub">Serving model <strong>{name}</strong>, version {meta.version}.</p>
<h2>Model</h2>
<div class="card"><dl>{"".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items())}</dl></div>
<h2>Test metrics</h2>
<div class="card">{_metrics_table(predictor)}</div>
<h2>Where next</h2>
<ul class="links">{
        "".join(
            f'<li><a href="{href}">{title}<span>{note}</span></a></li>'
            for href, title, note in _LINKS
        )
    }</ul>
</main>
</body>
</html>
"""


def _metrics_table(predictor: Predictor) -> str:
    """The held-out test metrics next to the trivial and linear baselines' on the same rows."""
    meta = predictor.metadata
    baselines = sorted(meta.baselines)
    head = "".join(f"<th>{escape(b)} baseline</th>" for b in baselines)
    rows = []
    for metric, value in meta.test.metrics.items():
        cells = "".join(
            f'<td class="num">{_number(meta.baselines[b].metrics.get(metric))}</td>'
            for b in baselines
        )
        primary = ' class="primary"' if metric == meta.primary_metric else ""
        rows.append(
            f'<tr{primary}><td>{escape(metric)}</td><td class="num">{_number(value)}</td>'
            f"{cells}</tr>"
        )
    return (
        f"<table><thead><tr><th>metric</th><th>model</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _number(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.4g}"
