"""The Python scoring API the engines call: small when pickled, loaded once per process, and
answering what POST /predict answers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import scoring
from app.scoring import ScoreError, Scorer
from tests.app.test_score import feature_columns, predict_csv
from tests.helpers.data import MESSY_DROP


def test_a_scorer_pickles_small_before_and_after_it_has_loaded(
    model_root: Path, messy_csv: Path
) -> None:
    scorer = Scorer(model_root, "labels", id_column="id")
    before = pickle.dumps(scorer)
    scorer.score(pd.read_csv(messy_csv, dtype=str, keep_default_na=False).head(3))
    after = pickle.dumps(scorer)
    assert before == after and len(after) < 1_000  # where the bundle is, never the bundle
    copy = pickle.loads(after)  # noqa: S301 (our own object, just pickled)
    assert copy.predictor is scorer.predictor  # loaded once per process, shared


def test_scoring_a_frame_equals_predict(model_root: Path, messy_csv: Path) -> None:
    rows = pd.read_csv(messy_csv, dtype=str, keep_default_na=False)
    scored = Scorer(model_root, "labels", id_column="id", chunk_rows=64).score(rows)
    served = predict_csv(
        model_root, "labels", feature_columns(messy_csv, MESSY_DROP["label"], "label")
    )
    assert list(scored["id"]) == list(rows["id"])
    assert list(scored.columns[1:]) == list(served.columns)
    assert list(scored["prediction"]) == list(served["prediction"])
    np.testing.assert_allclose(scored.iloc[:, 2:], served.iloc[:, 1:], rtol=1e-6)


def test_a_bad_cell_is_named_by_its_row_or_its_id(model_root: Path, diabetes_csv: Path) -> None:
    rows = pd.read_csv(diabetes_csv, dtype=str, keep_default_na=False).head(10)
    rows["id"] = [f"p{i}" for i in range(10)]
    rows.loc[4, "bmi"] = "heavy"
    with pytest.raises(ScoreError, match=r"row 105, column bmi: 'heavy' is not a number"):
        Scorer(model_root, "diabetes").score(rows, first_row=101)
    with pytest.raises(ScoreError, match=r"the row whose id is 'p4', column bmi: 'heavy'"):
        Scorer(model_root, "diabetes", id_column="id").score(rows)
    with pytest.raises(ScoreError, match=r"no column 'key' \(--id-column\)"):
        Scorer(model_root, "diabetes", id_column="key").score(rows)


def test_output_columns_name_and_type_what_score_writes(model_root: Path, messy_csv: Path) -> None:
    labels = Scorer(model_root, "labels")
    rows = pd.read_csv(messy_csv, dtype=str, keep_default_na=False).head(5)
    assert [name for name, _ in labels.output_columns()] == list(labels.score(rows).columns)
    kinds = dict(labels.output_columns())
    assert kinds.pop("prediction") == "string"  # the messy file's labels are text
    assert set(kinds.values()) == {"double"}
    assert Scorer(model_root, "diabetes").output_columns() == [("prediction", "double")]
    empty = Scorer(model_root, "diabetes").score(rows.iloc[:0].assign(**{
        f: [] for f in Scorer(model_root, "diabetes").predictor.features}))  # fmt: skip
    assert list(empty.columns) == ["prediction"] and len(empty) == 0


def test_each_process_loads_a_bundle_version_once(model_root: Path) -> None:
    scoring._LOADED.clear()
    first = Scorer(model_root, "diabetes").predictor
    assert Scorer(model_root, "diabetes").predictor is first
    assert Scorer(model_root, "diabetes", model_version=1).predictor is not first  # another key
    assert len(scoring._LOADED) == 2
