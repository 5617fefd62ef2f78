"""Command line of `python -m training`; the last line of standard output is the version path."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app.bundle import BundleError, list_versions, read_metadata
from training.config import Hyperparameters, TrainConfig
from training.cost import RunCost
from training.data import BUILTIN_SOURCES
from training.errors import TrainingError
from training.memory import parse_size
from training.pipeline import run
from training.promotion import NotPromoted
from training.report import comparison_table
from training.warm_start import Parent

logger = logging.getLogger("training")

NOT_PROMOTED = 3
"""Exit status of a run the promotion gate refused: nothing was published."""


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _names(text: str) -> list[str]:
    # An empty name (`--drop ""`) stands for the columns written without a header.
    if not text.strip():
        return [""]
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    config, hyper = TrainConfig(), Hyperparameters()
    p = argparse.ArgumentParser(
        prog="python -m training",
        description="Train an MLP on a table and publish it as the next version of a bundle.",
    )
    p.add_argument(
        "--data",
        help="CSV or Parquet file, a directory or glob of such shards (streamed), or one of "
        f"{', '.join(BUILTIN_SOURCES)} (default: the first)",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="read the data in chunks, never whole, as for a directory or glob "
        "(for one file larger than memory)",
    )
    p.add_argument(
        "--distribute",
        default=config.distribute,
        choices=["none", "mirrored", "multi-worker"],
        help="tf.distribute strategy: this host's GPUs (mirrored) or the workers in "
        "TF_CONFIG (multi-worker; only the chief writes the bundle) (default: %(default)s)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        help="streamed data: keep the encoded rows here, for later epochs and later runs on the "
        "same data and statistics (default: a temporary directory, removed after the run)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="streamed data: parse the shards on every pass instead of caching encoded rows",
    )
    p.add_argument(
        "--memory-budget",
        type=_size,
        metavar="SIZE",
        help="memory one file may take loaded whole (512M, 4G, ...); a file estimated above it "
        "is streamed (default: half the memory available)",
    )
    p.add_argument(
        "--shuffle-buffer",
        type=_at_least(1),
        default=config.shuffle_buffer,
        help="streamed data: rows pooled and shuffled together by each input pipeline (in "
        "memory every epoch shuffles all rows) (default: %(default)s)",
    )
    p.add_argument(
        "--target",
        help=f"column to predict (default: the parent's with --warm-start, else {config.target})",
    )
    p.add_argument("--task", default=config.task, choices=["auto", "regression", "classification"])
    p.add_argument(
        "--categorical",
        type=_names,
        action="extend",
        default=[],
        metavar="COL[,COL]",
        help="treat these numeric columns as categories (repeatable)",
    )
    p.add_argument(
        "--drop",
        type=_names,
        action="extend",
        default=[],
        metavar="COL[,COL]",
        help='ignore these columns, such as identifiers (repeatable; "" names the columns '
        "with no header)",
    )
    p.add_argument(
        "--min-category-count",
        type=_at_least(1),
        default=config.min_category_count,
        help="rarer categories share the out-of-vocabulary slot (default: %(default)s)",
    )
    p.add_argument(
        "--cv", type=_at_least(2), default=0, metavar="K", help="k-fold cross-validation"
    )
    p.add_argument("--balance-classes", action="store_true", help="class weights for imbalance")
    p.add_argument(
        "--quantize",
        action="store_true",
        help="also write a dynamic-range quantised LiteRT flatbuffer (served on request)",
    )
    p.add_argument(
        "--cost-per-cpu-hour",
        type=_positive_float,
        metavar="PRICE",
        help="what a CPU-hour costs you, in any currency: the run's cost and the cost per million "
        "predictions are then shown and recorded too (default: CPU-seconds only)",
    )
    p.add_argument(
        "--warm-start",
        metavar="NAME[/VERSION]",
        help="start from that version's weights (the newest when none is given) under "
        "--model-dir, keeping its preprocessing statistics and vocabularies; the epochs and "
        "learning rate the rule chooses are then those for fine-tuning (docs/training.md)",
    )
    p.add_argument(
        "--promote-if-better",
        action="store_true",
        help="score the new model and the newest published version on the same held-out rows "
        "of this data; publish only if the new one scores at least as well (less the margin), "
        "else publish nothing and exit with status 3",
    )
    p.add_argument(
        "--promote-margin",
        type=float,
        default=config.promote_margin,
        metavar="M",
        help="with --promote-if-better: how far below the champion's primary metric the new "
        "model may score and still be published (default: %(default)s)",
    )
    p.add_argument("--model-dir", type=Path, default=config.model_dir)
    p.add_argument("--model-name", default=config.model_name)
    rule = "default: set from the number of training rows (docs/training.md)"
    p.add_argument("--epochs", type=_at_least(1), help=f"most epochs ({rule})")
    p.add_argument("--batch-size", type=_at_least(1), help=f"global batch size ({rule})")
    p.add_argument("--learning-rate", type=_positive_float, help=f"Adam's ({rule})")
    p.add_argument(
        "--patience",
        type=_at_least(1),
        help=f"epochs without a better validation loss before stopping ({rule})",
    )
    p.add_argument(
        "--l2",
        type=float,
        default=hyper.l2,
        help="hidden-layer L2 penalty, 0 for none (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=hyper.seed, help="split and weights seed")
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing if the model already has a version (print the newest one's path)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def _config(args: argparse.Namespace) -> TrainConfig:
    """The run the options ask for; a warm start's parent gives the defaults of the target."""
    parent = Parent.find(args.model_dir, args.warm_start) if args.warm_start else None
    return TrainConfig(
        data=args.data,
        target=args.target or (parent.stats.target.name if parent else TrainConfig.target),
        task=args.task,
        categorical=tuple(args.categorical),
        drop=tuple(args.drop),
        min_category_count=args.min_category_count,
        cv_folds=args.cv,
        quantize=args.quantize,
        cost_per_cpu_hour=args.cost_per_cpu_hour,
        model_dir=args.model_dir,
        model_name=args.model_name,
        stream=args.stream,
        distribute=args.distribute,
        shuffle_buffer=args.shuffle_buffer,
        memory_budget=args.memory_budget,
        cache=not args.no_cache,
        cache_dir=args.cache_dir,
        warm_start=parent.path if parent else None,
        promote_if_better=args.promote_if_better,
        promote_margin=args.promote_margin,
        params=Hyperparameters(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            patience=args.patience,
            l2=args.l2,
            seed=args.seed,
            balance_classes=args.balance_classes,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "debug":
        # tf.distribute logs every collective it sets up at INFO.
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
    model_dir = args.model_dir / args.model_name
    if args.if_missing and (existing := list_versions(model_dir)):
        logger.info("%s already has version %d; not training", model_dir, existing[-1])
        print(model_dir / str(existing[-1]))
        return 0
    try:
        version_dir = run(_config(args), RunCost.since_process_start())
    except NotPromoted as exc:
        print(f"{exc}\nreport: {exc.report}", file=sys.stderr)
        return NOT_PROMOTED
    except (TrainingError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the bundle: {exc}", file=sys.stderr)
        return 2
    if version_dir is None:
        return 0  # a worker that is not the chief: the chief prints the bundle's path
    print(comparison_table(read_metadata(version_dir)), file=sys.stderr)
    logger.info("published %s", version_dir)
    print(version_dir)
    return 0
