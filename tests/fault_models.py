"""An estimator whose first ``fit`` kills its own process: a worker lost mid-unit, for real.

Give a run ``fault_models.CrashOnceClassifier:marker=<file>`` (a ``module.Class`` model
spec; ``tests/`` is on the ``PYTHONPATH`` of the session's Ray workers and of
``fleetlearn train`` children, see ``ray_session`` in ``tests/conftest.py``). The first
``fit`` of any process that finds no ``marker`` creates it (atomically: of several fits
starting together exactly one wins) and ends its process with ``os._exit(1)``, as a
worker killed by the kernel would: no exception, no result, nothing sent back. Every
later ``fit`` sees the marker and trains a logistic regression. So exactly one unit of
the run loses its worker once, and Ray's retry (``max_retries``) must run it again.

Examples
--------
>>> spec = f"fault_models.CrashOnceClassifier:marker={tmp_path / 'crashed'}"  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

__all__ = ["CrashOnceClassifier"]


class CrashOnceClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression whose first ``fit`` (no ``marker`` yet) exits its process.

    Parameters
    ----------
    marker : str
        The file whose absence makes ``fit`` create it and exit; it holds the pid that
        exited.
    """

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def fit(self, X: Any, y: Any) -> CrashOnceClassifier:
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
