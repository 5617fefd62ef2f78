"""The report written into each bundle: plots and a self-contained one-page model card."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from app.bundle import MODEL_CARD_FILE, Metadata

LEARNING_CURVE_FILE = "learning_curve.png"
PREDICTIONS_FILE = "predicted_vs_actual.png"
CONFUSION_FILE = "confusion_matrix.png"
_MODELS = ("network", "boosting", "linear", "trivial")
SCATTER_POINTS = 5_000


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
    return "\n".join(lines)


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


def write_report(
    directory: Path,
    metadata: Metadata,
    history: dict[str, list[float]],
    actual_vs_predicted: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Write the plots as PNG files and the model card, which embeds them, into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    plots = {LEARNING_CURVE_FILE: _learning_curve(history)}
    if actual_vs_predicted is not None:
        plots[PREDICTIONS_FILE] = _scatter(*actual_vs_predicted, metadata.target)
    elif metadata.test.confusion_matrix is not None and metadata.classes is not None:
        plots[CONFUSION_FILE] = _confusion(metadata.test.confusion_matrix, metadata.classes)
    images = {}
    for name, figure in plots.items():
        png = _png(figure)
        (directory / name).write_bytes(png)
        images[name] = png
    (directory / MODEL_CARD_FILE).write_text(_card(metadata, images), encoding="utf-8")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _learning_curve(history: dict[str, list[float]]) -> Figure:
    figure, axes = plt.subplots(figsize=(6, 3.6))
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        if key in history:
            axes.plot(range(1, len(history[key]) + 1), history[key], label=label)
    axes.set(xlabel="epoch", ylabel="loss", title="Learning curve")
    axes.legend()
    axes.grid(alpha=0.3)
    return figure


def _scatter(actual: np.ndarray, predicted: np.ndarray, target: str) -> Figure:
    figure, axes = plt.subplots(figsize=(4.8, 4.8))
    # Evenly spaced rows beyond a few thousand: streamed test splits have millions.
    shown = np.linspace(0, len(actual) - 1, min(len(actual), SCATTER_POINTS)).astype(int)
    actual, predicted = actual[shown], predicted[shown]
    axes.scatter(actual, predicted, s=12, alpha=0.7)
    low, high = float(np.min([actual, predicted])), float(np.max([actual, predicted]))
    axes.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
    axes.set(xlabel=f"actual {target}", ylabel=f"predicted {target}", title="Test split")
    axes.grid(alpha=0.3)
    return figure


def _confusion(matrix: list[list[int]], classes: Sequence[object]) -> Figure:
    counts = np.asarray(matrix)
    size = max(3.6, 0.6 * len(classes) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(counts, cmap="Blues")
    ticks = range(len(classes))
    names = [str(c) for c in classes]
    axes.set_xticks(ticks, names, rotation=45, ha="right")
    axes.set_yticks(ticks, names)
    for (i, j), count in np.ndenumerate(counts):
        colour = "white" if count > counts.max() / 2 else "black"
        axes.text(j, i, str(count), ha="center", va="center", color=colour)
    axes.set(xlabel="predicted", ylabel="actual", title="Confusion matrix, test split")
    return figure


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
    figures = "".join(
        f'<figure><img alt="{e(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"></figure>'
        for name, png in images.items()
    )
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


def _table(header: list[str], rows: list[list[str]] | None, body: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    if rows is not None:
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
    return f"<table><tr>{head}</tr>{body}</table>"
