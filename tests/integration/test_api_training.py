"""Training through the REST API, end to end: upload, run on Ray, follow, rank, predict.

A real uvicorn server on loopback; runs train in child processes that join the
session's Ray instance (``ServeSettings.ray_address``), as they would join a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import ray
from gated_models import open_all, open_ticket, wait_until
from gated_models import started as started_fits
from live_server import free_port, serving
from model_fixtures import iris_frame
from sklearn.datasets import make_classification

import fleetlearn
from fleetlearn.api import create_app
from fleetlearn.client import Client
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings
from fleetlearn.training import RETRY_BACKOFF_S

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture
def served(home: Path) -> Iterator[Client]:
    port = free_port()
    settings = ServeSettings(registry_url=f"sqlite:///{home}/registry.db",
                             artifact_dir=str(home / "artifacts"), data_dir=str(home / "data"),
                             port=port, refresh_s=0.2,
                             ray_address=ray.get_runtime_context().gcs_address)
    with serving(create_app(settings), port) as url, Client(url) as client:
        yield client


def _iris_csv(folder: Path) -> Path:
    frame = iris_frame()
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    path = folder / "iris.csv"
    frame.to_csv(path, index=False)
    return path


def test_upload_train_follow_rank_and_predict(served: Client, tmp_path: Path) -> None:
    csv = _iris_csv(tmp_path)
    uploaded = served.upload_dataset(csv)
    assert uploaded["rows"] == 150
    assert uploaded["columns"][-1] == "species"

    started = served.start_run(uploaded["name"], "species",
                               models=["logistic_regression", "decision_tree"], folds=3,
                               name="api-iris")
    # 2 models x (3 folds + final + learning curve)
    assert started["units_total"] == 10
    seen: list[dict] = []
    run = served.wait_for_run(started["id"], timeout=300, poll_s=0.5, on_progress=seen.append)
    assert run["status"] == "finished", run
    assert run["name"] == "api-iris"
    assert run["progress"]["units_done"] == run["progress"]["units_total"] == 10
    assert run["progress"]["trials_done"] == 2
    assert run["progress"]["failures"] == []
    assert run["datasets"] == [{"name": "iris", "rows": 150, "features": 4,
                                "task": "classification", "target": "species"}]
    done = [s["progress"]["units_done"] for s in seen if s.get("progress")]
    assert done == sorted(done)  # progress only moves forward
    assert {s["status"] for s in seen} <= {"starting", "running", "finished"}
    assert started["id"] in {r["id"] for r in served.runs(status="finished")}

    board = served.leaderboard(started["id"])
    assert [row["rank"] for row in board] == [1, 2]
    assert {row["model"] for row in board} == {"logistic_regression", "decision_tree"}
    assert all(0.8 <= row["cv_mean"] <= 1.0 and row["test"] is not None for row in board)
    assert served.leaderboard(started["id"], metric="f1_macro")[0]["metric"] == "f1_macro"

    best = f"iris-{board[0]['model']}"
    assert best in {m["name"] for m in served.models()}
    rows = pd.read_csv(csv)
    answer = served.predict(best, rows.drop(columns="species"), return_proba=True)
    assert answer["version"] == 1
    assert len(answer["predictions"]) == 150
    agree = sum(p == s for p, s in zip(answer["predictions"], rows["species"], strict=True))
    assert agree / 150 > 0.9
    assert set(answer["classes"]) == {"setosa", "versicolor", "virginica"}
    # The registry says finished before the child has printed its last lines and
    # exited: wait for the process, then its log holds the leaderboard it printed.
    deadline = time.monotonic() + 60
    while served.run(started["id"])["process"]["running"] and time.monotonic() < deadline:
        time.sleep(0.2)
    process = served.run(started["id"])["process"]
    assert process["running"] is False, process
    assert process["exit_code"] == 0, process
    assert Path(process["log"]).read_text().count("finished") >= 1


def test_cancel_marks_the_run_interrupted_and_it_resumes(
        served: Client, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No race with the clock: every fit waits at a gate this test opens (gated_models),
    # so the run is cancelled while its fits are provably blocked, however fast the
    # machine. 3 folds + final fit, no learning curve: one fit per unit.
    gate = tmp_path / "gate"
    # Item 6 of issue 8: a user's own estimator class is trusted by exact name.
    monkeypatch.setenv("FLEETLEARN_TRUSTED_TYPES", "gated_models.GatedClassifier")
    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(label=y)
    path = tmp_path / "gated.parquet"
    frame.to_parquet(path)
    served.upload_dataset(path)
    started = served.start_run("gated.parquet", "label", folds=3, curves=False,
                               models=[f"gated_models.GatedClassifier:gate={gate}"])
    assert started["units_total"] == 4
    run_id = started["id"]

    # Let exactly one fit finish, then wait until it is journaled and another fit is
    # waiting at the gate: the run is mid-way, and it stays so until the gate opens.
    first = min(wait_until(lambda: started_fits(gate), "the first fit to start"))
    open_ticket(gate, first)

    def one_done_and_one_blocked() -> bool:
        run = served.run(run_id)
        assert run["status"] in ("starting", "running"), run
        return (run["progress"]["units_done"] == 1
                and any(ticket != first for ticket in started_fits(gate)))

    wait_until(one_done_and_one_blocked, "one unit journaled and another fit blocked")
    stopped = served.cancel_run(run_id)
    assert stopped["status"] == "interrupted", stopped
    assert stopped["process"]["running"] is False
    assert stopped["progress"]["units_done"] == 1  # the blocked fits never finished
    assert stopped["progress"]["units_total"] == 4
    with pytest.raises(fleetlearn.errors.ApiError) as caught:
        served.cancel_run(run_id)
    assert caught.value.status == 409
    assert "interrupted" in str(caught.value)
    registry = Registry(f"sqlite:///{home}/registry.db", artifact_dir=home / "artifacts")
    before = {u.unit: u for t in registry.list_trials(run_id) for u in t.units.values()}
    assert len(before) == 1
    # A cancelled run is never resumed by the server on its own (retries are on here):
    # past the first automatic resume's pause, it is still interrupted, attempt 0.
    time.sleep(RETRY_BACKOFF_S + 1.0)
    assert served.run(run_id)["status"] == "interrupted"
    assert registry.get_run(run_id).launcher["attempt"] == 0
    assert registry.get_run(run_id).launcher["status"] == "cancelled"

    # The journal kept what finished: resuming trains only the other 3 units, each
    # once (counted at the gate by Ray job: the resume runs in this process's job).
    open_all(gate)
    result = fleetlearn.train(resume=run_id)
    assert result.run_id == run_id
    after = served.run(run_id)
    assert after["status"] == "finished"
    assert after["progress"]["units_done"] == after["progress"]["units_total"] == 4
    units = {u.unit: u for t in registry.list_trials(run_id) for u in t.units.values()}
    assert sorted(units) == ["cv0", "cv1", "cv2", "final"]
    assert all(u.status == "ok" for u in units.values()), units
    (done,) = before
    assert units[done].payload == before[done].payload  # not trained again
    job = ray.get_runtime_context().get_job_id()
    resumed = [info for info in started_fits(gate).values() if info["job"] == job]
    assert len(resumed) == 3, started_fits(gate)
    assert len(served.leaderboard(run_id)) == 1
    registry.close()
