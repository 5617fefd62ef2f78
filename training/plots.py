"""The plots written into each bundle, as PNG files the model card embeds."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from app.bundle import FeatureImportance, Metadata

LEARNING_CURVE_FILE = "learning_curve.png"
PREDICTIONS_FILE = "predicted_vs_actual.png"
CONFUSION_FILE = "confusion_matrix.png"
IMPORTANCE_FILE = "feature_importance.png"
IMPORTANCE_BARS = 20
"""Features drawn in the importance chart at most (the table lists them all)."""
SCATTER_POINTS = 5_000


def write_plots(
    directory: Path,
    metadata: Metadata,
    history: dict[str, list[float]],
    actual_vs_predicted: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, bytes]:
    """Write the plots as PNG files into `directory`; return them for the card to embed."""
    directory.mkdir(parents=True, exist_ok=True)
    plots = {LEARNING_CURVE_FILE: _learning_curve(history)}
    if actual_vs_predicted is not None:
        plots[PREDICTIONS_FILE] = _scatter(*actual_vs_predicted, metadata.target)
    elif metadata.test.confusion_matrix is not None and metadata.classes is not None:
        plots[CONFUSION_FILE] = _confusion(metadata.test.confusion_matrix, metadata.classes)
    if metadata.feature_importance is not None:
        plots[IMPORTANCE_FILE] = _importance(metadata.feature_importance)
    images = {}
    for name, figure in plots.items():
        png = _png(figure)
        (directory / name).write_bytes(png)
        images[name] = png
    return images


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


def _importance(importance: FeatureImportance) -> Figure:
    shown = list(importance.features.items())[:IMPORTANCE_BARS][::-1]  # largest at the top
    figure, axes = plt.subplots(figsize=(6, 0.3 * len(shown) + 1.2))
    axes.barh(
        [name for name, _ in shown],
        [s.mean for _, s in shown],
        xerr=[s.std for _, s in shown],
        color="#4c78a8",
    )
    axes.axvline(0, color="grey", linewidth=1)
    axes.set(
        xlabel=f"drop in test {importance.metric} when shuffled",
        title="Permutation importance",
    )
    axes.grid(alpha=0.3, axis="x")
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
