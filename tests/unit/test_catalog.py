"""The model catalog: resolving specs, errors users see, default sets, building models."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fleetlearn.catalog import (
    CLASSIFICATION_DEFAULTS,
    REGRESSION_DEFAULTS,
    ModelSpec,
    catalog_entries,
    default_models,
    parse_params,
    resolve_model,
    resolve_model_dict,
)
from fleetlearn.catalog._entries import CATALOG
from fleetlearn.catalog._resolve import infer_traits
from fleetlearn.catalog._spec import import_estimator
from fleetlearn.errors import FleetlearnError, ModelSpecError

# Small settings so that fitting every catalog entry stays fast.
FAST = {
    "random_forest": {"n_estimators": 5},
    "extra_trees": {"n_estimators": 5},
    "gradient_boosting": {"n_estimators": 5},
    "hist_gradient_boosting": {"max_iter": 5},
    "ada_boost": {"n_estimators": 5},
    "mlp": {"max_iter": 20, "hidden_layer_sizes": [8]},
    "xgboost": {"n_estimators": 5},
    "lightgbm": {"n_estimators": 5, "min_child_samples": 2},
    "lasso": {"alpha": 0.1},
}
ALL_ENTRIES = [(task, name) for task in CATALOG for name in CATALOG[task]]


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    labels = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "no")
    target = X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.1, size=60)
    return X, labels, target


# --- the catalog itself ----------------------------------------------------------------


@pytest.mark.parametrize(("task", "name"), ALL_ENTRIES)
def test_every_entry_builds_and_fits_on_a_tiny_table(tiny, task, name):
    X, labels, target = tiny
    spec = resolve_model_dict({"name": name, "params": FAST.get(name, {})}, task)
    model = spec.build(random_state=0)
    y = labels if task == "classification" else target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    predictions = model.predict(X)
    assert len(predictions) == len(X)
    if task == "classification":
        # String labels go in and come out, whatever the estimator needs internally.
        assert set(model.classes_) == {"no", "yes"}
        assert set(predictions) <= {"no", "yes"}
    else:
        assert np.isfinite(predictions).all()


def test_catalog_has_the_promised_models_for_each_task():
    classification = set(CATALOG["classification"])
    regression = set(CATALOG["regression"])
    assert len(classification) >= 10
    assert len(regression) >= 9
    assert {"logistic_regression", "random_forest", "extra_trees", "gradient_boosting",
            "hist_gradient_boosting", "svm", "knn", "naive_bayes", "decision_tree", "mlp",
            "sgd", "ada_boost", "xgboost", "lightgbm"} <= classification
    assert {"linear_regression", "ridge", "lasso", "elastic_net", "random_forest",
            "extra_trees", "gradient_boosting", "hist_gradient_boosting", "knn", "svr",
            "decision_tree", "mlp", "sgd", "xgboost", "lightgbm"} <= regression
    assert set(CLASSIFICATION_DEFAULTS) <= classification
    assert set(REGRESSION_DEFAULTS) <= regression


@pytest.mark.parametrize(
    ("task", "name", "scaling", "quadratic", "iterative"),
    [
        ("classification", "logistic_regression", True, False, None),
        ("classification", "svm", True, True, None),
        ("classification", "knn", True, True, None),
        ("classification", "mlp", True, False, "loss_curve"),
        ("classification", "random_forest", False, False, None),
        ("classification", "gradient_boosting", False, False, "staged"),
        ("classification", "ada_boost", False, False, "staged"),
        ("classification", "xgboost", False, False, "evals_result"),
        ("regression", "svr", True, True, None),
        ("regression", "ridge", True, False, None),
        ("regression", "hist_gradient_boosting", False, False, "staged"),
        ("regression", "lightgbm", False, False, "evals_result"),
    ],
)
def test_traits_tell_training_how_to_treat_the_model(task, name, scaling, quadratic, iterative):
    spec = resolve_model(name, task)
    assert (spec.needs_scaling, spec.quadratic, spec.iterative) == (scaling, quadratic, iterative)


@pytest.mark.parametrize(("task", "name"), ALL_ENTRIES)
def test_dotted_path_heuristics_agree_with_the_catalog(task, name):
    entry = CATALOG[task][name]
    traits = infer_traits(import_estimator(entry.estimator_path))
    assert traits == {"needs_scaling": entry.needs_scaling, "quadratic": entry.quadratic,
                      "iterative": entry.iterative, "extra": entry.extra}


def test_catalog_defaults_are_the_documented_ones():
    assert resolve_model("logistic_regression", "classification").params == {"max_iter": 1000}
    assert resolve_model("random_forest", "classification").params == {"n_estimators": 100}
    assert resolve_model("sgd", "classification").params == {"loss": "log_loss"}
    assert resolve_model("lightgbm", "regression").params["verbose"] == -1
    mlp = resolve_model("mlp", "classification").build()
    assert (mlp.hidden_layer_sizes, mlp.max_iter, mlp.early_stopping) == ([64], 300, False)


def test_svm_predicts_probabilities_without_the_deprecated_option(tiny):
    X, labels, _ = tiny
    model = resolve_model("svm", "classification").build(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        model.fit(X, labels)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


# --- parsing -----------------------------------------------------------------------------


def test_param_values_are_read_as_yaml_scalars():
    params = parse_params(
        "n_estimators=50,learning_rate=0.1,tol=1e-3,warm_start=true,bootstrap=False,"
        "max_depth=None,max_leaf_nodes=null,max_features=sqrt,class_weight='balanced',"
        "hidden_layer_sizes=[64,32],sizes=(8,),name='a,b'"
    )
    assert params == {
        "n_estimators": 50,
        "learning_rate": 0.1,
        "tol": 0.001,
        "warm_start": True,
        "bootstrap": False,
        "max_depth": None,
        "max_leaf_nodes": None,
        "max_features": "sqrt",
        "class_weight": "balanced",
        "hidden_layer_sizes": [64, 32],
        "sizes": [8],
        "name": "a,b",
    }
    assert isinstance(params["n_estimators"], int)
    assert isinstance(params["tol"], float)


def test_spec_string_merges_user_params_over_catalog_defaults():
    spec = resolve_model("random_forest:n_estimators=50,max_depth=8", "classification")
    assert spec.name == "random_forest"
    assert spec.estimator_path == "sklearn.ensemble.RandomForestClassifier"
    assert spec.params == {"n_estimators": 50, "max_depth": 8}
    estimator = spec.build()
    assert (estimator.n_estimators, estimator.max_depth) == (50, 8)


def test_short_names_forgive_case_and_dashes():
    assert resolve_model("Random-Forest", "regression").name == "random_forest"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("random_forest:n_estimators", ["'n_estimators' is not key=value", "random_forest:"]),
        ("random_forest:n_estimators=", ["'n_estimators' has no value"]),
        ("random_forest:max_depth=3,max_depth=4", ["'max_depth' is given twice"]),
    ],
)
def test_malformed_param_strings_are_refused(text, words):
    with pytest.raises(ModelSpecError) as info:
        resolve_model(text, "classification")
    for word in words:
        assert word in str(info.value)


# --- dotted paths ------------------------------------------------------------------------


def test_dotted_path_is_named_by_its_class_and_keeps_only_user_params():
    spec = resolve_model("sklearn.ensemble.AdaBoostClassifier:n_estimators=200",
                         "classification")
    assert spec.name == "AdaBoostClassifier"
    assert spec.estimator_path == "sklearn.ensemble.AdaBoostClassifier"
    assert spec.params == {"n_estimators": 200}
    assert spec.iterative == "staged"
    assert spec.build().n_estimators == 200


def test_dotted_path_outside_the_catalog_gets_inferred_traits():
    spec = resolve_model("sklearn.svm.NuSVR", "regression")
    assert (spec.needs_scaling, spec.quadratic, spec.extra) == (True, True, None)
    tree = resolve_model("sklearn.tree.ExtraTreeClassifier", "classification")
    assert (tree.needs_scaling, tree.quadratic) == (False, False)


def test_dotted_xgboost_classifier_is_label_encoded(tiny):
    X, labels, _ = tiny
    spec = resolve_model("xgboost.XGBClassifier:n_estimators=3", "classification")
    assert (spec.extra, spec.wrapper) == ("xgboost", "label_encoded")
    model = spec.build(random_state=0).fit(X, labels)
    assert set(model.predict(X)) <= {"no", "yes"}


def test_dict_form_accepts_a_display_name_for_a_path():
    spec = resolve_model_dict(
        {"name": "deep_forest", "path": "sklearn.ensemble.RandomForestRegressor",
         "params": {"max_depth": 30}},
        "regression",
    )
    assert (spec.name, spec.params) == ("deep_forest", {"max_depth": 30})
    inline = resolve_model_dict({"name": "knn:n_neighbors=3"}, "classification")
    assert inline.params == {"n_neighbors": 3}


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"name": "knn", "parms": {}}, ["unknown keys ['parms']", "'params'"]),
        ({"name": "knn", "params": [1, 2]}, ["model 'knn'", "'params' must be a mapping"]),
        ({"params": {"n_neighbors": 3}}, ["names no model"]),
        ("knn", ["must be a mapping"]),
    ],
)
def test_dict_form_errors(entry, words):
    with pytest.raises(ModelSpecError) as info:
        resolve_model_dict(entry, "classification")
    for word in words:
        assert word in str(info.value)


# --- errors a user can cause -------------------------------------------------------------


def _error(text: str, task: str = "classification") -> str:
    with pytest.raises(ModelSpecError) as info:
        resolve_model(text, task)
    assert isinstance(info.value, FleetlearnError)
    return str(info.value)


def test_unknown_short_name_suggests_and_lists_the_task_models():
    message = _error("random_forst")
    assert "unknown model 'random_forst'" in message
    assert "Did you mean 'random_forest'?" in message
    assert "logistic_regression" in message
    assert "svm" in message
    assert "svr" not in message  # a regression model is no help here
    assert "dotted path" in message


def test_name_of_the_other_task_says_so():
    message = _error("svr")
    assert "'svr' is a regression model" in message
    assert "classification task" in message
    message = _error("logistic_regression", "regression")
    assert "'logistic_regression' is a classification model" in message
    assert "ridge" in message


def test_dotted_path_that_does_not_import():
    message = _error("sklearn.ensmble.AdaBoostClassifier")
    assert "cannot import module 'sklearn.ensmble'" in message
    assert "sklearn.ensmble.AdaBoostClassifier" in message


def test_dotted_path_with_a_misspelt_class_suggests_the_right_one():
    message = _error("sklearn.ensemble.RandomForestClassifer")
    assert "has no attribute 'RandomForestClassifer'" in message
    assert "Did you mean 'RandomForestClassifier'?" in message


def test_dotted_path_to_something_without_fit_is_not_an_estimator():
    message = _error("json.JSONDecoder")
    assert "'json.JSONDecoder' is not an estimator" in message
    assert "no fit method" in message


def test_regressor_for_classification_suggests_the_classifier():
    message = _error("sklearn.ensemble.RandomForestRegressor")
    assert "is a regressor" in message
    assert "classification task" in message
    assert "Did you mean 'sklearn.ensemble.RandomForestClassifier'?" in message
    message = _error("sklearn.linear_model.LogisticRegression", "regression")
    assert "is a classifier" in message
    assert "regression task" in message


def test_transformer_is_neither_classifier_nor_regressor():
    message = _error("sklearn.preprocessing.StandardScaler")
    assert "neither a classifier nor a regressor" in message


def test_estimator_that_needs_constructor_arguments_is_refused():
    message = _error("sklearn.ensemble.StackingClassifier")
    assert "cannot be built without arguments" in message


def test_unknown_parameter_is_named_with_suggestion_and_valid_list():
    message = _error("random_forest:n_estimator=10")
    assert "model 'random_forest'" in message
    assert "has no parameter 'n_estimator'" in message
    assert "Did you mean 'n_estimators'?" in message
    assert "max_depth" in message
    assert "min_samples_leaf" in message


def test_bad_parameter_value_keeps_sklearn_wording_prefixed_by_the_model():
    message = _error("random_forest:n_estimators=-1")
    assert message.startswith("model 'random_forest': The 'n_estimators' parameter of "
                              "RandomForestClassifier must be an int in the range [1, inf).")
    assert "Got -1 instead." in message
    assert "'C' parameter of LogisticRegression" in _error("logistic_regression:C=abc")


@pytest.mark.parametrize("value", ["-1", "0", "2.5", "true"])
def test_n_jobs_must_be_a_whole_number_of_cpus(value):
    message = _error(f"random_forest:n_jobs={value}")
    assert "n_jobs" in message
    assert ">= 1" in message


@pytest.mark.parametrize(("name", "task"), [("xgboost", "classification"),
                                             ("lightgbm", "regression")])
def test_missing_extra_gives_the_install_hint(monkeypatch, name, task):
    monkeypatch.setitem(sys.modules, name, None)  # makes `import <name>` fail
    message = _error(name, task)
    assert message == f"model '{name}' needs the {name} extra: pip install 'fleetlearn[{name}]'"
    if name == "xgboost":
        assert "pip install 'fleetlearn[xgboost]'" in _error("xgboost.XGBClassifier")


def test_unknown_task_is_refused():
    with pytest.raises(ModelSpecError, match="expected 'classification' or 'regression'"):
        resolve_model("knn", "clustering")


def test_native_parameters_of_boosting_libraries_pass_through():
    # LightGBM takes its own parameter names (and aliases) as keyword arguments.
    spec = resolve_model("lightgbm:min_data_in_leaf=5", "classification")
    assert spec.build().get_params()["min_data_in_leaf"] == 5


# --- building ----------------------------------------------------------------------------


def test_random_state_is_set_when_accepted_and_not_user_given():
    assert resolve_model("random_forest", "classification").build(7).random_state == 7
    assert resolve_model("random_forest:random_state=3", "classification").build(7) \
        .random_state == 3
    assert resolve_model("random_forest", "classification").build().random_state is None
    assert "random_state" not in resolve_model("naive_bayes", "classification").build(7) \
        .get_params()
    calibrated = resolve_model("svm", "classification").build(7)
    assert calibrated.estimator.random_state == 7
    wrapped = resolve_model("xgboost", "classification").build(7)
    assert wrapped.get_params()["estimator__random_state"] == 7


def test_same_seed_same_model_different_seed_different_model(tiny):
    X, labels, _ = tiny
    spec = resolve_model("random_forest:n_estimators=5", "classification")
    first = spec.build(1).fit(X, labels).predict_proba(X)
    again = spec.build(1).fit(X, labels).predict_proba(X)
    other = spec.build(2).fit(X, labels).predict_proba(X)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_n_jobs_is_what_one_fit_uses():
    spec = resolve_model("random_forest", "classification")
    assert spec.n_jobs == 1
    assert spec.build().n_jobs == 1
    four = resolve_model("random_forest:n_jobs=4", "classification")
    assert (four.n_jobs, four.build().n_jobs) == (4, 4)
    assert resolve_model("lightgbm", "regression").build().n_jobs == 1
    assert resolve_model("xgboost", "regression").build().n_jobs == 1
    # LogisticRegression warns when n_jobs is set (scikit-learn >= 1.8): left unset.
    assert resolve_model("logistic_regression", "classification").build().n_jobs is None


def test_build_returns_a_fresh_estimator_each_time():
    spec = resolve_model("mlp", "classification")
    first, second = spec.build(), spec.build()
    assert first is not second
    first.hidden_layer_sizes.append(5)
    assert spec.params["hidden_layer_sizes"] == [64]


def test_spec_round_trips_through_json():
    spec = resolve_model("mlp:alpha=0.01", "classification")
    data = json.loads(json.dumps(spec.to_dict()))
    assert ModelSpec.from_dict(data) == spec
    wrapped = resolve_model("xgboost", "classification")
    assert ModelSpec.from_dict(json.loads(json.dumps(wrapped.to_dict()))).wrapper == \
        "label_encoded"


def test_from_dict_names_unexpected_and_missing_keys():
    data = resolve_model("knn", "classification").to_dict()
    data["colour"] = "blue"
    del data["task"]
    with pytest.raises(ModelSpecError, match=r"unexpected keys \['colour'\], missing keys "
                                             r"\['task'\]"):
        ModelSpec.from_dict(data)


# --- default sets ------------------------------------------------------------------------


def test_small_tables_get_the_whole_default_set_without_notes():
    specs, notes = default_models("classification", 5_000)
    assert [s.name for s in specs] == CLASSIFICATION_DEFAULTS
    assert notes == []
    specs, notes = default_models("regression", 10_000)  # at the limit: still kept
    assert [s.name for s in specs] == REGRESSION_DEFAULTS
    assert notes == []


def test_big_tables_leave_quadratic_models_out_and_say_so():
    specs, notes = default_models("classification", 50_000)
    names = [s.name for s in specs]
    assert "svm" not in names
    assert "knn" not in names
    assert "random_forest" in names
    assert "gradient_boosting" not in names
    assert "hist_gradient_boosting" in names
    assert notes[0] == (
        "left out knn, svm (cost grows quadratically with rows; 50,000 rows > 10,000): "
        "name them with --model to train them anyway"
    )
    assert notes[1].startswith("left out gradient_boosting (50,000 rows > 20,000")
    specs, notes = default_models("classification", 15_000)
    assert "gradient_boosting" in [s.name for s in specs]
    assert len(notes) == 1
    specs, notes = default_models("regression", 2_000, quadratic_row_limit=1_000)
    assert {"knn", "svr"}.isdisjoint(s.name for s in specs)
    assert "2,000 rows > 1,000" in notes[0]


def test_default_sets_need_no_extras():
    for task in ("classification", "regression"):
        specs, _ = default_models(task, 100)
        assert all(s.extra is None for s in specs)


def test_catalog_listing_rows(monkeypatch):
    rows = catalog_entries("classification")
    assert {r["task"] for r in rows} == {"classification"}
    by_name = {r["name"]: r for r in rows}
    assert by_name["svm"]["in_default_set"]
    assert by_name["svm"]["quadratic"]
    assert not by_name["xgboost"]["in_default_set"]
    assert by_name["random_forest"]["params"] == {"n_estimators": 100}
    assert by_name["random_forest"]["estimator_path"] == "sklearn.ensemble.RandomForestClassifier"
    assert by_name["xgboost"]["available"] is True
    monkeypatch.setitem(sys.modules, "xgboost", None)
    by_name = {r["name"]: r for r in catalog_entries("classification")}
    assert (by_name["xgboost"]["available"], by_name["xgboost"]["extra"]) == (False, "xgboost")
    both = catalog_entries()
    assert {r["task"] for r in both} == {"classification", "regression"}
    assert len(both) == len(ALL_ENTRIES)

