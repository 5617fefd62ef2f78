"""The Grafana dashboard and the compose `monitoring` profile against the app's /metrics.

No Grafana or Prometheus here: every PromQL expression of the dashboard (panels, rows, template
variables, annotations) is read, the metric and label names it uses are taken out of it, and
each must be one the live app exports; the provisioning files, the Prometheus configuration and
the compose services are parsed and checked against each other and against the repository.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.model.drift import MIN_ROWS
from app.settings import Settings
from tests.helpers.service import serve

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tabserve.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "tabserve.yaml"
GRAFANA_README = GRAFANA / "README.md"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
COMPOSE = ROOT / "docker-compose.yml"

DS_VARIABLE = "DS_PROMETHEUS"
DS_REFERENCES = {f"${DS_VARIABLE}", f"${{{DS_VARIABLE}}}"}
GRAFANA_BUILT_IN = "-- Grafana --"  # the built-in annotations' datasource
DEFAULT_SERVICES = {"train", "api"}  # what plain `docker compose up` starts
MONITORING = {"prometheus": 9090, "grafana": 3000}  # service -> its container port
SCRAPE_INTERVAL = "5s"
# Labels Prometheus gives every sample it scrapes.
TARGET_LABELS = {"job", "instance"}

Doc = dict[str, Any]

# --- PromQL, as much of it as a dashboard needs ---------------------------------------------------


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTIONS = words(
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv double_exponential_smoothing exp floor histogram_avg
    histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar
    histogram_sum holt_winters hour idelta increase info irate label_join label_replace
    last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi
    predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh
    sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time
    sum_over_time tan tanh time timestamp vector year"""
)
AGGREGATIONS = words(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk "
    "limit_ratio"
)
KEYWORDS = words(
    "by without on ignoring group_left group_right bool and or unless offset atan2 inf nan"
)

_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
# Grafana's variables: $name, ${name}, ${name:format}, [[name]]; all of them outside strings
# stand where a number or a duration would ($__rate_interval, $__range).
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
# A name not glued to a number (`5m`, `1e-3`, `0.99`), and whether a call follows it.
_NAME = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?")


@dataclass(frozen=True)
class Query:
    metrics: frozenset[str]
    labels: frozenset[str]  # in label matchers and in by/without/on/ignoring/group_x clauses
    calls: frozenset[str]  # functions and aggregations called


def parse_promql(expr: str) -> Query:
    """The metric names, label names and calls of a PromQL expression, Grafana variables and
    all: strings, label matchers, ranges and grouping clauses are cut out, and what remains
    is names that either call (functions), are keywords, or are metrics."""
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("1", text)
    labels = {m for body in _MATCHERS.findall(text) for m in _MATCHER_LABEL.findall(body)}
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    for clause in _GROUPING.findall(text):
        labels.update(label.strip() for label in clause.split(",") if label.strip())
    text = _GROUPING.sub(" ", text)
    metrics, calls = set(), set()
    for name, call in _NAME.findall(text):
        if call:
            calls.add(name)
        elif name.lower() not in KEYWORDS:
            metrics.add(name)
    return Query(frozenset(metrics), frozenset(labels), frozenset(calls))


_LABEL_VALUES = re.compile(r"label_values\((.*),\s*[a-zA-Z_]\w*\s*\)", re.DOTALL)
_QUERY_RESULT = re.compile(r"query_result\((.*)\)", re.DOTALL)
_NO_EXPRESSION = re.compile(r"label_values\(\s*\w+\s*\)|label_names\(.*\)|metrics\(.*\)")


def variable_expression(query: str) -> str | None:
    """The PromQL inside a Grafana Prometheus variable query, None if it has none."""
    query = query.strip()
    for pattern in (_LABEL_VALUES, _QUERY_RESULT):
        match = pattern.fullmatch(query)
        if match:
            return match.group(1)
    if _NO_EXPRESSION.fullmatch(query):
        return None
    return query  # a plain PromQL query (Grafana's "Classic query" of type query_result)


# --- reading the dashboard ------------------------------------------------------------------------


def dashboard() -> Doc:
    loaded: Doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def all_panels(parent: Doc) -> Iterator[Doc]:
    """Every panel, the ones inside collapsed rows too."""
    for panel in parent.get("panels", []):
        yield panel
        yield from all_panels(panel)


def variables(board: Doc) -> list[Doc]:
    found: list[Doc] = board.get("templating", {}).get("list", [])
    return found


def expressions(board: Doc) -> list[tuple[str, str]]:
    """(where, PromQL) for every query of the dashboard."""
    found = []
    for panel in all_panels(board):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append(
                    (f"panel {panel.get('title')!r} {target.get('refId')}", target["expr"])
                )
    for variable in variables(board):
        if variable.get("type") == "query":
            query = variable.get("query", "")
            query = query.get("query", "") if isinstance(query, dict) else query
            expr = variable_expression(query)
            if expr:
                found.append((f"variable ${variable['name']}", expr))
    for annotation in board.get("annotations", {}).get("list", []):
        expr = annotation.get("expr") or annotation.get("target", {}).get("expr")
        if expr:
            found.append((f"annotation {annotation.get('name')!r}", expr))
    return found


def problems(queries: list[tuple[str, str]], exported: dict[str, set[str]]) -> list[str]:
    """What in (where, PromQL) queries the app does not export, or PromQL does not have."""
    found = []
    for where, expr in queries:
        query = parse_promql(expr)
        if not query.metrics:
            found.append(f"{where}: queries no metric: {expr}")
        missing = sorted(query.metrics - exported.keys())
        found.extend(f"{where}: {metric} is not exported" for metric in missing)
        for call in sorted(query.calls - FUNCTIONS - AGGREGATIONS):
            found.append(f"{where}: {call}() is not a PromQL function")
        if not missing:  # with a metric unknown, so are its labels
            known = TARGET_LABELS.union(*(exported[m] for m in query.metrics))
            for label in sorted(query.labels - known):
                found.append(f"{where}: no queried metric has the label {label!r}")
    return found


def walk(node: Any) -> Iterator[Doc]:
    """Every mapping in a JSON document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


# --- reading the other files ----------------------------------------------------------------------


def load_yaml(path: Path) -> Doc:
    loaded: Doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def provisioned_datasource() -> Doc:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert isinstance(source, dict)
    return source


def compose_services() -> Doc:
    services: Doc = load_yaml(COMPOSE)["services"]
    return services


def container_ports(service: Doc) -> set[int]:
    """The container side of a service's `ports` (short syntax, host part and ${...} aside)."""
    return {int(str(port).rsplit(":", 1)[-1].split("/")[0]) for port in service.get("ports", [])}


def mounts(service: Doc) -> dict[str, tuple[Path, str]]:
    """Container path -> (host path, mode) of a service's bind mounts (short syntax)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        assert source.startswith("./"), f"{volume}: not a path in the repository"
        found[target] = ((COMPOSE.parent / source).resolve(), mode[0] if mode else "rw")
    return found


def host_path(service: Doc, container_path: str) -> Path:
    """Where a path inside the container comes from in the repository, through its mounts."""
    for target, (source, _) in mounts(service).items():
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is in no mount of {service.get('image')}")


def scrape_config(job: str) -> Doc:
    config = load_yaml(PROMETHEUS)
    found = [s for s in config["scrape_configs"] if s["job_name"] == job]
    assert len(found) == 1, f"expected one scrape config {job!r}, found {len(found)}"
    return {"scrape_interval": config.get("global", {}).get("scrape_interval"), **found[0]}


# --- the live app -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(version_dir: Path, model_root: Path) -> dict[str, set[str]]:
    """Sample name -> label names, as the app exports them after a prediction and a 404."""
    features = json.loads((version_dir / "metadata.json").read_text(encoding="utf-8"))["features"]
    # With a price, so that every cost series exists as well, enough rows for drift, and a
    # shadow version (the served one) whose figures are in once it has scored the rows.
    shadow = {"diabetes": 1}
    with serve(model_root, "diabetes", cost_per_cpu_hour=0.05, shadow_versions=shadow) as client:
        rows = [dict.fromkeys(features, 0.01)] * MIN_ROWS
        assert client.post("/predict", json={"instances": rows}).status_code == 200
        assert client.get("/no/such/path").status_code == 404
        deadline = time.monotonic() + 10
        while client.get("/model/shadow").json()["rows"] < MIN_ROWS:
            assert time.monotonic() < deadline, "the shadow did not score the rows"
            time.sleep(0.02)
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    assert "tabserve_rows_predicted_total" in names  # the prediction made its series
    assert "tabserve_cost_per_million_predictions" in names
    assert "tabserve_feature_drift" in names and "tabserve_output_drift" in names
    assert "tabserve_shadow_difference" in names
    return names


# --- the extractor ------------------------------------------------------------------------------


def test_the_extractor_finds_metrics_labels_and_calls_and_nothing_else() -> None:
    query = parse_promql(
        "histogram_quantile(0.99, sum by (le, route) (rate(\n"
        '  tabserve_made_up_seconds_bucket{route=~"$route", status!="2.."}[$__rate_interval])))\n'
        "/ on (route) group_left max without (instance) (other:recorded_total offset 5m)\n"
        '> bool 1e-3 or label_replace(vector(1), "dst", "not_a_metric", "src", "(.*)")\n'
        "unless ${DS_PROMETHEUS:raw} * Inf"
    )
    assert query.metrics == {"tabserve_made_up_seconds_bucket", "other:recorded_total"}
    assert query.labels == {"le", "route", "status", "instance"}
    assert query.calls == {"histogram_quantile", "sum", "rate", "max", "label_replace", "vector"}
    assert variable_expression('label_values(up{job=~"$job"}, instance)') == 'up{job=~"$job"}'
    assert variable_expression("query_result(count by (a) (b))") == "count by (a) (b)"
    assert variable_expression("label_values(job)") is None


def test_a_wrong_metric_name_label_or_function_is_caught(exported: dict[str, set[str]]) -> None:
    """The check below on a copy of the dashboard with mistakes put in."""
    board = dashboard()
    assert problems(expressions(board), exported) == []
    broken = copy.deepcopy(board)
    targets = [t for p in all_panels(broken) for t in p.get("targets", []) if "expr" in t]
    targets[0]["expr"] = targets[0]["expr"].replace("tabserve_", "tabserve_typo_", 1)
    targets[1]["expr"] = "sum by (status_code) (rate(tabserve_http_requests_total[5m]))"
    targets[2]["expr"] = "histogram_quantil(0.9, tabserve_http_request_duration_seconds_bucket)"
    found = problems(expressions(broken), exported)
    assert len(found) == 3, found
    assert "tabserve_typo_" in found[0]
    assert "'status_code'" in found[1]
    assert "histogram_quantil()" in found[2]


# --- the dashboard --------------------------------------------------------------------------


def test_every_queried_metric_and_label_is_exported(exported: dict[str, set[str]]) -> None:
    board = dashboard()
    queried = set().union(*(parse_promql(e).metrics for _, e in expressions(board)))
    # The panels the dashboard promises, by the metrics they read.
    assert {
        "tabserve_http_requests_total",
        "tabserve_http_request_duration_seconds_bucket",
        "tabserve_http_requests_in_flight",
        "tabserve_rows_predicted_total",
        "tabserve_batch_size_rows_bucket",
        "tabserve_batch_size_rows_sum",
        "tabserve_batch_size_rows_count",
        "tabserve_model_info",
        "tabserve_model_loads_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    } <= queried
    assert problems(expressions(board), exported) == []


def test_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] == "tabserve"
    assert board["title"]
    assert board["schemaVersion"] >= 39
    panels = list(all_panels(board))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids used twice: {ids}"
    boxes: list[tuple[str, tuple[int, int, int, int]]] = []
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["h"] > 0
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']!r} is wider than the dashboard"
        box = (grid["x"], grid["y"], grid["x"] + grid["w"], grid["y"] + grid["h"])
        for title, other in boxes:
            apart = box[2] <= other[0] or other[2] <= box[0] or box[3] <= other[1]
            assert apart or other[3] <= box[1], f"{panel['title']!r} overlaps {title!r}"
        boxes.append((panel["title"], box))


def test_every_panel_has_a_title_and_a_query() -> None:
    for panel in all_panels(dashboard()):
        assert str(panel.get("title", "")).strip(), f"panel {panel['id']} has no title"
        if panel["type"] == "row":
            continue
        targets = panel.get("targets", [])
        assert targets, f"{panel['title']!r} has no target"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), f"{panel['title']!r}: refIds {refs}"
        for target in targets:
            assert str(target.get("expr", "")).strip(), f"{panel['title']!r}: an empty query"


def test_datasources_are_the_variable_or_the_provisioned_one() -> None:
    board = dashboard()
    provisioned = provisioned_datasource()
    (variable,) = [v for v in variables(board) if v["name"] == DS_VARIABLE]
    assert variable["type"] == "datasource"
    assert variable["query"] == provisioned["type"] == "prometheus"
    assert variable["current"]["value"] == provisioned["uid"] == "prometheus"
    references = [node["datasource"] for node in walk(board) if "datasource" in node]
    assert len(references) > len(list(all_panels(board)))  # panels, targets, variables
    for reference in references:
        assert isinstance(reference, dict), f"a datasource by name only: {reference!r}"
        if reference.get("uid") == GRAFANA_BUILT_IN:
            continue
        assert reference.get("type") == "prometheus", reference
        assert reference.get("uid") in {*DS_REFERENCES, provisioned["uid"]}, reference


def test_readme_describes_every_panel() -> None:
    readme = GRAFANA_README.read_text(encoding="utf-8")
    for panel in all_panels(dashboard()):
        assert panel["title"] in readme, f"deploy/grafana/README.md: no {panel['title']!r}"
    assert "docker compose --profile monitoring up" in readme


# --- provisioning, Prometheus, compose ------------------------------------------------------------


def test_grafana_provisioning_points_at_the_compose_prometheus_and_the_dashboard() -> None:
    services = compose_services()
    source = provisioned_datasource()
    assert source["type"] == "prometheus"
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.port in container_ports(services["prometheus"])
    # $__rate_interval is four times this: it must be the scrape interval.
    assert source["jsonData"]["timeInterval"] == scrape_config("tabserve")["scrape_interval"]
    (provider,) = load_yaml(PROVIDERS)["providers"]
    assert provider["type"] == "file"
    loaded = host_path(services["grafana"], provider["options"]["path"])
    assert loaded == DASHBOARD.parent, f"Grafana loads dashboards from {loaded}"
    for directory in ("datasources", "dashboards"):
        provisioning = host_path(services["grafana"], f"/etc/grafana/provisioning/{directory}")
        assert provisioning == GRAFANA / "provisioning" / directory


def test_prometheus_scrapes_the_api_service_at_metrics() -> None:
    job = scrape_config("tabserve")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scheme", "http") == "http"
    assert job["scrape_interval"] == SCRAPE_INTERVAL
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == ["api:8000"]
    host, port = targets[0].split(":")
    api = compose_services()[host]
    assert int(port) in container_ports(api)
    assert int(port) == Settings.model_fields["port"].default  # what the image's server binds


def test_plain_compose_up_starts_what_it_did() -> None:
    services = compose_services()
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == DEFAULT_SERVICES
    # What Prometheus scrapes: the server image, on the container port the app listens on;
    # beside it, the gRPC port.
    api = services["api"]
    assert api["image"] == "tabserve:serve"
    assert container_ports(api) == {
        Settings.model_fields["port"].default,
        Settings.model_fields["grpc_port"].default,
    }


@pytest.mark.parametrize("name", sorted(MONITORING))
def test_monitoring_services_are_in_the_profile_with_read_only_mounts(name: str) -> None:
    service = compose_services()[name]
    assert service["profiles"] == ["monitoring"]
    image, _, tag = service["image"].rpartition(":")
    assert image and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"pin a release: {service['image']}"
    assert MONITORING[name] in container_ports(service)
    for target, (source, mode) in mounts(service).items():
        assert source.exists(), f"{name}: {target} mounts {source}, which does not exist"
        assert mode == "ro", f"{name}: {target} is mounted {mode}"


def test_prometheus_service_reads_the_repository_config() -> None:
    service = compose_services()["prometheus"]
    (config_file,) = [a.split("=", 1)[1] for a in service["command"] if a.startswith("--config.")]
    assert host_path(service, config_file) == PROMETHEUS


def test_grafana_service_is_open_to_viewers_and_opens_on_the_dashboard() -> None:
    service = compose_services()["grafana"]
    env = service["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "prometheus" in service["depends_on"]
    home = host_path(service, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home == DASHBOARD


# --- alerting rules -------------------------------------------------------------------------------


def alert_rules() -> list[Doc]:
    rules: list[Doc] = [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]
    return rules


def test_the_alerting_rules_query_what_the_app_exports(exported: dict[str, set[str]]) -> None:
    rules = alert_rules()
    assert {"TabserveFeatureDrift", "TabserveOutputDrift"} <= {r["alert"] for r in rules}
    assert problems([(f"alert {r['alert']}", r["expr"]) for r in rules], exported) == []
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_an_alert_fires_on_the_alert_status_only() -> None:
    """status is 0 ok, 1 warn, 2 alert: the drift alerts compare it with 2, the warning with 1."""
    by_name = {r["alert"]: r["expr"] for r in alert_rules()}
    for name in ("TabserveFeatureDrift", "TabserveOutputDrift"):
        assert 'statistic="status"' in by_name[name] and by_name[name].rstrip().endswith(">= 2")
    assert by_name["TabserveFeatureDriftWarning"].rstrip().endswith(">= 1")


def test_prometheus_loads_the_rules_compose_mounts() -> None:
    config = load_yaml(PROMETHEUS)
    service = compose_services()["prometheus"]
    (config_file,) = [a.split("=", 1)[1] for a in service["command"] if a.startswith("--config.")]
    for rule_file in config["rule_files"]:
        in_container = str(Path(config_file).parent / rule_file)
        assert host_path(service, in_container) == ALERTS
