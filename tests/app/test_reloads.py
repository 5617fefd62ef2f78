"""Model versions come and go under MODEL_DIR while the service runs: new ones are swapped in,
broken ones rejected, removed ones rolled back, pinned ones left alone, without a failed
request."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.bundle import METADATA_FILE, STATS_FILE
from app.http.factory import create_app
from tests.helpers.live import live_server
from tests.helpers.service import serve, settings_for

POLL = 0.05
ROW = {"age": 0.01, "sex": -0.04, "bmi": 0.06, "bp": 0.02, "s1": -0.04}
ROW |= {"s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.02}


def publish(source: Path, root: Path, version: int, *, broken: bool = False) -> Path:
    """Copy bundle `source` in as version `version` of model "m", renamed into place at once
    as training publishes; `broken` damages its statistics first."""
    scratch = root / "m" / f".partial-{version}"
    shutil.copytree(source, scratch)
    metadata = json.loads((scratch / METADATA_FILE).read_text())
    metadata |= {"name": "m", "version": version}
    (scratch / METADATA_FILE).write_text(json.dumps(metadata))
    if broken:
        (scratch / STATS_FILE).write_text("{")
    target = root / "m" / str(version)
    scratch.rename(target)
    return target


@pytest.fixture
def root(tmp_path: Path, version_dir: Path) -> Path:
    publish(version_dir, tmp_path, 1)
    return tmp_path


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL)


def served_version(client: TestClient) -> int:
    version: int = client.get("/readyz").json()["models"]["m"]
    return version


def load_counts(client: TestClient) -> dict[tuple[str, str], float]:
    """tabserve_model_loads_total by (kind, outcome), from /metrics."""
    counts = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "tabserve_model_loads_total":
                counts[sample.labels["kind"], sample.labels["outcome"]] = sample.value
    return counts


def test_new_broken_and_removed_versions(root: Path, version_dir: Path) -> None:
    with serve(root, "m", model_poll_seconds=POLL) as client:
        assert served_version(client) == 1
        publish(version_dir, root, 2)
        wait_for(lambda: served_version(client) == 2, "version 2")
        assert client.post("/predict", json={"instances": [ROW]}).json()["model_version"] == 2
        info = client.get("/metrics").text
        assert 'tabserve_model_info{model="m",runtime="' in info
        assert 'version="2"' in info
        assert 'version="1"' not in info

        publish(version_dir, root, 3, broken=True)
        wait_for(lambda: load_counts(client).get(("reload", "failure")) == 1, "the rejection")
        time.sleep(10 * POLL)  # later polls must not retry (or count) the same broken version
        assert load_counts(client) == {
            ("startup", "success"): 1,
            ("reload", "success"): 1,
            ("reload", "failure"): 1,
        }
        assert served_version(client) == 2

        shutil.rmtree(root / "m" / "2")
        wait_for(lambda: served_version(client) == 1, "the roll-back to version 1")
        assert client.post("/predict", json={"instances": [ROW]}).json()["model_version"] == 1


def test_a_fixed_version_replacing_a_rejected_one_is_loaded(root: Path, version_dir: Path) -> None:
    with serve(root, "m", model_poll_seconds=POLL) as client:
        publish(version_dir, root, 2, broken=True)
        wait_for(lambda: load_counts(client).get(("reload", "failure")) == 1, "the rejection")
        shutil.rmtree(root / "m" / "2")
        publish(version_dir, root, 2)
        wait_for(lambda: served_version(client) == 2, "the repaired version 2")


def test_a_pinned_version_never_changes(root: Path, version_dir: Path) -> None:
    with serve(root, "m", model_poll_seconds=POLL, model_version=1) as client:
        publish(version_dir, root, 2)
        time.sleep(20 * POLL)
        assert served_version(client) == 1
        assert load_counts(client) == {
            ("startup", "success"): 1,
            ("reload", "success"): 0,
            ("reload", "failure"): 0,
        }


def test_a_new_model_is_served_once_it_appears(root: Path, model_root: Path) -> None:
    with serve(root, "m", model_poll_seconds=POLL) as client:
        shutil.copytree(model_root / "labels" / "1", root / "labels" / "1")
        wait_for(lambda: "labels" in client.get("/readyz").json()["models"], "model labels")
        answer = client.post("/v1/models/labels:predict", json={"instances": []})
        assert answer.status_code == 400  # served (an empty request is the client's fault)


def test_watching_off_leaves_the_model_alone(root: Path, version_dir: Path) -> None:
    with serve(root, "m", model_poll_seconds=0) as client:
        publish(version_dir, root, 2)
        time.sleep(0.5)
        assert served_version(client) == 1


@pytest.fixture
def hammer(root: Path) -> Iterator[tuple[list[list[int]], list[str]]]:
    """A live server for model "m" and four client threads posting to it without a pause;
    yields (the versions each thread was answered with, in order; failures)."""
    answers: list[list[int]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop = threading.Event()
    with live_server(create_app(settings_for(root, "m", model_poll_seconds=POLL))) as address:

        def post_forever(versions: list[int]) -> None:
            with httpx.Client(base_url=f"http://{address}", timeout=10) as http:
                while not stop.is_set():
                    try:
                        r = http.post("/predict", json={"instances": [ROW] * 3})
                        if r.status_code == 200:
                            versions.append(r.json()["model_version"])
                        else:
                            failures.append(f"{r.status_code} {r.text}")
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))

        threads = [threading.Thread(target=post_forever, args=(v,)) for v in answers]
        for thread in threads:
            thread.start()
        try:
            yield answers, failures
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)


def test_reloads_under_load_fail_no_request(
    root: Path, version_dir: Path, hammer: tuple[list[list[int]], list[str]]
) -> None:
    answers, failures = hammer

    def answered_by(version: int) -> Callable[[], bool]:
        """True once every thread has had 20 answers from `version` since now."""
        starts = [len(versions) for versions in answers]
        return lambda: all(
            versions[start:].count(version) >= 20
            for versions, start in zip(answers, starts, strict=True)
        )

    wait_for(answered_by(1), "answers from version 1")
    publish(version_dir, root, 2)
    wait_for(answered_by(2), "answers from version 2")
    publish(version_dir, root, 3, broken=True)
    time.sleep(20 * POLL)
    shutil.rmtree(root / "m" / "2")
    wait_for(answered_by(1), "answers from version 1 again")
    assert failures == []
    # Each client (its requests one after another) saw whole swaps only: 1s, then 2s, then
    # 1s again; never the broken 3, never back and forth.
    for versions in answers:
        changes = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
        assert changes == [1, 2, 1]


def test_a_bundle_copied_under_a_new_number_is_served_as_that_number(
    root: Path, hammer: tuple[list[list[int]], list[str]]
) -> None:
    """As with TF Serving and Triton, the directory names the version: a known-good bundle
    rolled forward by copying it is served, live, as the number it was copied to."""
    answers, failures = hammer
    wait_for(lambda: all(len(v) >= 20 for v in answers), "answers from version 1")
    scratch = root / "m" / ".partial-copy"
    shutil.copytree(root / "m" / "1", scratch)  # metadata untouched: trained as m version 1
    scratch.rename(root / "m" / "7")
    wait_for(lambda: all(v[-20:] == [7] * 20 for v in answers), "answers from version 7")
    assert failures == []
    for versions in answers:
        changes = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
        assert changes == [1, 7]


def test_the_served_version_is_the_directory_and_training_is_provenance(
    tmp_path: Path, version_dir: Path
) -> None:
    trained = json.loads((version_dir / METADATA_FILE).read_text())
    shutil.copytree(version_dir, tmp_path / "churn" / "3")
    with serve(tmp_path, "churn") as client:
        model = client.get("/model").json()
        assert (model["name"], model["version"]) == ("churn", 3)
        assert model["trained_as"] == {"name": trained["name"], "version": trained["version"]}
        assert client.get("/readyz").json()["models"] == {"churn": 3}
        answer = client.post("/predict", json={"instances": [ROW]}).json()
        assert (answer["model_name"], answer["model_version"]) == ("churn", 3)
        assert client.get("/v1/models/churn").json()["model_version_status"][0]["version"] == "3"
        assert 'tabserve_model_info{model="churn",runtime=' in client.get("/metrics").text
        assert 'version="3"' in client.get("/metrics").text


def test_promote_rolls_a_version_forward_live_with_no_failed_request(
    root: Path, version_dir: Path, hammer: tuple[list[list[int]], list[str]]
) -> None:
    """`tabserve promote m 1` while version 2 is served: 1 is published again as 3, whole and
    at once, and served with nothing failing; the copy is version 1's files, byte for byte."""
    from app.cli import main

    answers, failures = hammer
    publish(version_dir, root, 2)
    wait_for(lambda: all(v[-20:] == [2] * 20 for v in answers), "answers from version 2")
    assert main(["promote", "m", "1", "--model-dir", str(root)]) == 0
    wait_for(lambda: all(v[-20:] == [3] * 20 for v in answers), "answers from version 3")
    assert failures == []
    for versions in answers:
        changes = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
        assert changes[-2:] == [2, 3]
    copied = sorted(p.relative_to(root / "m" / "3") for p in (root / "m" / "3").rglob("*"))
    assert copied == sorted(p.relative_to(root / "m" / "1") for p in (root / "m" / "1").rglob("*"))
    for relative in copied:
        if (root / "m" / "1" / relative).is_file():
            assert (root / "m" / "3" / relative).read_bytes() == (
                root / "m" / "1" / relative
            ).read_bytes()
    assert not [p for p in (root / "m").iterdir() if p.name.startswith(".")]


def test_promote_refuses_what_it_cannot_copy(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.promote import main

    assert main(["m", "9", "--model-dir", str(root)]) == 2
    assert "version not found (available: 1)" in capsys.readouterr().err
    (root / "m" / "1" / STATS_FILE).write_text("{")
    assert main(["m", "1", "--model-dir", str(root)]) == 2
    assert "preprocessing.json" in capsys.readouterr().err
    assert sorted(p.name for p in (root / "m").iterdir()) == ["1"]
