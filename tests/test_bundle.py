"""The bundle contract: statistics, the transform, decoding, reading, and atomic publishing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from app.bundle import (
    STATS_FILE,
    BundleError,
    CategoricalFeature,
    ClassificationTarget,
    NumericFeature,
    PreprocessingStats,
    RegressionTarget,
    category_key,
    list_versions,
    publish_version,
    read_stats,
    resolve_version_dir,
    write_json,
)


def test_numeric_fit_ignores_missing_and_infinite_cells() -> None:
    feature = NumericFeature.fit("a", np.array([1.0, np.nan, 3.0, np.inf, 5.0, -np.inf]))
    assert (feature.fill_value, feature.mean) == (3.0, 3.0)
    # Filled: [1, 3, 3, 3, 5, 3]; population standard deviation sqrt(8 / 6).
    assert feature.std == pytest.approx(np.sqrt(8 / 6))


def numeric_only(*features: NumericFeature) -> PreprocessingStats:
    return PreprocessingStats(
        features=list(features), target=RegressionTarget(name="y", mean=0, std=1)
    )


def test_constant_column_scales_by_one_instead_of_dividing_by_zero() -> None:
    feature = NumericFeature.fit("c", np.array([5.0, 5.0, 5.0]))
    assert feature.std == 1.0
    assert numeric_only(feature).transform({"c": [5.0, 7.0]}).ravel().tolist() == [0.0, 2.0]


def test_all_missing_column_gets_finite_statistics() -> None:
    feature = NumericFeature.fit("m", np.array([np.nan, np.nan]))
    assert (feature.mean, feature.std) == (0.0, 1.0)


def test_numeric_transform_fills_missing_with_training_mean() -> None:
    stats = numeric_only(NumericFeature(name="a", fill_value=3.0, mean=2.0, std=0.5))
    values = [None, np.nan, np.inf, -np.inf, 4.0]
    assert stats.transform({"a": values}).ravel().tolist() == [2.0, 2.0, 2.0, 2.0, 4.0]
    rows = [{"a": v} for v in values]
    assert stats.transform_rows(rows).tolist() == stats.transform({"a": values}).tolist()


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (" red ", "red"),
        ("Red", "Red"),
        (True, "true"),
        ("TRUE", "true"),
        (3, "3"),
        (3.0, "3"),
        (np.int64(3), "3"),
        (2.5, "2.5"),
        ("", None),
        ("  NA ", None),
        ("n/a", None),
        (None, None),
        (float("nan"), None),
        (float("inf"), None),
    ],
)
def test_category_keys_are_canonical(value: object, key: str | None) -> None:
    assert category_key(value) == key


def test_vocabulary_keeps_frequent_categories_most_frequent_first() -> None:
    values = ["b", "a", "a", "b", "c", "a", "b", "rare", None, "", "a"]
    feature = CategoricalFeature.fit("colour", values, min_count=2)
    assert feature.vocabulary == ["a", "b"]
    assert feature.width == 3


def test_unseen_rare_and_missing_categories_share_the_last_slot() -> None:
    feature = CategoricalFeature(name="colour", vocabulary=["a", "b"])
    encoded = feature.encode(["b", " a", "zebra", None, "NA"])
    assert encoded.tolist() == [
        [0, 1, 0],
        [1, 0, 0],
        [0, 0, 1],
        [0, 0, 1],
        [0, 0, 1],
    ]


def mixed_stats() -> PreprocessingStats:
    return PreprocessingStats(
        features=[
            NumericFeature(name="x", fill_value=1.0, mean=1.0, std=2.0),
            CategoricalFeature(name="colour", vocabulary=["red", "blue"]),
        ],
        target=RegressionTarget(name="y", mean=10.0, std=4.0),
    )


def test_transform_lays_numbers_first_then_one_hot_blocks_as_float32() -> None:
    stats = PreprocessingStats(
        features=[
            CategoricalFeature(name="colour", vocabulary=["red", "blue"]),
            NumericFeature(name="x", fill_value=1.0, mean=1.0, std=2.0),
            CategoricalFeature(name="size", vocabulary=["s"]),
            NumericFeature(name="z", fill_value=0.0, mean=0.0, std=1.0),
        ],
        target=RegressionTarget(name="y", mean=10.0, std=4.0),
    )
    columns: dict[str, list[object]] = {
        "colour": ["blue", "green"],
        "x": [3.0, None],
        "size": ["s", None],
        "z": [-1, 2.5],
    }
    out = stats.transform(columns)
    assert out.dtype == np.float32
    assert out.tolist() == [
        [1.0, -1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        [0.0, 2.5, 0.0, 0.0, 1.0, 0.0, 1.0],
    ]
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    assert stats.transform_rows(rows).tolist() == out.tolist()
    assert stats.input_width == 7
    assert columns["x"] == [3.0, None], "the caller's data must not be changed"


def test_transform_rejects_columns_of_different_lengths() -> None:
    with pytest.raises(ValueError, match=r"columns differ in length: \[1, 2\]"):
        mixed_stats().transform({"x": [1.0], "colour": ["red", "red"]})


def test_regression_decode_returns_real_units() -> None:
    target = RegressionTarget.fit("y", np.array([10.0, 20.0, 30.0, 40.0]))
    stats = mixed_stats().model_copy(update={"target": target})
    encoded = target.encode([12.5, 40.0])
    assert stats.decode(encoded[:, None]).values == pytest.approx([12.5, 40.0])
    assert stats.decode(np.zeros((1, 1))).values == [25.0]


def test_binary_classification_decodes_labels_and_probabilities() -> None:
    target = ClassificationTarget.fit("y", np.array(["yes", "no", "yes"], dtype=object))
    assert target.classes == ["no", "yes"]
    assert target.output_width == 1
    stats = mixed_stats().model_copy(update={"target": target})
    decoded = stats.decode(np.array([[0.9], [0.2]], dtype=np.float32))
    assert decoded.values == ["yes", "no"]
    assert decoded.probabilities is not None
    np.testing.assert_allclose(decoded.probabilities, [[0.1, 0.9], [0.8, 0.2]], rtol=1e-6)
    assert target.encode(["yes", "no"]).tolist() == [1, 0]


def test_multiclass_labels_keep_their_types_and_rows_sum_to_one() -> None:
    target = ClassificationTarget.fit("y", np.array([2, 0, 1, 2]))
    assert target.classes == [0, 1, 2]
    assert all(type(c) is int for c in target.classes)
    probabilities = target.probabilities(np.array([[0.2, 0.3, 0.5000001]], dtype=np.float32))
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"label 7 is not one of \[0, 1, 2\]"):
        target.encode([7])


def test_labels_of_different_types_are_different_classes() -> None:
    target = ClassificationTarget.fit("y", [1, True, "1"])
    assert target.classes == [True, 1, "1"]
    assert target.encode(["1", True, 1]).tolist() == [2, 0, 1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": []}, "List should have at least 1 item"),
        ({"format_version": 1}, "format_version 1 is not supported"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_inconsistent_statistics_are_rejected(change: dict[str, object], message: str) -> None:
    document = mixed_stats().model_dump() | change
    with pytest.raises(ValidationError, match=message):
        PreprocessingStats.model_validate(document)


def test_duplicate_names_and_bad_deviations_are_rejected() -> None:
    document = mixed_stats().model_dump()
    document["features"][1]["name"] = "x"
    with pytest.raises(ValidationError, match="feature names are not unique"):
        PreprocessingStats.model_validate(document)
    document = mixed_stats().model_dump()
    document["features"][0]["std"] = 0.0
    with pytest.raises(ValidationError, match="greater than 0"):
        PreprocessingStats.model_validate(document)


def test_read_stats_names_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=rf"{tmp_path / STATS_FILE}: file is missing"):
        read_stats(tmp_path)
    (tmp_path / STATS_FILE).write_text("{not json")
    with pytest.raises(BundleError, match=r"preprocessing.json: invalid PreprocessingStats"):
        read_stats(tmp_path)
    document = mixed_stats().model_dump()
    del document["target"]
    (tmp_path / STATS_FILE).write_text(json.dumps(document))
    with pytest.raises(BundleError, match=r"at target: Field required"):
        read_stats(tmp_path)


def test_statistics_survive_a_json_round_trip(tmp_path: Path) -> None:
    write_json(tmp_path / STATS_FILE, mixed_stats())
    assert read_stats(tmp_path) == mixed_stats()
    loaded = read_stats(tmp_path)
    assert loaded.transform({"x": [3.0], "colour": ["red"]}).tolist() == [[1.0, 1.0, 0.0, 0.0]]


def test_versions_ignore_partial_and_foreign_entries(tmp_path: Path) -> None:
    for name in ["1", "10", "2", ".partial-x1", "3.tmp", "latest"]:
        (tmp_path / name).mkdir()
    (tmp_path / "4").write_text("a file, not a version")
    assert list_versions(tmp_path) == [1, 2, 10]
    assert list_versions(tmp_path / "absent") == []


def test_resolve_picks_newest_or_pinned_version(tmp_path: Path) -> None:
    for name in ["1", "2"]:
        (tmp_path / "m" / name).mkdir(parents=True)
    assert resolve_version_dir(tmp_path, "m") == tmp_path / "m" / "2"
    assert resolve_version_dir(tmp_path, "m", 1) == tmp_path / "m" / "1"
    with pytest.raises(BundleError, match=r"m/7: version not found \(available: 1, 2\)"):
        resolve_version_dir(tmp_path, "m", 7)
    with pytest.raises(BundleError, match=r"other: no model versions found"):
        resolve_version_dir(tmp_path, "other")


def test_unfinished_version_is_never_picked_as_latest(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    (model_dir / "1").mkdir(parents=True)
    with publish_version(model_dir) as (scratch, version):
        assert version == 2
        (scratch / "payload").write_text("half written")
        assert list_versions(model_dir) == [1]
        assert resolve_version_dir(tmp_path, "m") == model_dir / "1"
    assert list_versions(model_dir) == [1, 2]
    assert (model_dir / "2" / "payload").read_text() == "half written"
    assert (model_dir / "2").stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2"]


def test_failed_write_publishes_nothing_and_leaves_no_scratch(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    with pytest.raises(RuntimeError, match="disk full"), publish_version(model_dir) as (scratch, _):
        (scratch / "payload").write_text("partial")
        raise RuntimeError("disk full")
    assert list(model_dir.iterdir()) == []


def test_version_taken_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    with (
        pytest.raises(BundleError, match="another writer published this version"),
        publish_version(model_dir) as (_, version),
    ):
        (model_dir / str(version)).mkdir()
    assert list_versions(model_dir) == [1]
    assert [p.name for p in model_dir.iterdir()] == ["1"]
