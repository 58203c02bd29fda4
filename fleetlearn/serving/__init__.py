"""Serving: the prediction runtime behind the REST API (:mod:`fleetlearn.api`).

Per process a :class:`ServingState`: the registry, the model cache (LRU, single-flight
loads) of the predictors it gets from :mod:`fleetlearn.model` (``load_predictor``),
request coalescing, statistics and metrics; and Ray Serve replicas on a cluster
(:func:`deploy`; :func:`build_app` for a Serve config file or KubeRay's RayService,
``import_path: fleetlearn.serving:build_app``; imported on first use). Inputs are checked by
:func:`fleetlearn.data.parse_rows`; ``Predictor``, ``Rows``, ``parse_rows`` and the
input errors are re-exported here for existing callers.

>>> from fleetlearn.serving import ServeSettings, ServingState
>>> state = ServingState(ServeSettings(port=8000))      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from fleetlearn.data import InputError, InputProblem, Rows, parse_rows
from fleetlearn.model import Prediction, Predictor
from fleetlearn.serving._settings import ServeSettings, is_loopback
from fleetlearn.serving._state import ServingState, keys_required

#: Cluster mode, imported on first use: it imports Ray Serve, which a plain server and
#: the CLI's start should not pay for.
_RAY_SERVE = ("ClusterServing", "build_app", "deploy", "replica_options", "serve_forever")

__all__ = [
    "ClusterServing",
    "InputError",
    "InputProblem",
    "Prediction",
    "Predictor",
    "Rows",
    "ServeSettings",
    "ServingState",
    "build_app",
    "deploy",
    "is_loopback",
    "keys_required",
    "parse_rows",
    "replica_options",
    "serve_forever",
]


def __getattr__(name: str) -> Any:
    if name not in _RAY_SERVE:
        raise AttributeError(f"module 'fleetlearn.serving' has no attribute {name!r}")
    value = getattr(importlib.import_module("fleetlearn.serving._ray_serve"), name)
    globals()[name] = value
    return value
