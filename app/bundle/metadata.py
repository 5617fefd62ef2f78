"""The bundle's metadata: what the model is, the data it saw, and how good it is."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from app.bundle.documents import FORMAT_VERSION, Strict
from app.bundle.preprocessing import Label


class ColumnSummary(Strict):
    kind: Literal["numeric", "categorical"]
    missing: int
    distinct: int
    distinct_capped: bool = False
    """Streamed data count distinct values up to a limit: `distinct` is then a lower bound."""


class DataSummary(Strict):
    """Where the data came from and what training made of its columns."""

    source: str
    sha256: str
    rows_read: int
    dropped_missing_target: int
    columns: dict[str, ColumnSummary]
    dropped_columns: dict[str, str]
    """Column -> why it was dropped (row index, constant, all missing, --drop)."""
    identifiers: list[str] = Field(default_factory=list)
    """Features whose every value is different (text, or whole numbers), as an identifier's
    are: kept, since they may mean something, but named, since they usually do not."""


class Evaluation(Strict):
    """Scores of one model on one set of rows, in the target's units or labels."""

    metrics: dict[str, float]
    confusion_matrix: list[list[int]] | None = None


class Spread(Strict):
    mean: float
    std: float


class RowCounts(Strict):
    train: int
    validation: int
    test: int


class Flatbuffer(Strict):
    """A LiteRT (TFLite) conversion of the SavedModel, and how far its outputs are from it."""

    file: str
    size_bytes: int
    max_abs_diff: float
    """Largest |flatbuffer - SavedModel| over the test split's network outputs."""
    test: Evaluation | None = None
    """Quantised flatbuffers only: the test metrics when serving with it."""


class Machine(Strict):
    """Where a cost was measured."""

    cpu_model: str
    cores: int
    """CPUs the process was allowed to run on."""


class PhaseCost(Strict):
    wall_seconds: float
    cpu_seconds: float


class TrainingCost(Strict):
    """What the training run took, from the process's own clocks and counters."""

    wall_seconds: float
    cpu_seconds: float
    """User and system time of every thread of the process, from the start of the run."""
    peak_rss_mb: float
    train_rows_per_second: float | None = None
    """Median over epochs of training rows over the seconds spent fitting them."""
    phases: dict[str, PhaseCost]
    machine: Machine
    price: float | None = None
    """cpu_seconds at `Cost.cost_per_cpu_hour`, when one was given."""


class RuntimeCost(Strict):
    """One runtime of the bundle, called in-process on encoded rows at training time."""

    microseconds_per_call_1_row: float
    microseconds_per_call_1000_rows: float
    predictions_per_cpu_second: float
    """Rows predicted per CPU-second of the process, in calls of 1,000 rows."""
    price_per_million: float | None = None
    """A million predictions at `Cost.cost_per_cpu_hour`, when one was given."""


class StorageCost(Strict):
    files: dict[str, int]
    """Artefact -> bytes on disk (a directory counts every file under it)."""
    total_bytes: int
    """The whole version directory."""
    litert_serving_bytes: int
    """What a LiteRT-only service (the slim image) reads: flatbuffer, statistics, metadata."""


class Cost(Strict):
    """What the model costs: to train, to keep, and to serve. Measured, never estimated."""

    training: TrainingCost
    storage: StorageCost
    serving: dict[str, RuntimeCost]
    """Runtime name (`litert`, `litert-quantized`, `savedmodel`) -> its cost per call."""
    cost_per_cpu_hour: float | None = None
    """The price the user gave (`--cost-per-cpu-hour`), in their currency; None: no prices."""


class FeatureImportance(Strict):
    """Permutation importance on the test split: how much the primary metric drops when one
    feature's column is shuffled (its encoded columns together), over `repeats` shuffles."""

    metric: str
    rows: int
    repeats: int
    runtime: str
    features: dict[str, Spread]
    """Feature -> the drop's mean and standard deviation (positive: the model uses it)."""


class Lineage(Strict):
    """The version a warm-started model began from: its weights, statistics and vocabularies."""

    name: str
    version: int
    data_source: str
    data_sha256: str
    """The data the parent was trained on, as its own metadata records it."""


class Promotion(Strict):
    """The gate a version passed before it was published (`--promote-if-better`): both models
    scored on the same held-out rows of the new data, on the primary metric."""

    metric: str
    rows: int
    candidate: float
    champion: float | None
    """None: there was no version to beat."""
    champion_version: int | None
    margin: float
    """The candidate had to score at least the champion's score minus this."""


class Metadata(Strict):
    """What a bundle is, where it came from and how good it is."""

    format_version: int = FORMAT_VERSION
    name: str
    version: int
    created_at: datetime
    task: Literal["regression", "classification"]
    features: list[str]
    target: str
    classes: list[Label] | None = None
    primary_metric: str
    test: Evaluation
    baselines: dict[str, Evaluation]
    beats_linear_baseline: bool
    cross_validation: dict[str, Spread] | None = None
    litert: Flatbuffer | None = None
    litert_quantized: Flatbuffer | None = None
    rows: RowCounts
    data: DataSummary
    training: dict[str, Label | None]
    cost: Cost | None = None
    """Bundles from before cost was recorded have none."""
    feature_importance: FeatureImportance | None = None
    parent: Lineage | None = None
    """A warm-started model's parent; None for one trained from random weights."""
    promotion: Promotion | None = None
    """The scores of the promotion gate, when training ran it."""
    tensorflow_version: str
    keras_version: str


class TrainedAs(Strict):
    name: str
    version: int


class ServedMetadata(Metadata):
    """The metadata as the server reports it: `name` and `version` are the directories the
    bundle is served from (as TF Serving and Triton take a version from its directory's name),
    and `trained_as` keeps what training wrote, as provenance."""

    trained_as: TrainedAs

    @classmethod
    def served_from(cls, metadata: Metadata, name: str, version: int) -> ServedMetadata:
        trained_as = TrainedAs(name=metadata.name, version=metadata.version)
        fields = {**dict(metadata), "name": name, "version": version, "trained_as": trained_as}
        return cls.model_validate(fields)
