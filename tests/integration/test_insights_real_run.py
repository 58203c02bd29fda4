"""The read models of a run trained on Ray, against what the API's routes answer for it.

The expected shapes are written down (keys in order); the values are the route's, from
the same registry, so the read models can replace the routes' own code unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris, load_wine

import fleetlearn
import fleetlearn.training
from fleetlearn.api import create_app
from fleetlearn.evaluation import score_predictions
from fleetlearn.insights import (
    held_out_rows,
    run_board,
    run_comparison,
    run_detail,
    run_progress,
    run_summaries,
    score_history,
)
from fleetlearn.registry import Registry
from fleetlearn.reports import render_report
from fleetlearn.serving import ServeSettings

pytestmark = pytest.mark.usefixtures("ray_session")

MODELS = ["logistic_regression", "decision_tree:max_depth=3"]
DETAIL_KEYS = ["id", "name", "status", "error", "seed", "created_at", "started_at",
               "finished_at", "datasets", "progress", "config"]
PROGRESS_KEYS = ["units_done", "units_total", "trials_done", "trials_total", "fraction",
                 "datasets", "failures", "retried"]
BOARD_ROW_KEYS = ["rank", "dataset", "metric", "model", "cv_mean", "cv_std", "test",
                  "fit_time_s", "predict_ms_per_row", "folds", "status", "ci_low", "ci_high",
                  "p_value", "p_adjusted", "tied_with_best"]
COMPARE_KEYS = ["run_id", "alpha", "leaderboard", "across_datasets", "notes"]
TRENDS_KEYS = ["by", "metric", "points", "summary"]


@pytest.fixture
def trained(tmp_path: Path, home: Path) -> Iterator[tuple[Registry, TestClient, str]]:
    iris = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    iris.to_csv(tmp_path / "iris.csv", index=False)
    load_wine(as_frame=True).frame.to_csv(tmp_path / "wine.csv", index=False)
    configs = fleetlearn.training.dataset_configs(
        [tmp_path / "iris.csv", tmp_path / "wine.csv"],
        {"iris.csv": "species", "wine.csv": "target"})
    for c in configs:
        c.models = MODELS
    run_id = fleetlearn.training.train_run(
        fleetlearn.RunConfig(datasets=configs, folds=3, seed=4)).run_id
    reg = Registry()
    with TestClient(create_app(ServeSettings(data_dir=str(tmp_path)))) as client:
        yield reg, client, run_id
    reg.close()


def _close(found: Any, expected: Any) -> None:
    """Equal JSON, floats within 1e-9 (the routes wrote 10 decimals)."""
    if isinstance(expected, dict):
        assert sorted(found) == sorted(expected)
        for key, value in expected.items():
            _close(found[key], value)
    elif isinstance(expected, list):
        assert len(found) == len(expected)
        for f, e in zip(found, expected, strict=True):
            _close(f, e)
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=1e-9, abs=1e-9)
    else:
        assert found == expected


def test_read_models_of_a_trained_run_answer_what_the_routes_answer(
        trained: tuple[Registry, TestClient, str]) -> None:
    reg, client, run_id = trained

    detail = json.loads(json.dumps(run_detail(reg, run_id).to_dict()))
    assert list(detail) == DETAIL_KEYS
    assert list(detail["progress"]) == PROGRESS_KEYS
    route = client.get(f"/v1/runs/{run_id}").json()
    route.pop("process")
    _close(detail, route)
    progress = run_progress(reg, run_id)
    # Finished: every planned unit (3 folds, final, curve per trial) is journaled.
    assert progress.units_done == progress.units_total == 2 * 2 * (3 + 2)
    assert progress.fraction == 1.0
    assert progress.failures == ()
    assert [s.to_dict() for s in run_summaries(reg)] == client.get("/v1/runs").json()["data"]

    board = run_board(reg, run_id).to_dict()
    assert list(board["rows"][0]) == BOARD_ROW_KEYS
    assert {r["status"] for r in board["rows"]} == {"ok"}
    _close(board, client.get(f"/v1/runs/{run_id}/leaderboard").json())

    comparison = run_comparison(reg, run_id).to_dict()
    assert list(comparison) == COMPARE_KEYS
    assert set(comparison["across_datasets"]) == {"classification"}
    _close(comparison, client.get(f"/v1/runs/{run_id}/compare").json())

    for query in ({"dataset": "wine"}, {"model": "iris-logistic_regression"}):
        history = score_history(reg, **query).to_dict()
        assert list(history) == TRENDS_KEYS
        _close(json.loads(json.dumps(history)), client.get("/v1/trends", params=query).json())


def test_held_out_rows_and_the_report_of_a_trained_run(
        trained: tuple[Registry, TestClient, str]) -> None:
    reg, _, run_id = trained
    for name in ("iris", "wine"):
        rows = held_out_rows(reg, run_id, name)
        for mv in reg.list_models(run_id=run_id, dataset=name):
            model = reg.load_model(mv.name, version=mv.version)
            scores = score_predictions(model, rows.X, rows.y, "classification")[0]
            assert scores["accuracy"] == pytest.approx(mv.metrics["test"]["accuracy"])
    iris = held_out_rows(reg, run_id, "iris")
    assert len(iris.y) == 30
    assert np.intersect1d(iris.splits.test, iris.splits.train).size == 0
    html = render_report(reg, run_id)
    assert html.startswith("<!DOCTYPE html>")
    assert 'id="confusion-iris-' in html  # test-split figures, from the reloaded tables
    assert "No notes." in html
