"""Every long-running command stops cleanly within 10 s of SIGTERM (Docker's grace).

Real processes, each with its own HOME, Ray temp folder and fleetlearn home: ``train``
on its embedded Ray and on a cluster (``--address``), ``serve`` and ``serve --ray``.
The bound is measured from the signal to the exit; then the test checks that nothing
was left half-written or running: the run is ``interrupted`` with complete journal
rows, no temporary artifact file, the registry opens and ``fleetlearn runs show``
answers, and every process of the command's tree (PIDs taken before the signal,
psutil) is gone. Training runs gated fits (tests/gated_models.py), so the signal
provably lands mid-run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gated_models import open_ticket, wait_until
from gated_models import started as started_fits
from live_server import free_port
from process_helpers import (
    GATED,
    alive,
    fleetlearn_cmd,
    fleetlearn_env,
    gated_table,
    journal,
    kill_tree,
    stop_tree,
    temp_artifacts,
    tree,
    wait_exit,
)

from fleetlearn.registry import Registry

#: Docker's default grace between SIGTERM and SIGKILL.
GRACE_S = 10.0


@pytest.fixture
def env(isolated_env: dict[str, str]) -> dict[str, str]:
    return fleetlearn_env(isolated_env)


def _registry(env: dict[str, str]) -> Registry:
    home = Path(env["FLEETLEARN_HOME"])
    return Registry(f"sqlite:///{home}/registry.db", artifact_dir=home / "artifacts")


@pytest.fixture
def ray_head(env: dict[str, str]) -> Iterator[str]:
    """A Ray head of its own (``ray start --block``: its processes stay below it, so the
    test stops exactly them, by PID); yields its address."""
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
         "--object-store-memory=100000000", "--memory=2000000000",
         f"--temp-dir={env['RAY_TMPDIR']}/ray"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        probe = f"import ray; ray.init(address='{address}', log_to_driver=False); print('up')"
        wait_until(lambda: subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True,
            timeout=60).stdout.strip() == "up" or proc.poll() is not None,
            "the Ray head to answer", timeout_s=120)
        assert proc.poll() is None, "ray start --head exited"
        yield address
    finally:
        stop_tree(proc.pid)


def _train_until_mid_run(env: dict[str, str], table: Path, gate: Path,
                         *extra: str) -> tuple[subprocess.Popen[bytes], str, int]:
    """A ``fleetlearn train`` child with one unit journaled and another fit blocked;
    returns it, its run id and the blocked fit's ticket."""
    log = (Path(env["FLEETLEARN_HOME"]).parent / "train.log").open("wb")
    proc = subprocess.Popen(
        fleetlearn_cmd("train", str(table), "-t", "label", "-m", f"{GATED}:gate={gate}",
                       "--folds", "3", "--no-curves", "--quiet", *extra),
        env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: started_fits(gate) or proc.poll() is not None,
               "the first fit to start", timeout_s=240)
    assert proc.poll() is None, "the driver ended before training"
    first = min(started_fits(gate))
    open_ticket(gate, first)

    def one_done_one_blocked() -> tuple[str, int] | None:
        assert proc.poll() is None, "the driver ended early"
        reg = _registry(env)
        try:
            runs = reg.list_runs()
            done = sum(len(t.units) for t in reg.list_trials(runs[0].id)) if runs else 0
        finally:
            reg.close()
        blocked = [t for t in started_fits(gate) if t != first]
        return (runs[0].id, blocked[0]) if done == 1 and blocked else None

    run_id, blocked = wait_until(one_done_one_blocked, "one unit journaled, a fit blocked",
                                 timeout_s=240)
    return proc, run_id, blocked


def _check_left_clean(env: dict[str, str], run_id: str, pids: list[int]) -> None:
    """Nothing half-written, nothing left running."""
    wait_until(lambda: not alive(pids), "every process of the tree to be gone", timeout_s=20)
    reg = _registry(env)
    try:
        run = reg.get_run(run_id)
        assert run.status == "interrupted", run
        assert run.error == "stopped by SIGTERM"
        rows = journal(reg, run_id)
        assert len(rows) == 1  # the finished unit, journaled; the blocked one is not
        for row in rows.values():
            assert row["status"] == "ok"
            assert row["duration_s"] is not None
            assert row["duration_s"] >= 0
            assert {"started_at", "scores"} <= set(row["payload"])
    finally:
        reg.close()
    assert temp_artifacts(Path(env["FLEETLEARN_HOME"]) / "artifacts") == []
    shown = subprocess.run(fleetlearn_cmd("runs", "show", run_id), env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "interrupted" in shown.stdout


def test_train_on_embedded_ray_stops_cleanly_on_sigterm(env: dict[str, str],
                                                        tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    proc, run_id, blocked = _train_until_mid_run(env, gated_table(tmp_path), gate)
    pids = tree(proc.pid)
    try:
        assert len(pids) > 3  # the driver, its embedded Ray's GCS, raylet, workers...
        code, took = wait_exit(proc, signal.SIGTERM)
        print(f"train (embedded Ray): exit {code} {took:.1f} s after SIGTERM")
        assert code == 143, (Path(env["FLEETLEARN_HOME"]).parent / "train.log").read_text()
        assert took < GRACE_S, f"train took {took:.1f} s to stop after SIGTERM"
        _check_left_clean(env, run_id, pids)
        log = (Path(env["FLEETLEARN_HOME"]).parent / "train.log").read_text()
        assert f"stopped by SIGTERM; resume with: fleetlearn train --resume {run_id}" in log
    finally:
        kill_tree(pids)


def test_train_on_a_cluster_stops_cleanly_on_sigterm(env: dict[str, str], tmp_path: Path,
                                                     ray_head: str) -> None:
    gate = tmp_path / "gate"
    proc, run_id, blocked = _train_until_mid_run(env, gated_table(tmp_path), gate,
                                                 "--address", ray_head)
    pids = tree(proc.pid)
    fit_pid = started_fits(gate)[blocked]["pid"]  # a worker of the cluster, not the driver's
    assert fit_pid not in pids
    try:
        code, took = wait_exit(proc, signal.SIGTERM)
        print(f"train --address: exit {code} {took:.1f} s after SIGTERM")
        assert code == 143
        assert took < GRACE_S, f"train --address took {took:.1f} s to stop after SIGTERM"
        _check_left_clean(env, run_id, pids)
        # The blocked fit was cancelled on the cluster, not left to run on.
        wait_until(lambda: not alive([fit_pid]), "the cancelled fit's worker to exit",
                   timeout_s=30)
    finally:
        kill_tree(pids)


def _serve_until_ready(env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (Path(env["FLEETLEARN_HOME"]).parent / "serve.log").open("wb")
    proc = subprocess.Popen(fleetlearn_cmd("serve", "--port", str(port), *extra), env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (Path(env["FLEETLEARN_HOME"]).parent
                                     / "serve.log").read_text()
        try:
            return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, "the server to be ready", timeout_s=240)
    if "--ray" in extra:  # deployed, not only its first replica up: serving steadily
        wait_until(lambda: "answering on" in (Path(env["FLEETLEARN_HOME"]).parent
                                              / "serve.log").read_text(),
                   "the deployment to be done", timeout_s=120)
    return proc, url


@pytest.mark.parametrize("mode", ["uvicorn", "ray-serve"])
def test_serve_stops_cleanly_on_sigterm(env: dict[str, str], mode: str) -> None:
    proc, url = _serve_until_ready(env, *(["--ray"] if mode == "ray-serve" else []))
    pids = tree(proc.pid)
    try:
        if mode == "ray-serve":
            assert len(pids) > 3  # the driver, its embedded Ray, the Serve actors
        code, took = wait_exit(proc, signal.SIGTERM)
        print(f"serve ({mode}): exit {code} {took:.1f} s after SIGTERM")
        log = (Path(env["FLEETLEARN_HOME"]).parent / "serve.log").read_text()
        # A clean stop: 0, or the signal's own status that uvicorn re-raises after
        # shutting down (a container then reports 143); never an abort (134, -6).
        assert code in (0, -signal.SIGTERM, 143), log
        assert took < GRACE_S, f"serve ({mode}) took {took:.1f} s to stop after SIGTERM"
        wait_until(lambda: not alive(pids), "every process of the tree to be gone",
                   timeout_s=20)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/healthz", timeout=2)
        assert "SIGTERM received" not in log  # Ray's abort handler never ran
        reg = _registry(env)
        try:
            assert reg.list_runs() == []  # the registry opens and reads
        finally:
            reg.close()
    finally:
        kill_tree(pids)
