"""ModelSpec: a resolved, JSON-serialisable description of one model to train."""

from __future__ import annotations

import copy
import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

from fleetlearn.errors import ModelSpecError, did_you_mean

__all__ = ["ModelSpec", "TASKS", "WRAPPERS", "check_task", "import_estimator", "extra_hint"]

TASKS = ("classification", "regression")

#: How :meth:`ModelSpec.build` wraps the estimator, by ``ModelSpec.wrapper``.
WRAPPERS = {
    # XGBoost classifiers only accept labels 0..K-1.
    "label_encoded": "fleetlearn.catalog.LabelEncodedClassifier",
    # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its replacement
    # (the same Platt scaling fitted on 5-fold out-of-fold decisions).
    "calibrated": "sklearn.calibration.CalibratedClassifierCV",
}



def _ignores_n_jobs(cls: type) -> bool:
    # LogisticRegression still accepts n_jobs but warns when it is set (since 1.8); it
    # is single-threaded either way.
    return cls.__module__.startswith("sklearn.linear_model") and (
        cls.__name__ == "LogisticRegression"
    )


def check_task(task: str) -> str:
    """Return ``task`` if it is a known task, else raise ModelSpecError."""
    if task not in TASKS:
        raise ModelSpecError(
            f"unknown task {task!r}: expected 'classification' or 'regression'."
        )
    return task


def extra_hint(label: str, extra: str) -> str:
    """The message for a model whose optional extra is not installed."""
    return f"model '{label}' needs the {extra} extra: pip install 'fleetlearn[{extra}]'"


def import_estimator(path: str, label: str | None = None, extra: str | None = None) -> type:
    """Import the class at dotted ``path``, raising ModelSpecError with a hint on failure.

    Parameters
    ----------
    path : str
        ``"package.module.Class"``.
    label : str, optional
        The model as the user named it, for messages; ``path`` by default.
    extra : str, optional
        The pip extra that provides the module; a failed import then says how to
        install it.

    Examples
    --------
    >>> import_estimator("sklearn.tree.DecisionTreeClassifier").__name__
    'DecisionTreeClassifier'
    """
    label = label or path
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ModelSpecError(
            f"model '{label}': {path!r} is not a dotted path: expected package.module.Class, "
            "e.g. 'sklearn.ensemble.AdaBoostClassifier'."
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or OSError from a missing native library
        if extra is not None:
            raise ModelSpecError(extra_hint(label, extra)) from exc
        raise ModelSpecError(
            f"model '{label}': cannot import module '{module_name}' ({type(exc).__name__}: "
            f"{exc}). Expected a dotted path package.module.Class to an installed estimator, "
            "e.g. 'sklearn.ensemble.AdaBoostClassifier'."
        ) from exc
    try:
        return getattr(module, class_name)
    except AttributeError:
        public = [n for n in dir(module) if not n.startswith("_")]
        raise ModelSpecError(
            f"model '{label}': module '{module_name}' has no attribute '{class_name}'."
            f"{did_you_mean(class_name, public)} Check the spelling of the class name."
        ) from None


def _accepts(estimator: Any, param: str) -> bool:
    try:
        return param in estimator.get_params(deep=False)
    except Exception:  # noqa: BLE001 - third-party estimators without get_params
        return False


@dataclass(frozen=True)
class ModelSpec:
    """One model to train: which estimator, with which parameters, for which task.

    Plain data (``to_dict`` is JSON), so it travels to Ray workers and into the
    registry; :meth:`build` makes a fresh unfitted estimator from it anywhere.

    Parameters
    ----------
    name : str
        Name shown in leaderboards and model names: the short catalog name
        (``"random_forest"``) or, for a dotted path, the class name.
    estimator_path : str
        Dotted path of the estimator class.
    params : dict
        Catalog defaults merged with the user's parameters (JSON values).
    task : str
        ``"classification"`` or ``"regression"``.
    needs_scaling : bool
        Whether numeric columns should be standardised before this model.
    n_jobs : int
        CPUs one fit uses; the Ray task reserves this many.
    quadratic : bool
        Fit cost grows about quadratically with rows (SVM, KNN, Gaussian process).
    iterative : str or None
        How to get a metric per training iteration: ``"staged"``, ``"loss_curve"``,
        ``"evals_result"``, or None (use a learning curve).
    extra : str or None
        The pip extra the estimator needs (``"xgboost"``, ``"lightgbm"``).
    wrapper : str or None
        A key of ``WRAPPERS`` applied by :meth:`build` (label encoding for XGBoost,
        probability calibration for SVC), or None.

    Examples
    --------
    >>> from fleetlearn.catalog import resolve_model
    >>> spec = resolve_model("random_forest:n_estimators=50", "classification")
    >>> spec.build(random_state=0).n_estimators
    50
    """

    name: str
    estimator_path: str
    params: dict
    task: str
    needs_scaling: bool
    n_jobs: int
    quadratic: bool
    iterative: str | None
    extra: str | None
    wrapper: str | None = None

    def build(self, random_state: int | None = None) -> Any:
        """Return a fresh unfitted estimator with this spec's parameters.

        ``random_state`` is set when the estimator accepts one and the user did not
        set it; ``n_jobs`` is set to :attr:`n_jobs` when the estimator accepts it.

        Examples
        --------
        >>> from fleetlearn.catalog import resolve_model
        >>> resolve_model("decision_tree", "regression").build(random_state=3).random_state
        3
        """
        cls = import_estimator(self.estimator_path, self.name, self.extra)
        estimator = cls(**copy.deepcopy(self.params))
        updates: dict[str, Any] = {}
        if (
            random_state is not None
            and "random_state" not in self.params
            and _accepts(estimator, "random_state")
        ):
            updates["random_state"] = random_state
        if _accepts(estimator, "n_jobs") and not _ignores_n_jobs(cls):
            updates["n_jobs"] = self.n_jobs
        if updates:
            estimator.set_params(**updates)
        # scikit-learn (and the wrappers built on it) load only when a model is built:
        # the catalog is read by CLI verbs that never train, and must start fast.
        if self.wrapper == "label_encoded":
            from fleetlearn.catalog._label_encoded import LabelEncodedClassifier

            return LabelEncodedClassifier(estimator=estimator)
        if self.wrapper == "calibrated":
            from sklearn.calibration import CalibratedClassifierCV

            return CalibratedClassifierCV(estimator, ensemble=False, n_jobs=self.n_jobs)
        if self.wrapper is not None:
            raise ModelSpecError(
                f"model '{self.name}': unknown wrapper {self.wrapper!r}; expected one of "
                f"{sorted(WRAPPERS)} or None."
            )
        return estimator

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` turns it back into a spec."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """Rebuild a spec from :meth:`to_dict` output.

        Examples
        --------
        >>> from fleetlearn.catalog import resolve_model
        >>> spec = resolve_model("knn", "classification")
        >>> ModelSpec.from_dict(spec.to_dict()) == spec
        True
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING}
        unknown = sorted(set(d) - fields)
        missing = sorted(required - set(d))
        if unknown or missing:
            raise ModelSpecError(
                f"cannot read a model spec: unexpected keys {unknown}, missing keys {missing}; "
                f"expected the keys {sorted(fields)} (as written by ModelSpec.to_dict)."
            )
        values = dict(d)
        values["params"] = copy.deepcopy(dict(values["params"] or {}))
        return cls(**values)
