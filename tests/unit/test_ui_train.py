"""The Train page in ``streamlit.testing.v1.AppTest`` against a real API on loopback.

The server is ``fleetlearn serve``'s app in a real uvicorn over a copy of the serving
registry and a data folder of real tables; the page reaches it over HTTP only. A run
started here points at a Ray address where nothing listens, so its process stops at
once: what the server received is read from the run file it wrote. The run that
trains is in tests/integration/test_ui_real_run.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from api_fixtures import serve
from live_server import free_port, serving
from model_fixtures import iris_frame, mixed_frame, regression_frame
from streamlit.testing.v1 import AppTest

from fleetlearn.client import Client
from fleetlearn.config import fleetlearn_home
from fleetlearn.ui import APP_FILE
from fleetlearn.ui import _views as views

TIMEOUT_S = 60


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    iris = iris_frame()
    iris.to_csv(folder / "iris.csv", index=False)
    mixed_frame(60).to_csv(folder / "people.csv", index=False)
    regression_frame(80).to_csv(folder / "house.csv", index=False)
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "empty": [None, None, None]}).to_csv(
        folder / "unlabeled.csv", index=False)
    return folder


@pytest.fixture
def api(home: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve(home, data_dir=str(data), ray_address="127.0.0.1:1") as app_client, \
            serving(app_client.app, free_port()) as url:
        monkeypatch.setenv("FLEETLEARN_URL", url)
        monkeypatch.delenv("FLEETLEARN_API_KEY", raising=False)
        yield url


def _page() -> AppTest:
    at = AppTest.from_file(str(APP_FILE), default_timeout=TIMEOUT_S).run()
    at.switch_page("screens/train.py").run()
    _clean(at)
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _pick(at: AppTest, *tables: str) -> AppTest:
    at.multiselect(key="train-tables").set_value(list(tables)).run()
    _clean(at)
    return at


def _kinds(at: AppTest) -> pd.DataFrame:
    """The column kinds table of the one table picked."""
    frames = [f.value for f in at.dataframe if "frequent values" in f.value.columns]
    assert len(frames) == 1, len(frames)
    return frames[0]


def _markdown(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def test_the_picked_table_shows_its_detected_task_and_column_kinds(api: str) -> None:
    at = _pick(_page(), "iris.csv")
    assert at.selectbox(key="train-target-iris.csv").value == "species"  # the last column
    assert ("**iris.csv**: 150 rows; target species: classification (3 classes); "
            "4 numeric") in _markdown(at)
    kinds = _kinds(at)
    assert kinds[["column", "kind", "used", "missing"]].values.tolist() == [
        [c, "numeric", True, 0] for c in ("sepal length (cm)", "sepal width (cm)",
                                          "petal length (cm)", "petal width (cm)")]
    # Another target: profiled again, and it is a regression.
    at.selectbox(key="train-target-iris.csv").set_value("petal width (cm)").run()
    _clean(at)
    assert "target petal width (cm): regression" in _markdown(at)
    assert "species" in _kinds(at)["column"].tolist()
    assert at.multiselect(key="train-models-regression").value == views.catalog_choices(
        Client(api).catalog(), "regression")[1]


def test_dropped_columns_are_named_with_their_kind_and_reason(api: str) -> None:
    at = _pick(_page(), "people.csv")
    assert at.selectbox(key="train-target-people.csv").value == "label"
    kinds = _kinds(at).set_index("column")
    assert kinds["kind"].to_dict() == {"row_id": "id-like", "x": "numeric", "flag": "boolean",
                                       "color": "categorical", "when": "datetime"}
    assert not kinds.loc["row_id", "used"]
    assert kinds.loc["row_id", "note"].startswith("ID-like")
    assert kinds.loc["flag", "frequent values"].startswith(("yes (", "no ("))
    assert "target label: classification (2 classes)" in _markdown(at)


def test_models_are_the_catalogs_for_the_task_with_the_servers_defaults(api: str) -> None:
    with Client(api) as client:
        catalog = client.catalog()
    at = _pick(_page(), "iris.csv")
    models = at.multiselect(key="train-models-classification")
    options, defaults = views.catalog_choices(catalog, "classification")
    assert models.options == options
    assert "ridge" not in models.options  # regression only
    assert models.value == defaults == catalog["defaults"]["classification"]
    trees = at.number_input(key="train-param-classification-random_forest-n_estimators")
    assert trees.value == 100
    assert trees.label == "n_estimators [1, inf)"
    criterion = at.selectbox(key="train-param-classification-random_forest-criterion")
    assert criterion.options == ["entropy", "gini", "log_loss"]
    assert criterion.value == "gini"
    assert at.checkbox(key="train-param-classification-random_forest-bootstrap").value is True
    assert at.number_input(key="train-param-classification-random_forest-max_depth"
                           ).value is None


def test_two_tables_start_one_run_with_the_changed_parameters_only(
        api: str, registry: Any) -> None:
    at = _pick(_page(), "iris.csv", "house.csv")
    assert "target price: regression" in _markdown(at)
    at.multiselect(key="train-models-classification").set_value(
        ["logistic_regression", "random_forest"]).run()
    at.multiselect(key="train-models-regression").set_value(["ridge"]).run()
    at.number_input(key="train-param-classification-random_forest-n_estimators"
                    ).set_value(20).run()
    at.selectbox(key="train-param-classification-random_forest-criterion"
                 ).set_value("entropy").run()
    at.number_input(key="train-param-regression-ridge-alpha").set_value(0.5).run()
    at.number_input(key="train-folds").set_value(2).run()
    _clean(at)
    at.button(key="train-start").click().run()
    _clean(at)
    sent = at.session_state["train_sent"]
    assert sent == {"models": None, "datasets": [
        {"dataset": "iris.csv", "target": "species", "models": [
            "logistic_regression",
            {"name": "random_forest", "params": {"n_estimators": 20, "criterion": "entropy"}}]},
        {"dataset": "house.csv", "target": "price",
         "models": [{"name": "ridge", "params": {"alpha": 0.5}}]}]}
    run_id = at.session_state["train_run"]
    # 3 models x (2 folds + test + final fit) = 12 units.
    assert any(s.value == f"Run {run_id} started: 12 units." for s in at.success)
    config = yaml.safe_load((fleetlearn_home() / "runs" / f"{run_id}.yaml").read_text())
    assert config["folds"] == 2
    iris, house = config["datasets"]
    assert (Path(iris["path"]).name, iris["target"], house["target"]) == (
        "iris.csv", "species", "price")
    assert iris["models"][1] == {"name": "random_forest",
                                 "params": {"n_estimators": 20, "criterion": "entropy"}}
    assert house["models"] == [{"name": "ridge", "params": {"alpha": 0.5}}]


def test_an_example_table_is_added_picked_and_profiled(api: str, data: Path) -> None:
    at = _page()
    assert at.selectbox(key="train-example").value == "iris.csv"
    at.selectbox(key="train-example").set_value("wine.csv").run()
    at.button(key="train-example-add").click().run()
    _clean(at)
    assert any(s.value == "wine.csv is on the server: 178 rows." for s in at.success)
    assert (data / "wine.csv").is_file()
    assert "wine.csv" in at.multiselect(key="train-tables").value
    assert at.selectbox(key="train-target-wine.csv").value == "cultivar"
    assert "**wine.csv**: 178 rows; target cultivar: classification (3 classes); " \
           "13 numeric" in _markdown(at)


def test_a_target_that_cannot_be_trained_on_is_a_message_and_no_start(api: str) -> None:
    at = _page()
    at.multiselect(key="train-tables").set_value(["unlabeled.csv"]).run()
    assert not at.exception
    at.selectbox(key="train-target-unlabeled.csv").set_value("empty").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith("Cannot read the profile of unlabeled.csv (422): ")
    assert "Target column 'empty' has no values" in errors[0]
    assert any("unlabeled.csv: the target empty cannot be trained on" in w.value
               for w in at.warning)
    assert at.button(key="train-start").disabled
