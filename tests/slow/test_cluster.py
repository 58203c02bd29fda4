"""A real two-node Ray cluster (``ray start`` processes on two loopback IPs).

The driver is a separate ``fleetlearn train --address`` process, as a user runs it.
Port 6379 belongs to Redis on these machines, so the head takes a free port.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import make_classification

from fleetlearn.registry import Registry

WORKER_IP = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cmd(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "ray"), *args]


def alive_nodes(address: str, env: dict[str, str]) -> int:
    code = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    return int(done.stdout.strip() or 0)


@pytest.fixture
def cluster(isolated_env: dict[str, str], tmp_path: Path, kill_mentioning) -> Iterator[dict]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--memory", str(2 * 2**30),
              "--object-store-memory", str(80 * 2**20), "--block"]
    head = subprocess.Popen(
        ray_cmd("start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                "--include-dashboard", "false", "--temp-dir", isolated_env["RAY_TMPDIR"],
                *common),
        env=isolated_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    worker = subprocess.Popen(
        ray_cmd("start", "--address", address, "--node-ip-address", WORKER_IP, *common),
        env=isolated_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while alive_nodes(address, isolated_env) < 2:
            assert time.monotonic() < deadline, "the worker node never joined"
            time.sleep(1)
        yield {"address": address, "env": isolated_env, "worker": worker}
    finally:
        for proc in (worker, head):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        kill_mentioning(f"--node-ip-address={WORKER_IP}")
        kill_mentioning(isolated_env["RAY_TMPDIR"])


@pytest.fixture
def table(tmp_path: Path) -> Path:
    X, y = make_classification(n_samples=3000, n_features=20, n_informative=8, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    frame["label"] = y
    path = tmp_path / "synthetic.csv"
    frame.to_csv(path, index=False)
    return path


def unit_ips(env: dict[str, str], run_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in Registry().list_trials(run_id):
        for unit in trial.units.values():
            ip = unit.payload.get("node_ip", "?")
            counts[ip] = counts.get(ip, 0) + 1
    return counts


def test_tasks_run_on_both_nodes(cluster: dict, table: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLEARN_HOME", cluster["env"]["FLEETLEARN_HOME"])
    done = subprocess.run(
        [sys.executable, "-m", "fleetlearn", "train", str(table), "-t", "label",
         "--address", cluster["address"], "-m", "logistic_regression", "-m", "decision_tree",
         "-m", "random_forest:n_estimators=30", "--no-curves", "--json"],
        env=cluster["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert all(r["status"] == "ok" for r in result["leaderboard"])
    ips = unit_ips(cluster["env"], result["run_id"])
    assert WORKER_IP in ips, ips
    assert len(ips) == 2, ips
    assert sum(ips.values()) == 3 * 6


def test_a_lost_node_costs_nothing_but_time(cluster: dict, table: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            kill_mentioning) -> None:
    monkeypatch.setenv("FLEETLEARN_HOME", cluster["env"]["FLEETLEARN_HOME"])
    driver = subprocess.Popen(
        [sys.executable, "-m", "fleetlearn", "train", str(table), "-t", "label",
         "--address", cluster["address"], "-m", "random_forest:n_estimators=150",
         "-m", "extra_trees:n_estimators=150", "--no-curves", "--json"],
        env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until the worker node has finished some units (so it is surely busy), then
    # kill every process of that node at once, as a crashed machine would.
    deadline = time.monotonic() + 300
    while True:
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "the worker node never took a unit"
        try:
            runs = Registry().list_runs()
            if runs and unit_ips(cluster["env"], runs[0].id).get(WORKER_IP, 0) >= 1:
                break
        except Exception:  # registry being created by the driver
            pass
        time.sleep(0.3)
    kill_mentioning(f"--node-ip-address={WORKER_IP}")
    kill_mentioning(f"--node_ip_address={WORKER_IP}")
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err
    result = json.loads(out)
    assert all(r["status"] == "ok" for r in result["leaderboard"]), result["failed"]
    assert result["failed"] == []
    ips = unit_ips(cluster["env"], result["run_id"])
    assert sum(ips.values()) == 2 * 6
