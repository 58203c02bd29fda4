"""Fold summaries and the leaderboard of a run."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fleetlearn.evaluation._metrics import check_metric, greater_is_better

__all__ = ["summarize_folds", "leaderboard"]


def summarize_folds(fold_scores: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, sample standard deviation and count of each metric over folds.

    A metric missing (or not finite) in some folds is summarised over the folds
    that have it; ``std`` uses ``ddof=1`` and is 0.0 for a single fold.

    Examples
    --------
    >>> summarize_folds([{"rmse": 1.0}, {"rmse": 3.0}])["rmse"]
    {'mean': 2.0, 'std': 1.4142135623730951, 'n': 2}
    """
    values: dict[str, list[float]] = {}
    for scores in fold_scores:
        for name, value in scores.items():
            if value is not None and math.isfinite(float(value)):
                values.setdefault(name, []).append(float(value))
    return {
        name: {
            "mean": float(np.mean(vals)),
            "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
            "n": len(vals),
        }
        for name, vals in values.items()
    }


def _number(value: Any, scale: float = 1.0) -> float:
    return float(value) * scale if value is not None else math.nan


def leaderboard(rows: list[dict[str, Any]], metric: str, task: str) -> pd.DataFrame:
    """Rank models within each dataset by the mean of ``metric`` over their folds.

    Parameters
    ----------
    rows : list of dict
        One per (dataset, model): ``dataset, model, status, fold_scores`` (one dict
        of metrics per successful fold), ``test_scores`` (or None), ``fit_time``
        (mean seconds per fold), ``predict_time_per_row`` (seconds or None),
        ``error``. Other keys are ignored.
    metric : str
        The metric to rank by; its direction (``greater_is_better``) is respected.
    task : {"classification", "regression"}

    Returns
    -------
    pandas.DataFrame
        Columns ``rank, dataset, model, <metric>_mean, <metric>_std,
        test_<metric>, fit_time_s, predict_ms_per_row, folds, status``, sorted by
        dataset then rank. Rank 1 is best; ties share the best rank. Failed
        models, and models without a value of ``metric``, come last with rank NaN.

    Examples
    --------
    >>> rows = [
    ...     {"dataset": "d", "model": "a", "status": "ok", "fold_scores": [{"rmse": 2.0}]},
    ...     {"dataset": "d", "model": "b", "status": "ok", "fold_scores": [{"rmse": 1.0}]},
    ... ]
    >>> leaderboard(rows, "rmse", "regression")[["rank", "model"]].values.tolist()
    [[1.0, 'b'], [2.0, 'a']]
    """
    metric = check_metric(metric, task)
    mean_col, std_col, test_col = f"{metric}_mean", f"{metric}_std", f"test_{metric}"
    columns = ["rank", "dataset", "model", mean_col, std_col, test_col, "fit_time_s",
               "predict_ms_per_row", "folds", "status"]
    records = []
    for row in rows:
        folds = row.get("fold_scores") or []
        summary = summarize_folds(folds).get(metric)
        test = (row.get("test_scores") or {}).get(metric)
        records.append(
            {
                "dataset": row["dataset"],
                "model": row["model"],
                mean_col: summary["mean"] if summary else math.nan,
                std_col: summary["std"] if summary else math.nan,
                test_col: _number(test),
                "fit_time_s": _number(row.get("fit_time")),
                "predict_ms_per_row": _number(row.get("predict_time_per_row"), 1000.0),
                "folds": len(folds),
                "status": row.get("status", "ok"),
            }
        )
    board = pd.DataFrame.from_records(records, columns=columns[1:])
    if board.empty:
        return pd.DataFrame(columns=columns)
    rankable = (board["status"] != "failed") & board[mean_col].notna()
    key = board[mean_col] if greater_is_better(metric) else -board[mean_col]
    board.insert(0, "rank", np.nan)
    board.loc[rankable, "rank"] = (
        key[rankable].groupby(board.loc[rankable, "dataset"]).rank(ascending=False,
                                                                   method="min")
    )
    board["_failed"] = board["status"] == "failed"
    board = board.sort_values(["dataset", "rank", "_failed", "model"], na_position="last",
                              kind="stable")
    return board.drop(columns="_failed").reset_index(drop=True)
