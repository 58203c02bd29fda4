"""Planning a run's trial graph and running it on Ray, with a journal to resume from."""

from fleetlearn.training._config import DatasetConfig, RunConfig, load_run_file
from fleetlearn.training._execute import (
    PreparedDataset,
    ProgressEvent,
    TrainResult,
    dataset_configs,
    prepare,
    train,
    train_run,
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

__all__ = [
    "DatasetConfig",
    "PreparedDataset",
    "ProgressEvent",
    "RunConfig",
    "Splits",
    "TrainResult",
    "UnitKey",
    "compare_run",
    "connect_ray",
    "dataset_configs",
    "derive_seed",
    "load_run_file",
    "make_splits",
    "plan_run_units",
    "plan_units",
    "prepare",
    "run_leaderboard",
    "split_seed",
    "train",
    "train_run",
    "trial_rows",
    "unit_fold",
]
