"""Gathering what a run's report shows, from the read models of :mod:`fleetlearn.insights`.

Test-split figures need the held-out rows (:func:`fleetlearn.insights.held_out_rows`:
the table read again from the source path the registry recorded, its fingerprint
checked, the split redrawn exactly as training drew it). If the table is gone or
changed, those figures are skipped with a note saying why; everything else still comes
from the registry alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from fleetlearn.errors import FleetlearnError
from fleetlearn.evaluation import check_metric, greater_is_better, score_one, score_trends
from fleetlearn.insights import dataset_versions, held_out_rows, run_comparison, run_failures
from fleetlearn.training import unit_fold

__all__ = ["DatasetReport", "RunReport", "TestSplit", "collect_run"]

#: Rows of the test split used for permutation importance (a random subset above this).
IMPORTANCE_MAX_ROWS = 2000


@dataclass
class TestSplit:
    """Predictions of the run's final models on one dataset's held-out test rows."""

    y_true: np.ndarray
    predictions: dict[str, np.ndarray]
    #: Model -> (predict_proba or decision_function output, classes); classification only.
    scores: dict[str, tuple[np.ndarray, list[Any]]]
    labels: list[Any] | None
    #: The model whose confusion matrix and feature importance are shown (best ranked).
    focus_model: str | None
    #: Feature -> (mean decrease of the metric, std over repeats), for ``focus_model``.
    importance: dict[str, tuple[float, float]] | None
    n_rows: int


@dataclass
class DatasetReport:
    """Everything the report shows about one dataset of the run."""

    record: Any  # registry DatasetRecord
    metric: str
    board: pd.DataFrame
    fold_scores: dict[str, list[float | None]]
    curves: dict[str, dict[str, Any]]
    test: TestSplit | None = None
    notes: list[str] = field(default_factory=list)
    trend_points: pd.DataFrame | None = None
    trend_summary: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return str(self.record.name)

    @property
    def task(self) -> str:
        return str(self.record.task)


@dataclass
class RunReport:
    """A run's data for the report: leaderboard, statistics, per-dataset material."""

    run: Any  # registry Run
    leaderboard: pd.DataFrame
    datasets: list[DatasetReport]
    across: dict[str, Any]  # task -> DatasetComparison
    models: list[Any]  # registry ModelVersion of the run
    failures: list[dict[str, Any]]
    notes: list[str]
    alpha: float
    inference: list[dict[str, Any]] | None = None


def collect_run(registry: Any, run_id: str, *, metric: str | None = None, alpha: float = 0.05,
                test_split: bool = True, importance_repeats: int = 5,
                trusted: tuple[str, ...] = (),
                inference: list[dict[str, Any]] | None = None) -> RunReport:
    """Read a run back from the registry (and its tables for the test-split figures).

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or unique prefix.
    metric : str, optional
        Rank and compare by this metric instead of the run's.
    alpha : float
        Significance level of the tied-with-best marking and the critical difference.
    test_split : bool
        Recompute the test split and the final models' predictions (needs the tables
        at their recorded paths).
    importance_repeats : int
        Shuffles per column for permutation importance (0 turns it off).
    trusted : tuple of str
        Extra types to trust when loading models (see ``Registry.load_model``).
    inference : list of dict, optional
        Inference statistics windows (see :func:`inference_figure`).

    Examples
    --------
    >>> data = collect_run(Registry(), "3f2a9c")    # doctest: +SKIP
    >>> [d.name for d in data.datasets]    # doctest: +SKIP
    ['wine', 'diabetes']
    """
    comparison = run_comparison(registry, run_id, metric=metric, alpha=alpha)
    run, board = comparison.run, comparison.leaderboard
    records = registry.run_datasets(run.id)
    trials = registry.list_trials(run.id)
    models = registry.list_models(run_id=run.id)
    # Every failed unit has status "failed": the report's table leaves that column out.
    failures = [{"dataset": f.dataset, "model": f.model, "unit": f.unit, "error": f.error}
                for f in run_failures(registry, run.id)]
    datasets = []
    for rec in records:
        part = board[board["dataset"] == rec.name].reset_index(drop=True)
        chosen = str(part["metric"].iloc[0]) if not part.empty else "?"
        folds: dict[str, list[float | None]] = {}
        curves: dict[str, dict[str, Any]] = {}
        k = int(run.config.get("folds") or 0)
        for trial in (t for t in trials if t.dataset_id == rec.id):
            per_fold: list[float | None] = [None] * k
            for unit, u in trial.units.items():
                fold = unit_fold(unit)
                if fold is None or u.status != "ok":
                    continue
                if fold >= len(per_fold):
                    per_fold.extend([None] * (fold + 1 - len(per_fold)))
                per_fold[fold] = (u.payload.get("scores") or {}).get(chosen)
            if any(v is not None for v in per_fold):
                folds[trial.model_name] = per_fold
            for unit in ("final", "curve"):
                u = trial.units.get(unit)
                curve = u.payload.get("curve") if u is not None and u.status == "ok" else None
                if curve and curve.get("x"):
                    curves[trial.model_name] = curve
        ordered = [m for m in part["model"] if m in folds]
        section = DatasetReport(record=rec, metric=chosen, board=part,
                                fold_scores={m: folds[m] for m in ordered}, curves=curves)
        if test_split:
            _test_split(section, registry, run, models, importance_repeats, trusted)
        _trends(section, registry)
        datasets.append(section)
    return RunReport(run=run, leaderboard=board, datasets=datasets, across=comparison.across,
                     models=models, failures=failures, notes=list(comparison.notes),
                     alpha=alpha, inference=inference)


def _test_split(section: DatasetReport, registry: Any, run: Any, models: list[Any],
                repeats: int, trusted: tuple[str, ...]) -> None:
    """Fill ``section.test`` or add a note saying why the test figures are skipped."""
    rec = section.record
    versions = {mv.tags.get("model"): mv for mv in models if mv.dataset_id == rec.id}
    if not versions:
        section.notes.append("No final model was registered for this dataset (final fit "
                             "off or failed): no test-split figures.")
        return
    try:
        held_out = held_out_rows(registry, run.id, rec.fingerprint)
    except FleetlearnError as exc:  # the table is in memory, gone or changed
        section.notes.append(f"{exc}: test-split figures skipped.")
        return
    dataset = held_out.dataset
    X_test, y_test = held_out.X, held_out.y
    predictions: dict[str, np.ndarray] = {}
    scores: dict[str, tuple[np.ndarray, list[Any]]] = {}
    loaded: dict[str, Any] = {}
    for model in section.board["model"]:
        mv = versions.get(model)
        if mv is None:
            continue
        try:
            estimator = registry.load_model(mv.name, version=mv.version, trusted=trusted)
        except FleetlearnError as exc:
            section.notes.append(f"Model {mv.ref} could not be loaded ({exc}); left out of "
                                 "the test-split figures.")
            continue
        loaded[model] = estimator
        predictions[model] = np.asarray(estimator.predict(X_test))
        if dataset.task == "classification":
            classes = list(getattr(estimator, "classes_", []))
            if hasattr(estimator, "predict_proba"):
                scores[model] = (np.asarray(estimator.predict_proba(X_test)), classes)
            elif hasattr(estimator, "decision_function"):
                scores[model] = (np.asarray(estimator.decision_function(X_test)), classes)
    ranked = section.board.dropna(subset=["rank"])
    focus = next((m for m in ranked["model"] if m in loaded), None)
    importance = None
    if focus is not None and repeats > 0:
        importance = _importance(loaded[focus], X_test, y_test, dataset.task,
                                 check_metric(section.metric, dataset.task), repeats,
                                 held_out.seed)
    labels = None
    if dataset.task == "classification":
        labels = list(dataset.schema.classes) if dataset.schema.classes else sorted(
            set(y_test.tolist()))
    section.test = TestSplit(y_true=y_test, predictions=predictions, scores=scores,
                             labels=labels, focus_model=focus, importance=importance,
                             n_rows=len(y_test))


def _importance(estimator: Any, X: pd.DataFrame, y: np.ndarray, task: str, metric: str,
                repeats: int, seed: int) -> dict[str, tuple[float, float]] | None:
    """Permutation importance of the raw input columns (the pipeline preprocesses them)."""
    if len(X) > IMPORTANCE_MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(X), IMPORTANCE_MAX_ROWS,
                                                           replace=False))
        X, y = X.iloc[rows], y[rows]
    sign = 1.0 if greater_is_better(metric) else -1.0

    def scorer(est: Any, X_part: Any, y_part: Any) -> float:
        value = score_one(est, X_part, y_part, task, metric)
        return sign * value if value is not None else math.nan

    result = permutation_importance(estimator, X, y, scoring=scorer, n_repeats=repeats,
                                    random_state=seed % (2**31))
    out = {}
    for name, mean, std in zip(X.columns, result.importances_mean, result.importances_std,
                               strict=True):
        if math.isfinite(mean):
            out[str(name)] = (float(mean), float(std))
    return out or None


def _trends(section: DatasetReport, registry: Any) -> None:
    """This dataset's (same fingerprint) model versions across every run, over time."""
    versions = dataset_versions(registry, section.record.fingerprint)
    if not versions or section.board.empty:
        return
    # Versions without this metric (e.g. registered before it existed) are left out.
    section.trend_points, section.trend_summary = score_trends(versions, section.metric)
