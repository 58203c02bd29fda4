"""The held-out test rows of a dataset in a run, recomputed exactly as training drew them.

The registry keeps no rows, only where the table was read and its fingerprint: the
table is read again (through :mod:`fleetlearn.data`), its fingerprint checked, and the
split redrawn with the run's seed (``make_splits`` with ``split_seed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fleetlearn.data import load_dataset
from fleetlearn.errors import DataError, FleetlearnError, NotFoundError, did_you_mean
from fleetlearn.training import make_splits, split_seed

if TYPE_CHECKING:
    from fleetlearn.data import Dataset
    from fleetlearn.registry import DatasetRecord, Registry, Run
    from fleetlearn.training import Splits

__all__ = ["HeldOutRows", "held_out_rows"]


@dataclass(frozen=True, eq=False)
class HeldOutRows:
    """One dataset of a run and the rows its final models were tested on.

    Attributes
    ----------
    record : fleetlearn.registry.DatasetRecord
        The dataset as the registry knows it (name in the run, fingerprint, source).
    dataset : fleetlearn.data.Dataset
        The table read again (same fingerprint as ``record``).
    splits : fleetlearn.training.Splits
        The test rows and the CV folds of the rest, as training drew them.
    seed : int
        The split seed (derived from the run seed and the fingerprint).
    """

    record: DatasetRecord
    dataset: Dataset
    splits: Splits
    seed: int

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 (scikit-learn's name for the features)
        """The feature columns of the test rows."""
        return self.dataset.X.iloc[self.splits.test]

    @property
    def y(self) -> np.ndarray:
        """The target of the test rows."""
        return np.asarray(self.dataset.y)[self.splits.test]


def _record(registry: Registry, run: Run, dataset: str) -> DatasetRecord:
    records = registry.run_datasets(run.id)
    for rec in records:
        if dataset in (rec.name, rec.fingerprint):
            return rec
    names = [r.name for r in records]
    raise NotFoundError(f"Run {run.id} has no dataset '{dataset}' (it has: "
                        f"{', '.join(names) or 'none'}).{did_you_mean(dataset, names)}")


def held_out_rows(registry: Registry, run_id: str, dataset: str) -> HeldOutRows:
    """The test rows of one dataset of a run, from its table read again.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.
    dataset : str
        The dataset's name in the run, or its fingerprint.

    Raises
    ------
    NotFoundError
        No such run, or no such dataset in it.
    DataError
        The table was given in memory, cannot be read again, or changed since the run
        (the message says which; nothing else can be recomputed then).

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> rows = held_out_rows(Registry(), "3f2a9c", "iris")    # doctest: +SKIP
    >>> len(rows.y), rows.X.shape[1]    # doctest: +SKIP
    (30, 4)
    """
    run = registry.get_run(run_id)
    rec = _record(registry, run, dataset)
    if not rec.source or rec.source == "<frame>":
        raise DataError("The table was given in memory, not as a file")
    try:
        data = load_dataset(rec.source, rec.target, task=rec.task, name=rec.name)
    except FleetlearnError as exc:
        raise DataError(f"Table {rec.source} could not be read again ({exc})") from exc
    if data.fingerprint != rec.fingerprint:
        raise DataError(f"Table {rec.source} changed since the run (fingerprint "
                        f"{data.fingerprint[:12]} != {rec.fingerprint[:12]})")
    config = run.config
    seed = split_seed(run.seed, rec.fingerprint)
    splits = make_splits(np.asarray(data.y), data.task, int(config.get("folds", 5)),
                         float(config.get("test_size", 0.2)), seed)
    return HeldOutRows(record=rec, dataset=data, splits=splits, seed=seed)
