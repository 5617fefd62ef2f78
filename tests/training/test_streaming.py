"""Streamed data: shards, the per-row split, and statistics equal to the in-memory path's."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.bundle import NumericFeature, PreprocessingStats
from tests.helpers.data import MESSY_DROP, write_shards
from training.data import TEST_FRACTION, VALIDATION_FRACTION, load_dataset
from training.errors import TrainingError
from training.preprocess import fit_stats
from training.scan import StreamSchema, fit_stream_stats, scan_schema
from training.sources import (
    TEST,
    TRAIN,
    VALIDATION,
    read_chunks,
    resolve_shards,
    split_codes,
)
from training.tallies import Reservoir

SEED = 11
CHUNK = 37  # rows per chunk: far fewer than a shard, and not a divisor of one


def scan(directory: Path, target: str, **options: Any) -> StreamSchema:
    """The first pass with no --categorical, --drop or task, unless given."""
    defaults: dict[str, Any] = {"task": "auto", "categorical": (), "drop": (), "seed": SEED}
    return scan_schema(str(directory), target, **{**defaults, **options})


def codes_of(shards: list[Path], chunk_rows: int = CHUNK) -> np.ndarray:
    return np.concatenate(
        [
            split_codes(chunk.hashes, TEST_FRACTION, VALIDATION_FRACTION)
            for chunk in read_chunks(shards, SEED, chunk_rows)
        ]
    )


def assert_same_stats(streamed: PreprocessingStats, in_memory: PreprocessingStats) -> None:
    assert streamed.feature_names == in_memory.feature_names
    for ours, theirs in zip(streamed.features, in_memory.features, strict=True):
        if isinstance(theirs, NumericFeature):
            assert isinstance(ours, NumericFeature)
            assert (ours.mean, ours.fill_value, ours.std) == pytest.approx(
                (theirs.mean, theirs.fill_value, theirs.std), rel=1e-12, abs=1e-12
            )
        else:
            assert ours == theirs  # the same vocabulary, in the same order
    if streamed.target.kind == "regression":
        assert streamed.target.model_dump() == pytest.approx(in_memory.target.model_dump())
    else:
        assert streamed.target == in_memory.target


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
@pytest.mark.parametrize("target", ["price", "label"])
def test_streamed_statistics_equal_the_in_memory_ones(
    messy_csv: Path, tmp_path: Path, target: str, suffix: str
) -> None:
    frame = pd.read_csv(messy_csv, dtype=str, keep_default_na=False)
    shards = write_shards(frame, tmp_path / "shards", parts=3, suffix=suffix)
    whole = tmp_path / f"whole.{suffix}"
    frame.to_csv(whole, index=False) if suffix == "csv" else frame.to_parquet(whole, index=False)
    categorical, drop = ("rooms",), MESSY_DROP[target]

    schema = scan_schema(
        str(shards),
        target,
        task="auto",
        categorical=categorical,
        drop=drop,
        seed=SEED,
        chunk_rows=CHUNK,
    )
    streamed = fit_stream_stats(schema, min_category_count=5, seed=SEED, chunk_rows=CHUNK)

    dataset = load_dataset(whole, target, "auto", categorical, drop)
    codes = codes_of(schema.shards)[dataset.frame.index.to_numpy()]
    in_memory = fit_stats(dataset, dataset.frame[codes == TRAIN], min_category_count=5)

    assert (schema.task, schema.features, schema.categorical) == (
        dataset.task,
        dataset.features,
        dataset.categorical,
    )
    summary, expected = schema.summary, dataset.summary
    assert summary.columns == expected.columns
    assert summary.dropped_columns == expected.dropped_columns
    assert (summary.rows_read, summary.dropped_missing_target) == (
        expected.rows_read,
        expected.dropped_missing_target,
    )
    assert_same_stats(streamed.stats, in_memory)
    assert streamed.rows == {code: int((codes == code).sum()) for code in (TRAIN, VALIDATION, TEST)}
    assert len(streamed.baseline_sample) == streamed.rows[TRAIN]  # fewer than the sample's cap


def test_the_split_is_per_row_whatever_the_chunking(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(20_000), "y": np.arange(20_000) % 3})
    shards = resolve_shards(str(write_shards(frame, tmp_path / "d", parts=4)))
    codes = codes_of(shards, chunk_rows=1_000)
    assert np.array_equal(codes, codes_of(shards, chunk_rows=777))
    shares = np.bincount(codes, minlength=3) / len(codes)
    expected = [0.64, 0.16, 0.20]  # 80 % x 80 %, 80 % x 20 %, 20 %
    assert shares == pytest.approx(expected, abs=0.015)
    # Another seed is another split.
    other = np.concatenate(
        [
            split_codes(c.hashes, TEST_FRACTION, VALIDATION_FRACTION)
            for c in read_chunks(shards, SEED + 1)
        ]
    )
    assert (other != codes).mean() > 0.3


def test_a_new_shard_leaves_every_other_row_in_its_split(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(3_000), "y": np.arange(3_000) % 2})
    directory = write_shards(frame, tmp_path / "d", parts=3)
    before = codes_of(resolve_shards(str(directory)))
    frame.iloc[:500].to_csv(directory / "part-000a.csv", index=False)  # sorts second
    after_shards = resolve_shards(str(directory))
    assert [p.name for p in after_shards][1] == "part-000a.csv"
    after = codes_of(after_shards)
    assert np.array_equal(np.delete(after, np.s_[1_000:1_500]), before)


def test_data_may_be_a_file_a_directory_or_a_glob(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": range(30), "y": range(30)})
    directory = write_shards(frame, tmp_path / "d", parts=3)
    (directory / "notes.txt").write_text("not data")
    names = ["part-000.csv", "part-001.csv", "part-002.csv"]
    assert [p.name for p in resolve_shards(str(directory))] == names
    assert [p.name for p in resolve_shards(str(directory / "part-00[12].csv"))] == names[1:]
    assert resolve_shards(str(directory / "part-000.csv")) == [directory / "part-000.csv"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "*.csv", "no data files (.csv, .parquet, .pq) match the pattern"),
        (lambda d: d, "no data files (.csv, .parquet, .pq) match the directory"),
        (lambda d: d / "absent.csv", "data file not found"),
    ],
)
def test_no_data_files_is_a_clear_error(tmp_path: Path, make: object, message: str) -> None:
    with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_shards(str(make(tmp_path)))  # type: ignore[operator]


def test_shards_must_agree_on_their_columns_and_format(tmp_path: Path) -> None:
    pd.DataFrame({"x": [1, 2], "y": [1, 2]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"x": [1, 2], "z": [1, 2]}).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(TrainingError, match=r"b\.csv has other columns than a\.csv: "):
        scan(tmp_path, "y")
    (tmp_path / "b.csv").unlink()
    pd.DataFrame({"x": [1, 2], "y": [1, 2]}).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(TrainingError, match="mixes CSV and Parquet"):
        resolve_shards(str(tmp_path))


def test_a_text_cell_late_in_a_numeric_looking_column_makes_it_categorical(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = 200
    frame = pd.DataFrame({"code": [str(i % 4) for i in range(n)], "y": np.arange(n) * 0.5})
    caplog.set_level(logging.INFO, logger="training.scan")
    frame.loc[n - 1, "code"] = "x9"  # in the last shard's last chunk
    frame["colour"] = ["red", "blue"] * (n // 2)  # text from the first chunk: no second read
    schema = scan(write_shards(frame, tmp_path / "d", parts=4), "y", chunk_rows=10)
    assert schema.categorical == ["code", "colour"]
    assert schema.summary.columns["code"].distinct == 5
    rereads = [r.getMessage() for r in caplog.records if "not numbers after all" in r.getMessage()]
    assert rereads == [
        "code: not numbers after all; reading the data again to count their categories"
    ]


def test_a_regression_target_with_text_names_the_shard_and_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": range(40), "y": [str(i) for i in range(40)]})
    frame.loc[33, "y"] = "lots"
    directory = write_shards(frame, tmp_path / "d", parts=2)
    with pytest.raises(TrainingError, match=r"row 14 of part-001\.csv holds 'lots'"):
        scan(directory, "y", task="regression")


def test_the_baseline_sample_is_bounded_uniform_and_reproducible() -> None:
    def sample(seed: int) -> np.ndarray:
        reservoir = Reservoir(size=500, seed=seed)
        for start in range(0, 20_000, 1_234):
            stop = min(start + 1_234, 20_000)
            reservoir.add(pd.DataFrame({"i": np.arange(start, stop, dtype=np.float64)}))
        return reservoir.frame()["i"].to_numpy()

    kept = sample(3)
    assert len(kept) == 500
    assert len(np.unique(kept)) == 500
    assert np.array_equal(kept, sample(3))
    # Uniform over the stream: each tenth of it holds about a tenth of the sample.
    per_tenth = np.bincount((kept // 2_000).astype(int), minlength=10)
    assert per_tenth.min() >= 25
    assert per_tenth.max() <= 80


def test_a_target_of_numbers_then_text_is_read_again_as_labels(tmp_path: Path) -> None:
    n = 120
    frame = pd.DataFrame({"x": np.arange(n) % 7, "y": [str(i % 3) for i in range(n)]})
    frame.loc[n - 3 :, "y"] = " yes "  # only in the last chunk
    whole = tmp_path / "whole.csv"
    frame.to_csv(whole, index=False)
    schema = scan(write_shards(frame, tmp_path / "d", parts=2), "y", chunk_rows=10)
    dataset = load_dataset(whole, "y")
    assert schema.task == dataset.task == "classification"
    assert schema.target_stats is not None
    assert schema.target_stats.classes == ["0", "1", "2", "yes"]
    assert schema.summary.columns == dataset.summary.columns


def test_a_sample_of_rows_is_stable_and_independent_of_the_split() -> None:
    from training.sources import sampled

    hashes = _hashes(50_000)
    picked = sampled(hashes, 0.1)
    assert np.array_equal(picked, sampled(hashes, 0.1))
    assert picked.mean() == pytest.approx(0.1, abs=0.005)
    codes = split_codes(hashes, TEST_FRACTION, VALIDATION_FRACTION)
    # The sample takes each split in its share: picking rows does not pick a split.
    for code in (TRAIN, VALIDATION, TEST):
        assert picked[codes == code].mean() == pytest.approx(0.1, abs=0.01)
    assert sampled(hashes, 1.0).all()


def _hashes(n: int) -> np.ndarray:
    from training.sources import _mix

    return _mix(np.arange(n, dtype=np.uint64))


def test_a_streamed_bundle_scores_a_sample_and_keeps_the_drift_reference(
    messy_csv: Path, model_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test scores from a bounded sample of the test rows; and the drift reference's bins of
    the same kinds and nearly the same shares as in memory (streamed data count a sample of the
    training rows, which the messy file's 400 rows hold whole)."""
    from app.bundle import read_metadata, read_reference
    from training import fit_streamed, pipeline
    from training.config import Hyperparameters, TrainConfig

    monkeypatch.setattr(fit_streamed, "EVALUATION_ROWS", 40)
    frame = pd.read_csv(messy_csv, dtype=str, keep_default_na=False)
    version = pipeline.run(
        TrainConfig(
            data=write_shards(frame, tmp_path / "shards", parts=2),
            target="price",
            categorical=("rooms",),
            drop=MESSY_DROP["price"],
            model_dir=tmp_path / "models",
            params=Hyperparameters(epochs=2, seed=SEED),
        )
    )
    assert version is not None
    meta = read_metadata(version)
    scored = meta.training["test_rows_scored"]
    assert isinstance(scored, int)
    assert meta.rows.test > 60
    assert 20 <= scored <= 60
    streamed, in_memory = read_reference(version), read_reference(model_root / "messy" / "1")
    assert streamed is not None and in_memory is not None
    assert streamed.features.keys() == in_memory.features.keys()
    for name, distribution in streamed.features.items():
        other = in_memory.features[name]
        assert distribution.kind == other.kind
        assert sum(distribution.shares) == pytest.approx(1.0)
        # Missing cells: a split of the same rows, so the same share give or take sampling.
        assert distribution.shares[-1] == pytest.approx(other.shares[-1], abs=0.05)
    colour, other_colour = streamed.features["colour"], in_memory.features["colour"]
    assert colour.labels == other_colour.labels  # the same vocabulary, the same bins
    assert streamed.output.kind == "regression" and len(streamed.output.edges) >= 5
