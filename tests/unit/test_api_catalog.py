"""The catalog, table profiles and example tables through the REST API, over loopback.

A real uvicorn on a free loopback port (``live_server.serving``) and
:class:`fleetlearn.Client` over real HTTP; nothing trains here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from api_fixtures import is_error, serve
from live_server import free_port, serving
from model_fixtures import iris_frame, mixed_frame

from fleetlearn.client import Client
from fleetlearn.errors import ApiError


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    iris = iris_frame()
    iris.to_csv(folder / "iris.csv", index=False)
    people = mixed_frame(60)
    people["customer_id"] = [f"C{i:05d}" for i in range(len(people))]
    people["country"] = "NL"
    people.to_csv(folder / "people.csv", index=False)
    return folder


@pytest.fixture
def api(home: Path, data: Path) -> Iterator[tuple[Client, object]]:
    """(a Client over loopback HTTP, the in-process test client) of one started app."""
    with serve(home, data_dir=str(data)) as app_client, \
            serving(app_client.app, free_port()) as url, Client(url) as client:
        yield client, app_client


def test_the_catalog_lists_every_model_with_its_parameters_and_default_sets(
        api: tuple[Client, object]) -> None:
    client, _ = api
    answer = client.catalog()
    models = {m["name"]: m for m in answer["models"]}
    assert {"random_forest", "logistic_regression", "ridge", "svm", "svr"} <= set(models)
    rf = models["random_forest"]
    assert rf["tasks"] == ["classification", "regression"]
    assert rf["estimators"]["classification"] == "sklearn.ensemble.RandomForestClassifier"
    assert rf["description"] == "A random forest classifier."
    params = {p["name"]: p for p in rf["params"]["classification"]}
    assert params["n_estimators"] == {
        "name": "n_estimators", "type": "int", "default": 100, "estimator_default": 100,
        "nullable": False, "choices": None, "minimum": 1, "maximum": None, "range": "[1, inf)"}
    assert params["criterion"]["choices"] == ["entropy", "gini", "log_loss"]
    assert params["criterion"]["default"] == "gini"
    assert params["max_depth"]["nullable"] is True
    assert params["bootstrap"]["type"] == "bool"
    assert "n_jobs" not in params
    assert "random_state" not in params
    # fleetlearn's own defaults win over the estimator's.
    reg = {p["name"]: p for p in rf["params"]["regression"]}
    assert (reg["max_features"]["default"], reg["max_features"]["estimator_default"]) == (
        0.33, 1.0)
    assert answer["defaults"]["classification"][:2] == ["logistic_regression", "random_forest"]
    assert "ridge" in answer["defaults"]["regression"]
    assert models["ridge"]["in_default_set"] == ["regression"]
    assert models["mlp"]["in_default_set"] == []


def test_the_catalog_of_one_task_and_a_bad_task(api: tuple[Client, object]) -> None:
    client, app = api
    answer = client.catalog("regression")
    assert set(answer["defaults"]) == {"regression"}
    names = {m["name"] for m in answer["models"]}
    assert "ridge" in names
    assert "logistic_regression" not in names
    body = is_error(app.get("/v1/catalog", params={"task": "clustering"}), 422,
                    "ValidationError")
    assert "task" in body["detail"]


def test_the_iris_profile_is_four_numeric_columns_and_three_classes(
        api: tuple[Client, object]) -> None:
    client, _ = api
    profile = client.dataset_profile("iris.csv", target="species")
    assert profile["rows"] == 150
    assert profile["kinds"] == {"numeric": 4}
    assert [c["name"] for c in profile["columns"]] == [
        "sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    assert all(c["used"] and c["missing"] == 0 for c in profile["columns"])
    target = profile["target"]
    assert (target["name"], target["task"], target["n_classes"]) == (
        "species", "classification", 3)
    assert sorted((c["value"], c["count"]) for c in target["classes"]) == [
        ("setosa", 50), ("versicolor", 50), ("virginica", 50)]
    # Without a target every column is profiled, the target too.
    whole = client.dataset_profile("iris")  # the stem names it too
    assert whole["target"] is None
    assert whole["kinds"] == {"numeric": 4, "categorical": 1}


def test_a_profile_names_what_training_drops_and_a_regression_target(
        api: tuple[Client, object]) -> None:
    client, _ = api
    profile = client.dataset_profile("people.csv", target="x")
    kinds = {c["name"]: c["kind"] for c in profile["columns"]}
    assert kinds == {"row_id": "id-like", "flag": "boolean", "color": "categorical",
                     "when": "datetime", "label": "categorical", "customer_id": "id-like",
                     "country": "constant"}
    dropped = {c["name"]: c for c in profile["columns"] if not c["used"]}
    assert set(dropped) == {"row_id", "customer_id", "country"}
    assert dropped["country"]["note"] == "constant (every value is 'NL')"
    frame = mixed_frame(60)
    target = profile["target"]
    assert target["task"] == "regression"
    assert target["min"] == pytest.approx(frame["x"].min())
    assert target["mean"] == pytest.approx(frame["x"].mean())
    assert target["missing"] == int(frame["x"].isna().sum()) > 0
    assert target["n_classes"] is None
    color = next(c for c in profile["columns"] if c["name"] == "color")
    counts = frame["color"].dropna().value_counts()
    assert color["top_values"] == [{"value": v, "count": int(n)} for v, n in counts.items()]
    assert color["missing"] == int(frame["color"].isna().sum())


def test_an_unknown_table_is_404_and_an_unknown_target_422_naming_the_columns(
        api: tuple[Client, object]) -> None:
    client, app = api
    body = is_error(app.get("/v1/datasets/irs.csv/profile"), 404, "NotFound")
    assert "irs.csv" in body["detail"]
    assert "iris.csv" in body["detail"]
    body = is_error(app.get("/v1/datasets/iris.csv/profile", params={"target": "specis"}),
                    422, "TargetError")
    assert "'specis'" in body["detail"]
    assert "species" in body["detail"]
    assert "petal width (cm)" in body["detail"]
    # A name cannot leave the data folder: the path is no route at all.
    is_error(app.get("/v1/datasets/..%2F..%2Fetc%2Fpasswd/profile"), 404, "NotFound")
    with pytest.raises(ApiError) as caught:
        client.dataset_profile("nothing.csv")
    assert caught.value.status == 404


def test_an_example_table_is_written_into_the_data_folder_once(
        api: tuple[Client, object], data: Path) -> None:
    client, app = api
    listed = {e["name"]: e for e in client.examples()}
    assert listed["iris.csv"]["target"] == "species"
    assert listed["iris.csv"]["stored"] is True  # the fixture's own iris.csv
    assert listed["wine.csv"]["stored"] is False
    r = app.post("/v1/datasets/examples/wine.csv")
    assert r.status_code == 201, r.text
    stored = r.json()
    assert (stored["name"], stored["rows"]) == ("wine.csv", 178)
    assert stored["columns"][-1] == "cultivar"
    assert pd.read_csv(data / "wine.csv").shape == (178, 14)
    again = app.post("/v1/datasets/examples/wine.csv")
    assert again.status_code == 200
    assert again.json()["sha256"] == stored["sha256"]
    assert "wine.csv" in {d["name"] for d in client.datasets()}
    assert {e["name"]: e["stored"] for e in client.examples()}["wine.csv"] is True
    profile = client.dataset_profile("wine.csv", target="cultivar")
    assert (profile["target"]["task"], profile["target"]["n_classes"]) == ("classification", 3)
    # The fixture's iris.csv differs from the example's: kept, and a 409 says so.
    body = is_error(app.post("/v1/datasets/examples/iris.csv"), 409, "Conflict")
    assert "iris.csv" in body["detail"]
    body = is_error(app.post("/v1/datasets/examples/wines.csv"), 404, "NotFound")
    assert "wine.csv" in body["detail"]
    assert client.add_example("diabetes.parquet")["rows"] == 442
