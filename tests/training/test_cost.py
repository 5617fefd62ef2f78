"""What a model costs, as training records it: the run's own CPU and memory against what the
operating system counts, the bundle's bytes against the files, the runtimes' cost per call,
prices only when one is given, and which features the model uses."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.bundle import METADATA_FILE, MODEL_CARD_FILE, REPORT_DIR, read_metadata

REPO = Path(__file__).resolve().parents[2]
PRICE = 1.5


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def priced_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, str]:
    """One `python -m training` run with a price, on data where `signal` and `colour` decide
    the target and `noise` does not; (version dir, the child's CPU-seconds, its stderr)."""
    rng = np.random.default_rng(4)
    n = 3_000
    colour = rng.choice(["red", "green", "blue"], size=n)
    signal, noise = rng.normal(size=n), rng.normal(size=n)
    y = 3 * signal + np.select([colour == "red", colour == "green"], [2.0, -2.0], 0.0)
    root = tmp_path_factory.mktemp("cost")
    data = root / "data.csv"
    pd.DataFrame(
        {"signal": signal, "noise": noise, "colour": colour, "y": y + 0.1 * rng.normal(size=n)}
    ).to_csv(data, index=False)
    before = children_cpu()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "--data",
            str(data),
            "--target",
            "y",
            "--epochs",
            "15",
            "--cost-per-cpu-hour",
            str(PRICE),
            "--model-dir",
            str(root / "models"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return Path(done.stdout.strip().splitlines()[-1]), children_cpu() - before, done.stderr


def test_training_cpu_is_what_the_operating_system_counted(
    priced_run: tuple[Path, float, str],
) -> None:
    version, os_cpu, _ = priced_run
    training = read_metadata(version).cost.training  # type: ignore[union-attr]
    assert training.cpu_seconds == pytest.approx(os_cpu, rel=0.25)
    assert {"startup", "read", "statistics", "tensorflow", "fit", "evaluation", "export"} <= set(
        training.phases
    )
    assert {"serving_cost", "importance", "report"} <= set(training.phases)
    assert sum(p.wall_seconds for p in training.phases.values()) <= training.wall_seconds
    assert sum(p.cpu_seconds for p in training.phases.values()) <= training.cpu_seconds + 0.01
    # The peak is the process's own: at least TensorFlow's resident size, less than the box.
    assert (
        200
        < training.peak_rss_mb
        < os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    )
    assert training.machine.cores == len(os.sched_getaffinity(0))
    assert training.machine.cpu_model
    assert training.price == pytest.approx(training.cpu_seconds / 3600 * PRICE)


def test_storage_is_the_bytes_on_disk(priced_run: tuple[Path, float, str]) -> None:
    version, _, _ = priced_run
    storage = read_metadata(version).cost.storage  # type: ignore[union-attr]
    on_disk = sum(p.stat().st_size for p in version.rglob("*") if p.is_file())
    assert storage.total_bytes == on_disk  # metadata.json and the card included
    assert storage.files["metadata"] == (version / METADATA_FILE).stat().st_size
    assert storage.files["litert"] == (version / "model.tflite").stat().st_size
    assert storage.files["saved_model"] == sum(
        p.stat().st_size for p in (version / "saved_model").rglob("*") if p.is_file()
    )
    assert storage.litert_serving_bytes == sum(
        storage.files[k] for k in ("litert", "statistics", "metadata", "reference")
    )
    assert sum(storage.files.values()) == storage.total_bytes


def test_each_runtime_has_its_cost_per_call(priced_run: tuple[Path, float, str]) -> None:
    version, _, _ = priced_run
    serving = read_metadata(version).cost.serving  # type: ignore[union-attr]
    assert set(serving) == {"litert", "savedmodel"}
    for figures in serving.values():
        assert 0 < figures.microseconds_per_call_1_row < figures.microseconds_per_call_1000_rows
        # 1,000 rows per call cannot take less CPU than the wall time of one core, much.
        assert (
            figures.predictions_per_cpu_second
            < 1000 / (figures.microseconds_per_call_1000_rows * 1e-6) * (os.cpu_count() or 1) * 1.5
        )
        assert figures.price_per_million == pytest.approx(
            1e6 / figures.predictions_per_cpu_second / 3600 * PRICE
        )
    # The flatbuffer is the runtime the service picks for its speed: it must show.
    assert (
        serving["litert"].microseconds_per_call_1_row
        < serving["savedmodel"].microseconds_per_call_1_row
    )


def test_permutation_importance_finds_the_features_that_matter(
    priced_run: tuple[Path, float, str],
) -> None:
    version, _, _ = priced_run
    importance = read_metadata(version).feature_importance
    assert importance is not None
    assert importance.metric == "r2" and importance.runtime == "litert"
    assert list(importance.features)[:2] == ["signal", "colour"]
    assert importance.features["signal"].mean > 0.5
    assert abs(importance.features["noise"].mean) < 0.05


def test_the_card_and_the_table_show_the_cost(priced_run: tuple[Path, float, str]) -> None:
    version, _, stderr = priced_run
    metadata = read_metadata(version)
    cost = metadata.cost
    assert cost is not None
    card = (version / REPORT_DIR / MODEL_CARD_FILE).read_text(encoding="utf-8")
    assert '<h2 id="cost">Cost</h2>' in card
    assert f"{cost.training.cpu_seconds:,.1f}" in card
    assert f"{cost.storage.total_bytes:,}" in card
    assert f"per million at {PRICE:g}/CPU-hour" in card
    for name, figures in cost.serving.items():
        assert f"<td>{name}</td><td>{figures.microseconds_per_call_1_row:,.1f}</td>" in card
    assert '<h2 id="importance">' in card and "<td>signal</td>" in card
    assert "feature_importance.png" in card
    assert re.search(
        rf"training cost: [\d.]+ s wall, {cost.training.cpu_seconds:.1f} CPU-seconds \(costing",
        stderr,
    )
    assert "per million" in stderr
    assert json.loads((version / METADATA_FILE).read_text())["cost"]["cost_per_cpu_hour"] == PRICE


def test_without_a_price_no_price_is_made_up(model_root: Path) -> None:
    metadata = read_metadata(model_root / "diabetes" / "1")
    cost = metadata.cost
    assert cost is not None
    assert cost.cost_per_cpu_hour is None and cost.training.price is None
    assert all(r.price_per_million is None for r in cost.serving.values())
    card = (model_root / "diabetes" / "1" / REPORT_DIR / MODEL_CARD_FILE).read_text()
    assert "per million" not in card and "costing" not in card
