"""The trial graph: datasets x models x units (CV folds, final fit, learning curve)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from fleetlearn.training._seeds import derive_seed

__all__ = ["Splits", "UnitKey", "make_splits", "plan_units", "plan_run_units", "cv_unit",
           "unit_fold"]


@dataclass(frozen=True)
class UnitKey:
    """One schedulable piece of work: a fold, the final fit, or the learning curve."""

    dataset: str
    model: str
    unit: str  # "cv0".."cv{k-1}", "final", "curve"


@dataclass
class Splits:
    """Row indices of one dataset: held-out test rows and the CV folds of the rest.

    Every model of a dataset sees the very same folds, so fold scores are paired and
    can be compared fold by fold.
    """

    train: np.ndarray
    test: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]


def cv_unit(fold: int) -> str:
    return f"cv{fold}"


def unit_fold(unit: str) -> int | None:
    """Return the fold number of a ``cvN`` unit, None for other units."""
    return int(unit[2:]) if unit.startswith("cv") else None


def make_splits(y: np.ndarray, task: str, folds: int, test_size: float, seed: int) -> Splits:
    """Split rows into a held-out test part and ``folds`` CV folds of the training part.

    Stratified for classification. Depends only on ``seed`` and the target, so a
    resumed run gets the same folds.

    >>> s = make_splits(np.array([0, 1] * 20), "classification", 4, 0.25, seed=1)
    >>> len(s.test), len(s.folds)
    (10, 4)
    """
    idx = np.arange(len(y))
    stratify = y if task == "classification" else None
    train, test = train_test_split(
        idx, test_size=test_size, random_state=seed, shuffle=True, stratify=stratify
    )
    train = np.sort(train)
    test = np.sort(test)
    if task == "classification":
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        parts = splitter.split(train, y[train])
    else:
        parts = KFold(n_splits=folds, shuffle=True, random_state=seed).split(train)
    fold_idx = [(train[tr], train[va]) for tr, va in parts]
    return Splits(train=train, test=test, folds=fold_idx)


def plan_units(
    datasets: dict[str, list[str]], folds: int, final_fit: bool, curves: dict[str, set[str]]
) -> list[UnitKey]:
    """List every unit of a run, dataset by dataset.

    Parameters
    ----------
    datasets : dict
        Dataset name -> model names.
    curves : dict
        Dataset name -> model names that need a separate learning-curve unit (models
        without per-iteration metrics).
    """
    units: list[UnitKey] = []
    for dataset, models in datasets.items():
        for model in models:
            units.extend(UnitKey(dataset, model, cv_unit(f)) for f in range(folds))
            if final_fit:
                units.append(UnitKey(dataset, model, "final"))
            if model in curves.get(dataset, set()):
                units.append(UnitKey(dataset, model, "curve"))
    return units


def plan_run_units(models: dict[str, list[tuple[str, Any]]], folds: int, final_fit: bool,
                   curves: bool) -> list[UnitKey]:
    """Every unit of a run, from each dataset's models and their ``iterative`` trait.

    A model whose spec has no per-iteration metric (``iterative`` is None) gets a
    learning-curve unit when curves are on; iterative models record their training curve
    in the ``final`` unit. The one rule training, the API's unit count and its progress
    share.

    >>> len(plan_run_units({"d": [("a", None), ("b", "staged")]}, 3, True, curves=True))
    9
    """
    names = {d: [m for m, _ in pairs] for d, pairs in models.items()}
    curve = {d: {m for m, iterative in pairs if iterative is None} if curves else set()
             for d, pairs in models.items()}
    return plan_units(names, folds, final_fit, curve)


def split_seed(run_seed: int, dataset_fingerprint: str) -> int:
    return derive_seed(run_seed, dataset_fingerprint, "split")
