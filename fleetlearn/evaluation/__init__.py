"""Metrics, training and learning curves, fold summaries, leaderboards and statistics.

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
    metric_range,
    score_one,
    score_predictions,
)
from fleetlearn.evaluation._stats import (
    CorrectedTTest,
    DatasetComparison,
    average_ranks,
    cd_groups,
    compare_datasets,
    compare_to_best,
    corrected_resampled_ttest,
    friedman_test,
    holm,
    mean_ci,
    nemenyi_cd,
    nemenyi_q,
    score_trends,
)

__all__ = [
    "CLASSIFICATION_METRICS",
    "CorrectedTTest",
    "DatasetComparison",
    "PRIMARY_METRIC",
    "REGRESSION_METRICS",
    "average_ranks",
    "cd_groups",
    "check_metric",
    "compare_datasets",
    "compare_to_best",
    "compute_metrics",
    "corrected_resampled_ttest",
    "friedman_test",
    "greater_is_better",
    "metric_range",
    "holm",
    "learning_curve_points",
    "leaderboard",
    "mean_ci",
    "nemenyi_cd",
    "nemenyi_q",
    "score_one",
    "score_predictions",
    "score_trends",
    "summarize_folds",
    "training_curve",
]
