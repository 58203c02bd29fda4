"""LabelEncodedClassifier: XGBoost with any labels, under the scikit-learn contract."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from fleetlearn.catalog import LabelEncodedClassifier, resolve_model

xgboost = pytest.importorskip("xgboost")

TRUSTED_PATH = "fleetlearn.catalog.LabelEncodedClassifier"


@pytest.fixture(scope="module")
def three_classes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = np.array(["cat", "dog", "eel"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    return X, y


# The wrapper's own contract, checked with a cheap inner estimator. (The NaN-target check
# makes numpy warn inside scikit-learn before the expected error.)
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@parametrize_with_checks([LabelEncodedClassifier(DecisionTreeClassifier(random_state=0))])
def test_follows_the_scikit_learn_estimator_contract(estimator, check):
    check(estimator)


def test_string_labels_round_trip_through_xgboost(three_classes):
    X, y = three_classes
    model = LabelEncodedClassifier(xgboost.XGBClassifier(n_estimators=5, n_jobs=1)).fit(X, y)
    assert model.classes_.tolist() == ["cat", "dog", "eel"]
    predictions = model.predict(X)
    assert set(predictions) <= {"cat", "dog", "eel"}
    assert (predictions == y).mean() > 0.8
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3)
    # Column i is classes_[i]: the argmax column names the predicted label.
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], predictions)


def test_integer_labels_that_are_not_0_to_k_work(three_classes):
    X, y = three_classes
    codes = np.select([y == "cat", y == "dog"], [3, 7], 11)
    model = LabelEncodedClassifier(xgboost.XGBClassifier(n_estimators=5, n_jobs=1)).fit(X, codes)
    assert model.classes_.tolist() == [3, 7, 11]
    assert set(model.predict(X)) <= {3, 7, 11}


def test_inner_parameters_are_reachable_as_estimator_params():
    model = LabelEncodedClassifier(xgboost.XGBClassifier(n_estimators=5))
    assert model.get_params()["estimator__n_estimators"] == 5
    model.set_params(estimator__n_estimators=3)
    assert model.estimator.n_estimators == 3
    assert clone(model).estimator.n_estimators == 3


def test_default_inner_estimator_is_xgboost(three_classes):
    X, y = three_classes
    model = LabelEncodedClassifier().fit(X, y)
    assert isinstance(model.estimator_, xgboost.XGBClassifier)


def test_skops_loads_it_with_its_public_path_trusted(three_classes):
    X, y = three_classes
    spec = resolve_model("xgboost:n_estimators=5", "classification")
    pipeline = Pipeline([("scale", StandardScaler()), ("model", spec.build(0))]).fit(X, y)
    data = sio.dumps(pipeline)
    untrusted = sio.get_untrusted_types(data=data)
    assert TRUSTED_PATH in untrusted
    loaded = sio.loads(data, trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
    with pytest.raises(Exception, match="Untrusted types"):
        sio.loads(data, trusted=[t for t in untrusted if t != TRUSTED_PATH])
