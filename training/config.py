"""What a training run is asked to do: where the data and bundle are, and the hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from training.sources import CHUNK_ROWS, is_sharded


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    l2: float = 1e-3
    """L2 penalty on the hidden layers' weights; small data sets overfit a 128-64 MLP without it."""
    patience: int = 20
    """Epochs without a better validation loss before training stops (best weights kept)."""
    seed: int = 42
    """Seeds the split and the weights: the same data, seed and flags give the same model."""
    balance_classes: bool = False
    """Classification: weigh each class's rows so that every class counts the same."""


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
    model_dir: Path = Path("models")
    model_name: str = "default"
    params: Hyperparameters = field(default_factory=Hyperparameters)
    stream: bool = False
    """Read the data in chunks, never whole: implied when `data` is a directory or a glob."""
    distribute: Literal["none", "mirrored", "multi-worker"] = "none"
    """`tf.distribute` strategy: all of this host's GPUs, or the workers TF_CONFIG lists."""
    shuffle_buffer: int = 10_000
    """Streamed or distributed training: rows in the shuffle buffer of each input pipeline."""
    chunk_rows: int = CHUNK_ROWS
    """Streamed data: rows read and encoded at a time."""

    @property
    def streamed(self) -> bool:
        return self.stream or (self.data is not None and is_sharded(str(self.data)))
