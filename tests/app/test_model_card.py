"""The report in each bundle: plots and a self-contained model card, served at /model/report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.bundle import MODEL_CARD_FILE, REPORT_DIR
from tests.helpers.service import serve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("name", "plots"),
    [
        ("messy", {"learning_curve.png", "predicted_vs_actual.png", "feature_importance.png"}),
        ("labels", {"learning_curve.png", "confusion_matrix.png", "feature_importance.png"}),
    ],
)
def test_report_has_the_plots_and_a_self_contained_card(
    model_root: Path, name: str, plots: set[str]
) -> None:
    report = model_root / name / "1" / REPORT_DIR
    assert {p.name for p in report.iterdir()} == {MODEL_CARD_FILE, *plots}
    for plot in plots:
        assert (report / plot).read_bytes().startswith(PNG_MAGIC)
    card = (report / MODEL_CARD_FILE).read_text()
    assert card.count('src="data:image/png;base64,') == len(plots)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", card), (
        "nothing may load from elsewhere"
    )
    for text in (
        "network",
        "linear",
        "trivial",
        "boosting",
        "gradient boosting on",
        "constant: every value is 7.0",
        "all values missing",
        "Which features the model uses",
        '<h2 id="cost">Cost</h2>',
    ):
        assert text in card


def test_card_is_served_as_html(model_root: Path) -> None:
    with serve(model_root, "labels") as client:
        response = client.get("/model/report")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>labels &middot; version 1</h1>" in response.text
    assert "classes: high, low, mid" in response.text


def test_a_bundle_without_a_card_answers_404(model_root: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(model_root / "diabetes" / "1", tmp_path / "bare" / "1")
    shutil.rmtree(tmp_path / "bare" / "1" / REPORT_DIR)
    (tmp_path / "bare" / "1" / "metadata.json").write_text(
        (tmp_path / "bare" / "1" / "metadata.json").read_text().replace('"diabetes"', '"bare"', 1)
    )
    with serve(tmp_path, "bare") as client:
        response = client.get("/model/report")
    assert response.status_code == 404
    assert response.json() == {"error": "model bare version 1 has no model card"}


def test_categorical_features_accept_text_numbers_and_booleans(model_root: Path) -> None:
    row = {"age": 40, "income": 50_000.0, "colour": "red", "member": True, "rooms": 3}
    with serve(model_root, "labels") as client:
        ok = client.post(
            "/predict", json={"instances": [row, {**row, "rooms": "3", "member": "true"}]}
        )
        bad = client.post("/predict", json={"instances": [{**row, "age": "forty"}]})
    assert ok.status_code == 200
    body = ok.json()
    assert body["probabilities"][0] == body["probabilities"][1]
    assert body["predictions"][0] in ("high", "low", "mid")
    assert bad.status_code == 422
    assert bad.json()["error"] == "instances[0].age: Input should be a valid number"
