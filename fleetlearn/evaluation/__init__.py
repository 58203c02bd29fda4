"""Metrics, training and learning curves, fold summaries and leaderboards.

Nothing here knows about Ray or the registry: functions take fitted estimators,
arrays and plain dicts, and return plain dicts and DataFrames.
"""

from __future__ import annotations

from fleetlearn.evaluation._curves import learning_curve_points, training_curve
from fleetlearn.evaluation._leaderboard import leaderboard, summarize_folds
from fleetlearn.evaluation._metrics import (
    CLASSIFICATION_METRICS,
    PRIMARY_METRIC,
    REGRESSION_METRICS,
    check_metric,
    compute_metrics,
    greater_is_better,
    score_predictions,
)

__all__ = [
    "CLASSIFICATION_METRICS",
    "PRIMARY_METRIC",
    "REGRESSION_METRICS",
    "check_metric",
    "compute_metrics",
    "greater_is_better",
    "learning_curve_points",
    "leaderboard",
    "score_predictions",
    "summarize_folds",
    "training_curve",
]
