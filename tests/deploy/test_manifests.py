"""The manifests under deploy/ against the app and the image they deploy.

No cluster here: the manifests are parsed, and what they claim about the app is checked on the
app itself (probes pass on a live app as the kubelet would run them, HTTP GETs and gRPC health
checks alike; every variable is a setting with a valid value; ports line up with PORT and
GRPC_PORT) and on the Dockerfile and the compose file (the user, the ports).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
import yaml
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2
from pydantic import TypeAdapter

from app.grpc.health import SERVICE as HEALTH
from app.settings import Settings
from tests.helpers.live import free_port
from tests.helpers.service import serve

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KSERVE = DEPLOY / "kserve"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"

# Where the server writes at run time, on a read-only root filesystem: temporary files only.
WRITABLE_PATHS = ("/tmp",)  # noqa: S108 (a path the manifests must mount, not a file we write)
# The model the live app serves when the manifest's MODEL_NAME is not one of the fixtures'.
FALLBACK_MODEL = "diabetes"
K8S_DEFAULT_GRACE_SECONDS = 30
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
PROBE_HANDLERS = {"httpGet", "grpc", "tcpSocket", "exec"}
K8S_DEFAULT_PROBE_TIMEOUT = 1
HTTP_PORT = int(Settings.model_fields["port"].default)
GRPC_PORT = int(Settings.model_fields["grpc_port"].default)
# KServe takes a container port whose name holds one of these for gRPC (appProtocol h2c).
KSERVE_GRPC_NAMES = ("grpc", "h2c")
H2C = "kubernetes.io/h2c"  # the standard appProtocol of plaintext HTTP/2, which gRPC is
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
TEMPLATE = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")

# The two workloads that run the image: (file, kind).
WORKLOADS = [
    pytest.param(KUBERNETES / "deployment.yaml", "Deployment", id="Deployment"),
    pytest.param(KSERVE / "serving-runtime.yaml", "ServingRuntime", id="ServingRuntime"),
]

Doc = dict[str, Any]


# --- reading the manifests and the Dockerfile -------------------------------------------------


def yaml_files() -> list[Path]:
    """The Kubernetes and KServe manifests (deploy/grafana and deploy/prometheus hold the
    monitoring tools' own configuration: tests/deploy/test_dashboard.py)."""
    return sorted(
        p for d in (KUBERNETES, KSERVE) for p in d.rglob("*") if p.suffix in (".yaml", ".yml")
    )


def documents(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def only(path: Path, kind: str) -> Doc:
    found = [d for d in documents(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path.relative_to(ROOT)}: expected one {kind}, found {len(found)}"
    return found[0]


def of_kind(kind: str) -> list[Doc]:
    return [d for p in yaml_files() for d in documents(p) if d.get("kind") == kind]


def pod_spec(workload: Doc) -> Doc:
    """The part holding containers, volumes and pod-level settings."""
    if workload["kind"] == "ServingRuntime":
        spec: Doc = workload["spec"]  # ServingRuntimePodSpec is inlined; no pod securityContext
        return spec
    template: Doc = workload["spec"]["template"]["spec"]
    return template


def containers(workload: Doc) -> list[Doc]:
    found: list[Doc] = pod_spec(workload)["containers"]
    assert found, f"{workload['kind']} {workload['metadata']['name']} has no containers"
    return found


def inference_services_for(runtime: Doc) -> list[Doc]:
    name = runtime["metadata"]["name"]
    return [
        d for d in of_kind("InferenceService") if d["spec"]["predictor"]["model"]["runtime"] == name
    ]


def render(value: str, metadata: Doc | None) -> str:
    """KServe renders runtime containers as Go templates over the InferenceService metadata;
    without metadata, the value is left as it is."""
    if metadata is None:
        return value

    def field(match: re.Match[str]) -> str:
        key = match.group(1)
        assert key in ("Name", "Namespace"), f"{value!r}: unsupported template field"
        return str(metadata.get(key.lower(), "default"))

    return TEMPLATE.sub(field, value)


def literal_env(container: Doc, metadata: Doc | None = None) -> dict[str, str]:
    """Name -> value of every variable with a literal value (valueFrom is skipped), rendered."""
    return {
        e["name"]: render(str(e["value"]), metadata)
        for e in container.get("env", [])
        if "valueFrom" not in e
    }


def render_metadata(workload: Doc) -> Doc | None:
    """What KServe renders the runtime's templates with: the first InferenceService using it."""
    if workload["kind"] != "ServingRuntime":
        return None
    services = inference_services_for(workload)
    assert services, f"no InferenceService uses runtime {workload['metadata']['name']}"
    metadata: Doc = services[0]["metadata"]
    return metadata


def dockerfile_text() -> str:
    return DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")


def dockerfile_env() -> dict[str, str]:
    """Every `ENV KEY=VALUE` of the Dockerfile (the last one wins)."""
    env: dict[str, str] = {}
    for line in dockerfile_text().splitlines():
        if line.strip().upper().startswith("ENV "):
            for word in shlex.split(line.strip()[4:]):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def dockerfile_id(command: str, flag: str) -> int:
    match = re.search(rf"\b{command}\b[^\n]*?{flag}\s+(\d+)", dockerfile_text())
    assert match, f"the Dockerfile has no `{command} ... {flag} N`"
    return int(match.group(1))


def listening_port(container: Doc) -> int:
    """The port the server listens on: PORT from the manifest, else the image's, else the
    Settings default."""
    port = literal_env(container).get("PORT") or dockerfile_env().get("PORT")
    return int(port) if port else HTTP_PORT


def grpc_listening_port(container: Doc) -> int:
    """The port the gRPC server listens on: GRPC_PORT from the manifest, else the image's, else
    the Settings default."""
    port = literal_env(container).get("GRPC_PORT") or dockerfile_env().get("GRPC_PORT")
    return int(port) if port else GRPC_PORT


def container_port(container: Doc, port: int | str) -> int:
    """A probe's or Service's port, named or numeric, as a containerPort number."""
    ports = container.get("ports", [])
    if isinstance(port, str):
        named = [p["containerPort"] for p in ports if p.get("name") == port]
        assert named, f"no container port is named {port!r}: {ports}"
        return int(named[0])
    numbers = [int(p["containerPort"]) for p in ports]
    assert port in numbers, f"port {port} is not a containerPort of {container['name']}: {ports}"
    return port


def probes(container: Doc) -> Iterator[tuple[str, Doc]]:
    """(kind, probe) of each probe the container has: an HTTP GET or a gRPC health check, the
    two kinds the app answers."""
    for kind in PROBES:
        probe = container.get(kind)
        if probe is not None:
            handlers = PROBE_HANDLERS & probe.keys()
            assert handlers in ({"httpGet"}, {"grpc"}), f"{container['name']}.{kind}: {handlers}"
            yield kind, probe


def http_probes(container: Doc) -> Iterator[tuple[str, Doc]]:
    """(kind, httpGet) of each HTTP probe."""
    for kind, probe in probes(container):
        if "httpGet" in probe:
            yield kind, probe["httpGet"]


def probe_port(container: Doc, probe: Doc) -> int:
    """The containerPort a probe asks. A gRPC probe's port is a number: Kubernetes takes no
    port name there."""
    if "grpc" in probe:
        port = probe["grpc"]["port"]
        assert isinstance(port, int), f"a gRPC probe's port is a number, not {port!r}"
        return container_port(container, port)
    return container_port(container, probe["httpGet"]["port"])


def served_port(container: Doc, probe: Doc) -> int:
    """Where the app answers what the probe asks: the gRPC port or the HTTP one."""
    return grpc_listening_port(container) if "grpc" in probe else listening_port(container)


def settings_overrides(container: Doc, metadata: Doc | None) -> dict[str, str]:
    """The container's settings for a live app, less where it runs (tests use their own)."""
    env = literal_env(container, metadata)
    where = ("MODEL_DIR", "MODEL_NAME", "HOST", "PORT", "GRPC_PORT")
    return {k.lower(): v for k, v in env.items() if k not in where}


def served_name(container: Doc, metadata: Doc | None, model_root: Path) -> str:
    name = literal_env(container, metadata).get("MODEL_NAME", "")
    return name if (model_root / name).is_dir() and name else FALLBACK_MODEL


def live_app(workload: Doc, container: Doc, model_root: Path, grpc_port: int = 0) -> TestClient:
    """The app as the container configures it, HTTP in the client; gRPC (on loopback, once the
    client's lifespan runs) on `grpc_port`, standing in for the manifest's, or off with 0."""
    metadata = render_metadata(workload)
    name = served_name(container, metadata, model_root)
    overrides = settings_overrides(container, metadata)
    return serve(model_root, name, grpc_port=grpc_port, host="127.0.0.1", **overrides)


def grpc_port_for(container: Doc) -> int:
    """A free loopback port for the live app's gRPC server if a probe asks gRPC, else 0."""
    return free_port() if any("grpc" in p for _, p in probes(container)) else 0


def probe_passes(client: TestClient, grpc_port: int, probe: Doc) -> bool:
    """Runs the probe once against the live app as the kubelet does: an HTTP GET passes on a
    status from 200 to 399; a gRPC probe calls grpc.health.v1.Health/Check with its service
    and passes on SERVING only. A refused connection or a failed call fails either."""
    if "grpc" in probe:
        assert grpc_port, "the live app has no gRPC port"
        timeout = float(probe.get("timeoutSeconds", K8S_DEFAULT_PROBE_TIMEOUT))
        request = health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", ""))
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            check = channel.unary_unary(
                f"/{HEALTH}/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            try:
                answer = check(request, timeout=timeout)
            except grpc.RpcError:
                return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
    get = probe["httpGet"]
    assert get.get("scheme", "HTTP") == "HTTP"
    headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
    status = client.get(get["path"], headers=headers).status_code
    return 200 <= status < 400


def deployment() -> Doc:
    return only(KUBERNETES / "deployment.yaml", "Deployment")


def serving_runtime() -> Doc:
    return only(KSERVE / "serving-runtime.yaml", "ServingRuntime")


def inference_service() -> Doc:
    return only(KSERVE / "inference-service.yaml", "InferenceService")


# --- every file ----------------------------------------------------------------------------


def test_every_yaml_file_parses_into_named_resources() -> None:
    files = yaml_files()
    assert {"kubernetes", "kserve"} <= {p.relative_to(DEPLOY).parts[0] for p in files}
    for path in files:
        docs = documents(path)
        assert docs, f"{path.relative_to(ROOT)} is empty"
        for doc in docs:
            where = path.relative_to(ROOT)
            assert isinstance(doc, dict), f"{where}: a document is not a mapping"
            assert isinstance(doc.get("apiVersion"), str), f"{where}: no apiVersion"
            assert isinstance(doc.get("kind"), str), f"{where}: no kind"
            assert isinstance((doc.get("metadata") or {}).get("name"), str), f"{where}: no name"


def test_kustomization_lists_exactly_the_other_files() -> None:
    kustomization = only(KUBERNETES / "kustomization.yaml", "Kustomization")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    others = {p.name for p in KUBERNETES.glob("*.y*ml") if p.name != "kustomization.yaml"}
    assert set(listed) == others


def test_readme_examples_are_resources_and_the_training_command_parses() -> None:
    from training.cli import parse_args

    readme = (KUBERNETES / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "the README shows no YAML"
    jobs = []
    for block in blocks:
        for doc in yaml.safe_load_all(block):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
            if doc["kind"] == "Job":
                jobs.append(doc)
    assert jobs, "the README shows no training Job"
    for job in jobs:
        spec = job["spec"]["template"]["spec"]
        # A training pod must not be taken for a server by the Service or the PDB.
        labels = job["spec"]["template"]["metadata"].get("labels", {})
        selector = only(KUBERNETES / "service.yaml", "Service")["spec"]["selector"]
        assert not selector.items() <= labels.items()
        mounts = {m["mountPath"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        for container in spec["containers"]:
            command = container["command"]
            assert command[:3] == ["python", "-m", "training"]
            args = parse_args(command[3:])
            assert str(args.model_dir) in mounts, "training writes outside the model volume"
        claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]}
        assert claims == {
            only(KUBERNETES / "models-pvc.yaml", "PersistentVolumeClaim")["metadata"]["name"]
        }


# --- the containers against the app ----------------------------------------------------------


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_probes_pass_on_a_live_app(path: Path, kind: str, model_root: Path) -> None:
    workload = only(path, kind)
    for container in containers(workload):
        found = dict(probes(container))
        assert {"livenessProbe", "readinessProbe"} <= found.keys()
        grpc_port = grpc_port_for(container)
        with live_app(workload, container, model_root, grpc_port) as client:
            for probe_kind, probe in found.items():
                assert probe_passes(client, grpc_port, probe), f"{probe_kind} fails: {probe}"


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_readiness_waits_for_the_models_and_liveness_does_not(
    path: Path, kind: str, model_root: Path
) -> None:
    """A liveness probe that waited for the models would restart pods that are still loading,
    or draining; a readiness probe that did not would send them traffic."""
    workload = only(path, kind)
    for container in containers(workload):
        found = dict(probes(container))
        ready, live = found["readinessProbe"], found["livenessProbe"]
        grpc_port = grpc_port_for(container)
        client = live_app(workload, container, model_root, grpc_port)  # no `with`: not loaded
        assert not probe_passes(client, grpc_port, ready)
        assert probe_passes(client, grpc_port, live)
        with client:  # loaded, then draining (what SIGTERM does before the server stops)
            assert probe_passes(client, grpc_port, ready)
            client.app.state.service.shutting_down = True  # type: ignore[attr-defined]
            assert not probe_passes(client, grpc_port, ready)
            assert probe_passes(client, grpc_port, live)


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_probe_ports_are_the_port_the_app_listens_on(path: Path, kind: str) -> None:
    """An HTTP probe asks PORT and a gRPC probe GRPC_PORT, through a declared container port."""
    for container in containers(only(path, kind)):
        for probe_kind, probe in probes(container):
            resolved, port = probe_port(container, probe), served_port(container, probe)
            assert resolved == port, f"{probe_kind} probes {resolved}, the app answers on {port}"


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_every_variable_is_a_setting(path: Path, kind: str) -> None:
    for container in containers(only(path, kind)):
        names = [e["name"] for e in container.get("env", [])]
        assert len(names) == len(set(names)), f"a variable is set twice: {names}"
        unknown = sorted(set(names) - SETTING_NAMES)
        assert not unknown, f"not settings of app.settings.Settings: {unknown}"


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_every_value_is_accepted_by_settings(
    path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variables as the app reads them: from the environment, rendered as KServe would."""
    workload = only(path, kind)
    for container in containers(workload):
        env = literal_env(container, render_metadata(workload))
        for name in SETTING_NAMES:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings(_env_file=None)  # the environment only, not a .env file
        for name, value in env.items():
            annotation = Settings.model_fields[name.lower()].annotation
            assert annotation is not None
            expected = TypeAdapter(annotation).validate_python(value)
            assert getattr(settings, name.lower()) == expected, name


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_grace_period_covers_prestop_and_drain(path: Path, kind: str) -> None:
    workload = only(path, kind)
    grace = pod_spec(workload).get("terminationGracePeriodSeconds", K8S_DEFAULT_GRACE_SECONDS)
    for container in containers(workload):
        pre_stop = container.get("lifecycle", {}).get("preStop", {})
        if "sleep" in pre_stop:
            pause = float(pre_stop["sleep"]["seconds"])
        elif "exec" in pre_stop:
            match = re.fullmatch(
                r"(?:.*\s)?sleep\s+(\d+(?:\.\d+)?)", " ".join(pre_stop["exec"]["command"])
            )
            assert match, f"unrecognised preStop: {pre_stop}"
            pause = float(match.group(1))
        else:
            pause = 0.0
        drain = literal_env(container).get("DRAIN_TIMEOUT_SECONDS")
        drain_seconds = (
            float(drain) if drain else Settings.model_fields["drain_timeout_seconds"].default
        )
        assert grace >= pause + drain_seconds, (
            f"terminationGracePeriodSeconds {grace} < preStop {pause} + drain {drain_seconds}"
        )


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_security_context_matches_the_image(path: Path, kind: str) -> None:
    workload = only(path, kind)
    pod = pod_spec(workload)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in containers(workload):
        security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        assert security.get("runAsNonRoot") is True
        assert security.get("runAsUser") == dockerfile_id("useradd", "--uid")
        assert security.get("runAsGroup") == dockerfile_id("groupadd", "--gid")
        assert security.get("readOnlyRootFilesystem") is True
        assert security.get("allowPrivilegeEscalation") is False
        assert "ALL" in security.get("capabilities", {}).get("drop", [])
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        mounts = container.get("volumeMounts", [])
        for mount in mounts:
            assert mount["name"] in volumes, f"mount {mount} names no volume"
        for wanted in WRITABLE_PATHS:
            writable = [
                m
                for m in mounts
                if (wanted == m["mountPath"] or wanted.startswith(m["mountPath"].rstrip("/") + "/"))
                and not m.get("readOnly", False)
            ]
            assert writable, f"{wanted} is not a writable mount on a read-only root filesystem"
            assert "emptyDir" in volumes[writable[0]["name"]], f"{wanted} is not scratch space"


def test_deployment_mounts_the_model_claim_where_model_dir_points() -> None:
    workload = deployment()
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    claim = only(KUBERNETES / "models-pvc.yaml", "PersistentVolumeClaim")["metadata"]["name"]
    for container in containers(workload):
        model_dir = literal_env(container)["MODEL_DIR"]
        mounts = [m for m in container["volumeMounts"] if m["mountPath"] == model_dir]
        assert len(mounts) == 1, f"MODEL_DIR {model_dir} is not a mount"
        assert mounts[0].get("readOnly") is True, "the servers must not write the model root"
        assert volumes[mounts[0]["name"]]["persistentVolumeClaim"]["claimName"] == claim


# --- the Kubernetes objects against each other -------------------------------------------------


def test_service_targets_a_named_port_of_the_deployment() -> None:
    workload = deployment()
    labels = workload["spec"]["template"]["metadata"]["labels"]
    service = only(KUBERNETES / "service.yaml", "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = containers(workload)
    ports = service["spec"]["ports"]
    # A Service of several ports must name each, uniquely.
    assert len({p["name"] for p in ports}) == len(ports)
    targets = {}
    for port in ports:
        target = port["targetPort"]
        assert isinstance(target, str), "target the port by name, so the number lives in one place"
        targets[port["name"]] = container_port(container, target)
    # Each port the app listens on, and no other.
    assert targets == {"http": listening_port(container), "grpc": grpc_listening_port(container)}


def test_hpa_and_pdb_target_the_deployment() -> None:
    workload = deployment()
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "tabserve"
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = only(KUBERNETES / "hpa.yaml", "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        workload["apiVersion"],
        workload["kind"],
        workload["metadata"]["name"],
    )
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0
    pdb = only(KUBERNETES / "pdb.yaml", "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # With minAvailable equal to the fewest replicas, no node could ever be drained.
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"] <= workload["spec"]["replicas"]
    rolling = workload["spec"]["strategy"]["rollingUpdate"]
    assert (rolling["maxUnavailable"], rolling["maxSurge"]) == (0, 1)


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_scrape_port_is_the_port_the_app_listens_on(path: Path, kind: str) -> None:
    workload = only(path, kind)
    if kind == "ServingRuntime":
        annotations, key = workload["spec"]["annotations"], "prometheus.kserve.io/port"
    else:
        annotations, key = (
            workload["spec"]["template"]["metadata"]["annotations"],
            "prometheus.io/port",
        )
    for container in containers(workload):
        assert int(annotations[key]) == listening_port(container)


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_scrape_path_answers_on_a_live_app(path: Path, kind: str, model_root: Path) -> None:
    workload = only(path, kind)
    if kind == "ServingRuntime":
        scrape_path = workload["spec"]["annotations"]["prometheus.kserve.io/path"]
    else:
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        scrape_path = annotations["prometheus.io/path"]
    for container in containers(workload):
        with live_app(workload, container, model_root) as client:
            response = client.get(scrape_path)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain")


# --- gRPC: the port, the probe, the image and compose -------------------------------------------


def dockerfile_exposed() -> set[int]:
    """The ports of every EXPOSE instruction (`8000`, `8000/tcp`)."""
    return {
        int(word.split("/")[0])
        for line in dockerfile_text().splitlines()
        if line.strip().upper().startswith("EXPOSE ")
        for word in line.split()[1:]
    }


def compose_value(value: str) -> tuple[str | None, str]:
    """(NAME, default) of a compose `${NAME:-default}`: what it is with NAME unset; a literal
    is (None, itself)."""
    match = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", value)
    return (match.group(1), match.group(2)) if match else (None, value)


def test_deployment_probes_readiness_over_grpc_and_liveness_over_http() -> None:
    """Readiness asks the gRPC health service of the whole server, so that a pod takes traffic
    only once its models are loaded and its gRPC port answers; startup and liveness ask HTTP,
    so that the probes cover both listeners between them."""
    (container,) = containers(deployment())
    handlers = {kind: next(iter(PROBE_HANDLERS & p.keys())) for kind, p in probes(container)}
    assert handlers == {
        "startupProbe": "httpGet",
        "livenessProbe": "httpGet",
        "readinessProbe": "grpc",
    }
    readiness = container["readinessProbe"]["grpc"]
    assert readiness["port"] == container_port(container, "grpc") == GRPC_PORT
    # "" (or none) is the whole server; `liveness` would pass before the models are loaded.
    assert readiness.get("service", "") == ""
    for kind in ("startupProbe", "livenessProbe"):
        assert container_port(container, container[kind]["httpGet"]["port"]) == HTTP_PORT


@pytest.mark.parametrize(("path", "kind"), WORKLOADS)
def test_grpc_container_port_is_the_grpc_port_setting(path: Path, kind: str) -> None:
    """One declared port, named as Kubernetes and KServe know a gRPC port, is where the app
    listens for gRPC, the GRPC_PORT default; it is not the HTTP port."""
    for container in containers(only(path, kind)):
        named = [
            p for p in container["ports"] if any(w in p.get("name", "") for w in KSERVE_GRPC_NAMES)
        ]
        assert [int(p["containerPort"]) for p in named] == [GRPC_PORT]
        assert named[0].get("protocol", "TCP") == "TCP"
        assert grpc_listening_port(container) == GRPC_PORT != listening_port(container)


def test_service_exposes_grpc_as_plaintext_http2() -> None:
    ports = {p["name"]: p for p in only(KUBERNETES / "service.yaml", "Service")["spec"]["ports"]}
    assert ports["grpc"]["port"] == GRPC_PORT
    assert ports["grpc"].get("appProtocol") == H2C
    assert ports["http"].get("appProtocol") != H2C


def test_dockerfile_sets_and_exposes_both_ports() -> None:
    env = dockerfile_env()
    assert int(env["GRPC_PORT"]) == GRPC_PORT
    assert int(env["PORT"]) == HTTP_PORT
    assert dockerfile_exposed() == {HTTP_PORT, GRPC_PORT}


def test_compose_publishes_the_grpc_port() -> None:
    api = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["api"]
    published = {}
    for port in api["ports"]:
        host, _, container = str(port).rpartition(":")
        published[int(container.split("/")[0])] = host
    assert published.keys() == {HTTP_PORT, GRPC_PORT}
    host_variable, host_port = compose_value(published[GRPC_PORT])
    assert int(host_port) == GRPC_PORT
    # GRPC_PORT reaches the container, and by default names the port published for it.
    _, grpc_port = compose_value(str(api["environment"]["GRPC_PORT"]))
    assert int(grpc_port) == GRPC_PORT
    # The host side has a variable of its own (as API_PORT is for HTTP's): moving the host
    # port must not move the app's away from the container port published.
    assert host_variable != "GRPC_PORT"


# --- KServe --------------------------------------------------------------------------------------


def test_serving_runtime_speaks_v2_on_8080_and_grpc_v2_on_8081() -> None:
    runtime = serving_runtime()
    assert {"v2", "grpc-v2"} <= set(runtime["spec"]["protocolVersions"])
    (container,) = containers(runtime)
    assert container["name"] == "kserve-container"
    ports = container["ports"]
    # KServe's predictor Service sends port 80 to the first port, so REST comes first; it
    # names its Service ports after these, and a Service of several ports needs names.
    assert [p["containerPort"] for p in ports] == [8080, 8081]
    assert all(p.get("name") for p in ports) and len({p["name"] for p in ports}) == len(ports)
    assert literal_env(container)["PORT"] == "8080"
    assert listening_port(container) == 8080
    # gRPC is the one port whose name KServe takes for gRPC (appProtocol h2c, gRPC routes).
    grpc_ports = [p for p in ports if any(word in p["name"] for word in KSERVE_GRPC_NAMES)]
    assert [p["containerPort"] for p in grpc_ports] == [grpc_listening_port(container)]
    assert grpc_listening_port(container) == GRPC_PORT


def test_inference_service_uses_the_runtime_and_its_model_format() -> None:
    runtime = serving_runtime()
    model = inference_service()["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {f["name"]: f for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats
    if "version" in model["modelFormat"]:
        assert model["modelFormat"]["version"] == formats[model["modelFormat"]["name"]]["version"]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    # The model root, whose <name>/<version>/ directories the app serves: the Deployment's claim.
    claim = only(KUBERNETES / "models-pvc.yaml", "PersistentVolumeClaim")["metadata"]["name"]
    assert model["storageUri"].rstrip("/") == f"pvc://{claim}"
    (container,) = containers(runtime)
    assert literal_env(container)["MODEL_DIR"] == "/mnt/models"  # KServe's storage mount


def documented_infer_call(path: Path) -> tuple[str, Any]:
    """The URL path and JSON body of the curl call in the file's comments."""
    comments = "\n".join(
        line.lstrip()[1:].strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.lstrip().startswith("#")
    ).replace("\\\n", " ")
    url = re.search(r"curl\s[^\n]*?(https?://\S+)", comments)
    body = re.search(r"-d\s+'(\{.*?\})'", comments)
    assert url and body, f"{path.relative_to(ROOT)} shows no curl call with a JSON body"
    return urlsplit(url.group(1)).path, yaml.safe_load(body.group(1))


def test_kserve_model_name_is_the_bundle_the_app_serves(model_root: Path) -> None:
    """KServe names the model after the InferenceService and renders {{.Name}} with it; the
    app serves MODEL_NAME from MODEL_DIR/<MODEL_NAME>/<version>/, so the two must agree, and
    the documented v2 call must work against that model."""
    runtime = serving_runtime()
    isvc = inference_service()
    name = isvc["metadata"]["name"]
    (container,) = containers(runtime)
    assert literal_env(container, isvc["metadata"])["MODEL_NAME"] == name
    assert (model_root / name).is_dir(), f"the test fixtures have no bundle {name!r}"
    path, body = documented_infer_call(KSERVE / "inference-service.yaml")
    assert path == f"/v2/models/{name}/infer"
    with serve(model_root, name, **settings_overrides(container, isvc["metadata"])) as client:
        assert client.get(f"/v2/models/{name}/ready").status_code == 200
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["model_name"] == name
        (output,) = answer["outputs"]
        assert output["name"] == "predictions"
        assert output["shape"] == [body["inputs"][0]["shape"][0]]
