"""Serving: the REST API over the registry's models (FastAPI; Ray Serve on a cluster).

The prediction runtime caches and batches predictors it gets from
:mod:`fleetlearn.model` (``load_predictor``); inputs are checked by
:func:`fleetlearn.data.parse_rows`. ``Predictor``, ``Rows``, ``parse_rows`` and the
input errors are re-exported here for existing callers.

>>> from fleetlearn.serving import ServeSettings, create_app
>>> app = create_app(ServeSettings(port=8000))      # doctest: +SKIP
"""

from __future__ import annotations

from fleetlearn.data import InputError, InputProblem, Rows, parse_rows
from fleetlearn.model import Prediction, Predictor
from fleetlearn.serving._app import create_app
from fleetlearn.serving._settings import ServeSettings, is_loopback
from fleetlearn.serving._state import ServingState

__all__ = [
    "InputError",
    "InputProblem",
    "Prediction",
    "Predictor",
    "Rows",
    "ServeSettings",
    "ServingState",
    "create_app",
    "is_loopback",
    "parse_rows",
]
