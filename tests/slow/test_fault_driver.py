"""Fault test 2: the training driver SIGKILLed mid-run; the API notices; nothing is trained twice.

A real server on loopback (uvicorn in a thread, tests/live_server.py) starts the run
through its launcher: a ``fleetlearn train`` child with its own embedded Ray. Every fit
waits at a gate (tests/gated_models.py) and records which unit it is (its Ray task's
name) and on which Ray (its node id: each driver has its own), so the kill provably
lands mid-run and the test knows exactly which units each driver trained. The driver
is SIGKILLed (as the OOM killer would), by PID; the test asserts it is dead, that its
embedded Ray's processes are gone too (the launcher stops its process group), and
that some but not all units were journaled. Then:

* auto-resume off (``run_retries=0``): the API marks the run ``interrupted`` ("driver
  died") and ``POST /v1/runs/{id}/resume`` completes it;
* auto-resume on: the launcher resumes it by itself (attempt 1 in ``runs.launcher``).

Either way every unit is in the journal once, the rows journaled before the kill are
unchanged (same payload, duration, time), the resumed driver fitted exactly the
missing units, one model version is registered, and the leaderboard is complete.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gated_models import open_all, open_ticket, wait_until
from gated_models import started as started_fits
from live_server import free_port, serving
from process_helpers import GATED, alive, fleetlearn_env, gated_table, journal, kill_tree, tree

from fleetlearn.api import create_app
from fleetlearn.client import Client
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings

UNITS = 4  # 3 folds + the final fit, no learning curve: one gated fit each


@pytest.fixture
def home(isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process's environment is the launched drivers': their own HOME, Ray temp
    folder and fleetlearn home; tests/ on the path for the gated estimator."""
    for key, value in fleetlearn_env(isolated_env).items():
        monkeypatch.setenv(key, value)
    path = Path(isolated_env["FLEETLEARN_HOME"])
    (path / "data").mkdir(parents=True)
    return path


def _served(home: Path, retries: int) -> Iterator[tuple[Client, Registry]]:
    port = free_port()
    settings = ServeSettings(registry_url=f"sqlite:///{home}/registry.db",
                             artifact_dir=str(home / "artifacts"), data_dir=str(home / "data"),
                             port=port, refresh_s=0.2, run_retries=retries)
    registry = Registry(settings.registry_url, artifact_dir=settings.artifact_dir)
    with serving(create_app(settings), port) as url, Client(url) as client:
        yield client, registry
    registry.close()


@pytest.fixture
def manual(home: Path) -> Iterator[tuple[Client, Registry]]:
    yield from _served(home, retries=0)


@pytest.fixture
def automatic(home: Path) -> Iterator[tuple[Client, Registry]]:
    yield from _served(home, retries=2)


def _start_and_kill(client: Client, home: Path, gate: Path) -> dict[str, Any]:
    """Start a gated run, let two fits finish, SIGKILL its driver while a third is
    blocked; returns what the test needs to judge the aftermath."""
    gated_table(home / "data")
    started = client.start_run("gated.parquet", "label", folds=3, curves=False,
                               models=[f"{GATED}:gate={gate}"])
    assert started["units_total"] == UNITS
    run_id = started["id"]
    def fit_started(n: int) -> bool:
        run = client.run(run_id)  # a driver that failed to start says why here
        assert run["status"] in ("starting", "running"), run
        return n in started_fits(gate)

    for n in range(2):
        wait_until(lambda n=n: fit_started(n), f"fit {n} to start", timeout_s=240)
        open_ticket(gate, n)

    def two_done_one_blocked() -> bool:
        run = client.run(run_id)
        assert run["status"] in ("starting", "running"), run
        return run["progress"]["units_done"] == 2 and 2 in started_fits(gate)

    wait_until(two_done_one_blocked, "two units journaled and a third fit blocked",
               timeout_s=240)
    driver = client.run(run_id)["process"]["pid"]
    pids = tree(driver)
    assert len(pids) > 3  # the driver and its embedded Ray (GCS, raylet, workers)
    first_node = started_fits(gate)[0]["node"]  # the killed driver's embedded Ray
    before = journal(Registry(), run_id)
    os.kill(driver, signal.SIGKILL)
    wait_until(lambda: driver not in alive([driver]), "the driver to be dead", timeout_s=30)
    # Its embedded Ray goes with it (Ray's processes watch their parent), so no orphan
    # worker of the killed run can take a fit's ticket later.
    wait_until(lambda: not alive(pids), "the killed driver's Ray processes to exit",
               timeout_s=60)
    assert 0 < len(before) < UNITS  # killed mid-run: some units journaled, not all
    return {"run_id": run_id, "driver": driver, "pids": pids, "before": before,
            "first_node": first_node}


def _check_nothing_trained_twice(client: Client, gate: Path, killed: dict[str, Any]) -> None:
    run_id = killed["run_id"]
    reg = Registry()
    after = journal(reg, run_id)
    assert len(after) == UNITS  # every unit once (the journal is keyed by trial and unit)
    assert all(row["status"] == "ok" for row in after.values())
    # The rows journaled before the kill were not written again.
    assert {key: after[key] for key in killed["before"]} == killed["before"]
    # The resumed driver fitted exactly the units the journal lacked, each once.
    dataset = "gated"
    missing = sorted(f"{dataset}/{model}/{unit}" for model, unit in after
                     if (model, unit) not in killed["before"])
    resumed = sorted(info["task"] for info in started_fits(gate).values()
                     if info["node"] != killed["first_node"])
    assert resumed == missing
    assert len(reg.list_models(run_id=run_id)) == 1  # no final fit registered twice
    board = client.leaderboard(run_id)
    assert len(board) == 1
    assert board[0]["cv_mean"] is not None
    assert board[0]["test"] is not None
    assert client.run(run_id)["progress"]["units_done"] == UNITS


def test_a_killed_driver_is_marked_and_resumed_through_the_api(
        manual: tuple[Client, Registry], home: Path, tmp_path: Path) -> None:
    client, registry = manual
    gate = tmp_path / "gate"
    killed = _start_and_kill(client, home, gate)
    run_id = killed["run_id"]
    try:
        run = wait_until(lambda: (r := client.run(run_id))["status"] != "running" and r,
                         "the API to notice the dead driver", timeout_s=60)
        assert run["status"] == "interrupted", run
        assert run["error"].startswith(f"driver died: its process {killed['driver']}")
        assert run["process"]["running"] is False
        assert run["process"]["exit_code"] == -signal.SIGKILL
        assert registry.get_run(run_id).launcher.get("attempt") == 0  # not resumed by itself
        open_all(gate)
        client.resume_run(run_id)
        done = client.wait_for_run(run_id, timeout=300, poll_s=0.5)
        assert done["status"] == "finished", done
        _check_nothing_trained_twice(client, gate, killed)
    finally:
        open_all(gate)
        kill_tree(killed["pids"])


def test_the_launcher_resumes_a_killed_driver_by_itself(
        automatic: tuple[Client, Registry], home: Path, tmp_path: Path) -> None:
    client, registry = automatic
    gate = tmp_path / "gate"
    killed = _start_and_kill(client, home, gate)
    run_id = killed["run_id"]
    try:
        open_all(gate)  # what the resumed driver fits goes straight through
        done = client.wait_for_run(run_id, timeout=300, poll_s=0.5)
        assert done["status"] == "finished", done
        launcher = registry.get_run(run_id).launcher
        assert launcher["attempt"] == 1, launcher
        assert launcher["last_error"].startswith(
            f"driver died: its process {killed['driver']}"), launcher
        assert launcher["pid"] != killed["driver"]
        _check_nothing_trained_twice(client, gate, killed)
    finally:
        open_all(gate)
        kill_tree(killed["pids"])
