"""deploy/kubernetes/training/: the multi-worker training Job and its headless Service.

As for the serving manifests, no cluster here: the files are parsed and checked against each
other, against the serving manifests (the model claim and where it is mounted) and against
the code (the command parses, the variables are the ones `training.cluster` reads). Then the
TF_CONFIG each indexed pod would build is built for real: two local processes run the Job's
command with the Job's variables, the DNS names swapped for loopback ports.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from app.bundle import METADATA_FILE, SAVED_MODEL_DIR, read_metadata
from tests.deploy.test_manifests import (
    KUBERNETES,
    ROOT,
    WRITABLE_PATHS,
    containers,
    deployment,
    dockerfile_id,
    documents,
    literal_env,
    only,
    pod_spec,
)
from tests.helpers.live import free_port
from tests.training.test_distributed import run_workers
from training.cli import parse_args
from training.cluster import (
    COUNT_ENV,
    HOSTS_ENV,
    INDEX_ENV,
    INDEX_PLACEHOLDER,
    TF_CONFIG,
    tf_config_from_env,
)

TRAINING = KUBERNETES / "training"
JOB_FILE = TRAINING / "job.yaml"
SERVICE_FILE = TRAINING / "service.yaml"
# The image target with TensorFlow (the default target, `serve`, has none).
TRAINING_TARGET = "full"

Doc = dict[str, Any]


def job() -> Doc:
    return only(JOB_FILE, "Job")


def headless_service() -> Doc:
    return only(SERVICE_FILE, "Service")


def train_container() -> Doc:
    (container,) = containers(job())
    return container


def workers() -> int:
    spec = job()["spec"]
    return int(spec["completions"])


def pod_env(index: int) -> dict[str, str]:
    """What a pod of the Job has in its environment: the manifest's variables and the index
    Kubernetes adds."""
    return {**literal_env(train_container()), INDEX_ENV: str(index)}


def command_args() -> tuple[list[str], Any]:
    command = train_container()["command"]
    assert command[:3] == ["python", "-m", "training"], command
    return command, parse_args(command[3:])


# --- the files ---------------------------------------------------------------------------------


def test_kustomization_lists_exactly_the_training_files() -> None:
    kustomization = only(TRAINING / "kustomization.yaml", "Kustomization")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    assert set(listed) == {
        p.name for p in TRAINING.glob("*.y*ml") if p.name != "kustomization.yaml"
    }
    # Not part of the serving kustomization: applying the server must not start a training run.
    serving = only(KUBERNETES / "kustomization.yaml", "Kustomization")["resources"]
    assert not any("training" in entry for entry in serving)
    for path in TRAINING.glob("*.y*ml"):
        for doc in documents(path):
            assert "namespace" not in doc["metadata"], f"{path.name}: names a namespace"


# --- the Job and the Service against each other --------------------------------------------


def test_an_indexed_job_runs_every_worker_at_once() -> None:
    spec = job()["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] >= 2
    assert literal_env(train_container())[COUNT_ENV] == str(spec["completions"])


def test_one_failed_worker_fails_the_job_instead_of_hanging_it() -> None:
    spec = job()["spec"]
    assert spec["backoffLimit"] == 0, "a retried pod cannot rejoin the others mid-run"
    assert pod_spec(job())["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    fail_on_exit = [
        r
        for r in rules
        if r["action"] == "FailJob"
        and r.get("onExitCodes", {}).get("operator") == "NotIn"
        and r["onExitCodes"]["values"] == [0]
    ]
    assert fail_on_exit, f"no FailJob rule for a non-zero exit: {rules}"
    assert fail_on_exit[0]["onExitCodes"]["containerName"] == train_container()["name"]
    assert not [r for r in rules if r["action"] in ("Ignore", "Count")], (
        "a worker replaced mid-run would wait for peers that are gone"
    )
    # The bound on a run that waits for a worker that never starts.
    assert 0 < spec["activeDeadlineSeconds"] <= 24 * 3600


def test_the_headless_service_gives_each_worker_its_dns_name() -> None:
    service, workload = headless_service(), job()
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"].get("publishNotReadyAddresses") is True
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert pod_spec(workload)["subdomain"] == service["metadata"]["name"]
    # Neither the serving Service nor the training one takes the other's pods.
    serving_selector = only(KUBERNETES / "service.yaml", "Service")["spec"]["selector"]
    assert not serving_selector.items() <= labels.items()
    serving_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= serving_labels.items()


def test_the_hosts_are_the_pods_dns_names_on_the_workers_port() -> None:
    """An Indexed Job's pod i is named `<job>-<i>`; with the subdomain, it answers at
    `<job>-<i>.<service>`. The port is the container's and the Service's."""
    env = literal_env(train_container())
    template = env[HOSTS_ENV]
    assert INDEX_PLACEHOLDER in template
    name, service = job()["metadata"]["name"], headless_service()["metadata"]["name"]
    ports = {p["name"]: p["containerPort"] for p in train_container()["ports"]}
    (service_port,) = headless_service()["spec"]["ports"]
    port = ports[service_port["targetPort"]]
    assert service_port["port"] == port
    for i in range(workers()):
        config = tf_config_from_env(pod_env(i))
        assert config is not None
        assert config["cluster"] == {
            "worker": [f"{name}-{k}.{service}:{port}" for k in range(workers())]
        }
        assert config["task"] == {"type": "worker", "index": i}
    # Pod hostnames are DNS labels: at most 63 characters.
    assert len(f"{name}-{workers() - 1}") <= 63


def test_the_variables_are_the_ones_the_code_reads() -> None:
    container = train_container()
    names = [e["name"] for e in container.get("env", [])]
    assert len(names) == len(set(names)), f"a variable is set twice: {names}"
    assert set(names) == {HOSTS_ENV, COUNT_ENV}
    # Kubernetes sets the index; a TF_CONFIG would be the same for every pod.
    assert INDEX_ENV not in names and TF_CONFIG not in names


# --- the Job against the serving manifests and the image ------------------------------------


def test_the_chief_publishes_where_the_servers_read() -> None:
    """The Job's --model-dir is the model claim, mounted writable, where the Deployment mounts
    it read-only as MODEL_DIR; the model is the one the servers answer /predict with."""
    command, args = command_args()
    assert args.distribute == "multi-worker"
    assert "--model-dir" in command, "--model-dir must be explicit (the image's default differs)"
    claim = only(KUBERNETES / "models-pvc.yaml", "PersistentVolumeClaim")["metadata"]["name"]
    volumes = {v["name"]: v for v in pod_spec(job())["volumes"]}
    mounts = [m for m in train_container()["volumeMounts"] if m["mountPath"] == str(args.model_dir)]
    assert len(mounts) == 1, f"--model-dir {args.model_dir} is not a mount"
    assert not mounts[0].get("readOnly", False), "the chief writes the bundle there"
    volume = volumes[mounts[0]["name"]]["persistentVolumeClaim"]
    assert volume["claimName"] == claim and not volume.get("readOnly", False)

    (server,) = containers(deployment())
    serving = literal_env(server)
    assert serving["MODEL_DIR"] == str(args.model_dir)
    assert args.model_name == serving["MODEL_NAME"]


def test_the_image_has_tensorflow_and_runs_as_the_serving_pods_do() -> None:
    container, pod = train_container(), pod_spec(job())
    image = container["image"]
    assert image.rpartition(":")[2] == TRAINING_TARGET
    assert re.search(
        rf"^FROM\s+\S+\s+AS\s+{TRAINING_TARGET}\s*$",
        (ROOT / "Dockerfile").read_text(encoding="utf-8"),
        flags=re.MULTILINE | re.IGNORECASE,
    )
    assert pod.get("automountServiceAccountToken") is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert security.get("runAsNonRoot") is True
    assert security.get("runAsUser") == dockerfile_id("useradd", "--uid")
    assert security.get("runAsGroup") == dockerfile_id("groupadd", "--gid")
    assert security.get("fsGroup") == dockerfile_id("groupadd", "--gid")
    assert security.get("readOnlyRootFilesystem") is True
    assert security.get("allowPrivilegeEscalation") is False
    assert "ALL" in security.get("capabilities", {}).get("drop", [])
    assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes, f"mount {mount} names no volume"
    for wanted in WRITABLE_PATHS:
        (scratch,) = [m for m in container["volumeMounts"] if m["mountPath"] == wanted]
        assert "emptyDir" in volumes[scratch["name"]], f"{wanted} is not scratch space"


def test_the_command_trains_the_builtin_data_without_a_data_volume() -> None:
    """No --data: the demo runs on scikit-learn's diabetes table, which needs no volume; a
    --data added later must point into a mount."""
    _, args = command_args()
    mounts = [m["mountPath"] for m in train_container()["volumeMounts"]]
    if args.data is None:
        return
    assert str(args.data).startswith("sklearn:") or any(
        str(args.data).startswith(m.rstrip("/") + "/") for m in mounts
    ), f"--data {args.data} is on no volume"


# --- the TF_CONFIG the pods build, run for real -------------------------------------------------


def loopback(env: dict[str, str], ports: list[int]) -> dict[str, str]:
    """The pod's variables with the DNS names swapped for 127.0.0.1 and free ports: the same
    worker count, in the list form TABSERVE_WORKER_HOSTS also takes."""
    assert len(ports) == int(env[COUNT_ENV])
    return {**env, HOSTS_ENV: ",".join(f"127.0.0.1:{p}" for p in ports)}


def test_the_pods_tf_config_trains_two_real_workers_and_the_chief_publishes(
    tmp_path: Path,
) -> None:
    n = workers()
    assert n == 2, "this test runs one process per worker: keep it small"
    ports = [free_port() for _ in range(n)]
    envs = [loopback(pod_env(i), ports) for i in range(n)]
    expected = [tf_config_from_env(env) for env in envs]
    for i, config in enumerate(expected):
        assert config == {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": i},
        }

    command, args = command_args()
    root = tmp_path / "models"
    argv = [sys.executable, *command[1:]]
    argv[argv.index("--model-dir") + 1] = str(root)
    argv += ["--epochs", "2"]
    # The pods' variables, not a TF_CONFIG: each process builds its own (training.cluster).
    results = run_workers(argv, envs)
    for status, _, err in results:
        assert status == 0, err[-3000:]
    (chief_out, _), (worker_out, worker_err) = [(o, e) for _, o, e in results]
    for config, (_, _, err) in zip(expected, results, strict=True):
        built = re.search(rf"{TF_CONFIG} from {INDEX_ENV} and {HOSTS_ENV}: (\{{.*\}})", err)
        assert built, err[-3000:]
        assert json.loads(built.group(1)) == config
        assert f"{n} replica(s) in sync" in err

    model = root / args.model_name
    assert sorted(p.name for p in model.iterdir()) == ["1"], "one version, by the chief alone"
    version = model / "1"
    assert chief_out.strip().splitlines()[-1] == str(version)
    assert (version / SAVED_MODEL_DIR).is_dir() and (version / METADATA_FILE).is_file()
    assert read_metadata(version).training["distribute"] == "multi-worker"
    assert worker_out == ""
    assert "not the chief" in worker_err


@pytest.mark.parametrize("index", ["2", "-1", ""])
def test_a_pod_outside_the_cluster_fails_fast(index: str) -> None:
    """An index or host list that do not agree is an error (exit status 2, which fails the
    Job), not a worker waiting for peers that never come."""
    from training.cluster import ClusterError

    env = {**literal_env(train_container()), INDEX_ENV: index}
    with pytest.raises(ClusterError):
        tf_config_from_env(env)
