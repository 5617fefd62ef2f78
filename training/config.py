"""What a training run is asked to do: where the data and bundle are, and the hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from training import defaults
from training.sources import CHUNK_ROWS, is_sharded


@dataclass(frozen=True)
class Hyperparameters:
    """What a run is asked for. None leaves a value to the rule in `training.defaults`, which
    sets it from the number of training rows (`for_rows`)."""

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    l2: float = 1e-3
    """L2 penalty on the hidden layers' weights; small data sets overfit a 128-64 MLP without it."""
    patience: int | None = None
    """Epochs without a better validation loss before training stops (best weights kept)."""
    seed: int = 42
    """Seeds the split and the weights: the same data, seed and flags give the same model."""
    balance_classes: bool = False
    """Classification: weigh each class's rows so that every class counts the same."""

    def for_rows(self, rows: int, *, warm: bool = False) -> Plan:
        """The hyperparameters to train `rows` rows with: these, the unset ones by the rule
        (`warm`: the rule for fine-tuning a parent's weights)."""
        batch = self.batch_size or defaults.batch_size_for(rows)
        rule_epochs = defaults.epochs_for(rows, warm=warm)
        given: dict[str, float | None] = {"epochs": self.epochs, "batch_size": self.batch_size}
        given |= {"learning_rate": self.learning_rate, "patience": self.patience}
        return Plan(
            epochs=self.epochs or rule_epochs,
            batch_size=batch,
            learning_rate=self.learning_rate or defaults.learning_rate_for(batch, warm=warm),
            l2=self.l2,
            patience=self.patience or defaults.patience_for(rule_epochs),
            seed=self.seed,
            balance_classes=self.balance_classes,
            steps_per_execution=defaults.steps_per_execution_for(rows, batch),
            by_rule=tuple(name for name, value in given.items() if value is None),
        )


@dataclass(frozen=True)
class Plan:
    """The hyperparameters a run trains with: the given ones, and the rule's for the rest."""

    epochs: int
    batch_size: int
    learning_rate: float
    l2: float
    patience: int
    seed: int
    balance_classes: bool
    steps_per_execution: int = 1
    """Training steps per compiled call: large data are bound by the fixed cost of a step."""
    by_rule: tuple[str, ...] = ()
    """Which of the hyperparameters the rule chose, for the log and the metadata."""


@dataclass(frozen=True)
class TrainConfig:
    data: str | Path | None = None
    """CSV or Parquet file, or a data set scikit-learn ships (`sklearn:diabetes`, the default,
    `sklearn:breast_cancer`, `sklearn:wine`)."""
    target: str = "target"
    task: Literal["auto", "regression", "classification"] = "auto"
    categorical: tuple[str, ...] = ()
    """Columns to treat as categories even though they hold numbers."""
    drop: tuple[str, ...] = ()
    """Columns to ignore, such as identifiers."""
    min_category_count: int = 5
    """Categories seen fewer times in the training split share the out-of-vocabulary slot."""
    cv_folds: int = 0
    """k-fold cross-validation on the non-test rows first when at least 2."""
    quantize: bool = False
    """Also write a dynamic-range quantised LiteRT flatbuffer and score it on the test split."""
    cost_per_cpu_hour: float | None = None
    """The user's price of a CPU-hour, in their currency: the run's cost and the cost per
    million predictions are then recorded too. None: CPU-seconds only, never a made-up price."""
    model_dir: Path = Path("models")
    model_name: str = "default"
    params: Hyperparameters = field(default_factory=Hyperparameters)
    stream: bool = False
    """Read the data in chunks, never whole: implied when `data` is a directory or a glob."""
    distribute: Literal["none", "mirrored", "multi-worker"] = "none"
    """`tf.distribute` strategy: all of this host's GPUs, or the workers TF_CONFIG lists."""
    shuffle_buffer: int = 10_000
    """Streamed data: rows each input pipeline pools and shuffles together (in memory, every
    epoch shuffles all the rows)."""
    chunk_rows: int = CHUNK_ROWS
    """Streamed data: rows read and encoded at a time."""
    cache: bool = True
    """Streamed data: keep the rows the first read encodes on disk, for every later read."""
    cache_dir: Path | None = None
    """Where that cache lives, kept after the run; None: a temporary directory, removed."""
    memory_budget: int | None = None
    """Bytes one file may take loaded whole; a file estimated above it is streamed. None: half
    of the memory available when the run starts."""

    warm_start: Path | None = None
    """A published version to start from: its weights, statistics and vocabularies."""
    promote_if_better: bool = False
    """Publish only if the candidate scores at least the newest version's score minus
    `promote_margin` on the same held-out rows (see `training.promotion`)."""
    promote_margin: float = 0.0

    @property
    def streamed(self) -> bool:
        return self.stream or (self.data is not None and is_sharded(str(self.data)))
