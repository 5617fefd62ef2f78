"""The LiteRT and SavedModel runtimes: same answers, the right choice, safe under threads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from app.bundle import LITERT_FILE, BundleError, read_metadata
from app.model.loading import load_predictor
from app.model.runtime import LiteRTRuntime
from tests.helpers.data import MESSY_DROP, SEED
from tests.helpers.service import settings_for
from training.data import feature_columns, load_dataset, split_dataset


@pytest.mark.parametrize("name", ["diabetes", "messy", "labels"])
def test_litert_and_savedmodel_give_the_same_predictions(
    model_root: Path, messy_csv: Path, diabetes_csv: Path, name: str
) -> None:
    if name == "diabetes":
        dataset = load_dataset(diabetes_csv, "target")
    else:
        target = "price" if name == "messy" else "label"
        dataset = load_dataset(messy_csv, target, categorical=("rooms",), drop=MESSY_DROP[target])
    columns = feature_columns(split_dataset(dataset, SEED).test, dataset.features)
    litert = load_predictor(settings_for(model_root, name, model_runtime="litert"))
    saved = load_predictor(settings_for(model_root, name, model_runtime="savedmodel"))
    assert (litert.runtime.name, saved.runtime.name) == ("litert", "savedmodel")
    a, b = litert.predict_columns(columns), saved.predict_columns(columns)
    if a.probabilities is None:
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5)
    else:
        assert b.probabilities is not None
        np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-5, atol=1e-6)
        assert a.values == b.values


def test_training_records_the_flatbuffer_and_its_difference(version_dir: Path) -> None:
    meta = read_metadata(version_dir)
    assert meta.litert is not None
    assert meta.litert.file == LITERT_FILE
    assert meta.litert.size_bytes == (version_dir / LITERT_FILE).stat().st_size > 1000
    assert 0 <= meta.litert.max_abs_diff < 1e-5
    assert meta.litert_quantized is None, "quantising is asked for, not done by default"


def test_auto_prefers_litert(model_root: Path) -> None:
    assert load_predictor(settings_for(model_root)).runtime.name == "litert"


def copy_bundle(model_root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "diabetes" / "1"
    shutil.copytree(model_root / "diabetes" / "1", target)
    return target


def test_auto_falls_back_to_savedmodel_when_the_flatbuffer_drifted(
    model_root: Path, tmp_path: Path
) -> None:
    version_dir = copy_bundle(model_root, tmp_path)
    document = json.loads((version_dir / "metadata.json").read_text())
    document["litert"]["max_abs_diff"] = 0.01
    (version_dir / "metadata.json").write_text(json.dumps(document))
    assert load_predictor(settings_for(tmp_path)).runtime.name == "savedmodel"


def test_auto_falls_back_and_explicit_litert_fails_without_a_flatbuffer(
    model_root: Path, tmp_path: Path
) -> None:
    version_dir = copy_bundle(model_root, tmp_path)
    document = json.loads((version_dir / "metadata.json").read_text())
    document["litert"] = None
    (version_dir / "metadata.json").write_text(json.dumps(document))
    (version_dir / LITERT_FILE).unlink()
    assert load_predictor(settings_for(tmp_path)).runtime.name == "savedmodel"
    with pytest.raises(BundleError, match=r"model.tflite: the bundle has no litert flatbuffer"):
        load_predictor(settings_for(tmp_path, model_runtime="litert"))


def test_a_corrupt_flatbuffer_is_a_bundle_error(model_root: Path, tmp_path: Path) -> None:
    version_dir = copy_bundle(model_root, tmp_path)
    (version_dir / LITERT_FILE).write_bytes(b"not a flatbuffer at all")
    with pytest.raises(BundleError, match=r"model.tflite: not a valid LiteRT flatbuffer"):
        load_predictor(settings_for(tmp_path, model_runtime="litert"))


def test_litert_serving_never_imports_tensorflow(model_root: Path) -> None:
    code = (
        "import sys; from app.model.loading import load_predictor; from app.settings import Settings; "
        "p = load_predictor(Settings()); "
        "print(p.runtime.name, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    env = {"MODEL_DIR": str(model_root), "MODEL_NAME": "diabetes", "MODEL_RUNTIME": "litert"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.split() == ["litert", "False", "False"]


def test_one_litert_runtime_is_safe_to_share_between_threads(version_dir: Path) -> None:
    runtime = LiteRTRuntime(version_dir / LITERT_FILE)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(n, 10)).astype(np.float32) for n in (1, 3, 7, 1, 64, 2) * 20]
    expected = [runtime(x) for x in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(runtime, inputs))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_quantised_flatbuffer_is_measured_and_served_only_when_asked(
    tmp_path: Path, diabetes_csv: Path
) -> None:
    from training.config import Hyperparameters, TrainConfig
    from training.pipeline import run

    config = TrainConfig(
        data=diabetes_csv,
        quantize=True,
        model_dir=tmp_path,
        model_name="diabetes",
        params=Hyperparameters(epochs=5, seed=SEED),
    )
    version = run(config)
    assert version is not None
    meta = read_metadata(version)
    assert meta.litert is not None and meta.litert_quantized is not None
    assert meta.litert_quantized.size_bytes < meta.litert.size_bytes / 2
    assert meta.litert_quantized.test is not None
    assert set(meta.litert_quantized.test.metrics) == set(meta.test.metrics)
    assert meta.litert_quantized.max_abs_diff > meta.litert.max_abs_diff
    from training.report import comparison_table

    table = comparison_table(meta)
    assert f"quantised flatbuffer: {meta.litert_quantized.size_bytes:,} bytes" in table
    change = meta.litert_quantized.test.metrics["r2"] - meta.test.metrics["r2"]
    assert f"r2 {change:+.4f}" in table
    assert load_predictor(settings_for(tmp_path)).runtime.name == "litert"
    quantised = load_predictor(settings_for(tmp_path, model_runtime="litert-quantized"))
    assert quantised.runtime.name == "litert-quantized"
