"""``GET /v1/runs/{id}/figures`` on a run trained on Ray, over real HTTP: the report's
figures one by one as Plotly JSON, per dataset and kind, for a classification and a
regression table; and the GUI's Runs page drawing exactly those figures."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import ray
from live_server import free_port, serving
from model_fixtures import iris_frame
from sklearn.datasets import load_diabetes, load_wine
from streamlit.testing.v1 import AppTest

import fleetlearn
import fleetlearn.training
from fleetlearn.api import create_app
from fleetlearn.client import Client
from fleetlearn.errors import ApiError
from fleetlearn.reports import FIGURE_KINDS
from fleetlearn.serving import ServeSettings
from fleetlearn.ui import APP_FILE

CLASSIFIERS = ["logistic_regression", "gradient_boosting:n_estimators=10", "decision_tree"]
REGRESSORS = ["ridge", "decision_tree:max_depth=4"]
FOLDS = 3

#: What the report has per dataset, by task (gradient boosting records its metric per
#: stage in its final unit: a training curve; the others get a learning curve).
CLASSIFICATION_KINDS = {"fold-scores", "training-curve", "learning-curve", "cost-quality",
                        "confusion", "roc", "precision-recall", "importance", "trends"}
REGRESSION_KINDS = {"fold-scores", "learning-curve", "cost-quality", "predicted-vs-actual",
                    "residuals", "importance", "trends"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, ray_session: Any
           ) -> Iterator[tuple[str, str]]:
    """One finished run on iris, wine (classification) and diabetes (regression), and the
    API over its registry on a loopback port: (url, run id)."""
    folder = tmp_path_factory.mktemp("figures")
    iris = iris_frame()
    iris.to_csv(folder / "iris.csv", index=False)
    load_wine(as_frame=True).frame.to_csv(folder / "wine.csv", index=False)
    load_diabetes(as_frame=True).frame.to_csv(folder / "diabetes.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEETLEARN_HOME", str(folder / "home"))
        mp.delenv("FLEETLEARN_REGISTRY_URL", raising=False)
        mp.delenv("FLEETLEARN_API_KEY", raising=False)
        configs = fleetlearn.training.dataset_configs(
            [folder / "iris.csv", folder / "wine.csv", folder / "diabetes.csv"],
            {"iris.csv": "species", "wine.csv": "target", "diabetes.csv": "target"})
        for c in configs:
            c.models = REGRESSORS if c.path.endswith("diabetes.csv") else CLASSIFIERS
        run_id = fleetlearn.training.train_run(
            fleetlearn.RunConfig(datasets=configs, folds=FOLDS, seed=7)).run_id
        app = create_app(ServeSettings(stats_flush_s=3600.0,
                                       ray_address=ray.get_runtime_context().gcs_address))
        with serving(app, free_port()) as url:
            mp.setenv("FLEETLEARN_URL", url)
            yield url, run_id


def _values(value: Any) -> np.ndarray:
    """A Plotly JSON array: a list, or a typed array ``{"dtype", "bdata"[, "shape"]}``."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        if value.get("shape"):
            array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
        return array
    return np.asarray(value)


def _by(figures: list[dict[str, Any]], kind: str, dataset: str | None) -> list[dict]:
    return [f for f in figures if f["kind"] == kind and f["dataset"] == dataset]


def test_figures_of_a_run_per_dataset_and_kind_with_their_data(
        served: tuple[str, str]) -> None:
    url, run_id = served
    with Client(url) as client:
        figures = client.run_figures(run_id)
        board = client.leaderboard(run_id)
    kinds = {d: {f["kind"] for f in figures if f["dataset"] == d}
             for d in ("iris", "wine", "diabetes", None)}
    assert kinds["iris"] == CLASSIFICATION_KINDS
    assert kinds["wine"] == CLASSIFICATION_KINDS
    assert kinds["diabetes"] == REGRESSION_KINDS
    assert kinds[None] == {"critical-difference"}  # two classification tables; never served
    assert {f["kind"] for f in figures} <= set(FIGURE_KINDS)
    assert len({f["key"] for f in figures}) == len(figures)
    for f in figures:
        assert f["title"], f["key"]
        assert f["figure"]["data"], f"{f['key']} has no trace"
        assert f["figure"]["layout"]["title"]["text"] == f["title"]

    models = {d: [r["model"] for r in board if r["dataset"] == d] for d in ("iris", "diabetes")}
    # Folds: one box per model, each with one point per fold.
    folds = _by(figures, "fold-scores", "iris")[0]["figure"]["data"]
    assert [len(_values(t["y"])) for t in folds] == [FOLDS] * len(models["iris"])
    # One curve figure per model: the boosting's per stage, the others' per training size.
    curves = {f["model"]: f for f in figures if f["dataset"] == "iris"
              and f["kind"] in ("training-curve", "learning-curve")}
    assert set(curves) == set(models["iris"])
    assert curves["gradient_boosting"]["kind"] == "training-curve"
    assert len(_values(curves["gradient_boosting"]["figure"]["data"][0]["y"])) == 10
    assert curves["decision_tree"]["kind"] == "learning-curve"
    # The confusion matrix of the best model counts every held-out row once (20 % of 150).
    confusion = _by(figures, "confusion", "iris")[0]
    assert confusion["model"] == models["iris"][0]
    assert int(_values(confusion["figure"]["data"][0]["z"]).sum()) == 30
    assert list(confusion["figure"]["data"][0]["x"]) == ["setosa", "versicolor", "virginica"]
    # ROC and PR: one curve per final model, then the chance line.
    roc = _by(figures, "roc", "iris")[0]["figure"]["data"]
    assert [t["name"].split(" (")[0] for t in roc] == [*models["iris"], "chance"]
    # Regression: one point per held-out row and model, the identity line last.
    predicted = _by(figures, "predicted-vs-actual", "diabetes")[0]["figure"]["data"]
    assert [t["name"] for t in predicted] == [*models["diabetes"], "identity"]
    test_rows = {len(_values(t["x"])) for t in predicted[:-1]}
    assert test_rows == {89}  # 20 % of 442, rounded up
    residuals = _by(figures, "residuals", "diabetes")[0]["figure"]["data"]
    assert {len(_values(t["y"])) for t in residuals[:len(models["diabetes"])]} == test_rows
    importance = _by(figures, "importance", "diabetes")[0]["figure"]["data"][0]
    assert set(importance["y"]) <= set(load_diabetes(as_frame=True).frame.columns)
    assert len(_values(importance["x"])) == len(importance["y"]) > 0
    cost = _by(figures, "cost-quality", "diabetes")[0]["figure"]["data"][0]
    assert len(_values(cost["x"])) == len(models["diabetes"])
    # The diagram places the models common to iris and wine on the average-rank axis.
    cd = _by(figures, "critical-difference", None)[0]["figure"]["data"][0]
    assert sorted(cd["text"]) == sorted(models["iris"])
    assert all(1 <= r <= len(models["iris"]) for r in _values(cd["x"]))


def test_figures_filtered_by_dataset_and_kind(served: tuple[str, str]) -> None:
    url, run_id = served
    with Client(url) as client:
        roc = client.run_figures(run_id[:8], dataset="iris", kind="roc")
        wine = client.run_figures(run_id, dataset="wine")
        folds = client.run_figures(run_id, kind="fold-scores")
        everything = client.run_figures(run_id)
    assert [(f["dataset"], f["kind"]) for f in roc] == [("iris", "roc")]
    assert roc[0]["figure"] == next(f for f in everything if f["key"] == "roc-iris")["figure"]
    assert [f["key"] for f in wine] == [f["key"] for f in everything if f["dataset"] == "wine"]
    assert [f["dataset"] for f in folds] == ["iris", "wine", "diabetes"]


def test_unknown_run_dataset_or_kind_is_a_json_error(served: tuple[str, str]) -> None:
    url, run_id = served
    with Client(url) as client:
        with pytest.raises(ApiError) as run:
            client.run_figures("0" * 12)
        with pytest.raises(ApiError) as dataset:
            client.run_figures(run_id, dataset="nope")
    assert run.value.status == 404
    assert "0" * 12 in run.value.detail
    assert dataset.value.status == 404
    assert "no dataset 'nope'" in dataset.value.detail
    assert "iris" in dataset.value.detail  # names the run's datasets
    r = httpx.get(f"{url}/v1/runs/{run_id}/figures", params={"kind": "pie"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "ValidationError"
    assert "fold-scores" in r.text  # the valid kinds are named


def test_runs_page_draws_every_figure_the_api_returns(served: tuple[str, str]) -> None:
    url, run_id = served
    with Client(url) as client:
        figures = client.run_figures(run_id)
    at = AppTest.from_file(str(APP_FILE), default_timeout=180).run()
    at.switch_page("screens/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="runs-pick").value == run_id
    charts = at.get("plotly_chart")
    assert len(charts) == len(figures)
    # The same figures (grouped by dataset and kind on the page).
    shown = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts]
    assert sorted(shown) == sorted(f["title"] for f in figures)
    # One tab per kind of each dataset, and one for the run's critical-difference diagram.
    labels = [t.label for t in at.tabs]
    assert labels.count("ROC") == 2
    assert labels.count("Residuals") == 1
    assert labels.count("Critical difference") == 1
    assert len(labels) == 2 * len(CLASSIFICATION_KINDS) + len(REGRESSION_KINDS) + 1
