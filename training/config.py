"""What a training run is asked to do: where the data and bundle are, and the hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 20
    """Epochs without a better validation loss before training stops (best weights kept)."""
    seed: int = 42
    """Seeds the split and the weights: the same data, seed and flags give the same model."""


@dataclass(frozen=True)
class TrainConfig:
    data: Path | None = None
    """CSV file; None trains on scikit-learn's bundled diabetes data."""
    target: str = "target"
    model_dir: Path = Path("models")
    model_name: str = "default"
    params: Hyperparameters = field(default_factory=Hyperparameters)
