"""Run requests, progress, leaderboards and cancel through the REST API, without Ray.

Checks happen in the server; a run that passes them trains in a child process. Here the
child is pointed at a dead Ray address, so it stops before training (and before Ray).
"""

from __future__ import annotations

import contextlib
import os
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
from fleetlearn.config import fleetlearn_home
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings
from fleetlearn.training._launcher import this_host


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, Registry, Path]]:
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    frame.to_csv(data / "iris.csv", index=False)
    url = f"sqlite:///{home}/registry.db"
    settings = ServeSettings(registry_url=url, artifact_dir=str(home / "artifacts"),
                             data_dir=str(data), ray_address="127.0.0.1:1",
                             model_packages=["sklearn", "xgboost", "lightgbm"])
    reg = Registry(url, artifact_dir=home / "artifacts")
    with TestClient(create_app(settings)) as client:
        yield client, reg, data
    reg.close()


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"datasets": ["iris.csv"]}, 422, "No target column for dataset 'iris.csv'"),
    ({"datasets": ["iris.csv"], "target": "label"}, 422, "Target column 'label'"),
    ({"datasets": ["irsi.csv"], "target": "species"}, 422, "Did you mean 'iris.csv'?"),
    ({"datasets": ["../home/registry.db"], "target": "x"}, 422, "outside the server's data"),
    ({"datasets": ["/etc/passwd"], "target": "x"}, 422, "outside the server's data"),
    ({"datasets": ["iris.csv"], "target": "species", "folds": 1}, 422,
     "'folds' option must be an int in the range [2, inf)"),
    ({"datasets": ["iris.csv"], "target": "species", "models": ["random_forrest"]}, 422,
     "random_forest"),
    ({"datasets": ["iris.csv"], "target": "species", "metric": "r2"}, 422, "r2"),
    ({"datasets": ["iris.csv"], "target": "species", "folds": "five"}, 422, "folds"),
    ({"datasets": ["iris.csv"], "target": "species", "seeds": 3}, 422, "seeds"),
    ({"datasets": []}, 422, "datasets"),
])
def test_bad_run_requests_are_422_and_write_nothing(
        setup: tuple[TestClient, Registry, Path], body: dict, status: int, says: str) -> None:
    client, reg, _ = setup
    r = client.post("/v1/runs", json=body)
    assert r.status_code == status, r.text
    answer = r.json()
    assert set(answer) >= {"detail", "error"}
    assert isinstance(answer["detail"], str)
    assert says in answer["detail"]
    assert reg.list_runs() == []
    assert not (fleetlearn_home() / "runs").exists()  # no process was started


@pytest.fixture
def planted_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module on sys.path that leaves a file behind when it is imported."""
    name = f"planted_{os.getpid()}"
    marker = tmp_path / "imported"
    (tmp_path / "planted").mkdir()
    (tmp_path / "planted" / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nclass Model: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "planted"))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name, marker


def test_a_run_may_not_make_the_server_import_a_module_off_the_allow_list(
        setup: tuple[TestClient, Registry, Path], planted_module: tuple[str, Path]) -> None:
    client, reg, _ = setup
    name, marker = planted_module
    for models in ([f"{name}.Model"], [{"name": "mine", "path": f"{name}.Model"}],
                   ["os.system"]):
        r = client.post("/v1/runs", json={"datasets": ["iris.csv"], "target": "species",
                                          "models": models})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert "dotted paths only from the packages lightgbm, sklearn, xgboost" in detail
        assert "FLEETLEARN_SERVE_MODEL_PACKAGES" in detail
    assert not marker.exists()  # refused before the import: its code never ran
    assert name not in sys.modules
    assert reg.list_runs() == []
    # scikit-learn by path, and catalog names, still pass the check (then the run's
    # process fails on the dead Ray address this fixture gives it).
    ok = client.post("/v1/runs", json={"datasets": ["iris.csv"], "target": "species",
                                       "models": ["sklearn.tree.DecisionTreeClassifier",
                                                  "logistic_regression"]})
    assert ok.status_code == 202, ok.text


def test_the_operator_can_allow_another_package(
        tmp_path: Path, planted_module: tuple[str, Path]) -> None:
    name, marker = planted_module
    data = tmp_path / "data"
    data.mkdir()
    load_iris(as_frame=True).frame.rename(columns={"target": "species"}).to_csv(
        data / "iris.csv", index=False)
    settings = ServeSettings(registry_url=f"sqlite:///{tmp_path}/r.db",
                             artifact_dir=str(tmp_path / "artifacts"), data_dir=str(data),
                             ray_address="127.0.0.1:1",
                             model_packages=["sklearn", name])
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/runs", json={"datasets": ["iris.csv"], "target": "species",
                                          "models": [f"{name}.Model"]})
    assert r.status_code == 422, r.text
    assert marker.exists()  # allowed: imported, then refused as not an estimator
    assert "dotted paths only" not in r.json()["detail"]


def test_model_packages_are_top_level_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetlearn.errors import ConfigError

    monkeypatch.setenv("FLEETLEARN_SERVE_MODEL_PACKAGES", "sklearn, mypkg")
    assert ServeSettings().model_packages == ["sklearn", "mypkg"]
    monkeypatch.setenv("FLEETLEARN_SERVE_MODEL_PACKAGES", "sklearn,os.path")
    with pytest.raises(ConfigError, match="top-level package names"):
        ServeSettings()


def test_a_dataset_is_found_by_its_name_without_suffix(
        setup: tuple[TestClient, Registry, Path]) -> None:
    client, _, _ = setup
    r = client.post("/v1/runs", json={"datasets": [{"dataset": "iris", "target": "nope"}]})
    assert r.status_code == 422
    assert "Target column 'nope'" in r.json()["detail"]  # got as far as reading iris.csv


def test_a_run_whose_process_fails_before_recording_reports_the_error(
        setup: tuple[TestClient, Registry, Path]) -> None:
    client, reg, _ = setup
    r = client.post("/v1/runs", json={"datasets": ["iris.csv"], "target": "species",
                                      "models": ["logistic_regression", "decision_tree"],
                                      "folds": 3, "curves": True})
    assert r.status_code == 202, r.text
    started = r.json()
    # 2 models x (3 folds + final + learning curve), both without per-iteration metrics
    assert started["units_total"] == 2 * (3 + 1 + 1)
    assert started["status"] == "starting"
    # The checks' notes come back at once (iris' species are the numbers 0, 1, 2).
    assert any("task inferred as classification" in w for w in started["warnings"])
    run_id = started["id"]
    listed = client.get("/v1/runs").json()["data"]
    assert run_id in {row["id"] for row in listed}

    deadline = time.monotonic() + 120
    while True:
        run = client.get(f"/v1/runs/{run_id}").json()
        if run["status"] != "starting" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert run["status"] == "failed"
    assert "Cannot reach the Ray cluster at 127.0.0.1:1" in run["error"]
    assert run["process"]["exit_code"] == 2
    assert run["process"]["running"] is False
    assert Path(run["process"]["log"]).is_file()
    assert reg.list_runs() == []  # the process never got to write the run
    # Nothing to cancel any more.
    r = client.post(f"/v1/runs/{run_id}/cancel")
    assert r.status_code == 409
    assert "failed" in r.json()["detail"]


def _journaled_run(reg: Registry) -> str:
    """A run as training leaves it half-way: 2 models on iris, some units journaled."""
    run = reg.create_run({"folds": 2, "curves": True, "final_fit": True, "metric": None},
                         seed=0, name="half")
    ds = reg.add_dataset(run.id, fingerprint="f" * 64, name="iris", source="iris.csv",
                         n_rows=150, n_features=4, task="classification", target="species",
                         schema={})
    knn = reg.ensure_trial(run.id, ds.id, "knn", {"name": "knn", "iterative": None})
    gb = reg.ensure_trial(run.id, ds.id, "gradient_boosting",
                          {"name": "gradient_boosting", "iterative": "staged_predict"})
    ok = {"scores": {"accuracy": 0.9}, "fit_time_s": 0.01, "predict_time_per_row_s": 1e-5}
    reg.record_unit(knn.id, "cv0", "ok", ok)
    reg.record_unit(knn.id, "cv1", "ok", {**ok, "scores": {"accuracy": 0.94}})
    reg.record_unit(knn.id, "final", "ok", {"test_scores": {"accuracy": 0.93}})
    reg.record_unit(knn.id, "curve", "ok", {})
    reg.record_unit(gb.id, "cv0", "failed", {}, error="ValueError: boom\ntraceback...")
    return run.id


def test_progress_counts_units_the_way_training_plans_them(
        setup: tuple[TestClient, Registry, Path]) -> None:
    client, reg, _ = setup
    run_id = _journaled_run(reg)
    run = client.get(f"/v1/runs/{run_id[:6]}").json()  # a unique prefix is enough
    assert run["id"] == run_id
    assert run["status"] == "running"
    assert run["name"] == "half"
    progress = run["progress"]
    # knn: 2 folds + final + curve; gradient boosting records its curve in final: 2 + 1
    assert progress["units_total"] == 4 + 3
    assert progress["units_done"] == 5
    assert progress["trials_done"] == 1
    assert progress["trials_total"] == 2
    assert progress["datasets"] == {"iris": {"units_done": 5, "units_total": 7}}
    assert progress["failures"] == [{"dataset": "iris", "model": "gradient_boosting",
                                     "unit": "cv0", "error": "ValueError: boom"}]
    assert run["process"] is None  # not started by this server: nothing to cancel
    r = client.post(f"/v1/runs/{run_id}/cancel")
    assert r.status_code == 409
    assert "not in a process" in r.json()["detail"]


def test_leaderboard_rows_are_json_with_null_for_missing_scores(
        setup: tuple[TestClient, Registry, Path]) -> None:
    client, reg, _ = setup
    run_id = _journaled_run(reg)
    r = client.get(f"/v1/runs/{run_id}/leaderboard")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == run_id
    assert body["status"] == "running"
    rows = {row["model"]: row for row in body["rows"]}
    assert rows["knn"]["rank"] == 1
    assert rows["knn"]["cv_mean"] == pytest.approx(0.92)
    assert rows["knn"]["test"] == pytest.approx(0.93)
    assert rows["gradient_boosting"]["status"] == "failed"
    assert rows["gradient_boosting"]["cv_mean"] is None  # NaN in pandas, null in JSON
    r = client.get(f"/v1/runs/{run_id}/leaderboard", params={"metric": "r2"})
    assert r.status_code == 422
    assert "r2" in r.json()["detail"]


def test_unknown_runs_are_404(setup: tuple[TestClient, Registry, Path]) -> None:
    client, _, _ = setup
    for path in ("/v1/runs/0123456789ab", "/v1/runs/0123456789ab/leaderboard"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.json()["error"] == "NotFoundError"
    r = client.post("/v1/runs/0123456789ab/cancel")
    assert r.status_code == 404


def _second_app(setup_client: TestClient) -> TestClient:
    """Another API process on the same registry (its own app, launcher and state)."""
    settings = setup_client.app.state.serving.settings
    return TestClient(create_app(settings))


def test_every_api_process_reports_a_starting_run_and_its_failure(
        setup: tuple[TestClient, Registry, Path]) -> None:
    client, reg, _ = setup
    r = client.post("/v1/runs", json={"datasets": ["iris.csv"], "target": "species",
                                      "models": ["logistic_regression"], "folds": 3})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    pid = reg.get_launch(run_id).pid
    # Held in its starting window (stopped before it can reach its dead Ray address):
    # only the launch row tells another API process about it.
    os.kill(pid, signal.SIGSTOP)
    try:
        with _second_app(client) as other:
            run = other.get(f"/v1/runs/{run_id}").json()
            assert run["status"] == "starting", run
            assert run["process"]["pid"] == pid
            assert run["process"]["running"] is True
            assert run_id in {row["id"] for row in other.get("/v1/runs").json()["data"]
                              if row["status"] == "starting"}
            assert reg.list_runs() == []
            os.kill(pid, signal.SIGCONT)
            deadline = time.monotonic() + 120
            # The first reader to see the process gone may mark the launch failed (the
            # error read from its log); the spawning server's watcher adds the exit code.
            while ((run["status"] == "starting" or run["process"]["exit_code"] is None)
                   and time.monotonic() < deadline):
                time.sleep(0.3)
                run = other.get(f"/v1/runs/{run_id}").json()
            assert run["status"] == "failed", run
            assert "Cannot reach the Ray cluster at 127.0.0.1:1" in run["error"]
            assert run["process"]["exit_code"] == 2
            assert run["process"]["running"] is False
            assert run_id not in {row["id"] for row in other.get("/v1/runs").json()["data"]}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert reg.list_runs() == []  # bad input still leaves no run behind
    assert reg.get_launch(run_id).status == "failed"


def test_a_launch_whose_process_died_before_recording_is_reported_failed(
        setup: tuple[TestClient, Registry, Path], tmp_path: Path) -> None:
    client, reg, _ = setup
    # The API process that started it died with its child: a launch row that says
    # starting, and a PID that is gone from this host.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    reg.add_launch("0123456789ab", gone.pid, this_host(), str(tmp_path / "missing.log"))
    run = client.get("/v1/runs/0123456789ab").json()
    assert run["status"] == "failed", run
    assert run["error"] == (f"the training process {gone.pid} on {this_host()} died before "
                            "it recorded the run")
    assert run["process"]["running"] is False
    assert reg.get_launch("0123456789ab").status == "failed"
    assert "0123456789ab" not in {row["id"] for row in client.get("/v1/runs").json()["data"]}
    assert client.post("/v1/runs/0123456789ab/cancel").status_code == 409
