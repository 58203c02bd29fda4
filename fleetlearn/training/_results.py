"""Leaderboards and summaries of a run, read back from the registry.

Reading from the registry (not from memory) is what makes a resumed run reach the
same leaderboard as one that never stopped.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fleetlearn.errors import FleetlearnError
from fleetlearn.training._plan import unit_fold

__all__ = ["run_leaderboard", "trial_rows"]


def trial_rows(registry: Any, run_id: str) -> list[dict[str, Any]]:
    """One row per (dataset, model) of a run, in the shape ``evaluation.leaderboard`` takes."""
    datasets = {d.id: d for d in registry.run_datasets(run_id)}
    rows = []
    for trial in registry.list_trials(run_id):
        ds = datasets.get(trial.dataset_id)
        folds = {unit_fold(name): u for name, u in trial.units.items()}
        ok_cv = [u for f, u in sorted(folds.items(), key=lambda p: p[0] or 0)
                 if f is not None and u.status == "ok"]
        final = trial.units.get("final")
        fit_times = [u.payload.get("fit_time_s") for u in ok_cv if u.payload.get("fit_time_s")]
        predict = None
        if final is not None and final.status == "ok":
            predict = final.payload.get("predict_time_per_row_s")
        elif ok_cv:
            predict = sum(u.payload.get("predict_time_per_row_s", 0.0) for u in ok_cv) / len(ok_cv)
        errors = [u.error for u in trial.units.values() if u.error]
        status = trial.status
        if status in ("pending", "running"):
            status = "failed" if errors and not ok_cv else ("partial" if errors else status)
        rows.append(
            {
                "dataset": ds.name if ds else str(trial.dataset_id),
                "task": ds.task if ds else None,
                "model": trial.model_name,
                "status": status,
                "fold_scores": [u.payload.get("scores", {}) for u in ok_cv],
                "test_scores": final.payload.get("test_scores")
                if final is not None and final.status == "ok"
                else None,
                "fit_time": sum(fit_times) / len(fit_times) if fit_times else None,
                "predict_time_per_row": predict,
                "error": errors[0] if errors else None,
            }
        )
    return rows


def run_leaderboard(registry: Any, run_id: str, metric: str | None = None) -> pd.DataFrame:
    """The leaderboard of a run: per dataset, models ranked by the primary metric.

    Parameters
    ----------
    metric : str, optional
        Rank by this metric instead of the run's primary metric for the task.

    Examples
    --------
    >>> board = run_leaderboard(Registry(), "3f2a9c")    # doctest: +SKIP
    """
    from fleetlearn.evaluation import PRIMARY_METRIC, check_metric, leaderboard

    run = registry.get_run(run_id)
    configured = run.config.get("metric")
    rows = trial_rows(registry, run.id)
    tasks = [t for t in ("classification", "regression") if any(r["task"] == t for r in rows)]
    # A run mixing tasks: --metric ranks the tasks it applies to, the others keep theirs.
    fits = {}
    for task in tasks:
        try:
            fits[task] = check_metric(metric, task) if metric else None
        except FleetlearnError:
            fits[task] = None
    if metric and tasks and not any(fits.values()):
        check_metric(metric, tasks[0])  # raises the error that names the valid metrics
    boards = []
    for task in tasks:
        task_rows = [r for r in rows if r["task"] == task]
        chosen = fits[task] or (
            configured.get(task) if isinstance(configured, dict) else configured)
        chosen = check_metric(chosen or PRIMARY_METRIC[task], task)
        board = leaderboard(task_rows, chosen, task)
        board.insert(2, "metric", chosen)
        board = board.rename(
            columns={
                f"{chosen}_mean": "cv_mean",
                f"{chosen}_std": "cv_std",
                f"test_{chosen}": "test",
            }
        )
        boards.append(board)
    if not boards:
        return pd.DataFrame()
    return pd.concat(boards, ignore_index=True)
