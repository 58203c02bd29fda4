"""The report of a real training run: every section, test-split figures from the reloaded
tables and the registered models, trends across two runs, and honest notes when a table
is gone or changed."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from live_server import free_port, serving
from model_fixtures import iris_frame
from sklearn.datasets import load_diabetes, load_wine

import fleetlearn
import fleetlearn.training
from fleetlearn.api import create_app
from fleetlearn.client import Client
from fleetlearn.errors import ApiError
from fleetlearn.registry import Registry
from fleetlearn.reports import SECTIONS, build_report, collect_run, run_figures
from fleetlearn.serving import ServeSettings

pytestmark = pytest.mark.usefixtures("ray_session")

CLASSIFIERS = ["logistic_regression", "gradient_boosting:n_estimators=15", "decision_tree"]
REGRESSORS = ["ridge", "decision_tree:max_depth=4"]


@contextmanager
def _server() -> Iterator[str]:
    """``fleetlearn serve``'s app on a loopback port, over the home's registry."""
    port = free_port()
    with serving(create_app(ServeSettings(port=port, stats_flush_s=3600.0)), port) as url:
        yield url


def _train(tables: dict[str, Path], seed: int) -> str:
    configs = fleetlearn.training.dataset_configs(
        [tables["iris"], tables["wine"], tables["diabetes"]],
        {"iris.csv": "species", "wine.csv": "target", "diabetes.csv": "target"})
    for c in configs:
        c.models = REGRESSORS if c.path.endswith("diabetes.csv") else CLASSIFIERS
    return fleetlearn.training.train_run(
        fleetlearn.RunConfig(datasets=configs, folds=3, seed=seed)).run_id


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report-tables")
    iris = iris_frame()
    paths = {"iris": folder / "iris.csv", "wine": folder / "wine.csv",
             "diabetes": folder / "diabetes.csv"}
    iris.to_csv(paths["iris"], index=False)
    load_wine(as_frame=True).frame.to_csv(paths["wine"], index=False)
    load_diabetes(as_frame=True).frame.to_csv(paths["diabetes"], index=False)
    return paths


def test_report_of_a_real_run(tables: dict[str, Path], home: Path, tmp_path: Path) -> None:
    first = _train(tables, seed=1)
    second = _train(tables, seed=2)  # new versions of every model: trends have 2 points
    reg = Registry()

    data = collect_run(reg, second)
    figures = {f.key: f for f in run_figures(data)}
    sections = {f.section for f in figures.values()}
    assert sections == set(SECTIONS) - {"summary", "config", "datasets", "leaderboards",
                                        "lineage", "notes", "inference"}

    # Test-split figures come from the reloaded tables and the registered final models.
    iris = next(d for d in data.datasets if d.name == "iris")
    assert iris.test is not None
    assert iris.notes == []
    y_test = iris.test.y_true
    assert len(y_test) == 30  # 20 % of 150, stratified
    assert set(iris.test.predictions) == {"logistic_regression", "gradient_boosting",
                                          "decision_tree"}
    # The recomputed split is the one training scored: same test accuracy as registered.
    best = iris.test.focus_model
    version = reg.get_model_version(f"iris-{best}")
    accuracy = float(np.mean(iris.test.predictions[best] == y_test))
    assert accuracy == pytest.approx(version.metrics["test"]["accuracy"])
    assert best == iris.board.dropna(subset=["rank"])["model"].iloc[0]
    confusion = figures[f"confusion-iris-{best}"].figure
    assert int(np.asarray(confusion.data[0].z).sum()) == 30
    assert list(confusion.data[0].x) == ["setosa", "versicolor", "virginica"]
    # One ROC curve per final model, in leaderboard order, then the chance line.
    assert [t.name.split(" (")[0] for t in figures["roc-iris"].figure.data] == [
        *iris.board["model"], "chance"]
    assert "pr-wine" in figures
    diabetes = next(d for d in data.datasets if d.name == "diabetes")
    assert [t.name for t in figures["predicted-diabetes"].figure.data] == [
        *diabetes.board["model"], "identity"]
    assert "residuals-diabetes" in figures
    importance = figures["importance-iris"].figure.data[0]
    assert set(importance.y) <= {"sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                                 "petal width (cm)"}
    # Curves: per stage for boosting (from the final unit), learning curves for the rest.
    staged = figures["curve-iris-gradient_boosting"].figure
    assert staged.layout.xaxis.title.text == "stage"
    assert figures["curve-iris-decision_tree"].figure.layout.xaxis.title.text == "training rows"
    # Two classification datasets with the same models: ranks, Friedman, critical difference.
    assert set(data.across) == {"classification"}
    assert "cd-classification" in figures
    # Trends: each model's versions from both runs, in time order.
    trends = figures["trends-iris"].figure
    lines = {t.name: list(t.y) for t in trends.data}
    assert len(lines["iris-decision_tree"]) == 2
    assert len(lines["best of each run"]) == 2

    path = build_report(reg, second, tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"<section id='{section}'>" in text
    for key in figures:
        assert f'id="{key}"' in text
    assert len(re.findall(r"\* plotly\.js v\d", text)) == 1
    assert re.findall(r"<(?:script|link)[^>]+(?:src|href)=", text) == []
    assert "iris-logistic_regression:2" in text  # lineage lists this run's versions
    assert reg.get_model_version("iris-decision_tree", 1).run_id == first

    # The same report over HTTP (GET /v1/runs/{id}/report, through the Client): every
    # figure and section the CLI's has, self-contained.
    with _server() as url, Client(url) as client:
        served = client.report(second[:8])
        with pytest.raises(ApiError) as missing:
            client.report("0" * 12)
    assert missing.value.status == 404
    for section in SECTIONS:
        assert f"<section id='{section}'>" in served
    assert {k for k in figures if f'id="{k}"' in served} == set(figures)
    assert len(re.findall(r"\* plotly\.js v\d", served)) == 1
    assert re.findall(r"<(?:script|link)[^>]+(?:src|href)=", served) == []


def test_report_skips_test_figures_when_a_table_is_gone_or_changed(
        tables: dict[str, Path], home: Path, tmp_path: Path) -> None:
    copies = {}
    for name, path in tables.items():
        copies[name] = tmp_path / path.name
        shutil.copy(path, copies[name])
    run_id = _train(copies, seed=3)
    copies["wine"].unlink()
    frame = pd.read_csv(copies["diabetes"])
    frame.loc[0, "age"] = 0.5
    frame.to_csv(copies["diabetes"], index=False)

    data = collect_run(Registry(), run_id)
    by_name = {d.name: d for d in data.datasets}
    assert by_name["iris"].test is not None
    assert by_name["wine"].test is None
    assert "could not be read again" in by_name["wine"].notes[0]
    assert by_name["diabetes"].test is None
    assert "changed since the run" in by_name["diabetes"].notes[0]
    keys = {f.key for f in run_figures(data)}
    assert "roc-iris" in keys
    assert "roc-wine" not in keys
    assert "predicted-diabetes" not in keys
    assert "fold-scores-wine" in keys  # everything else still comes from the registry
    text = build_report(Registry(), run_id, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "test-split figures skipped" in text
