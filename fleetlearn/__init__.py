"""fleetlearn: train, compare, register and serve many supervised models on Ray.

The public surface is small on purpose:

>>> import fleetlearn
>>> result = fleetlearn.train("wine.csv", target="cultivar", folds=3)   # doctest: +SKIP
>>> registry = fleetlearn.Registry()                                     # doctest: +SKIP
>>> model = registry.load_model("wine-random_forest")                   # doctest: +SKIP

Names are imported on first use, so ``import fleetlearn`` (and the CLI's start)
stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Client": "fleetlearn.client",
    "Dataset": "fleetlearn.data",
    "load_dataset": "fleetlearn.data",
    "FleetlearnError": "fleetlearn.errors",
    "Registry": "fleetlearn.registry",
    "DatasetConfig": "fleetlearn.training",
    "DatasetOptions": "fleetlearn.training",
    "RunConfig": "fleetlearn.training",
    "RunOptions": "fleetlearn.training",
    "TrainResult": "fleetlearn.training",
    "run_leaderboard": "fleetlearn.training",
    "train": "fleetlearn.training",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fleetlearn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
