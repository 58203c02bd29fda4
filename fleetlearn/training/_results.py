"""Leaderboards and summaries of a run, read back from the registry.

Reading from the registry (not from memory) is what makes a resumed run reach the
same leaderboard as one that never stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from fleetlearn.errors import FleetlearnError
from fleetlearn.evaluation import (
    PRIMARY_METRIC,
    check_metric,
    compare_datasets,
    compare_to_best,
    greater_is_better,
    leaderboard,
)
from fleetlearn.training._plan import unit_fold

if TYPE_CHECKING:  # the registry (SQLAlchemy) loads only when a caller opens one
    from fleetlearn.registry import Registry

__all__ = ["SIGNIFICANCE_COLUMNS", "compare_run", "run_leaderboard", "trial_rows"]


def trial_rows(registry: Registry, run_id: str) -> list[dict[str, Any]]:
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
                # Fold numbers of fold_scores: models are compared fold by fold.
                "fold_ids": [f for f, u in sorted(folds.items(), key=lambda p: p[0] or 0)
                             if f is not None and u.status == "ok"],
                "test_scores": final.payload.get("test_scores")
                if final is not None and final.status == "ok"
                else None,
                "fit_time": sum(fit_times) / len(fit_times) if fit_times else None,
                "predict_time_per_row": predict,
                "error": errors[0] if errors else None,
            }
        )
    return rows


def run_leaderboard(registry: Registry, run_id: str, metric: str | None = None,
                    alpha: float = 0.05) -> pd.DataFrame:
    """The leaderboard of a run: per dataset, models ranked by the primary metric.

    Parameters
    ----------
    metric : str, optional
        Rank by this metric instead of the run's primary metric for the task.
    alpha : float
        Significance level of ``tied_with_best``.

    Returns
    -------
    pandas.DataFrame
        Columns ``rank, dataset, metric, model, cv_mean, cv_std, test, fit_time_s,
        predict_ms_per_row, folds, status``, then the comparison with the best model
        of the dataset (:func:`fleetlearn.evaluation.compare_to_best` on the fold
        scores, paired by fold): ``ci_low, ci_high`` (95 % t interval of the CV
        mean), ``p_value`` (corrected resampled t-test against the best),
        ``p_adjusted`` (Holm, within the dataset) and ``tied_with_best`` (True when
        ``p_adjusted >= alpha`` and for the best itself; NA when it cannot be tested:
        failed, or fewer than 2 folds shared with the best).

    Examples
    --------
    >>> board = run_leaderboard(Registry(), "3f2a9c")    # doctest: +SKIP
    >>> board[board["tied_with_best"].fillna(False)]["model"]    # doctest: +SKIP
    """
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
        boards.append(_with_significance(board, task_rows, chosen, run.config.get("folds"),
                                         alpha))
    if not boards:
        return pd.DataFrame()
    return pd.concat(boards, ignore_index=True)


#: Columns :func:`run_leaderboard` adds from the comparison with the best model.
SIGNIFICANCE_COLUMNS = ("ci_low", "ci_high", "p_value", "p_adjusted", "tied_with_best")


def _with_significance(board: pd.DataFrame, rows: list[dict[str, Any]], metric: str,
                       folds: Any, alpha: float) -> pd.DataFrame:
    """Add the comparison with each dataset's best model to a leaderboard."""
    found: list[pd.DataFrame] = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        scores = {}
        for r in rows:
            if r["dataset"] != dataset or r["status"] == "failed":
                continue
            ids = r.get("fold_ids") or list(range(len(r["fold_scores"])))
            scores[r["model"]] = {f: s.get(metric) for f, s in zip(ids, r["fold_scores"],
                                                                  strict=True)}
        if not scores:
            continue
        k = folds if isinstance(folds, int) and folds >= 2 else None
        part = compare_to_best(scores, metric, folds=k, alpha=alpha)
        part.insert(0, "dataset", dataset)
        found.append(part)
    columns = ["dataset", "model", *SIGNIFICANCE_COLUMNS]
    stats = (pd.concat(found, ignore_index=True)[columns] if found
             else pd.DataFrame(columns=columns))
    merged = board.merge(stats, on=["dataset", "model"], how="left", validate="one_to_one")
    merged["tied_with_best"] = merged["tied_with_best"].astype("boolean")
    for col in SIGNIFICANCE_COLUMNS[:-1]:
        merged[col] = merged[col].astype(float)
    return merged


def compare_run(registry: Registry, run_id: str, metric: str | None = None,
                alpha: float = 0.05) -> dict[str, Any]:
    """The significance leaderboard of a run and, per task, its comparison across datasets.

    Parameters
    ----------
    metric : str, optional
        As in :func:`run_leaderboard`.
    alpha : float
        Significance level of ``tied_with_best`` and of the Nemenyi critical difference.

    Returns
    -------
    dict
        ``{"run": Run, "leaderboard": DataFrame (as run_leaderboard), "across":
        {task: DatasetComparison}, "notes": [str]}``. ``across`` has an entry for
        each task with 2 or more datasets sharing 2 or more successfully scored
        models (ranked by mean CV score); ``notes`` says why a task has none.

    Examples
    --------
    >>> result = compare_run(Registry(), "3f2a9c")    # doctest: +SKIP
    >>> result["across"]["classification"].average_ranks    # doctest: +SKIP
    {'random_forest': 1.33, 'logistic_regression': 2.0, 'knn': 2.67}
    """
    run = registry.get_run(run_id)
    board = run_leaderboard(registry, run.id, metric=metric, alpha=alpha)
    across: dict[str, Any] = {}
    notes: list[str] = []
    if board.empty:
        return {"run": run, "leaderboard": board, "across": across, "notes": notes}
    tasks = {d.name: d.task for d in registry.run_datasets(run.id)}
    board = board.assign(task=board["dataset"].map(tasks))
    for task, part in board.groupby("task", sort=True):
        ok = part[part["status"] != "failed"]
        scores = ok.pivot_table(index="dataset", columns="model", values="cv_mean",
                                aggfunc="first", sort=False)
        n_datasets = part["dataset"].nunique()
        if n_datasets < 2:
            continue
        complete = scores.dropna(axis=1)
        if complete.shape[1] < 2:
            notes.append(f"{task}: {n_datasets} datasets but fewer than 2 models scored on "
                         "all of them, so no comparison across datasets.")
            continue
        chosen = str(part["metric"].iloc[0]) if part["metric"].nunique() == 1 else None
        greater = None
        if chosen is None:  # per-dataset metrics differ: compare ranks of each one's own
            directions = {greater_is_better(m) for m in part["metric"].unique()}
            if len(directions) > 1:
                notes.append(f"{task}: the datasets are ranked by metrics of opposite "
                             "directions; pass --metric to compare them across datasets.")
                continue
            greater = directions.pop()
        across[str(task)] = compare_datasets(scores, chosen, alpha=alpha, greater=greater)
    return {"run": run, "leaderboard": board.drop(columns="task"), "across": across,
            "notes": notes}
