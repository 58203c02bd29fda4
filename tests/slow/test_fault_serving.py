"""Fault test 4: a serving replica's node killed under steady request load.

``fleetlearn serve --ray --replicas 2`` runs on a 3-node process cluster (one CPU per
node, so the two replicas sit on two different nodes and one CPU stays free for a
replacement). Ray Serve starts a proxy on every node with a replica; on one machine
they share the port (SO_REUSEPORT), as proxies on several machines share a load
balancer. While clients send predictions without pause, every process of a worker
node that holds a replica is SIGKILLed (a crashed machine). The test asserts that
Ray saw the node die, that every request was finally answered with the pipeline's
own predictions (client retries allowed, counted and bounded), and that Serve
replaced the lost replica (a new replica process on a surviving node, a replica id
never seen before answering).

Beside the retrying clients, one client without retries (tests/fault_load.py) measures
what a caller sees before, during (the kill until a new replica answers) and after the
fault; the figures go to tests/fault_figures.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fault_figures import AFTER_S, INTERVAL_S, NA, load_figures, record
from fault_load import PredictLoad, RetryingLoad, answering_replicas
from live_server import free_port
from sklearn.datasets import load_breast_cancer

from fleetlearn.catalog import resolve_model
from fleetlearn.data import dataset_from_frame
from fleetlearn.model import build_pipeline
from fleetlearn.registry import Registry

MODEL = "bc-logreg"
ROUTE = f"/v1/models/{MODEL}/predict"
RETRIES = 5
REPLICA_TITLE = "ServeReplica:fleetlearn"

# Ray Serve's own pydantic models warn on import; nothing fleetlearn can act on.
pytestmark = pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field`")


@pytest.fixture
def model_registry(tmp_path: Path) -> dict[str, Any]:
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    ds = dataset_from_frame(frame, "target", name="breast_cancer")
    pipeline = build_pipeline(resolve_model("logistic_regression", ds.task), ds.schema, 0)
    pipeline.fit(ds.X, ds.y)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    reg = Registry(url, artifact_dir=tmp_path / "artifacts")
    reg.register_model("bc-logreg", estimator=pipeline,
                       metrics={"test": {"accuracy": 0.95}, "primary_metric": "accuracy"},
                       params={}, input_schema=ds.schema.to_dict())
    reg.close()
    rows = ds.X.iloc[:20]
    return {"url": url, "artifacts": str(tmp_path / "artifacts"),
            "records": rows.to_dict(orient="records"),
            "expected": [str(v) for v in pipeline.predict(rows)]}


@pytest.fixture
def served(process_cluster, model_registry: dict[str, Any], tmp_path: Path) -> Iterator[dict]:
    cluster = process_cluster(workers=2, cpus_per_node=1)
    port = free_port()
    env = {**cluster.env, "FLEETLEARN_ARTIFACTS": model_registry["artifacts"]}
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlearn", "serve", "--ray", "--replicas", "2",
         "--address", cluster.address, "--port", str(port),
         "--registry", model_registry["url"], "--auth", "off", "--preload", "bc-logreg"],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while "replicas answering" not in (tmp_path / "serve.log").read_text():
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        yield {"cluster": cluster, "url": f"http://127.0.0.1:{port}", "proc": proc}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def replicas_by_node(cluster) -> dict[str, list[int]]:
    """Serve replica processes in each alive node's process tree (by our PIDs)."""
    out: dict[str, list[int]] = {}
    for node in cluster.nodes:
        for proc in cluster.cluster.processes(node.ip):
            try:
                if REPLICA_TITLE in " ".join(proc.cmdline()):
                    out.setdefault(node.ip, []).append(proc.pid)
            except psutil.Error:
                continue
    return out


def test_a_replicas_node_killed_under_load_loses_no_request_and_is_replaced(
        served: dict, model_registry: dict[str, Any], tmp_path: Path) -> None:
    cluster, url = served["cluster"], served["url"]
    placed = replicas_by_node(cluster)
    assert sum(len(p) for p in placed.values()) == 2, placed
    victims = [ip for ip in cluster.worker_ips if ip in placed]
    assert victims, f"no replica on a worker node: {placed}"
    victim = victims[0]
    victim_id = cluster.node(victim).node_id
    before_ids = answering_replicas(url, 2)
    assert len(before_ids) == 2, before_ids  # both replicas answer before the fault

    load = RetryingLoad(url, MODEL, model_registry["records"], model_registry["expected"],
                        retries=RETRIES)
    threads = [threading.Thread(target=load.run, args=(k,), daemon=True) for k in range(4)]
    t_load = time.monotonic()
    plain = PredictLoad(f"{url}{ROUTE}", {"records": model_registry["records"][:1]},
                        interval_s=INTERVAL_S, expected=model_registry["expected"][:1]).start()
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 120
        # Steady traffic first (a loaded machine is slow), a baseline for the figures too.
        while load.answered < 20 or plain.ok < 20:
            assert time.monotonic() < deadline, (load.answered, load.errors[-5:],
                                                 plain.failures[-5:])
            time.sleep(0.2)
        steady = load.answered
        killed_at = time.monotonic()
        assert cluster.kill_node(victim, signal.SIGKILL) >= 2
        cluster.wait_dead(victim)
        detected_s = time.monotonic() - killed_at
        assert victim_id not in cluster.alive_node_ids()

        # Serve replaces the replica on a surviving node (the free CPU), and the new
        # replica answers.
        deadline = time.monotonic() + 240
        after_ids: set[str] = set()
        while True:
            now = replicas_by_node(cluster)
            if sum(len(p) for p in now.values()) == 2 and victim not in now:
                after_ids |= answering_replicas(url, 2, tries=10)
                if after_ids - before_ids:
                    break
            assert time.monotonic() < deadline, f"never replaced: {now}, {after_ids}"
            time.sleep(0.5)
        t_ready = time.monotonic()
        replaced_after = t_ready - killed_at
        steady_after = load.answered
        time.sleep(max(3.0, AFTER_S))  # traffic after the replacement, too
    finally:
        load.stop.set()
        plain.stop()
        for t in threads:
            t.join(timeout=60)
    t_end = time.monotonic()

    figures = {"sent": load.sent, "answered": load.answered, "retries": load.retries,
               "lost": load.lost, "wrong": load.wrong, "replaced_after_s": replaced_after,
               "replicas_before": sorted(before_ids), "replicas_after": sorted(after_ids),
               "last_errors": load.errors[-5:]}
    predictions = load_figures(plain, t_load, killed_at, t_ready, t_end)
    record(tmp_path, case="replica",
           fault="a worker node holding a Serve replica SIGKILLed under load",
           seconds_to_detect=detected_s, seconds_until_ready=replaced_after,
           load=predictions, trials_lost=NA, models_lost=NA, units_trained_twice=NA,
           retrying_clients=figures)
    assert predictions["before"]["failed"] == 0, predictions
    assert predictions["during"]["sent"] > 0, predictions  # the plain client ran through it
    assert load.lost == 0, figures
    assert load.wrong == 0, figures
    assert load.answered == load.sent, figures
    assert load.answered > steady, figures  # requests kept being answered after the kill
    assert load.retries <= max(10, load.sent // 20), figures  # retries bounded (≤ 5 %)
    assert load.answered > steady_after, figures  # ... and after the replacement
    assert after_ids - before_ids, f"no new replica answered: {figures}"
    assert placed[victim][0] not in {p for ps in replicas_by_node(cluster).values() for p in ps}
