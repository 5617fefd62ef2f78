"""The bundle contract: statistics, the transform, reading, and atomic publishing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from app.bundle import (
    STATS_FILE,
    BundleError,
    PreprocessingStats,
    list_versions,
    publish_version,
    read_stats,
    resolve_version_dir,
    write_json,
)

NAMES = ["a", "b", "c"]


def fitted() -> PreprocessingStats:
    x = np.array(
        [
            [1.0, 5.0, np.nan],
            [3.0, 5.0, 2.0],
            [np.inf, 5.0, 4.0],
            [5.0, 5.0, -np.inf],
        ]
    )
    return PreprocessingStats.fit(x, np.array([10.0, 20.0, 30.0, 40.0]), NAMES, "y")


def test_fit_ignores_missing_and_infinite_cells() -> None:
    stats = fitted()
    assert stats.means == pytest.approx([3.0, 5.0, 3.0])
    assert stats.fill_values == stats.means
    # Column a, filled: [1, 3, 3, 5]; population standard deviation sqrt(2).
    assert stats.stds[0] == pytest.approx(np.sqrt(2.0))
    assert stats.target_mean == 25.0
    assert stats.target_std == pytest.approx(np.std([10.0, 20.0, 30.0, 40.0]))


def test_constant_column_scales_by_one_instead_of_dividing_by_zero() -> None:
    stats = fitted()
    assert stats.stds[1] == 1.0
    out = stats.transform(np.array([[3.0, 5.0, 3.0], [3.0, 7.0, 3.0]]))
    assert out[:, 1].tolist() == [0.0, 2.0]
    assert np.isfinite(out).all()


def test_all_missing_column_gets_finite_statistics() -> None:
    x = np.array([[1.0, np.nan], [2.0, np.nan]])
    stats = PreprocessingStats.fit(x, np.array([1.0, 2.0]), ["a", "b"], "y")
    assert stats.means[1] == 0.0
    assert stats.stds[1] == 1.0


def test_transform_fills_missing_and_infinite_with_training_mean() -> None:
    stats = fitted()
    rows = np.array([[np.nan, np.inf, -np.inf], [3.0, 5.0, 3.0]])
    out = stats.transform(rows)
    assert out.dtype == np.float32
    assert out.tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert np.isnan(rows[0, 0]), "the caller's array must not be changed"


def test_transform_standardises_with_training_statistics() -> None:
    stats = fitted()
    out = stats.transform(np.array([[5.0, 5.0, 1.0]]))
    expected = (np.array([5.0, 5.0, 1.0]) - stats.means) / np.array(stats.stds)
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)


def test_transform_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match="expected rows of 3 features, got shape"):
        fitted().transform(np.zeros((2, 4)))


def test_target_scaling_round_trips() -> None:
    stats = fitted()
    y = np.array([12.5, 40.0, -3.0])
    np.testing.assert_allclose(stats.unscale_target(stats.scale_target(y)), y, rtol=1e-6)
    assert stats.scale_target(np.array([25.0])).tolist() == [0.0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stds": [1.0, 0.0, 1.0]}, "standard deviations must be positive"),
        ({"means": [1.0, 2.0]}, "means has 2 entries, expected 3"),
        ({"features": ["a", "a", "c"]}, "feature names are not unique"),
        ({"format_version": 99}, "format_version 99 is not supported"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_inconsistent_statistics_are_rejected(change: dict[str, object], message: str) -> None:
    document = fitted().model_dump() | change
    with pytest.raises(ValidationError, match=message):
        PreprocessingStats.model_validate(document)


def test_read_stats_names_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=rf"{tmp_path / STATS_FILE}: file is missing"):
        read_stats(tmp_path)
    (tmp_path / STATS_FILE).write_text("{not json")
    with pytest.raises(BundleError, match=r"preprocessing.json: invalid PreprocessingStats"):
        read_stats(tmp_path)
    document = fitted().model_dump()
    del document["stds"]
    (tmp_path / STATS_FILE).write_text(json.dumps(document))
    with pytest.raises(BundleError, match=r"at stds: Field required"):
        read_stats(tmp_path)


def test_statistics_survive_a_json_round_trip(tmp_path: Path) -> None:
    write_json(tmp_path / STATS_FILE, fitted())
    assert read_stats(tmp_path) == fitted()


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
