"""``fleetlearn cluster up|status|down`` as a user runs them (subprocesses), checked
against Ray's own view (the head's GCS), with ``fleetlearn train --address`` and
``GET /v1/cluster`` on the cluster they started.

Each test gets its own IP block (``--head-ip``/``--ip-prefix``) so parallel runs on
this machine never share a node address.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
from cluster_fixtures import TESTS_DIR, next_ip_block
from gated_models import wait_until
from live_server import free_port
from process_helpers import stop_tree
from sklearn.datasets import make_classification

from fleetlearn.cluster import LocalCluster, cluster_view, read_state
from fleetlearn.registry import Registry


def fleetlearn(*args: str, env: dict[str, str],
               timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleetlearn", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLEETLEARN_"))}
    env.update(FLEETLEARN_HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1",
               HOME=str(tmp_path), COLUMNS="200",
               PYTHONPATH=os.pathsep.join(p for p in (TESTS_DIR, env.get("PYTHONPATH")) if p))
    return env


@pytest.fixture
def cluster_up(cli_env: dict[str, str], tmp_path: Path) -> Iterator[dict]:
    """``fleetlearn cluster up --workers 2`` in its own folder; stopped by PID at the end
    whatever the test did."""
    block = next_ip_block()
    folder = tmp_path / "c"
    done = fleetlearn("cluster", "up", "--workers", "2", "--cpus-per-node", "1",
                      "--memory-per-node", "1GiB", "--head-ip", f"{block}.1",
                      "--ip-prefix", block, "--dir", str(folder), "--json", env=cli_env)
    try:
        assert done.returncode == 0, done.stderr
        yield {"record": json.loads(done.stdout), "dir": folder, "block": block}
    finally:
        if read_state(folder) is not None:
            LocalCluster.attach(folder).stop()


def status(folder: Path, env: dict[str, str]) -> dict:
    done = fleetlearn("cluster", "status", "--dir", str(folder), "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def route(address: str, security: dict[str, str], env: dict[str, str]) -> dict:
    """``GET /v1/cluster`` and ``/metrics`` of a real ``fleetlearn serve`` started with
    the cluster's TLS and token variables in its environment (as after
    ``eval "$(fleetlearn cluster env)"``). A child, not this process: this process's own
    embedded Ray (``ray_session``) keeps its own token and certificates."""
    port = free_port()
    child_env = {**env, **security, "FLEETLEARN_SERVE_RAY_ADDRESS": address}
    proc = subprocess.Popen([sys.executable, "-m", "fleetlearn", "serve", "--port", str(port)],
                            env=child_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, f"fleetlearn serve exited: {proc.stderr.read()}"
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, "fleetlearn serve to answer", 90)
        r = httpx.get(f"{url}/v1/cluster", timeout=30)
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
    finally:
        stop_tree(proc.pid, timeout_s=30)
        proc.wait(10)
    assert r.status_code == 200, r.text
    return {**r.json(), "metrics": metrics}


def _numbers(nodes: list[dict]) -> dict[str, tuple]:
    return {n["node_id"]: (n["ip"], n["alive"], n["resources"]["cpus"]["total"],
                           n["resources"]["memory"]["total"],
                           n["resources"]["object_store"]["total"]) for n in nodes}


def test_up_status_train_and_route_agree_with_ray_and_down_leaves_nothing(
        cluster_up: dict, cli_env: dict[str, str], tmp_path: Path) -> None:
    block, folder = cluster_up["block"], cluster_up["dir"]
    up = cluster_up["record"]
    ips = {f"{block}.1", f"{block}.2", f"{block}.3"}
    assert up["nodes_alive"] == 3
    assert {n["ip"] for n in up["nodes"]} == ips
    assert all(n["resources"]["cpus"]["total"] == 1 for n in up["nodes"])
    assert all(n["resources"]["memory"]["total"] == 2**30 for n in up["nodes"])
    address = up["address"]
    # TLS and token auth are on by default; the state says where the files are.
    security = read_state(folder).security_env
    assert security["RAY_USE_TLS"] == "1"
    assert security["RAY_TLS_CA_CERT"] == str(folder / "certs" / "ca.crt")
    assert security["RAY_AUTH_MODE"] == "token"
    assert security["RAY_AUTH_TOKEN_PATH"] == str(folder / "token")
    assert up["security"]["tls"] is True
    assert up["security"]["token"] is True
    assert up["security"]["warnings"] == []

    # status and the route report what Ray itself reports.
    ray_view = cluster_view(address, env=security).to_dict()
    shown = status(folder, cli_env)
    assert shown["address"] == address
    assert _numbers(shown["nodes"]) == _numbers(ray_view["nodes"])
    assert all(n["pid"] for n in shown["nodes"])
    answer = route(address, security, cli_env)
    assert answer["mode"] == "cluster"
    assert answer["address"] == address
    assert answer["nodes_alive"] == 3
    assert _numbers(answer["nodes"]) == _numbers(ray_view["nodes"])
    assert answer["resources"]["cpus"]["total"] == 3
    assert f'fleetlearn_cluster_nodes{{address="{address}",state="alive"}} 3.0' \
        in answer["metrics"]
    assert f'fleetlearn_cluster_cpus{{address="{address}",kind="total"}} 3.0' \
        in answer["metrics"]
    assert answer["reachable"] is True

    # A run on the cluster: its units land on the worker nodes too.
    X, y = make_classification(n_samples=400, n_features=8, random_state=0)
    table = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]).assign(label=y)
    table.to_csv(tmp_path / "t.csv", index=False)
    done = fleetlearn("train", str(tmp_path / "t.csv"), "-t", "label", "--address", address,
                      "-m", "logistic_regression", "-m", "decision_tree", "--folds", "3",
                      "--no-curves", "--json", env={**cli_env, **security})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert all(r["status"] == "ok" for r in result["leaderboard"])
    reg = Registry(f"sqlite:///{tmp_path / 'home' / 'registry.db'}")
    try:
        node_ips = {u.payload.get("node_ip") for t in reg.list_trials(result["run_id"])
                    for u in t.units.values()}
    finally:
        reg.close()
    assert node_ips <= ips
    assert node_ips & {f"{block}.2", f"{block}.3"}, node_ips

    # down stops every recorded process and says so.
    state = read_state(folder)
    pids = [(n.pid, n.started_at) for n in state.nodes]
    trees = [p.pid for n in state.nodes for p in psutil.Process(n.pid).children(recursive=True)]
    done = fleetlearn("cluster", "down", "--dir", str(folder), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    stopped = json.loads(done.stdout)
    assert {s["pid"] for s in stopped} == {p for p, _ in pids}
    assert all(s["how"] == "SIGTERM" for s in stopped), stopped  # none needed SIGKILL
    for pid in [p for p, _ in pids] + trees:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", pid
    assert read_state(folder) is None
    again = fleetlearn("cluster", "status", "--dir", str(folder), env=cli_env)
    assert again.returncode == 2
    assert "No cluster is recorded" in again.stderr


def test_a_killed_worker_is_dead_in_status_and_route_and_sigterm_stops_a_node(
        cluster_up: dict, cli_env: dict[str, str]) -> None:
    block, folder = cluster_up["block"], cluster_up["dir"]
    address = cluster_up["record"]["address"]
    state = read_state(folder)
    victim = state.node(f"{block}.2")
    victim_id = victim.node_id
    assert victim_id
    # A crashed machine: every process of the node at once, by PID.
    procs = [psutil.Process(victim.pid), *psutil.Process(victim.pid).children(recursive=True)]
    assert len(procs) >= 2
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)

    deadline = time.monotonic() + 60
    while True:
        shown = status(folder, cli_env)
        dead = {n["node_id"] for n in shown["nodes"] if not n["alive"]}
        if victim_id in dead:
            break
        assert time.monotonic() < deadline, f"status never showed {victim.ip} dead: {shown}"
        time.sleep(0.5)
    assert shown["nodes_alive"] == 2
    assert shown["nodes_dead"] == 1
    answer = route(address, read_state(folder).security_env, cli_env)
    by_id = {n["node_id"]: n for n in answer["nodes"]}
    assert by_id[victim_id]["alive"] is False
    assert by_id[victim_id]["state"] == "DEAD"
    assert answer["nodes_dead"] == 1
    assert f'fleetlearn_cluster_nodes{{address="{address}",state="dead"}} 1.0' \
        in answer["metrics"]

    # SIGTERM (docker stop) to the other worker's ray start: its whole tree is gone
    # within Docker's 10 s grace.
    other = state.node(f"{block}.3")
    tree = [psutil.Process(other.pid), *psutil.Process(other.pid).children(recursive=True)]
    start = time.monotonic()
    tree[0].send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=30)
    took = time.monotonic() - start
    assert not alive, [p.pid for p in alive]
    assert took <= 10.0, f"the node took {took:.1f} s to stop after SIGTERM"

    done = fleetlearn("cluster", "down", "--dir", str(folder), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    how = {s["name"]: s["how"] for s in json.loads(done.stdout)}
    assert how["worker-2"] == how["worker-3"] == "not running"
    assert how["head"] == "SIGTERM"


#: A process with an embedded Ray of its own (its own GCS and token) reads the TLS +
#: token cluster, then gives its own Ray more work. Run as a child: before the fix the
#: child's Ray went on calling its own GCS with the cluster's token and Ray aborted the
#: whole process (as it did to pytest in CI).
_EMBEDDED_THEN_READ = """
import json, os, sys, tempfile
import ray
tmp = tempfile.mkdtemp(prefix="fle-", dir="/tmp")
os.environ["HOME"] = os.environ["RAY_TMPDIR"] = tmp
ray.init(address="local", num_cpus=2, include_dashboard=False,
         object_store_memory=80 * 2**20, log_to_driver=False)
from fleetlearn.cluster import cluster_view

@ray.remote
def one(x):
    return x + 1

@ray.remote(num_cpus=2)
def two(x):  # needs a new worker process, which registers with the embedded GCS
    return x * 2

before = ray.get([one.remote(i) for i in range(4)])
view = cluster_view(sys.argv[1], env=json.loads(sys.argv[2]))
after = ray.get([two.remote(i) for i in range(4)], timeout=120)
print(json.dumps({"before": before, "nodes": len(view.nodes), "after": after,
                  "tls_env": os.environ.get("RAY_USE_TLS")}))
ray.shutdown()
"""


def test_reading_a_tls_cluster_leaves_the_processs_own_embedded_ray_working(
        cluster_up: dict, cli_env: dict[str, str]) -> None:
    address = cluster_up["record"]["address"]
    security = read_state(cluster_up["dir"]).security_env
    assert security["RAY_AUTH_MODE"] == "token"
    assert security["RAY_USE_TLS"] == "1"
    env = {k: v for k, v in cli_env.items() if k not in security}
    done = subprocess.run([sys.executable, "-c", _EMBEDDED_THEN_READ, address,
                           json.dumps(security)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["nodes"] == 3  # the cluster was read, with its certificates and token
    assert answer["before"] == [1, 2, 3, 4]
    assert answer["after"] == [0, 2, 4, 6]  # and the embedded Ray still runs new work
    assert answer["tls_env"] is None  # the process's own (plain) settings are back
