"""A real TLS + token cluster refuses what it should, fast and clearly.

One head (``process_cluster(workers=0)``: this machine has 2 cores), started as
``fleetlearn cluster up`` starts it: Ray TLS with the cluster's CA and token
authentication. With its certificates and token a task runs; with another CA's
certificates, no certificate, someone else's certificate, a wrong token or none,
``fleetlearn train --address ...`` (a subprocess, as a user runs it) exits non-zero
well within 30 s with one line naming the cause, and registers nothing. Ray's
metrics servers listen on 127.0.0.1 only, and no dashboard (nor Jobs API) runs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from cluster_fixtures import ProcessCluster

from fleetlearn.cluster import exposure_lines, listening, reach
from fleetlearn.registry import Registry
from fleetlearn.security import init_certs

#: How long a refused driver may take, at most (issue 12).
REFUSED_WITHIN_S = 30.0

TASK = """
import ray
from fleetlearn.training import connect_ray
connect_ray()
print("answer", ray.get(ray.remote(lambda: 6 * 7).remote()))
"""


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "t.csv"
    pd.DataFrame({"a": range(40), "b": [i % 7 for i in range(40)],
                  "y": [i % 2 for i in range(40)]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def secure_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    """One head for the whole module, with TLS and token on (the default)."""
    cluster = ProcessCluster(tmp_path_factory.mktemp("cluster"), workers=0, cpus_per_node=1,
                             redis_url=None, worker_home_isolated=True,
                             memory_per_node=2**30, object_store_per_node=100 * 2**20,
                             timeout=300.0, head_cpus=1)
    yield cluster
    cluster.down()


def _home(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**env, "FLEETLEARN_HOME": str(tmp_path / "home")}


def test_with_the_clusters_certificate_and_token_a_task_runs(secure_head,
                                                             tmp_path: Path) -> None:
    env = _home(secure_head.env, tmp_path)
    assert env["RAY_USE_TLS"] == "1"
    assert env["RAY_AUTH_MODE"] == "token"
    done = subprocess.run([sys.executable, "-c", TASK], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "answer 42" in done.stdout


def _wrong_ca(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    other = init_certs(tmp_path / "other-ca")
    return {**env, "RAY_TLS_CA_CERT": str(other / "ca.crt"),
            "RAY_TLS_SERVER_CERT": str(other / "node.crt"),
            "RAY_TLS_SERVER_KEY": str(other / "node.key")}


def _foreign_certificate(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    other = init_certs(tmp_path / "other-ca")  # the right CA to check the head, not ours
    return {**env, "RAY_TLS_SERVER_CERT": str(other / "node.crt"),
            "RAY_TLS_SERVER_KEY": str(other / "node.key")}


def _no_certificate(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(("RAY_USE_TLS", "RAY_TLS_"))}


def _wrong_token(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    token = tmp_path / "wrong-token"
    token.write_text("0" * 64 + "\n")
    return {**env, "RAY_AUTH_TOKEN_PATH": str(token)}


def _no_token(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**{k: v for k, v in env.items() if not k.startswith("RAY_AUTH_")},
            "RAY_AUTH_MODE": "disabled"}


@pytest.mark.parametrize(("spoil", "cause"), [
    (_wrong_ca, "has a certificate this driver's CA"),
    (_foreign_certificate, "refused this driver's TLS certificate"),
    (_no_certificate, "requires TLS and this driver has no certificate"),
    (_wrong_token, "it has a token the cluster does not accept"),
    (_no_token, "it has no token"),
], ids=["wrong-ca", "foreign-certificate", "no-certificate", "wrong-token", "no-token"])
def test_a_driver_without_the_right_certificate_or_token_is_refused_fast_and_clearly(
        secure_head, table: Path, tmp_path: Path, spoil, cause: str) -> None:
    env = spoil(_home(secure_head.env, tmp_path), tmp_path)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "fleetlearn", "train", str(table), "-t", "y", "--address",
         secure_head.address, "-m", "logistic_regression", "--folds", "2", "--no-curves"],
        env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert took < REFUSED_WITHIN_S, f"refused after {took:.1f} s"
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    # ... and nothing else: not Ray's own warning about the refusal either.
    assert [ln for ln in done.stderr.splitlines() if ln.strip()] == errors, done.stderr
    assert f"The cluster at {secure_head.address}" in errors[0]
    assert cause in errors[0]
    assert "fleetlearn cluster env" in errors[0]  # ... and the fix
    # Nothing was registered: no run, no model.
    registry = tmp_path / "home" / "registry.db"
    if registry.exists():
        reg = Registry(f"sqlite:///{registry}")
        try:
            assert reg.list_runs() == []
            assert reg.list_models() == []
        finally:
            reg.close()


def test_ray_metrics_and_agent_ports_listen_on_loopback_only_and_no_dashboard(
        secure_head) -> None:
    """Read from the sockets the head's processes listen on (psutil), not from what
    was asked for: Ray would bind its metrics servers to every interface."""
    state = secure_head.cluster.state
    head = state.head
    socks = listening(head)
    metrics = [head.ports[k] for k in ("metrics-export-port", "autoscaler-metrics",
                                       "dashboard-metrics")]
    for port in metrics:
        assert socks.get(port) == {"127.0.0.1"}, (port, socks.get(port))
    agent = socks[head.ports["dashboard-agent-listen-port"]]
    assert all(reach(ip) == "this machine only" for ip in agent), agent
    # No dashboard (so no Jobs API): nothing listens on its port.
    assert 8265 not in socks
    assert not any(ip in ("0.0.0.0", "::") for port in metrics for ip in socks[port])
    lines = exposure_lines(state.address, folder=state.dir)
    assert lines[0].startswith(f"Ray GCS {state.address}")
    assert lines[0].endswith("TLS on, token on")
    assert "Ray dashboard and Jobs API: not started (reachable from nowhere)" in lines
    assert "Ray metrics (head): listening on 127.0.0.1: this machine only" in lines
