"""Command line of `python -m training`; the last line of standard output is the version path."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from app.bundle import BundleError, list_versions
from training.config import Hyperparameters, TrainConfig
from training.errors import TrainingError
from training.pipeline import run

logger = logging.getLogger("training")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults, hyper = TrainConfig(), Hyperparameters()
    p = argparse.ArgumentParser(
        prog="python -m training",
        description="Train an MLP on a CSV and publish it as the next version of a model bundle.",
    )
    p.add_argument("--data", type=Path, help="CSV file (default: scikit-learn's diabetes data)")
    p.add_argument("--target", default=defaults.target, help="target column (default: %(default)s)")
    p.add_argument(
        "--model-dir", type=Path, default=defaults.model_dir, help="(default: %(default)s)"
    )
    p.add_argument("--model-name", default=defaults.model_name, help="(default: %(default)s)")
    p.add_argument("--epochs", type=_positive_int, default=hyper.epochs, help="most epochs")
    p.add_argument("--batch-size", type=_positive_int, default=hyper.batch_size)
    p.add_argument("--learning-rate", type=_positive_float, default=hyper.learning_rate)
    p.add_argument("--seed", type=int, default=hyper.seed, help="split and weights seed")
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing if the model already has a version (print the newest one's path)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    model_dir = args.model_dir / args.model_name
    if args.if_missing and (existing := list_versions(model_dir)):
        logger.info("%s already has version %d; not training", model_dir, existing[-1])
        print(model_dir / str(existing[-1]))
        return 0
    config = TrainConfig(
        data=args.data,
        target=args.target,
        model_dir=args.model_dir,
        model_name=args.model_name,
        params=Hyperparameters(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
        ),
    )
    try:
        version_dir = run(config)
    except (TrainingError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the bundle: {exc}", file=sys.stderr)
        return 2
    logger.info("published %s", version_dir)
    print(version_dir)
    return 0
