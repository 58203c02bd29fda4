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

The same server answers a steady predict load (a model registered beforehand) from
before the kill until after the resumed run: a driver's death and its resume must not
disturb serving in the process whose launcher handles them. The figures go to
tests/fault_figures.py (one entry per test: ``driver/manual``, ``driver/automatic``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fault_figures import AFTER_S, INTERVAL_S, load_figures, record
from fault_load import PredictLoad
from gated_models import open_all, open_ticket, wait_until
from gated_models import started as started_fits
from live_server import free_port, serving
from model_fixtures import fit, mixed_frame, records_of, register
from process_helpers import GATED, alive, fleetlearn_env, gated_table, journal, kill_tree, tree

from fleetlearn.api import create_app
from fleetlearn.client import Client
from fleetlearn.data import dataset_from_frame
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings

UNITS = 4  # 3 folds + the final fit, no learning curve: one gated fit each
SERVED = "toy-logreg"  # the model the predict load asks for, registered before the run


@dataclass
class Served:
    client: Client
    registry: Registry
    load: PredictLoad  # not started yet


@pytest.fixture
def home(isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process's environment is the launched drivers': their own HOME, Ray temp
    folder and fleetlearn home; tests/ on the path for the gated estimator."""
    for key, value in fleetlearn_env(isolated_env).items():
        monkeypatch.setenv(key, value)
    path = Path(isolated_env["FLEETLEARN_HOME"])
    (path / "data").mkdir(parents=True)
    return path


def _served(home: Path, retries: int) -> Iterator[Served]:
    port = free_port()
    settings = ServeSettings(registry_url=f"sqlite:///{home}/registry.db",
                             artifact_dir=str(home / "artifacts"), data_dir=str(home / "data"),
                             port=port, refresh_s=0.2, run_retries=retries)
    registry = Registry(settings.registry_url, artifact_dir=settings.artifact_dir)
    toy = dataset_from_frame(mixed_frame(), "label", name="toy")
    pipeline = fit(toy, "logistic_regression")
    register(registry, SERVED, pipeline, toy)
    rows = mixed_frame(3, seed=7).drop(columns=["label"])
    expected = [str(v) for v in pipeline.predict(rows)]
    with serving(create_app(settings), port) as url, Client(url) as client:
        load = PredictLoad(f"{url}/v1/models/{SERVED}/predict", {"records": records_of(rows)},
                           interval_s=INTERVAL_S, expected=expected)
        try:
            yield Served(client, registry, load)
        finally:
            load.stop()  # before the server (a test that failed early left it running)
    registry.close()


@pytest.fixture
def manual(home: Path) -> Iterator[Served]:
    yield from _served(home, retries=0)


@pytest.fixture
def automatic(home: Path) -> Iterator[Served]:
    yield from _served(home, retries=2)


def _start_and_kill(client: Client, home: Path, gate: Path,
                    load: PredictLoad) -> dict[str, Any]:
    """Start the predict load and a gated run, let two fits finish, SIGKILL the run's
    driver while a third is blocked; returns what the test needs to judge the aftermath."""
    t_load = time.monotonic()
    load.start()
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
    t_kill = time.monotonic()
    os.kill(driver, signal.SIGKILL)
    wait_until(lambda: driver not in alive([driver]), "the driver to be dead", timeout_s=30)
    # Its embedded Ray goes with it (Ray's processes watch their parent), so no orphan
    # worker of the killed run can take a fit's ticket later.
    wait_until(lambda: not alive(pids), "the killed driver's Ray processes to exit",
               timeout_s=60)
    assert 0 < len(before) < UNITS  # killed mid-run: some units journaled, not all
    return {"run_id": run_id, "driver": driver, "pids": pids, "before": before,
            "first_node": first_node, "t_load": t_load, "t_kill": t_kill}


def _resumed(client: Client, killed: dict[str, Any]) -> float:
    """When a new driver runs the run (or it already finished): ready again."""
    def new_driver() -> bool:
        run = client.run(killed["run_id"])
        return run["status"] == "finished" or (
            run["process"]["pid"] != killed["driver"] and run["process"]["running"])

    wait_until(new_driver, "a new driver to run the run", timeout_s=120)
    return time.monotonic()


def _record(tmp_path: Path, case: str, how: str, load: PredictLoad, killed: dict[str, Any],
            t_detected: float, t_ready: float, t_finished: float,
            lost: dict[str, int]) -> None:
    """Keep the load up ``AFTER_S`` after ready, stop it, check and write the figures."""
    time.sleep(max(0.0, AFTER_S - (time.monotonic() - t_ready)))
    load.stop()
    t_kill = killed["t_kill"]
    predictions = load_figures(load, killed["t_load"], t_kill, t_ready, time.monotonic())
    figures = record(tmp_path, case=case, fault=f"training driver SIGKILLed mid-run, {how}",
                     seconds_to_detect=t_detected - t_kill,
                     seconds_until_ready=t_ready - t_kill, load=predictions,
                     seconds_until_run_finished=round(t_finished - t_kill, 2), **lost)
    assert predictions["during"]["sent"] > 0, figures  # the load ran through the fault
    # Serving in the launcher's process never noticed: not one request failed.
    assert predictions["requests"]["failed"] == 0, figures


def _check_nothing_trained_twice(client: Client, gate: Path,
                                 killed: dict[str, Any]) -> dict[str, int]:
    """Assert it, and return trials and models lost and units trained twice (counted)."""
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
    journaled_before = {f"{dataset}/{model}/{unit}" for model, unit in killed["before"]}
    twice = sum(task in journaled_before for task in resumed)
    versions = len(reg.list_models(run_id=run_id))
    trials_ok = sum(t.status == "ok" for t in reg.list_trials(run_id))
    assert versions == 1  # no final fit registered twice
    board = client.leaderboard(run_id)
    assert len(board) == 1
    assert board[0]["cv_mean"] is not None
    assert board[0]["test"] is not None
    assert client.run(run_id)["progress"]["units_done"] == UNITS
    return {"trials_lost": 1 - trials_ok, "models_lost": 1 - versions,
            "units_trained_twice": twice}


def test_a_killed_driver_is_marked_and_resumed_through_the_api(
        manual: Served, home: Path, tmp_path: Path) -> None:
    client, registry = manual.client, manual.registry
    gate = tmp_path / "gate"
    killed = _start_and_kill(client, home, gate, manual.load)
    run_id = killed["run_id"]
    try:
        run = wait_until(lambda: (r := client.run(run_id))["status"] != "running" and r,
                         "the API to notice the dead driver", timeout_s=60)
        t_detected = time.monotonic()
        assert run["status"] == "interrupted", run
        assert run["error"].startswith(f"driver died: its process {killed['driver']}")
        assert run["process"]["running"] is False
        assert run["process"]["exit_code"] == -signal.SIGKILL
        assert registry.get_run(run_id).launcher.get("attempt") == 0  # not resumed by itself
        open_all(gate)
        client.resume_run(run_id)
        t_ready = _resumed(client, killed)
        done = client.wait_for_run(run_id, timeout=300, poll_s=0.5)
        t_finished = time.monotonic()
        assert done["status"] == "finished", done
        lost = _check_nothing_trained_twice(client, gate, killed)
        _record(tmp_path, "driver/manual", "marked interrupted, resumed through the API",
                manual.load, killed, t_detected, t_ready, t_finished, lost)
    finally:
        open_all(gate)
        kill_tree(killed["pids"])


def test_the_launcher_resumes_a_killed_driver_by_itself(
        automatic: Served, home: Path, tmp_path: Path) -> None:
    client, registry = automatic.client, automatic.registry
    gate = tmp_path / "gate"
    killed = _start_and_kill(client, home, gate, automatic.load)
    run_id = killed["run_id"]
    try:
        open_all(gate)  # what the resumed driver fits goes straight through
        # Noticed: the launcher recorded the death (and is resuming the run).
        wait_until(lambda: registry.get_run(run_id).launcher.get("last_error"),
                   "the launcher to notice the dead driver", timeout_s=60)
        t_detected = time.monotonic()
        t_ready = _resumed(client, killed)
        done = client.wait_for_run(run_id, timeout=300, poll_s=0.5)
        t_finished = time.monotonic()
        assert done["status"] == "finished", done
        launcher = registry.get_run(run_id).launcher
        assert launcher["attempt"] == 1, launcher
        assert launcher["last_error"].startswith(
            f"driver died: its process {killed['driver']}"), launcher
        assert launcher["pid"] != killed["driver"]
        lost = _check_nothing_trained_twice(client, gate, killed)
        _record(tmp_path, "driver/automatic", "resumed by the launcher by itself",
                automatic.load, killed, t_detected, t_ready, t_finished,
                lost)
    finally:
        open_all(gate)
        kill_tree(killed["pids"])
