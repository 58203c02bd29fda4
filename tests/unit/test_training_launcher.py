"""The run launcher's state is in the registry: any API process reports, cancels, resumes.

Real child processes stand in for training drivers (a Python that waits for a signal,
with the run id on its command line as ``fleetlearn train`` has it); a second
:class:`Launcher` over the same registry plays another API process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris

from fleetlearn.api import create_app
from fleetlearn.errors import ConflictError
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings
from fleetlearn.training import Launcher
from fleetlearn.training._launcher import this_host

#: A stand-in driver: takes Ctrl-C back as the real one does (``fleetlearn train
#: --run-id``), says "ready", then waits (up to 2 minutes) until SIGINT ends it.
WAITER = ("import sys, time\nfrom fleetlearn.cli.train import restore_ctrl_c\n"
          "restore_ctrl_c()\ntry:\n    print('ready', flush=True)\n    time.sleep(120)\n"
          "except KeyboardInterrupt:\n    sys.exit(130)")


def _ignore_sigint() -> None:
    # As a server started with '&' or nohup hands SIGINT on to its children: ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path}/registry.db", artifact_dir=tmp_path / "artifacts")
    yield reg
    reg.close()


def _driver(run_id: str) -> subprocess.Popen[bytes]:
    """A running stand-in driver of ``run_id``, past its start (no race with a signal)."""
    proc = subprocess.Popen([sys.executable, "-c", WAITER, "train", "--run-id", run_id],
                            stdout=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_ignore_sigint)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    return proc


def _running_run(reg: Registry, proc: subprocess.Popen[bytes], host: str | None = None,
                 log: Path | None = None) -> str:
    run = reg.create_run({"folds": 2, "datasets": []}, seed=0, name="launched")
    reg.set_run_launcher(run.id, {"pid": proc.pid, "host": host or this_host(),
                                  "log": str(log or ""), "status": "running",
                                  "started_at": "2026-12-01T20:00:00+00:00",
                                  "exit_code": None, "cancelled": False, "error": None})
    return run.id


def test_the_launcher_record_round_trips_through_the_registry(registry: Registry) -> None:
    proc = _driver("0" * 12)
    try:
        run_id = _running_run(registry, proc)
        run = registry.get_run(run_id)
        assert run.launcher is not None
        assert (run.launcher["pid"], run.launcher["host"]) == (proc.pid, this_host())
        assert registry.set_run_launcher(run_id, None).launcher is None
    finally:
        proc.kill()
        proc.wait()


def test_another_api_process_reports_and_cancels_the_run(registry: Registry,
                                                         tmp_path: Path) -> None:
    run = registry.create_run({"datasets": []}, seed=0)
    proc = _driver(run.id)
    try:
        registry.set_run_launcher(run.id, {"pid": proc.pid, "host": this_host(),
                                           "log": "", "status": "running",
                                           "exit_code": None, "cancelled": False})
        other = Launcher(registry, tmp_path / "runs")  # never started this process
        shown = other.process(run.id, registry.get_run(run.id))
        assert shown is not None
        assert (shown["pid"], shown["running"]) == (proc.pid, True)
        assert other.cancel(run.id) is True
        assert proc.wait(timeout=10) == 130  # it got SIGINT, as Ctrl-C, and stopped
        stopped = registry.get_run(run.id)
        assert stopped.status == "interrupted"
        assert stopped.error == "cancelled through the API"
        assert stopped.launcher is not None
        assert (stopped.launcher["status"], stopped.launcher["cancelled"]) == (
            "cancelled", True)
        assert other.cancel(run.id) is False  # nothing left to stop
    finally:
        proc.kill()
        proc.wait()


def test_a_run_on_another_host_is_a_conflict_naming_the_host(registry: Registry,
                                                              tmp_path: Path) -> None:
    run = registry.create_run({"datasets": []}, seed=0)
    registry.set_run_launcher(run.id, {"pid": 1, "host": "node-elsewhere", "log": "",
                                       "status": "running", "exit_code": None})
    launcher = Launcher(registry, tmp_path / "runs")
    with pytest.raises(ConflictError, match="node-elsewhere"):
        launcher.cancel(run.id)
    # Not this host's process: its status is trusted, never marked dead from here.
    assert launcher.check(registry.get_run(run.id)).status == "running"


def test_a_run_whose_driver_died_is_marked_interrupted_when_read(registry: Registry,
                                                                 tmp_path: Path) -> None:
    run = registry.create_run({"datasets": []}, seed=0)
    proc = _driver(run.id)
    registry.set_run_launcher(run.id, {"pid": proc.pid, "host": this_host(), "log": "",
                                       "status": "running", "exit_code": None})
    launcher = Launcher(registry, tmp_path / "runs")
    assert launcher.check(registry.get_run(run.id)).status == "running"  # alive
    proc.kill()  # the driver dies without a word (as with the server, kill -9)
    proc.wait()
    marked = launcher.check(registry.get_run(run.id))
    assert marked.status == "interrupted"
    assert marked.error is not None
    assert "driver died" in marked.error
    assert str(proc.pid) in marked.error
    assert registry.get_run(run.id).launcher["status"] == "died"  # type: ignore[index]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Registry]]:
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    load_iris(as_frame=True).frame.to_csv(data / "iris.csv", index=False)
    url = f"sqlite:///{home}/registry.db"
    settings = ServeSettings(registry_url=url, artifact_dir=str(home / "artifacts"),
                             data_dir=str(data), ray_address="127.0.0.1:1")
    reg = Registry(url, artifact_dir=home / "artifacts")
    with TestClient(create_app(settings)) as client:
        yield client, reg
    reg.close()


def test_the_api_marks_a_dead_driver_and_resumes_the_run(
        api: tuple[TestClient, Registry]) -> None:
    client, reg = api
    run = reg.create_run({"datasets": [], "folds": 2}, seed=0)
    proc = _driver(run.id)
    reg.set_run_launcher(run.id, {"pid": proc.pid, "host": this_host(), "log": "",
                                  "status": "running", "exit_code": None})
    r = client.post(f"/v1/runs/{run.id}/resume")
    assert r.status_code == 409, r.text  # running: nothing to resume
    assert "running" in r.json()["detail"]
    proc.kill()
    proc.wait()
    shown = client.get(f"/v1/runs/{run.id}").json()
    assert shown["status"] == "interrupted"
    assert "driver died" in shown["error"]
    assert shown["process"]["running"] is False

    r = client.post(f"/v1/runs/{run.id}/resume")
    assert r.status_code == 202, r.text
    resumed = r.json()
    process = resumed["process"]
    assert process["host"] == this_host()
    assert process["pid"] != proc.pid
    stored = reg.get_run(run.id).launcher
    assert stored is not None
    assert stored["pid"] == process["pid"]
    # The child is 'fleetlearn train --resume ID'; pointed at a dead Ray, it stops soon.
    assert f"--resume {run.id}" in Path(process["log"]).read_text().splitlines()[0]
    deadline = time.monotonic() + 60
    while client.get(f"/v1/runs/{run.id}").json()["process"]["running"]:
        assert time.monotonic() < deadline, "the resumed driver did not stop"
        time.sleep(0.2)
    after = reg.get_run(run.id)
    assert after.launcher is not None
    assert after.launcher["status"] == "exited"
    assert after.launcher["exit_code"] not in (None, 0)


def test_cancel_of_a_run_on_another_host_is_409_naming_it(
        api: tuple[TestClient, Registry]) -> None:
    client, reg = api
    run = reg.create_run({"datasets": []}, seed=0)
    reg.set_run_launcher(run.id, {"pid": 1, "host": "node-elsewhere", "log": "",
                                  "status": "running", "exit_code": None})
    r = client.post(f"/v1/runs/{run.id}/cancel")
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "ConflictError"
    assert "node-elsewhere" in r.json()["detail"]
    assert reg.get_run(run.id).status == "running"  # nothing changed


def test_a_finished_run_cannot_be_resumed(api: tuple[TestClient, Registry]) -> None:
    client, reg = api
    run = reg.create_run({"datasets": []}, seed=0)
    reg.set_run_status(run.id, "finished")
    r = client.post(f"/v1/runs/{run.id}/resume")
    assert r.status_code == 409, r.text
    assert "finished" in r.json()["detail"]
    assert client.post("/v1/runs/0123456789ab/resume").status_code == 404
