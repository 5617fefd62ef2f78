"""The promotion gate (`--promote-if-better`): before a candidate is published, it and the
model's newest published version (the champion) are scored on the same held-out rows of the new
data, each through its own preprocessing; the candidate is published only if its primary metric
is at least the champion's minus a margin."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.bundle import (
    BundleError,
    Evaluation,
    Metadata,
    PreprocessingStats,
    Promotion,
    list_versions,
    read_metadata,
    read_stats,
)
from app.model.runtime import open_runtime
from training.data import BUILTIN_SOURCES
from training.errors import TrainingError
from training.evaluate import evaluate

logger = logging.getLogger(__name__)

SCORE_ROWS = 65_536
"""Rows per call of the champion's model: its outputs and scratch stay small."""
HeldOut = Iterable[tuple[Mapping[str, np.ndarray], np.ndarray]]
"""Held-out rows, chunk by chunk: cleaned feature columns by name, and raw targets."""


class NotPromoted(TrainingError):
    """The candidate scored below the champion minus the margin: nothing was published."""

    def __init__(self, message: str, report: Path) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Champion:
    """The version a candidate must beat: the model's newest when the run started."""

    path: Path
    metadata: Metadata
    stats: PreprocessingStats

    @classmethod
    def of(cls, model_dir: Path) -> Champion | None:
        """The newest version under `model_dir`, or None when the model has none yet."""
        versions = list_versions(model_dir)
        if not versions:
            return None
        path = model_dir / str(versions[-1])
        try:
            return cls(path, read_metadata(path), read_stats(path))
        except BundleError as exc:
            raise TrainingError(f"--promote-if-better: the champion is unreadable: {exc}") from None

    @property
    def version(self) -> int:
        return int(self.path.name)

    def inputs(self, held_out: HeldOut, target: str) -> tuple[np.ndarray, np.ndarray]:
        """`held_out` through its own statistics: model inputs and encoded targets. Apart from
        `score` so that in memory the frames can go before TensorFlow takes its memory."""
        if target != self.stats.target.name:
            raise TrainingError(
                f"--promote-if-better: the champion (version {self.version}) predicts "
                f"{self.stats.target.name!r}, this run {target!r}"
            )
        xs, ys = [], []
        for columns, y in held_out:
            if missing := [f for f in self.stats.feature_names if f not in columns]:
                raise TrainingError(
                    f"--promote-if-better: the champion (version {self.version}) needs columns "
                    f"the data does not have: {', '.join(missing)}"
                )
            try:
                ys.append(self.stats.target.encode(y))
            except ValueError as exc:
                raise TrainingError(
                    f"--promote-if-better: the champion (version {self.version}) cannot be "
                    f"scored on the new data: {exc}"
                ) from None
            xs.append(self.stats.transform(columns))
        return np.concatenate(xs), np.concatenate(ys)

    def score(self, x: np.ndarray, y: np.ndarray) -> ChampionScore:
        """Its evaluation on `inputs`' rows, through its SavedModel, as the candidate is scored:
        the same network would tie, not differ by the LiteRT conversion's rounding."""
        runtime = open_runtime("savedmodel", self.path, self.metadata)
        outputs = np.concatenate(
            [runtime(x[i : i + SCORE_ROWS]) for i in range(0, len(x), SCORE_ROWS)]
        )
        return ChampionScore(self.version, evaluate(self.stats, y, outputs), len(y))


@dataclass(frozen=True)
class ChampionScore:
    version: int
    evaluation: Evaluation
    rows: int


def decide(
    metric: str, candidate: Evaluation, champion: ChampionScore | None, margin: float
) -> Promotion:
    """The gate's record; `passed` says whether the candidate may be published."""
    return Promotion(
        metric=metric,
        rows=champion.rows if champion else 0,
        candidate=candidate.metrics[metric],
        champion=champion.evaluation.metrics[metric] if champion else None,
        champion_version=champion.version if champion else None,
        margin=margin,
    )


def passed(promotion: Promotion) -> bool:
    if promotion.champion is None:
        return True
    return promotion.candidate >= promotion.champion - promotion.margin


def write_report(data: str, model_dir: Path, promotion: Promotion, published: Path | None) -> Path:
    """The gate's decision as JSON beside the data (in the model's directory for a data set
    scikit-learn ships); the file's path."""
    source = Path(data.rstrip("/"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if data in BUILTIN_SOURCES:
        path = model_dir / f"promotion-{stamp}.json"
    else:  # a file, a directory of shards or a glob: named after it, in its directory
        stem = source.name.replace("*", "_")
        path = source.parent / f"{stem}.promotion-{model_dir.name}-{stamp}.json"
    report = {
        "model": model_dir.name,
        "data": data,
        "decision": "promoted" if passed(promotion) else "refused",
        "published": str(published) if published else None,
        **promotion.model_dump(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def describe(promotion: Promotion) -> str:
    """One line for people: both scores and the decision."""
    if promotion.champion is None:
        return f"no champion to beat: candidate {promotion.metric} {promotion.candidate:.4f}"
    verdict = "promoted" if passed(promotion) else "refused"
    return (
        f"{verdict}: candidate {promotion.metric} {promotion.candidate:.4f}, champion "
        f"(version {promotion.champion_version}) {promotion.champion:.4f}, margin "
        f"{promotion.margin:g}, on the same {promotion.rows} held-out rows"
    )
