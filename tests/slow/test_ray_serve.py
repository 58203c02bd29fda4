"""Cluster mode: the fleetlearn API as a Ray Serve deployment with two replicas.

One embedded Ray (its own HOME and RAY_TMPDIR, 80 MiB object store, no dashboard)
serves a model trained and registered here, answering real HTTP on a free loopback
port: predictions equal the pipeline's own, requests reach both replicas, concurrent
requests share ``predict`` calls (``@serve.batch``), and shutting down closes the port.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from live_server import free_port
from sklearn.datasets import load_breast_cancer

from fleetlearn.catalog import resolve_model
from fleetlearn.data import dataset_from_frame
from fleetlearn.errors import ConfigError
from fleetlearn.model import build_pipeline
from fleetlearn.registry import Registry

ROUTE = "/v1/models/bc-logreg/predict"

# Ray Serve's own pydantic models warn on import; nothing fleetlearn can act on.
pytestmark = pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field`")


@pytest.fixture
def embedded_ray(ray_session: None) -> None:
    """The test session's embedded Ray (see tests/conftest.py): its 2 CPUs hold the two
    replicas; ``deploy`` joins it and leaves it running."""


@pytest.fixture(scope="module")
def registry_with_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite registry holding a logistic regression fitted on breast_cancer (30
    numeric features), registered the way training registers models."""
    folder = tmp_path_factory.mktemp("registry")
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    ds = dataset_from_frame(frame, "target", name="breast_cancer")
    pipeline = build_pipeline(resolve_model("logistic_regression", ds.task), ds.schema, 0)
    pipeline.fit(ds.X, ds.y)
    url = f"sqlite:///{folder / 'registry.db'}"
    reg = Registry(url, artifact_dir=folder / "artifacts")
    reg.register_model("bc-logreg", estimator=pipeline,
                       metrics={"test": {"accuracy": 0.95}, "primary_metric": "accuracy"},
                       params={}, input_schema=ds.schema.to_dict())
    rows = ds.X.iloc[:40]
    return {"url": url, "artifacts": str(folder / "artifacts"),
            "records": rows.to_dict(orient="records"),
            "expected": [str(v) for v in pipeline.predict(rows)]}


@pytest.fixture
def cluster_app(embedded_ray: None, registry_with_model: dict[str, Any]) -> Iterator[Any]:
    from fleetlearn.serving import ServeSettings, deploy

    # A longer coalescing wait than the default 2 ms makes batching certain on a busy
    # test machine; it only applies while a batch is already running.
    settings = ServeSettings(registry_url=registry_with_model["url"],
                             artifact_dir=registry_with_model["artifacts"],
                             port=free_port(), auth="off", batch_wait_ms=20.0)
    # The @serve.batch path here; the CLI test below runs the default (MicroBatcher).
    running = deploy(settings, replicas=2, batching="serve")
    try:
        yield running
    finally:
        running.shutdown()


def batch_metrics(text: str) -> tuple[float, float]:
    """(requests summed over predict calls, predict calls) from /metrics."""
    def value(suffix: str) -> float:
        pattern = rf'^fleetlearn_predict_batch_requests_{suffix}{{model="bc-logreg"[^}}]*}} (\S+)'
        return sum(float(m) for m in re.findall(pattern, text, flags=re.M))
    return value("sum"), value("count")


def test_cluster_mode_serves_spreads_coalesces_and_shuts_down(
        cluster_app: Any, registry_with_model: dict[str, Any]) -> None:
    import ray
    from ray import serve

    url = cluster_app.url
    records, expected = registry_with_model["records"], registry_with_model["expected"]
    with httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        answer = client.post(ROUTE, json={"records": records, "return_proba": True})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == "bc-logreg"
        assert body["version"] == 1
        assert body["predictions"] == expected
        assert set(body["probabilities"][0]) == {"benign", "malignant"}
        # Bad input is still the app's 422 with every problem, not a Ray error.
        bad = client.post(ROUTE, json={"records": [{"mean radius": "big"}]})
        assert bad.status_code == 422
        assert bad.json()["error"] == "InputError"

        # Replicas predict and read: no uploads, no training driver spawned there.
        for path in ("/v1/runs", "/v1/datasets"):
            refused = client.post(path, json={})
            assert refused.status_code == 405, refused.text
            assert refused.headers["allow"] == "GET"
        assert client.get("/v1/runs").json()["count"] == 0  # reading runs works

        replicas = {client.get("/v1/info").json()["replica"] for _ in range(30)}
        assert len(replicas) == 2, f"requests reached only {replicas}"

    async def burst(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(*(
                client.post(ROUTE, json={"records": [records[i % len(records)]]})
                for i in range(n)))

    coalesced = False
    for _ in range(5):
        answers = asyncio.run(burst(48))
        assert all(a.status_code == 200 for a in answers)
        assert [a.json()["predictions"][0] for a in answers] == \
            [expected[i % len(expected)] for i in range(48)]
        # /metrics is per replica; read it a few times to hear from both.
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(6):
                summed, calls = batch_metrics(client.get("/metrics").text)
                coalesced |= calls > 0 and summed > calls
        if coalesced:
            break
    assert coalesced, "concurrent requests never shared a predict call"

    cluster_app.shutdown()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=5)
    assert ray.is_initialized()  # deploy joined the test's Ray: it leaves it running
    assert not serve.status().applications


def test_replica_options_and_cli_checks() -> None:
    from fleetlearn.serving import replica_options

    opts = replica_options(2, 5, target_ongoing_requests=8)
    assert {"min_replicas": 2, "initial_replicas": 2, "max_replicas": 5,
            "target_ongoing_requests": 8.0}.items() <= opts["autoscaling_config"].items()
    assert opts["max_ongoing_requests"] >= 32  # room for requests to coalesce
    assert replica_options(3)["autoscaling_config"]["max_replicas"] == 3
    with pytest.raises(ConfigError, match="--max-replicas"):
        replica_options(3, 2)
    with pytest.raises(ConfigError, match="--replicas must be at least 1"):
        replica_options(0)

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run([sys.executable, "-m", "fleetlearn", "serve", "--replicas", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "add --ray" in done.stderr + done.stdout


def test_cli_ray_serves_and_stops_on_ctrl_c(isolated_env: dict[str, str],
                                            registry_with_model: dict[str, Any],
                                            ) -> None:
    """``fleetlearn serve --ray`` as a user runs it: answers, then SIGINT exits 0."""
    import signal
    import time

    port = free_port()
    env = {**isolated_env, "FLEETLEARN_ARTIFACTS": registry_with_model["artifacts"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlearn", "serve", "--ray", "--replicas", "1",
         "--port", str(port), "--registry", registry_with_model["url"], "--auth", "off"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # '' once the process ended
            seen.append(line)
            if not line or "replicas answering on http://127.0.0.1" in line:
                break
        assert "replicas answering" in seen[-1], "".join(seen)
        answer = httpx.post(f"http://127.0.0.1:{port}{ROUTE}",
                            json={"records": registry_with_model["records"][:3]}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == registry_with_model["expected"][:3]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(seen) + out
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
