"""The catalog's parameter rows (``GET /v1/catalog``, the GUI's editors) tell the truth:
every default is one the server accepts, inside the declared range and choices."""

from __future__ import annotations

import pytest

from fleetlearn.catalog import catalog_models, model_params, resolve_model_dict
from fleetlearn.catalog._entries import CATALOG

ENTRIES = [(task, name) for task, entries in CATALOG.items() for name in entries]


@pytest.mark.parametrize(("task", "name"), ENTRIES)
def test_every_default_is_inside_its_range_and_accepted_by_the_server(
        task: str, name: str) -> None:
    rows = model_params(CATALOG[task][name])
    assert rows, name
    editable = {}
    for p in rows:
        assert p["type"] in ("int", "float", "bool", "str", "other"), p
        default = p["default"]
        if default is None:
            assert p["nullable"], p
            continue
        if p["type"] in ("int", "float"):
            if p.get("minimum") is not None:
                assert default >= p["minimum"], p
            if p.get("maximum") is not None:
                assert default <= p["maximum"], p
        if p["type"] == "str" and p.get("choices"):
            assert default in p["choices"], p
        if p["type"] != "other":
            editable[p["name"]] = default
    # Every editor left at its default: the same checks as a run request.
    spec = resolve_model_dict({"name": name, "params": editable}, task)
    assert spec.name == name


def test_fleetlearn_defaults_win_and_fleetlearn_set_parameters_are_left_out() -> None:
    rows = {p["name"]: p for p in model_params(CATALOG["classification"]["mlp"])}
    assert rows["max_iter"]["default"] == 300
    assert rows["max_iter"]["estimator_default"] == 200
    layers = rows["hidden_layer_sizes"]
    assert (layers["default"], layers["estimator_default"], layers["type"]) == (
        [64], [100], "other")  # shown, not edited: a tuple of sizes
    assert "random_state" not in rows
    logistic = {p["name"] for p in model_params(CATALOG["classification"]["logistic_regression"])}
    assert "penalty" not in logistic  # deprecated in scikit-learn 1.8
    assert "C" in logistic
    assert rows["activation"]["choices"] == ["identity", "logistic", "relu", "tanh"]


def test_the_catalog_groups_both_tasks_of_a_name_and_names_the_defaults() -> None:
    answer = catalog_models()
    knn = next(m for m in answer["models"] if m["name"] == "knn")
    assert knn["tasks"] == ["classification", "regression"]
    assert knn["estimators"] == {"classification": "sklearn.neighbors.KNeighborsClassifier",
                                 "regression": "sklearn.neighbors.KNeighborsRegressor"}
    assert knn["in_default_set"] == ["classification", "regression"]
    assert knn["descriptions"]["regression"] == (
        "Regression based on k-nearest neighbors.")
    assert answer["defaults"]["regression"][0] == "ridge"
