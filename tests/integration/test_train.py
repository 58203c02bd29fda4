"""Training runs on the shared local Ray instance, end to end through the registry."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_fixtures import iris_frame
from sklearn.datasets import load_diabetes, load_wine

import fleetlearn
from fleetlearn.registry import Registry

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tables")
    iris = iris_frame()
    wine = load_wine(as_frame=True).frame
    diabetes = load_diabetes(as_frame=True).frame
    paths = {"iris": folder / "iris.csv", "wine": folder / "wine.parquet",
             "diabetes": folder / "diabetes.csv"}
    iris.to_csv(paths["iris"], index=False)
    wine.to_parquet(paths["wine"], index=False)
    diabetes.to_csv(paths["diabetes"], index=False)
    return paths


def test_train_registers_every_model_and_ranks_them(tables: dict[str, Path], home: Path) -> None:
    events = []
    result = fleetlearn.train(
        tables["iris"], target="species",
        models=["logistic_regression", "random_forest:n_estimators=20",
                "gradient_boosting:n_estimators=20", "knn", "decision_tree"],
        folds=3, seed=1, on_progress=events.append,
    )
    board = result.leaderboard
    assert list(board["model"].iloc[:1])  # ranked rows exist
    assert len(board) == 5
    assert set(board["status"]) == {"ok"}
    assert (board["folds"] == 3).all()
    assert board["rank"].tolist() == sorted(board["rank"].tolist())
    assert board["cv_mean"].between(0.8, 1.0).all()  # iris is easy for every one of these
    assert board["test"].notna().all()
    # Progress: one start event, then one per unit, and the last has everything done.
    units = [e for e in events if e.kind == "unit"]
    assert events[0].kind == "start"
    # folds + final for 5 models + a learning curve for the 4 without per-stage metrics
    assert len(units) == events[0].total == 5 * (3 + 1) + 4
    assert events[-1].done == events[-1].total
    assert events[-1].best["iris"][0] in set(board["model"])

    reg = Registry()
    names = {m.name for m in reg.list_models()}
    assert names == {f"iris-{m}" for m in board["model"]}
    mv = reg.get_model_version("iris-random_forest")
    assert mv.version == 1
    assert mv.run_id == result.run_id
    assert [c["name"] for c in mv.input_schema["columns"]][:2] == ["sepal length (cm)",
                                                                 "sepal width (cm)"]
    model = reg.load_model("iris-random_forest")
    frame = pd.read_csv(tables["iris"]).drop(columns="species")
    assert set(model.predict(frame.head(20))) <= {"setosa", "versicolor", "virginica"}
    # Curves for the plots: per-stage for boosting, a learning curve for the others.
    trials = {t.model_name: t for t in reg.list_trials(result.run_id)}
    staged = trials["gradient_boosting"].units["final"].payload["curve"]
    assert staged["kind"] == "staged"
    assert len(staged["train"]) == len(staged["x"]) > 2
    curve = trials["random_forest"].units["curve"].payload["curve"]
    assert curve["kind"] == "learning_curve"
    assert curve["x"] == sorted(curve["x"])


def test_same_seed_same_leaderboard_whatever_the_schedule(tables: dict[str, Path],
                                                          home: Path) -> None:
    data = [tables["iris"], tables["wine"], tables["diabetes"]]
    targets = {"iris.csv": "species", "wine.parquet": "target", "diabetes.csv": "target"}
    models = {"classification": ["logistic_regression", "random_forest:n_estimators=15"],
              "regression": ["ridge", "random_forest:n_estimators=15"]}
    boards = {}
    runs = {}
    for schedule in ("sequential", "concurrent"):
        configs = fleetlearn.training.dataset_configs(data, targets)
        for c in configs:
            c.models = models["regression" if c.path.endswith("diabetes.csv") else "classification"]
        cfg = fleetlearn.RunConfig(datasets=configs, folds=3, seed=5, schedule=schedule,
                                   curves=False)
        result = fleetlearn.training.train_run(cfg)
        runs[schedule] = result.run_id
        boards[schedule] = result.leaderboard
    cols = ["dataset", "model", "rank", "cv_mean", "cv_std", "test"]
    pd.testing.assert_frame_equal(boards["sequential"][cols], boards["concurrent"][cols])
    assert set(boards["sequential"]["dataset"]) == {"iris", "wine", "diabetes"}
    assert (boards["sequential"].query("dataset == 'diabetes'")["metric"] == "r2").all()

    # Re-ranking a mixed run by a classification metric leaves regression on its own.
    from fleetlearn.training import run_leaderboard

    reg = Registry()
    by_f1 = run_leaderboard(reg, runs["concurrent"], metric="f1_macro")
    assert set(by_f1.query("dataset != 'diabetes'")["metric"]) == {"f1_macro"}
    assert set(by_f1.query("dataset == 'diabetes'")["metric"]) == {"r2"}
    with pytest.raises(fleetlearn.FleetlearnError, match="no_such_metric"):
        run_leaderboard(reg, runs["concurrent"], metric="no_such_metric")

    # Sequential: every unit of a dataset finished before the next dataset started.
    spans = _dataset_spans(reg, runs["sequential"])
    order = ["iris", "wine", "diabetes"]
    for first, second in zip(order, order[1:], strict=False):
        assert spans[first][1] <= spans[second][0]
    # Concurrent: one wave for every dataset, so some datasets overlap in time. Which
    # pair is up to Ray's queue: on a busy machine the last two units of one dataset
    # can finish together just before the next dataset's first starts (CI saw 7 ms).
    spans = _dataset_spans(reg, runs["concurrent"])
    overlapping = [(a, b) for a, b in itertools.combinations(order, 2)
                   if spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]]
    assert overlapping, spans


def _dataset_spans(reg: Registry, run_id: str) -> dict[str, tuple[float, float]]:
    names = {d.id: d.name for d in reg.run_datasets(run_id)}
    spans: dict[str, tuple[float, float]] = {}
    for trial in reg.list_trials(run_id):
        for unit in trial.units.values():
            name = names[trial.dataset_id]
            lo, hi = spans.get(name, (np.inf, -np.inf))
            spans[name] = (min(lo, unit.payload["started_at"]),
                           max(hi, unit.payload["finished_at"]))
    return spans


def test_a_model_that_raises_fails_alone(tables: dict[str, Path], home: Path) -> None:
    # Valid parameters one by one, an invalid combination at fit time.
    bad = "sklearn.linear_model.LogisticRegression:solver=liblinear,penalty=elasticnet,l1_ratio=0.5"
    result = fleetlearn.train(tables["iris"], target="species",
                              models=["decision_tree", bad], folds=3, curves=False)
    board = result.leaderboard.set_index("model")
    assert board.loc["decision_tree", "status"] == "ok"
    assert board.loc["LogisticRegression", "status"] == "failed"
    assert np.isnan(board.loc["LogisticRegression", "rank"])
    assert any("liblinear" in f["error"] or "elasticnet" in f["error"] for f in result.failed)
    reg = Registry()
    assert reg.get_run(result.run_id).status == "finished"
    assert [m.name for m in reg.list_models()] == ["iris-decision_tree"]


def test_an_address_other_than_the_connected_cluster_is_refused(tables: dict[str, Path],
                                                                 home: Path) -> None:
    import ray

    current = ray.get_runtime_context().gcs_address
    with pytest.raises(fleetlearn.FleetlearnError, match="127.0.0.1:1"):
        fleetlearn.train(tables["iris"], target="species", models=["naive_bayes"], folds=2,
                         address="127.0.0.1:1")
    # The connected cluster's own address is fine.
    result = fleetlearn.train(tables["iris"], target="species", models=["naive_bayes"],
                              folds=2, curves=False, address=current)
    assert result.leaderboard["status"].tolist() == ["ok"]
    assert Registry().get_run(result.run_id).status == "finished"
