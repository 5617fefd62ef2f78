"""The report written into each bundle: a self-contained one-page model card, with the plots
(training/plots.py) embedded, and the comparison, lineage and cost lines the command prints."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from app.bundle import MODEL_CARD_FILE, Metadata
from training.plots import IMPORTANCE_FILE
from training.promotion import describe

_MODELS = ("network", "boosting", "linear", "trivial")


def comparison_table(metadata: Metadata) -> str:
    """Test metrics of the network and both baselines, as aligned plain text."""
    rows = [["metric", *_MODELS], *_metric_rows(metadata)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    verdict = "beats" if metadata.beats_linear_baseline else "does NOT beat"
    lines.append(f"the network {verdict} the linear baseline on {metadata.primary_metric}")
    if boosting := boosting_verdict(metadata):
        lines.append(boosting)
    lines.extend(_flatbuffer_lines(metadata))
    lines.extend(lineage_lines(metadata))
    lines.extend(cost_lines(metadata))
    return "\n".join(lines)


def lineage_lines(metadata: Metadata) -> list[str]:
    """Where the weights came from, and the promotion gate's scores, when there were any."""
    lines = []
    if (parent := metadata.parent) is not None:
        lines.append(
            f"warm-started from {parent.name} version {parent.version} (trained on "
            f"{parent.data_source}, sha256 {parent.data_sha256[:16]}...)"
        )
    if metadata.promotion is not None:
        lines.append(f"promotion gate: {describe(metadata.promotion)}")
    return lines


def boosting_verdict(metadata: Metadata) -> str | None:
    """How the network compares with gradient-boosted trees, the model people would pick
    instead for a table, and what each cost to fit."""
    boosting = metadata.baselines.get("boosting")
    if boosting is None:
        return None
    metric = metadata.primary_metric
    ours, theirs = metadata.test.metrics[metric], boosting.metrics[metric]
    if abs(ours - theirs) < 0.0005:
        standing = "scores the same as"
    else:
        standing = "beats" if ours > theirs else "trails"
    fit = metadata.training.get("seconds_fit")
    boosting_fit = metadata.training.get("seconds_fit_boosting")
    rows = metadata.training.get("baseline_rows")
    costs = ""
    if isinstance(fit, float) and isinstance(boosting_fit, float):
        costs = f" (network fit {fit:.1f} s; boosting fit {boosting_fit:.1f} s on {rows:,} rows)"
    return (
        f"the network {standing} gradient boosting on {metric}: {ours:.4f} against "
        f"{theirs:.4f}{costs}"
    )


def _flatbuffer_lines(metadata: Metadata) -> list[str]:
    """What the LiteRT flatbuffers weigh and what quantising changed on the test split."""
    lines = []
    for label, flatbuffer in (
        ("LiteRT", metadata.litert),
        ("quantised", metadata.litert_quantized),
    ):
        if flatbuffer is None:
            continue
        line = (
            f"{label} flatbuffer: {flatbuffer.size_bytes:,} bytes, largest difference from the "
            f"SavedModel {flatbuffer.max_abs_diff:.3g}"
        )
        if flatbuffer.test is not None:
            changes = ", ".join(
                f"{m} {v - metadata.test.metrics[m]:+.4f}"
                for m, v in flatbuffer.test.metrics.items()
            )
            line += f"; test metrics change: {changes}"
        lines.append(line)
    return lines


def cost_lines(metadata: Metadata) -> list[str]:
    """What the model cost to train, what it takes on disk, and what a prediction costs."""
    cost = metadata.cost
    if cost is None:
        return []
    t = cost.training
    lines = [
        f"training cost: {t.wall_seconds:.1f} s wall, {t.cpu_seconds:.1f} CPU-seconds"
        f"{_priced(t.price, cost.cost_per_cpu_hour)}, peak RSS {t.peak_rss_mb:,.0f} MB, on "
        f"{t.machine.cpu_model} ({t.machine.cores} cores)",
        f"storage: {_size(cost.storage.total_bytes)} in all ("
        + ", ".join(f"{name} {_size(b)}" for name, b in cost.storage.files.items())
        + f"); a LiteRT-only service reads {_size(cost.storage.litert_serving_bytes)}",
    ]
    for name, r in cost.serving.items():
        price = "" if r.price_per_million is None else f", {r.price_per_million:.4g} per million"
        lines.append(
            f"serving cost, {name} in-process: {r.microseconds_per_call_1_row:,.0f} us per "
            f"1-row call, {r.microseconds_per_call_1000_rows:,.0f} us per 1,000-row call, "
            f"{r.predictions_per_cpu_second:,.0f} predictions per CPU-second{price}"
        )
    return lines


def _priced(price: float | None, per_hour: float | None) -> str:
    return "" if price is None else f" (costing {price:.4g} at {per_hour:g} per CPU-hour)"


def _size(count: int) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count} B"


def _metric_rows(metadata: Metadata) -> list[list[str]]:
    evaluations = {"network": metadata.test, **metadata.baselines}
    return [
        [m, *(f"{evaluations[name].metrics.get(m, float('nan')):.4f}" for name in _MODELS)]
        for m in metadata.test.metrics
    ]


def _identifiers_note(names: Sequence[str]) -> str:
    if not names:
        return ""
    listed = ", ".join(html.escape(n) for n in names)
    return (
        f'<p class="bad">Every value differs in {listed}, as in an identifier. Such a feature '
        "lets the network memorise rows rather than learn; drop it with --drop unless it "
        "means something.</p>"
    )


def write_card(directory: Path, metadata: Metadata, images: dict[str, bytes]) -> None:
    """The one-page model card, with the plots embedded: it opens from a file or over HTTP."""
    (directory / MODEL_CARD_FILE).write_text(_card(metadata, images), encoding="utf-8")


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
h1 { margin-bottom: 0.1em; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.good { color: #1a7f37; } .bad { color: #b42318; }
figure { display: inline-block; margin: 0 1em 1em 0; } img { max-width: 100%; }
"""


def _card(metadata: Metadata, images: dict[str, bytes]) -> str:
    e = html.escape
    data = metadata.data
    verdict_class = "good" if metadata.beats_linear_baseline else "bad"
    verdict = "beats" if metadata.beats_linear_baseline else "does not beat"
    columns = "".join(
        f"<tr><td>{e(name)}</td><td>{c.kind}</td><td>{c.missing}</td>"
        f"<td>{'&ge;' if c.distinct_capped else ''}{c.distinct}</td></tr>"
        for name, c in data.columns.items()
    )
    dropped = "".join(
        f"<tr><td>{e(name)}</td><td>{e(reason)}</td></tr>"
        for name, reason in data.dropped_columns.items()
    )
    figures = "".join(_figure(name, png) for name, png in images.items() if name != IMPORTANCE_FILE)
    cv = ""
    if metadata.cross_validation:
        cv = "<h2>Cross-validation</h2>" + _table(
            ["metric", "mean", "std"],
            [[m, f"{s.mean:.4f}", f"{s.std:.4f}"] for m, s in metadata.cross_validation.items()],
        )
    classes = (
        f" &middot; classes: {e(', '.join(map(str, metadata.classes)))}" if metadata.classes else ""
    )
    versus = boosting_verdict(metadata)
    boosting = f"<p>{e(versus[0].upper() + versus[1:])}.</p>" if versus else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model card: {e(metadata.name)} v{metadata.version}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{e(metadata.name)} &middot; version {metadata.version}</h1>
<p class="sub">{metadata.task} of <b>{e(metadata.target)}</b>{classes} &middot;
created {metadata.created_at:%Y-%m-%d %H:%M} UTC &middot;
TensorFlow {e(metadata.tensorflow_version)}, Keras {e(metadata.keras_version)}</p>
<h2>Test metrics against baselines</h2>
<p class="{verdict_class}">The network {verdict} the linear baseline on
{e(metadata.primary_metric)}.</p>
{boosting}
{_table(["metric", *_MODELS], _metric_rows(metadata))}
{cv}
{"".join(f"<p>{e(line)}.</p>" for line in _flatbuffer_lines(metadata))}
<h2>Plots</h2>
{figures}
{_lineage_section(metadata)}
{_importance_section(metadata, images.get(IMPORTANCE_FILE))}
{_cost_section(metadata)}
<h2>Data</h2>
<p>{e(data.source)} (sha256 {e(data.sha256[:16])}&hellip;): {data.rows_read} rows read,
{data.dropped_missing_target} dropped for a missing target; {metadata.rows.train} train,
{metadata.rows.validation} validation, {metadata.rows.test} test rows.</p>
{_table(["feature", "kind", "missing", "distinct"], None, columns)}
{"<h3>Dropped columns</h3>" + _table(["column", "reason"], None, dropped) if dropped else ""}
{_identifiers_note(data.identifiers)}
<h2>Training</h2>
{_table(["parameter", "value"], [[k, str(v)] for k, v in metadata.training.items()])}
</body></html>
"""


def _figure(name: str, png: bytes) -> str:
    return (
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"></figure>'
    )


def _lineage_section(metadata: Metadata) -> str:
    lines = lineage_lines(metadata)
    if not lines:
        return ""
    return '<h2 id="lineage">Lineage</h2>' + "".join(
        f"<p>{html.escape(line[0].upper() + line[1:])}.</p>" for line in lines
    )


def _importance_section(metadata: Metadata, png: bytes | None) -> str:
    importance = metadata.feature_importance
    if importance is None:
        return ""
    rows = [[name, f"{s.mean:.4f}", f"{s.std:.4f}"] for name, s in importance.features.items()]
    return (
        '<h2 id="importance">Which features the model uses</h2>'
        f"<p>Permutation importance: the drop in test {html.escape(importance.metric)} when one "
        f"feature's column is shuffled across {importance.rows:,} test rows, "
        f"{importance.repeats} times, scored through the {html.escape(importance.runtime)} "
        "runtime. Near zero: the model does not use the feature.</p>"
        + (_figure(IMPORTANCE_FILE, png) if png is not None else "")
        + _table(["feature", "mean drop", "std"], rows)
    )


def _cost_section(metadata: Metadata) -> str:
    cost = metadata.cost
    if cost is None:
        return ""
    t, per_hour = cost.training, cost.cost_per_cpu_hour
    priced = per_hour is not None
    training = [
        ["wall seconds", f"{t.wall_seconds:,.1f}"],
        ["CPU-seconds (every thread)", f"{t.cpu_seconds:,.1f}"],
        ["peak resident memory", f"{t.peak_rss_mb:,.0f} MB"],
        ["training rows per second (median epoch)", f"{t.train_rows_per_second or 0:,.0f}"],
        ["machine", f"{t.machine.cpu_model}, {t.machine.cores} cores"],
    ]
    if t.price is not None:
        training.append([f"cost at {per_hour:g} per CPU-hour", f"{t.price:.4g}"])
    phases = [
        [name, f"{p.wall_seconds:,.2f}", f"{p.cpu_seconds:,.2f}"] for name, p in t.phases.items()
    ]
    storage = [[name, f"{b:,}"] for name, b in cost.storage.files.items()]
    storage += [
        ["whole version", f"{cost.storage.total_bytes:,}"],
        ["what a LiteRT-only service reads", f"{cost.storage.litert_serving_bytes:,}"],
    ]
    serving = [
        [
            name,
            f"{r.microseconds_per_call_1_row:,.1f}",
            f"{r.microseconds_per_call_1000_rows:,.1f}",
            f"{r.predictions_per_cpu_second:,.0f}",
            *([f"{r.price_per_million:.4g}"] if r.price_per_million is not None else []),
        ]
        for name, r in cost.serving.items()
    ]
    price_header = [f"per million at {per_hour:g}/CPU-hour"] if priced else []
    return (
        '<h2 id="cost">Cost</h2>'
        "<p>Measured by this run, never estimated: the process's own clocks and counters.</p>"
        "<h3>Training</h3>"
        + _table(["", "value"], training)
        + _table(["phase", "wall s", "CPU s"], phases)
        + "<h3>Storage (bytes)</h3>"
        + _table(["artefact", "bytes"], storage)
        + "<h3>Serving, per model call in the training process</h3>"
        "<p>The bundle's runtimes called on encoded test rows: the model alone, no HTTP and no "
        "parsing (the service's own figure, under real traffic, is on its landing page).</p>"
        + _table(
            [
                "runtime",
                "us per 1-row call",
                "us per 1,000-row call",
                "predictions per CPU-s",
                *price_header,
            ],
            serving,
        )
    )


def _table(header: list[str], rows: list[list[str]] | None, body: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    if rows is not None:
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
    return f"<table><tr>{head}</tr>{body}</table>"
