"""Planning a run's trial graph and running it on Ray, with a journal to resume from.

Names are imported on first use: the run options (:class:`RunOptions`, pydantic only)
load without scikit-learn and Ray, so the CLI can build its ``train`` options from
them at start-up and stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetlearn.training._execute import (
        PreparedDataset,
        ProgressEvent,
        TrainResult,
        prepare,
        run_units,
        train,
        train_run,
    )
    from fleetlearn.training._launcher import (
        CANCEL_GRACE_S,
        RETRY_BACKOFF_S,
        LaunchedRun,
        Launcher,
    )
    from fleetlearn.training._options import (
        DatasetConfig,
        DatasetOptions,
        DatasetRef,
        RunConfig,
        RunOptions,
        RunRequest,
        dataset_configs,
        describe_field,
        load_run_file,
        options_error,
        target_for,
    )
    from fleetlearn.training._plan import (
        Splits,
        UnitKey,
        make_splits,
        plan_run_units,
        plan_units,
        split_seed,
        unit_fold,
    )
    from fleetlearn.training._ray import connect_ray
    from fleetlearn.training._results import compare_run, run_leaderboard, trial_rows
    from fleetlearn.training._seeds import derive_seed
    from fleetlearn.training._tasks import run_unit

_EXPORTS = {
    "CANCEL_GRACE_S": "_launcher",
    "RETRY_BACKOFF_S": "_launcher",
    "LaunchedRun": "_launcher",
    "Launcher": "_launcher",
    "DatasetConfig": "_options",
    "DatasetOptions": "_options",
    "DatasetRef": "_options",
    "RunConfig": "_options",
    "RunOptions": "_options",
    "RunRequest": "_options",
    "dataset_configs": "_options",
    "describe_field": "_options",
    "load_run_file": "_options",
    "options_error": "_options",
    "target_for": "_options",
    "PreparedDataset": "_execute",
    "ProgressEvent": "_execute",
    "TrainResult": "_execute",
    "prepare": "_execute",
    "run_units": "_execute",
    "train": "_execute",
    "train_run": "_execute",
    "Splits": "_plan",
    "UnitKey": "_plan",
    "make_splits": "_plan",
    "plan_run_units": "_plan",
    "plan_units": "_plan",
    "split_seed": "_plan",
    "unit_fold": "_plan",
    "connect_ray": "_ray",
    "compare_run": "_results",
    "run_leaderboard": "_results",
    "trial_rows": "_results",
    "derive_seed": "_seeds",
    "run_unit": "_tasks",
}

__all__ = [
    "CANCEL_GRACE_S",
    "DatasetConfig",
    "DatasetOptions",
    "DatasetRef",
    "LaunchedRun",
    "Launcher",
    "PreparedDataset",
    "ProgressEvent",
    "RunConfig",
    "RunOptions",
    "RunRequest",
    "RETRY_BACKOFF_S",
    "Splits",
    "TrainResult",
    "UnitKey",
    "compare_run",
    "connect_ray",
    "dataset_configs",
    "derive_seed",
    "describe_field",
    "load_run_file",
    "make_splits",
    "options_error",
    "plan_run_units",
    "plan_units",
    "prepare",
    "run_leaderboard",
    "run_unit",
    "run_units",
    "split_seed",
    "target_for",
    "train",
    "train_run",
    "trial_rows",
    "unit_fold",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fleetlearn.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fleetlearn.training.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
