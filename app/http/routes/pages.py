"""GET /: a page for people who open the service in a browser. Plain HTML and CSS, nothing
loaded from elsewhere, so it works where there is no internet."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.http.dependencies import live_cost, service_state
from app.http.routes.drift import drift_report
from app.http.routes.shadow import shadow_report
from app.http.schemas import DriftReport, ShadowReport, error_responses
from app.model.drift import STATUS_LEVEL
from app.model.predictor import Predictor
from app.ops.live_cost import LiveCostFigures

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

_IMPORTANT_FEATURES = 10

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
td.status-warn { color: #9a6700; font-weight: 600; }
td.status-alert { color: #d1242f; font-weight: 600; }
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
    served = state.require()
    predictor = served.predictor
    others = {n: s.predictor.version for n, s in state.models.items() if n != predictor.name}
    drift = drift_report(served)
    shadows = [shadow_report(s) for s in state.models.values() if s.inference.shadow is not None]
    return HTMLResponse(
        landing_html(predictor, others, live_cost(request).figures(), drift, shadows)
    )


def landing_html(
    predictor: Predictor,
    others: dict[str, int],
    live: LiveCostFigures,
    drift: DriftReport,
    shadows: Sequence[ShadowReport] = (),
) -> str:
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
<div class="card">{_facts(facts)}</div>
<h2>Test metrics</h2>
<div class="card">{_metrics_table(predictor)}</div>
<h2 id="drift">Drift</h2>
<div class="card">{_drift_table(drift)}</div>
{_shadow_table(shadows)}<h2 id="cost">Cost</h2>
<div class="card">{_cost_facts(predictor, live)}</div>
{_importance(predictor)}
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


def _cost_facts(predictor: Predictor, live: LiveCostFigures) -> str:
    """Live figures from this process (read anew per page load), then what training measured."""
    per_1000 = live.cpu_seconds_per_1000_predictions
    now = (
        f"no predictions in the last {live.window_seconds:,.0f} s"
        if per_1000 is None
        else f'<span id="live-cpu-per-1000">{per_1000:.4g}</span> CPU-seconds per 1,000 '
        f"predictions over the last {live.window_seconds:,.0f} s ({live.predictions:,} rows)"
    )
    facts = {"now, in this service": now}
    if live.cost_per_million_predictions is not None:
        facts["now, per million predictions"] = (
            f'<span id="live-cost-per-million">{live.cost_per_million_predictions:.4g}</span> '
            f"at {live.cost_per_cpu_hour:g} per CPU-hour"
        )
    cost = predictor.metadata.cost
    if cost is None:
        facts["training"] = "not recorded (a bundle from before costs were measured)"
        return _facts(facts)
    t = cost.training
    priced = "" if t.price is None else f", costing {t.price:.4g}"
    facts["training"] = (
        f"{t.wall_seconds:,.1f} s wall, {t.cpu_seconds:,.1f} CPU-seconds{priced}, "
        f"peak {t.peak_rss_mb:,.0f} MB on {escape(t.machine.cpu_model)} ({t.machine.cores} cores)"
    )
    facts["storage"] = (
        f"{cost.storage.total_bytes:,} bytes; a LiteRT-only service reads "
        f"{cost.storage.litert_serving_bytes:,}"
    )
    for name, r in cost.serving.items():
        facts[f"model call, {escape(name)}"] = (
            f"{r.microseconds_per_call_1_row:,.0f} &micro;s for 1 row, "
            f"{r.microseconds_per_call_1000_rows:,.0f} &micro;s for 1,000; "
            f"{r.predictions_per_cpu_second:,.0f} predictions per CPU-second"
        )
    return _facts(facts)


def _drift_table(drift: DriftReport) -> str:
    """Each feature's status against the training data, over the rows predicted lately."""
    if drift.status in ("unavailable", "collecting"):
        return f'<p id="drift-status">{escape(drift.status)}: {escape(drift.message or "")}</p>'
    rows = [
        (escape(name), figures)
        for name, figures in sorted(
            drift.features.items(), key=lambda item: -STATUS_LEVEL[item[1].status]
        )
    ]
    if drift.output is not None:
        rows.append(("<em>the model's output</em>", drift.output))
    body = "".join(
        f'<tr><td>{name}</td><td class="status-{f.status}">{f.status}</td>'
        f'<td class="num">{f.psi:.3f}</td><td class="num">{f.js:.3f}</td>'
        f'<td class="num">{_rate(f.missing_rate)}</td>'
        f'<td class="num">{_rate(f.out_of_vocabulary_rate)}</td></tr>'
        for name, f in rows
    )
    return (
        f'<p id="drift-status">{drift.status} over the last {drift.rows:,} rows predicted '
        "(PSI: population stability index; JS: Jensen-Shannon distance)</p>"
        "<table><thead><tr><th>feature</th><th>status</th><th>PSI</th><th>JS</th>"
        f"<th>missing</th><th>other category</th></tr></thead><tbody>{body}</tbody></table>"
    )


def _shadow_table(shadows: Sequence[ShadowReport]) -> str:
    """Each shadow version against the version served, over the rows both scored lately."""
    if not shadows:
        return ""
    rows = []
    for s in shadows:
        versions = (
            f'<td>{escape(s.model_name)}</td><td class="num">{s.model_version}</td>'
            f'<td class="num">{s.shadow_version}</td>'
        )
        if s.status == "unavailable":
            rows.append(
                f'<tr>{versions}<td class="status-alert">unavailable</td>'
                f'<td colspan="5">{escape(s.error or "")}</td></tr>'
            )
            continue
        latency = (
            "&ndash;"
            if s.latency is None
            else f"{s.latency.p50_seconds * 1e3:.2g} / {s.latency.p99_seconds * 1e3:.2g} ms"
        )
        rows.append(
            f'<tr>{versions}<td>{s.status}</td><td class="num">{s.rows:,}</td>'
            f'<td class="num">{_number(s.mean_abs)}</td><td class="num">{_number(s.p99_abs)}</td>'
            f'<td class="num">{_rate(s.agreement)}</td><td class="num">{latency}</td></tr>'
        )
    return (
        '<h2 id="shadow">Shadow scoring</h2><div class="card"><p>Each shadow version scores '
        "the rows its model answers, off the request's path; answers come from the served "
        "version. Differences are over the last rows both scored, in the target's units (for "
        "a classifier, between the probabilities).</p><table><thead><tr><th>model</th>"
        "<th>served</th><th>shadow</th><th>status</th><th>rows compared</th>"
        "<th>mean |difference|</th><th>p99 |difference|</th><th>agreement</th>"
        "<th>shadow call p50 / p99</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>\n"
    )


def _rate(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.1%}"


def _importance(predictor: Predictor) -> str:
    importance = predictor.metadata.feature_importance
    if importance is None:
        return ""
    rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="num">{s.mean:.4g}</td>'
        f'<td class="num">{s.std:.2g}</td></tr>'
        for name, s in list(importance.features.items())[:_IMPORTANT_FEATURES]
    )
    return (
        '<h2 id="importance">Features the model uses most</h2><div class="card">'
        f"<table><thead><tr><th>feature</th><th>drop in test {escape(importance.metric)} when "
        f"shuffled</th><th>std</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _facts(facts: dict[str, str]) -> str:
    return f"<dl>{''.join(f'<dt>{k}</dt><dd>{v}</dd>' for k, v in facts.items())}</dl>"


def _number(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.4g}"
