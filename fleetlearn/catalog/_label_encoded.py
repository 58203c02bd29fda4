"""A classifier wrapper for estimators that only accept labels 0..K-1 (XGBoost)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

__all__ = ["LabelEncodedClassifier"]


def _inner_has(method: str):
    def check(self: LabelEncodedClassifier) -> bool:
        inner = getattr(self, "estimator_", None)
        if inner is None:
            inner = self.estimator if self.estimator is not None else _default_estimator()
        return hasattr(inner, method)

    return check


def _default_estimator() -> Any:
    import xgboost  # the optional extra: imported only when this default is built

    return xgboost.XGBClassifier()


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):
    """Fit a classifier on labels encoded as 0..K-1 and answer in the original labels.

    XGBoost's classifier refuses labels such as ``"yes"/"no"`` or ``[3, 7]``; this
    wrapper encodes them with a :class:`~sklearn.preprocessing.LabelEncoder` before
    fitting and decodes every prediction, so it behaves like any scikit-learn
    classifier (``classes_`` holds the original labels). Parameters of the wrapped
    estimator are reachable as ``estimator__<name>`` through ``get_params`` and
    ``set_params``.

    Parameters
    ----------
    estimator : classifier, default=None
        The classifier to fit on encoded labels; ``None`` means
        ``xgboost.XGBClassifier()`` (needs the xgboost extra).

    Attributes
    ----------
    estimator_ : classifier
        The fitted clone of ``estimator``.
    label_encoder_ : LabelEncoder
        Maps the original labels to 0..K-1.
    classes_ : ndarray of shape (n_classes,)
        The original labels, sorted.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> clf = LabelEncodedClassifier(DecisionTreeClassifier()).fit(X, ["no", "no", "yes", "yes"])
    >>> clf.predict([[2.5]]).tolist()
    ['yes']
    """

    # Stored artifacts name this path; keep it stable (it is public and re-exported).
    __module__ = "fleetlearn.catalog"

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, **fit_params: Any) -> LabelEncodedClassifier:
        """Encode ``y``, then fit a clone of ``estimator`` on ``X`` and the codes."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.label_encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.label_encoder_.classes_
        inner = clone(self.estimator) if self.estimator is not None else _default_estimator()
        self.estimator_ = inner.fit(X, self.label_encoder_.transform(y), **fit_params)
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        if hasattr(self.estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.estimator_.feature_names_in_
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predict the original labels of ``X``."""
        check_is_fitted(self)
        codes = np.asarray(self.estimator_.predict(X)).astype(int).ravel()
        return self.label_encoder_.inverse_transform(codes)

    @available_if(_inner_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities; column ``i`` belongs to ``classes_[i]``."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_inner_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        """Decision scores of the wrapped estimator, in ``classes_`` order."""
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        if self.estimator is not None:
            inner = get_tags(self.estimator)
            tags.input_tags.allow_nan = inner.input_tags.allow_nan
            tags.input_tags.sparse = inner.input_tags.sparse
        else:
            tags.input_tags.allow_nan = True  # XGBoost handles missing values itself
        return tags
