"""A real Prometheus (Debian's, as in deploy/observability/Dockerfile.prometheus) runs
deploy/observability's scrape config and alert rules against a real fleetlearn API on
loopback: it scrapes ``/metrics`` with the read key from its ``credentials_file``, every
rule evaluates, and a run that fails in the registry fires ``FleetlearnRunFailed``.

Only the intervals (1 s instead of 15 s) and the targets (the API's loopback port instead
of compose service names; the Ray job dropped) differ from the shipped file. Skipped
without ``prometheus`` unless ``FLEETLEARN_REQUIRE_PROMTOOL=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from live_server import free_port, serving

from fleetlearn.api import create_app
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings, ServingState

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
MISSING = "prometheus not found (Debian/Ubuntu: apt-get install prometheus)"


@pytest.fixture
def prometheus_bin() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("FLEETLEARN_REQUIRE_PROMTOOL") == "1":
            pytest.fail(f"{MISSING}; FLEETLEARN_REQUIRE_PROMTOOL=1 says this test must run",
                        pytrace=False)
        pytest.skip(MISSING)
    return path


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, str, Registry]]:
    """A fleetlearn API on loopback whose registry holds a key: keys are required."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = Registry(url, artifact_dir=str(tmp_path / "artifacts"))
    _, secret = registry.create_api_key("prometheus", "read")
    settings = ServeSettings(registry_url=url, artifact_dir=str(tmp_path / "artifacts"),
                             stats_flush_s=3600.0)
    app = create_app(settings, state=ServingState(settings))
    try:
        with serving(app, free_port()) as base:
            yield base, secret, registry
    finally:
        registry.close()


def _config(folder: Path, api_url: str, secret: str) -> Path:
    config = yaml.safe_load((OBS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["api"]["static_configs"][0]["targets"] = [api_url.removeprefix("http://")]
    config["scrape_configs"] = [jobs["api"]]  # no Ray nodes here
    shutil.copy(OBS / "alerts.yml", folder / "alerts.yml")
    (folder / jobs["api"]["authorization"]["credentials_file"]).write_text(secret + "\n")
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus(prometheus_bin: str, api: tuple[str, str, Registry],
               tmp_path: Path) -> Iterator[Prometheus]:
    api_url, secret, registry = api
    folder = tmp_path / "prometheus"
    folder.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [prometheus_bin, f"--config.file={_config(folder, api_url, secret)}",
         f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(folder / "log").open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: httpx.get(f"{base}/-/ready", timeout=2).status_code == 200,
               "Prometheus ready", proc, folder)
        yield Prometheus(base, registry, proc, folder)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Prometheus:
    """A running Prometheus: its URL, the API's registry, its process and folder."""

    base: str
    registry: Registry
    proc: subprocess.Popen
    folder: Path

    def wait(self, check: Any, what: str) -> Any:
        return _until(check, what, self.proc, self.folder)

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.base}/api/v1/query", params={"query": expr},
                         timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]["result"]


def _until(check: Any, what: str, proc: subprocess.Popen, folder: Path,
           limit_s: float = 60.0) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        assert proc.poll() is None, f"Prometheus exited: {(folder / 'log').read_text()[-2000:]}"
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.5)


def test_prometheus_scrapes_the_api_with_its_key_and_a_failed_run_fires_the_alert(
        prometheus: Prometheus) -> None:
    p, registry = prometheus, prometheus.registry
    (target,) = p.wait(lambda: httpx.get(f"{p.base}/api/v1/targets", timeout=5).json()[
        "data"]["activeTargets"], "the API's target")
    assert target["labels"]["job"] == "api"
    assert httpx.get(target["scrapeUrl"], timeout=5).status_code == 401  # keys required
    # The API answers /metrics only with a key: "up" proves the credentials file is read.
    p.wait(lambda: p.query('up{job="api"} == 1'), "the API scraped (up == 1)")
    p.wait(lambda: p.query('fleetlearn_runs{status="failed"} == 0'), "0 failed runs")
    # A few scrapes at 0 first, so the rise is inside the alert's window.
    p.wait(lambda: p.query('count_over_time(fleetlearn_runs{status="failed"}[1m]) >= 3'),
           "three scrapes at 0")
    assert not p.query('ALERTS{alertname="FleetlearnRunFailed"}')

    run = registry.create_run({"tables": []}, seed=0, name="doomed")
    registry.set_run_status(run.id, "failed", error="the data broke")

    p.wait(lambda: p.query('fleetlearn_runs{status="failed"} == 1'), "1 failed run")
    firing = p.wait(lambda: p.query(
        'ALERTS{alertname="FleetlearnRunFailed",alertstate="firing"}'), "the alert firing")
    assert firing[0]["metric"]["severity"] == "warning"
    # Every rule of alerts.yml evaluates against the real series, none in error.
    groups = httpx.get(f"{p.base}/api/v1/rules", timeout=5).json()["data"]["groups"]
    health = {r["name"]: (r["health"], r.get("lastError", "")) for g in groups
              for r in g["rules"]}
    assert set(health) == {"FleetlearnNodeLost", "FleetlearnClusterUnreachable",
                           "FleetlearnHighErrorRate", "FleetlearnPredictLatencyHigh",
                           "FleetlearnRunFailed"}
    assert {name: h for name, h in health.items() if h[0] != "ok"} == {}
    # Nothing was lost on the way: the registry holds the one failed run, with its error.
    assert registry.count_runs()["failed"] == 1
    assert registry.get_run(run.id).error == "the data broke"
