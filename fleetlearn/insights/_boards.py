"""A run's leaderboard and its statistical comparison, as the CLI, API and report show them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fleetlearn.errors import ConfigError
from fleetlearn.training import compare_run, run_leaderboard

if TYPE_CHECKING:
    from fleetlearn.evaluation import DatasetComparison
    from fleetlearn.registry import Registry, Run

__all__ = ["RunBoard", "RunComparison", "frame_records", "run_board", "run_comparison"]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def frame_records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready rows: NaN, NA and inf as None, numpy scalars as Python.

    Numbers keep their full precision; timestamps become ISO 8601 text as pandas writes
    it (``2026-12-01T20:19:24.123Z``). One conversion for every read model, so the CLI's
    ``--json`` and the API answer the same values.

    Examples
    --------
    >>> frame_records(pd.DataFrame({"model": ["knn"], "score": [float("nan")]}))
    [{'model': 'knn', 'score': None}]
    """
    if frame is None or frame.empty:
        return []
    rows = [{str(k): _plain(v) for k, v in row.items()}
            for row in frame.astype(object).to_dict(orient="records")]
    dates = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    if dates:
        # pandas' own ISO form, which the API has always answered.
        text = json.loads(frame[dates].to_json(orient="records", date_format="iso"))
        for row, stamped in zip(rows, text, strict=True):
            row.update(stamped)
    return rows


@dataclass(frozen=True, eq=False)
class RunBoard:
    """A run's leaderboard: per dataset, models ranked, with the tied-with-best marking.

    Attributes
    ----------
    run : fleetlearn.registry.Run
    frame : pandas.DataFrame
        :func:`fleetlearn.training.run_leaderboard`: ``rank, dataset, metric, model,
        cv_mean, cv_std, test, fit_time_s, predict_ms_per_row, folds, status, ci_low,
        ci_high, p_value, p_adjusted, tied_with_best`` (empty when no trial exists yet).
    alpha : float
        Significance level of ``tied_with_best``.
    """

    run: Run
    frame: pd.DataFrame
    alpha: float

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The leaderboard as JSON-ready rows (:func:`frame_records`)."""
        return frame_records(self.frame)

    def to_dict(self) -> dict[str, Any]:
        """The API's ``GET /v1/runs/{id}/leaderboard`` answer: ``run_id, status, rows``."""
        return {"run_id": self.run.id, "status": self.run.status, "rows": self.rows}


@dataclass(frozen=True, eq=False)
class RunComparison:
    """Which differences between a run's models are real.

    Attributes
    ----------
    run : fleetlearn.registry.Run
    alpha : float
    leaderboard : pandas.DataFrame
        As :attr:`RunBoard.frame` (per dataset, each model against the best: corrected
        resampled t-test, Holm-adjusted).
    across : dict of str to fleetlearn.evaluation.DatasetComparison
        Per task with 2 or more datasets: average ranks, Friedman, Nemenyi.
    notes : tuple of str
        Why a task has no comparison across datasets.
    """

    run: Run
    alpha: float
    leaderboard: pd.DataFrame
    across: dict[str, DatasetComparison]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The API's ``GET /v1/runs/{id}/compare`` answer."""
        return {"run_id": self.run.id, "alpha": self.alpha,
                "leaderboard": frame_records(self.leaderboard),
                "across_datasets": {t: c.to_dict() for t, c in self.across.items()},
                "notes": list(self.notes)}


def run_board(registry: Registry, run_id: str, *, metric: str | None = None,
              alpha: float = 0.05) -> RunBoard:
    """The leaderboard of a run, read back from its journal (partial while it runs).

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.
    metric : str, optional
        Rank by this metric instead of the run's primary one.
    alpha : float
        Significance level of ``tied_with_best``.

    Raises
    ------
    NotFoundError
        No such run.
    ConfigError
        ``metric`` applies to none of the run's tasks.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> board = run_board(Registry(), "3f2a9c")    # doctest: +SKIP
    >>> board.rows[0]["model"], board.rows[0]["tied_with_best"]    # doctest: +SKIP
    ('random_forest', True)
    """
    run = registry.get_run(run_id)
    return RunBoard(run=run, frame=run_leaderboard(registry, run.id, metric=metric,
                                                   alpha=alpha), alpha=alpha)


def run_comparison(registry: Registry, run_id: str, *, metric: str | None = None,
                   alpha: float = 0.05) -> RunComparison:
    """Significance per dataset, and average ranks, Friedman and Nemenyi across datasets.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.
    metric : str, optional
        Compare on this metric instead of the run's primary one.
    alpha : float
        Significance level, in (0, 1).

    Raises
    ------
    ConfigError
        ``alpha`` outside (0, 1), or ``metric`` fits none of the run's tasks.
    NotFoundError
        No such run.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> comparison = run_comparison(Registry(), "3f2a9c")    # doctest: +SKIP
    >>> comparison.across["classification"].critical_difference    # doctest: +SKIP
    1.914
    """
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ConfigError(f"The 'alpha' parameter must be a float in the range (0, 1). Got "
                          f"{alpha!r} instead.")
    result = compare_run(registry, run_id, metric=metric, alpha=alpha)
    return RunComparison(run=result["run"], alpha=alpha, leaderboard=result["leaderboard"],
                         across=dict(result["across"]), notes=tuple(result["notes"]))
