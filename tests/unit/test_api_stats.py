"""GET /v1/stats and /metrics: the counts are the requests each test sent.

The ASGI app in memory (no Ray, no network) over a real SQLite registry holding
models registered as training registers them (tests/model_fixtures.py); fixtures
in tests/api_fixtures.py.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import (
    PREDICT,
    house_records,
    is_error,
    metrics_of,
    sample,
    serve,
    state_of,
    toy_records,
)
from fastapi.testclient import TestClient


def test_metrics_content(client: TestClient) -> None:
    records = toy_records(3)
    for _ in range(2):
        assert client.post(PREDICT.format("toy-logreg"),
                           json={"records": records}).status_code == 200
    client.post(PREDICT.format("toy-logreg"), json={"records": [{"x": "bad"}]})
    client.get("/v1/models")
    m = metrics_of(client)
    route = "/v1/models/{name}/predict"
    assert sample(m, "fleetlearn_http_requests_total", route=route, method="POST",
                  status="200", model="toy-logreg", version="1") == 2
    assert sample(m, "fleetlearn_http_requests_total", route=route, method="POST",
                  status="422", model="toy-logreg", version="1") == 1
    assert sample(m, "fleetlearn_http_requests_total", route="/v1/models", method="GET",
                  status="200", model="", version="") == 1
    assert sample(m, "fleetlearn_http_request_duration_seconds_count", route=route,
                  model="toy-logreg", version="1") == 3
    assert sample(m, "fleetlearn_http_request_duration_seconds_bucket", route=route,
                  model="toy-logreg", version="1", le="+Inf") == 3
    assert sample(m, "fleetlearn_http_request_duration_seconds_sum", route=route,
                  model="toy-logreg", version="1") > 0
    assert sample(m, "fleetlearn_rows_predicted_total", model="toy-logreg", version="1") == 6
    assert sample(m, "fleetlearn_predict_batch_rows_count", model="toy-logreg",
                  version="1") == 2
    assert sample(m, "fleetlearn_model_cache_misses_total") == 1
    assert sample(m, "fleetlearn_model_cache_hits_total") == 2
    assert sample(m, "fleetlearn_model_load_seconds_count", model="toy-logreg",
                  version="1") == 1
    assert sample(m, "fleetlearn_model_cache_models") == 1
    assert sample(m, "fleetlearn_http_requests_in_flight") == 1  # this /metrics request
    assert sample(m, "process_resident_memory_bytes") > 10 * 2**20
    assert ("process_cpu_seconds_total",) in m


def test_server_errors_count_in_the_error_rate(client: TestClient) -> None:
    state = state_of(client)
    client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
    loaded = state.cache.cached()[0]

    def broken(rows: Any, proba: bool = False) -> Any:
        raise RuntimeError("the model broke")

    loaded.predictor.predict = broken  # type: ignore[method-assign]
    response = client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
    body = is_error(response, 500, "InternalError")
    assert "RuntimeError" in body["detail"]
    (toy,) = client.get("/v1/stats").json()["models"]
    assert (toy["requests"], toy["errors"]) == (2, 1)


def test_math_of_percentiles_is_sane_for_a_known_latency(client: TestClient) -> None:
    """Stats percentiles are read from fixed buckets: within ~25 % of the truth."""
    state = state_of(client)
    for _ in range(100):
        state.stats.record("m", 1, latency_ms=4.0, rows=1)
    (m,) = [s for s in client.get("/v1/stats?model=m").json()["models"]]
    assert math.isclose(m["p50_ms"], 4.0, rel_tol=0.25)
    assert math.isclose(m["p99_ms"], 4.0, rel_tol=0.25)
    assert m["mean_ms"] == pytest.approx(4.0)


def test_registry_scope_since_filter(home: Path) -> None:
    with serve(home) as client:
        client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
        state = state_of(client)
        state.stats.record("toy-logreg", 1, 2.0, 1, now=time.time() - 7200)  # 2 hours ago
        (everything,) = client.get("/v1/stats?scope=registry").json()["models"]
        (recent,) = client.get("/v1/stats?scope=registry&since=600").json()["models"]
        assert everything["requests"] == 2
        assert recent["requests"] == 1


def test_stats_per_model_version_in_this_replica(client: TestClient) -> None:
    for n in (1, 2, 3):
        client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(n)})
    client.post(PREDICT.format("toy-logreg"), json={"records": [{"x": "bad"}]})
    client.post(PREDICT.format("house-ridge"), json={"records": house_records(2)})
    body = client.get("/v1/stats").json()
    assert body["scope"] == "replica"
    assert body["window_s"] == 10.0
    stats = {(m["model"], m["version"]): m for m in body["models"]}
    toy = stats[("toy-logreg", 1)]
    assert (toy["requests"], toy["errors"], toy["rows"]) == (4, 1, 6)
    assert toy["error_rate"] == pytest.approx(0.25)
    assert 0 < toy["p50_ms"] <= toy["p95_ms"] <= toy["p99_ms"]
    assert toy["recent"]["requests"] == 4
    assert toy["recent"]["rps"] > 0
    assert stats[("house-ridge", 1)]["rows"] == 2
    points = [p for p in body["series"] if p["model"] == "toy-logreg"]
    assert sum(p["count"] for p in points) == 4
    only = client.get("/v1/stats?model=house-ridge&version=1").json()["models"]
    assert [(m["model"], m["requests"]) for m in only] == [("house-ridge", 1)]


def test_stats_survive_a_restart(home: Path) -> None:
    with serve(home) as client:
        for _ in range(3):
            client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(2)})
    with serve(home) as client:  # a new process on the same registry
        assert client.get("/v1/stats").json()["models"] == []  # nothing in this replica yet
        client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
        body = client.get("/v1/stats?scope=registry").json()
        (toy,) = body["models"]
        assert (toy["requests"], toy["rows"]) == (4, 7)


def test_stats_add_up_across_replicas(home: Path) -> None:
    with serve(home) as one, serve(home) as two:
        assert state_of(one).stats.replica != state_of(two).stats.replica
        for _ in range(2):
            one.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
        for _ in range(3):
            two.post(PREDICT.format("toy-logreg"), json={"records": toy_records(2)})
        two.post(PREDICT.format("toy-logreg"), json={"records": [{"x": "bad"}]})
        one.get("/v1/stats?scope=registry")  # flushes replica one
        body = two.get("/v1/stats?scope=registry").json()
        (toy,) = body["models"]
        assert (toy["requests"], toy["errors"], toy["rows"]) == (6, 1, 8)
        assert sum(p["count"] for p in body["series"]) == 6
        assert one.get("/v1/stats").json()["models"][0]["requests"] == 2
        stored = state_of(one).registry.inference_stats(model="toy-logreg")
        assert {r["replica"] for r in stored} == {state_of(one).stats.replica,
                                                  state_of(two).stats.replica}



def test_metrics_count_runs_by_status_from_the_registry(client: TestClient,
                                                        home: Path) -> None:
    from fleetlearn.registry import Registry

    before = metrics_of(client)
    assert {status for (name, *labels) in before if name == "fleetlearn_runs"
            for _, status in labels} == {"running", "finished", "failed", "interrupted"}
    reg = Registry(f"sqlite:///{home / 'registry.db'}")  # another process's view: shared
    try:
        failed = reg.create_run({"tables": []}, seed=1, name="will-fail")
        reg.set_run_status(failed.id, "failed", error="the data broke")
        reg.create_run({"tables": []}, seed=2, name="still-running")
    finally:
        reg.close()
    after = metrics_of(client)
    for status, added in (("failed", 1), ("running", 1), ("finished", 0), ("interrupted", 0)):
        assert sample(after, "fleetlearn_runs", status=status) == (
            sample(before, "fleetlearn_runs", status=status) + added), status


def test_metrics_still_answer_when_the_registry_cannot_count_runs(client: TestClient,
                                                                  home: Path) -> None:
    import sqlite3

    assert sample(metrics_of(client), "fleetlearn_runs", status="finished") >= 0
    # The runs table gone under the server: the count fails, the scrape does not.
    with sqlite3.connect(home / "registry.db") as db:
        db.execute("ALTER TABLE runs RENAME TO runs_away")
    m = metrics_of(client)
    assert not [key for key in m if key[0] == "fleetlearn_runs"]  # no stale counts
    assert ("process_cpu_seconds_total",) in m
    with sqlite3.connect(home / "registry.db") as db:
        db.execute("ALTER TABLE runs_away RENAME TO runs")
    assert ("fleetlearn_runs", ("status", "failed")) in metrics_of(client)
