"""deploy/observability: Prometheus' scrape config and alert rules pass ``promtool``; each
alert fires on the series of alerts.test.yml (and a weakened copy of the rules fails
them: the rules bite); every metric the alerts and the Grafana dashboard query is one the
API really exports, read from ``/metrics`` of the app in memory.

promtool comes from Debian's ``prometheus`` package (``scripts/setup-promtool``, run by
``scripts/setup dev``). Without it the promtool tests are skipped, saying so,
unless ``FLEETLEARN_REQUIRE_PROMTOOL=1`` (CI) makes them fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_fixtures import PREDICT, metrics_of, state_of, toy_records
from fastapi.testclient import TestClient
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from fleetlearn.api.app import api_routes
from fleetlearn.registry._store import RUN_STATUSES

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
GRAFANA = OBS / "grafana"
ALERTS = ("FleetlearnNodeLost", "FleetlearnClusterUnreachable", "FleetlearnHighErrorRate",
          "FleetlearnPredictLatencyHigh", "FleetlearnRunFailed")
MISSING = ("promtool not found (Debian/Ubuntu: apt-get install prometheus, or "
           "scripts/setup-promtool)")


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("FLEETLEARN_REQUIRE_PROMTOOL") == "1":
            pytest.fail(f"{MISSING}; FLEETLEARN_REQUIRE_PROMTOOL=1 says these tests must run",
                        pytrace=False)
        pytest.skip(MISSING)
    return path


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def _copy(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copy(OBS / name, tmp_path / name)
    return tmp_path


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((OBS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


# ----------------------------------------------------------------- promtool


def test_the_scrape_config_passes_promtool_check_config(promtool: str, tmp_path: Path) -> None:
    folder = _copy(tmp_path, "prometheus.yml", "alerts.yml")
    # The API's read key is a file beside the config (mounted in the container); promtool
    # checks it exists.
    (folder / "api-read-key").write_text("flk_example\n")
    done = _promtool(promtool, "check", "config", "prometheus.yml", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout


def test_the_alert_rules_pass_promtool_check_rules(promtool: str, tmp_path: Path) -> None:
    folder = _copy(tmp_path, "alerts.yml")
    done = _promtool(promtool, "check", "rules", "alerts.yml", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout
    # ... and refuse a broken rule: the check bites.
    (folder / "alerts.yml").write_text((OBS / "alerts.yml").read_text().replace(
        "histogram_quantile(0.99, sum by (le, model) (rate(",
        "histogram_quantile(0.99, sum by (le, model) (rate((", 1))
    broken = _promtool(promtool, "check", "rules", "alerts.yml", cwd=folder)
    assert broken.returncode != 0
    assert "parse error" in broken.stdout + broken.stderr


def test_each_alert_fires_on_its_series_and_not_on_the_others(promtool: str,
                                                              tmp_path: Path) -> None:
    cases = yaml.safe_load((OBS / "alerts.test.yml").read_text())["tests"]
    firing = {t["alertname"] for case in cases for t in case["alert_rule_test"]
              if t["exp_alerts"]}
    quiet = {t["alertname"] for case in cases for t in case["alert_rule_test"]
             if not t["exp_alerts"]}
    assert {r["alert"] for r in _rules()} == set(ALERTS)
    assert firing == set(ALERTS)  # every alert is shown to fire ...
    assert quiet == set(ALERTS)  # ... and to stay quiet before (or after) its fault
    folder = _copy(tmp_path, "alerts.yml", "alerts.test.yml")
    done = _promtool(promtool, "test", "rules", "alerts.test.yml", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(("old", "new"), [
    ("> 0.05", "> 0.5"),  # an error-rate threshold the faulty API stays under
    ("[5m]\n          ))) > 0.5", "[5m]\n          ))) > 2"),  # latency: the slow model passes
], ids=["error-rate", "latency"])
def test_weakened_rules_fail_the_rule_tests(promtool: str, tmp_path: Path, old: str,
                                            new: str) -> None:
    folder = _copy(tmp_path, "alerts.test.yml")
    text = (OBS / "alerts.yml").read_text()
    assert text.count(old) == 1
    (folder / "alerts.yml").write_text(text.replace(old, new))
    done = _promtool(promtool, "test", "rules", "alerts.test.yml", cwd=folder)
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


# ------------------------------------------------------- config, dashboard, image


def test_prometheus_scrapes_the_api_with_a_read_key_and_every_ray_node() -> None:
    config = yaml.safe_load((OBS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["api"]
    assert api["metrics_path"] == "/metrics"
    assert api["authorization"] == {"type": "Bearer", "credentials_file": "api-read-key"}
    assert [t for c in api["static_configs"] for t in c["targets"]] == ["api:8000"]
    (dns,) = jobs["ray"]["dns_sd_configs"]
    assert {"ray-head", "ray-worker"} <= set(dns["names"])  # compose service names
    assert (dns["type"], dns["port"]) == ("A", 8080)


def _dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "fleetlearn.json").read_text())


def test_the_dashboard_shows_rate_errors_latency_by_model_and_nodes_alive() -> None:
    dash = _dashboard()
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in dash["panels"]}
    assert "rate(fleetlearn_http_requests_total" in exprs["Request rate by route"][0]
    assert any('status=~"5.."' in e for e in exprs["Error rate"])
    latency = exprs["Prediction latency p50 / p99 by model"]
    assert [e.split(",")[0] for e in latency] == ["histogram_quantile(0.5",
                                                   "histogram_quantile(0.99"]
    assert all("by (le, model)" in e for e in latency)
    assert exprs["Nodes alive"] == ['max(fleetlearn_cluster_nodes{state="alive"})']
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"  # the one templated source
    (variable,) = dash["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource", "datasource", "prometheus")


def test_grafana_provisioning_loads_the_dashboard_from_prometheus() -> None:
    (source,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    (provider,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "fleetlearn.yml").read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")


def test_the_prometheus_image_builds_from_the_local_base_with_both_files() -> None:
    text = (OBS / "Dockerfile.prometheus").read_text()
    assert "ARG BASE_IMAGE=fleetlearn-base:bookworm\nFROM ${BASE_IMAGE}\n" in text
    assert "apt-get install -y --no-install-recommends prometheus" in text
    copied = re.search(r"^COPY (.+) /etc/prometheus/$", text, re.MULTILINE)
    assert copied is not None
    files = copied.group(1).split()
    assert files == ["deploy/observability/prometheus.yml", "deploy/observability/alerts.yml"]
    assert all((ROOT / f).is_file() for f in files)
    assert "USER prometheus" in text
    assert "api-read-key" not in copied.group(0)  # the key is mounted, never baked in


# ------------------------------------------- every metric queried is one the API exports


_STRING = r'"(?:[^"\\]|\\.)*"'
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{((?:[^{}\"]|" + _STRING + r")*)\}")
_MATCHER = re.compile(r"(\w+)\s*(=~|!~|!=|=)\s*(" + _STRING + ")")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan"}


def _selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """``(metric, {label: value})`` of every selector of a PromQL expression."""
    out: list[tuple[str, dict[str, str]]] = []
    for name, body in _SELECTOR.findall(expr):
        labels = {label: json.loads(value) for label, _, value in _MATCHER.findall(body)}
        out.append((name, labels))
    bare = _SELECTOR.sub(" ", expr)  # the selectors, read above
    bare = re.sub(_STRING, '""', bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)  # ranges
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\$\w+", " ", bare)  # Grafana variables
    for name in re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", bare):
        if name not in _KEYWORDS:
            out.append((name, {}))
    return out


def test_the_promql_reader_finds_metrics_and_labels() -> None:
    got = _selectors('histogram_quantile(0.99, sum by (le, model) (rate(a_bucket{route="/x/{n}"'
                     ',s=~"5.."}[5m]))) > 0.5 and on (job) b_total offset 5m')
    assert sorted(got, key=str) == sorted([("a_bucket", {"route": "/x/{n}", "s": "5.."}),
                                           ("b_total", {})], key=str)


def _queries() -> list[str]:
    exprs = [rule["expr"] for rule in _rules()]
    exprs += [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]
    return exprs


def _exported(client: TestClient) -> tuple[set[str], dict[str, tuple[str, ...]]]:
    """The sample names ``/metrics`` answers, and each metric family's label names."""
    text = client.get("/metrics").text
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum", "_created")}
    names = {family.name + suffix for family in text_string_to_metric_families(text)
             for suffix in suffixes.get(family.type, ("",))}
    labels: dict[str, tuple[str, ...]] = {}
    for metric in vars(state_of(client).metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in suffixes[metric._type]:
                labels[metric._name + suffix] = (*metric._labelnames,
                                                 *(("le",) if suffix == "_bucket" else ()))
    return names, labels


def test_every_metric_the_alerts_and_dashboard_query_is_exported_by_the_api(
        client: TestClient) -> None:
    # Traffic first, so the labelled families hold samples too.
    assert client.post(PREDICT.format("toy-logreg"),
                       json={"records": toy_records(2)}).status_code == 200
    names, labels = _exported(client)
    assert "fleetlearn_cluster_nodes" in names  # declared even with no cluster (local mode)
    assert "fleetlearn_runs" in names
    assert ("fleetlearn_runs", ("status", "failed")) in metrics_of(client)
    routes = {route.path_format for route in api_routes(client.app)}
    queried = [s for expr in _queries() for s in _selectors(expr)]
    assert len({name for name, _ in queried}) >= 8
    for name, matchers in queried:
        assert name in names, f"{name} is queried but /metrics does not export it"
        for label, value in matchers.items():
            assert label in labels[name], f"{name} has no label {label!r}"
            if label == "route":
                assert value in routes, f"{value!r} is no route of the API"
            if name == "fleetlearn_runs" and label == "status":
                assert value in RUN_STATUSES
            if name == "fleetlearn_cluster_nodes" and label == "state":
                assert value in ("alive", "dead")
