"""Estimators for fault tests: a fit that kills its own process, and a seeded forest
behind a gate.

``CrashOnceClassifier``: a worker lost mid-unit, for real.
Give a run ``fault_models.CrashOnceClassifier:marker=<file>`` (a ``module.Class`` model
spec; ``tests/`` is on the ``PYTHONPATH`` of the session's Ray workers and of
``fleetlearn train`` children, see ``ray_session`` in ``tests/conftest.py``). The first
``fit`` of any process that finds no ``marker`` creates it (atomically: of several fits
starting together exactly one wins) and ends its process with ``os._exit(1)``, as a
worker killed by the kernel would: no exception, no result, nothing sent back. Every
later ``fit`` sees the marker and trains a logistic regression. So exactly one unit of
the run loses its worker once, and Ray's retry (``max_retries``) must run it again.

``GatedForestClassifier``: a random forest (``random_state`` set by fleetlearn from the
unit's seed, so its scores change with the seed) whose ``fit`` first waits at a gate
(``gated_models``): a test holds every unit running where Ray placed it, acts (kills a
node, removes the table), then opens the gate.

Examples
--------
>>> spec = f"fault_models.CrashOnceClassifier:marker={tmp_path / 'crashed'}"  # doctest: +SKIP
>>> spec = f"fault_models.GatedForestClassifier:gate={gate},n_estimators=40"  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from gated_models import pass_gate
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

__all__ = ["CrashOnceClassifier", "GatedForestClassifier"]


class CrashOnceClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression whose first ``fit`` (no ``marker`` yet) exits its process.

    Parameters
    ----------
    marker : str
        The file whose absence makes ``fit`` create it and exit; it holds the pid that
        exited.
    always : bool
        Exit on every ``fit``: a unit that loses every attempt Ray gives it.
    """

    def __init__(self, marker: str = "", always: bool = False) -> None:
        self.marker = marker
        self.always = always

    def fit(self, X: Any, y: Any) -> CrashOnceClassifier:
        if self.always:
            os._exit(1)
        if self.marker:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    json.dump({"pid": os.getpid()}, out)
                os._exit(1)
        self.model_ = LogisticRegression(max_iter=1000).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.model_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(X)


class GatedForestClassifier(ClassifierMixin, BaseEstimator):
    """A random forest whose ``fit`` first waits at ``gate`` (no gate: no wait).

    Parameters
    ----------
    gate : str, optional
        The gate folder (see ``gated_models``).
    n_estimators, max_features : int, str
        The forest's.
    random_state : int, optional
        Set by fleetlearn from the unit's seed.
    timeout_s : float
        Longest a fit waits for its ticket to open.
    """

    def __init__(self, gate: str | None = None, n_estimators: int = 30,
                 max_features: str = "sqrt", random_state: int | None = None,
                 timeout_s: float = 300.0) -> None:
        self.gate = gate
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.random_state = random_state
        self.timeout_s = timeout_s

    def fit(self, X: Any, y: Any) -> GatedForestClassifier:
        if self.gate is not None:
            pass_gate(self.gate, self.timeout_s)
        self.model_ = RandomForestClassifier(
            n_estimators=self.n_estimators, max_features=self.max_features,
            random_state=self.random_state, n_jobs=1).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.model_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(X)
