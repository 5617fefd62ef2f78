"""POST /predict with pandas' split JSON and CSV, CSV answers, and /docs for the loaded model."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.helpers.service import serve

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
DATA: list[list[float | None]] = [
    [0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018],
    [-0.002, -0.045, None, -0.026, -0.009, -0.019, 0.074, -0.039, -0.068, -0.092],
]
ROWS = [dict(zip(FEATURES, row, strict=True)) for row in DATA]
CSV = "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6\n" + "\n".join(
    ",".join("" if v is None else str(v) for v in row) for row in DATA
)


def instances(client: TestClient) -> list[float]:
    body: list[float] = client.post("/predict", json={"instances": ROWS}).json()["predictions"]
    return body


def test_split_json_equals_instances(client: TestClient) -> None:
    response = client.post("/predict", json={"columns": FEATURES, "data": DATA})
    assert response.status_code == 200
    assert response.json()["predictions"] == instances(client)


def test_csv_in_json_out_and_csv_out(client: TestClient) -> None:
    response = client.post("/predict", content=CSV, headers={"content-type": "text/csv"})
    assert response.json()["predictions"] == instances(client)
    answer = client.post(
        "/predict", content=CSV, headers={"content-type": "text/csv", "accept": "text/csv"}
    )
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[0] == "prediction"
    assert [float(v) for v in lines[1:]] == instances(client)


def test_csv_answer_for_a_classifier_has_a_column_per_class(model_root: Path) -> None:
    csv = "age,income,colour,member,rooms\n35,72000,red,true,4\n61,,turquoise,false,2\n"
    with serve(model_root, "labels") as client:
        answer = client.post(
            "/predict", content=csv, headers={"content-type": "text/csv", "accept": "text/csv"}
        )
        assert answer.status_code == 200, answer.text
        json_answer = client.post("/predict", content=csv, headers={"content-type": "text/csv"})
    lines = answer.text.splitlines()
    assert lines[0] == "prediction,probability_high,probability_low,probability_mid"
    assert [line.split(",")[0] for line in lines[1:]] == json_answer.json()["predictions"]


def test_bad_split_and_csv_bodies(client: TestClient) -> None:
    short = client.post("/predict", json={"columns": FEATURES, "data": [[1.0]]})
    assert short.status_code == 422
    assert short.json()["error"] == "data[0] must be a list of 10 values, one per column"
    words = client.post(
        "/predict", content=CSV.replace("0.051", "many", 1), headers={"content-type": "text/csv"}
    )
    assert words.status_code == 422
    assert words.json()["error"] == "CSV line 2, column sex: 'many' is not a number"
    ragged = client.post("/predict", content="age,sex\n1\n", headers={"content-type": "text/csv"})
    assert ragged.json()["error"] == "CSV line 2 has 1 cells; the header has 2"
    other = client.post("/predict", json={"rows": []})
    assert other.json()["error"] == "instances: Field required (and 1 more)"


def test_docs_show_the_loaded_models_features_and_a_working_example(model_root: Path) -> None:
    with serve(model_root, "labels") as client:
        spec = client.get("/openapi.json").json()
        body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
        example = body["schema"]["examples"][0]
        row_schema = spec["components"]["schemas"]["Instance"]
        assert set(row_schema["properties"]) == {"age", "income", "colour", "member", "rooms"}
        assert set(row_schema["required"]) == set(row_schema["properties"])
        assert set(example["instances"][0]) == set(row_schema["properties"])
        response = client.post("/predict", json=example)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0] in ("high", "low", "mid")
