"""Honest comparison: which differences between models are real.

Per dataset (paired fold scores, every model of a dataset sees the same folds):

- :func:`mean_ci`: mean, standard deviation and a t-distribution confidence
  interval over folds;
- :func:`corrected_resampled_ttest`: the corrected resampled t-test of Nadeau and
  Bengio (2003), whose variance is inflated by ``1/J + n_test/n_train`` because CV
  training sets overlap and a plain paired t-test finds far too many differences;
- :func:`holm`: Holm's step-down adjustment of several p-values;
- :func:`compare_to_best`: every model against the best, with the models
  statistically tied with it marked.

Across datasets (Demšar 2006, "Statistical comparisons of classifiers over multiple
data sets"): :func:`average_ranks`, :func:`friedman_test` (with the Iman-Davenport
F form), :func:`nemenyi_cd` and :func:`cd_groups`, all in :func:`compare_datasets`.

Over time: :func:`score_trends` (a dataset's or a model's scores across runs and
versions).

Nothing here reads the registry or knows about Ray: inputs are plain numbers, dicts
and DataFrames (``score_trends`` also takes registry records, duck-typed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from fleetlearn.evaluation._metrics import greater_is_better, metric_range

__all__ = [
    "CorrectedTTest",
    "DatasetComparison",
    "average_ranks",
    "cd_groups",
    "compare_datasets",
    "compare_to_best",
    "corrected_resampled_ttest",
    "friedman_test",
    "holm",
    "mean_ci",
    "nemenyi_cd",
    "nemenyi_q",
    "score_trends",
]


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ValueError(f"The '{name}' parameter must be a float in the range (0, 1). "
                         f"Got {alpha!r} instead.")
    return float(alpha)


def _finite(values: Iterable[Any]) -> np.ndarray:
    out = np.asarray([np.nan if v is None else float(v) for v in values], dtype=float)
    return out[np.isfinite(out)]


# ----------------------------------------------------------------- one model


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, sample standard deviation and a t confidence interval of fold scores.

    The interval is ``mean ± t(1 - (1 - confidence)/2, n - 1) * std / sqrt(n)``.
    Missing (None) and non-finite values are left out. With one value the interval
    is undefined (NaN); with identical values it is the point itself.

    Returns
    -------
    dict
        ``{"mean", "std", "n", "ci_low", "ci_high"}`` (NaN where undefined).

    Examples
    --------
    >>> r = mean_ci([0.80, 0.82, 0.84])
    >>> round(r["mean"], 2), round(r["ci_low"], 4), round(r["ci_high"], 4)
    (0.82, 0.7703, 0.8697)
    """
    _check_alpha(confidence, "confidence")
    x = _finite(values)
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0, "ci_low": math.nan,
                "ci_high": math.nan}
    mean = float(x.mean())
    if n == 1:
        return {"mean": mean, "std": 0.0, "n": 1, "ci_low": math.nan, "ci_high": math.nan}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci_low": mean - half, "ci_high": mean + half}


class CorrectedTTest(NamedTuple):
    """Result of :func:`corrected_resampled_ttest`."""

    statistic: float
    p_value: float
    df: int
    mean_difference: float


def corrected_resampled_ttest(
    a: Sequence[float], b: Sequence[float], test_train_ratio: float
) -> CorrectedTTest:
    """The corrected resampled t-test (Nadeau and Bengio, 2003) of paired scores.

    With ``d_j = a_j - b_j`` over ``J`` paired resamples (folds),
    ``t = mean(d) / sqrt((1/J + n_test/n_train) * var(d))`` with ``var`` the sample
    variance, compared to Student's t with ``J - 1`` degrees of freedom (two-sided).
    For k-fold cross-validation ``n_test/n_train = 1/(k - 1)``. With
    ``test_train_ratio=0`` this is the ordinary paired t-test.

    Identical differences (zero variance) give ``p = 1`` when their mean is 0 and
    ``p = 0`` otherwise (the limit of the test).

    Parameters
    ----------
    a, b : sequence of float
        Scores of two models on the same folds, in the same order.
    test_train_ratio : float
        Rows scored per rows trained on in one resample (``>= 0``).

    Raises
    ------
    ValueError
        Lengths differ, fewer than two pairs, non-finite scores, or a negative ratio.

    Examples
    --------
    >>> r = corrected_resampled_ttest([0.9, 0.8, 0.85], [0.8, 0.75, 0.8], 1 / 2)
    >>> round(r.statistic, 4), round(r.p_value, 4), r.df
    (2.5298, 0.1271, 2)
    """
    a_arr = np.asarray(a, dtype=float)
    b_arr = np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"a and b must be paired 1-d sequences of the same length; got "
                         f"{a_arr.shape} and {b_arr.shape}.")
    if len(a_arr) < 2:
        raise ValueError(f"The corrected resampled t-test needs at least 2 paired folds; got "
                         f"{len(a_arr)}.")
    if not (np.isfinite(a_arr).all() and np.isfinite(b_arr).all()):
        raise ValueError("Scores must be finite numbers: drop the folds without a score "
                         "from both sides first.")
    if not (test_train_ratio >= 0 and math.isfinite(test_train_ratio)):
        raise ValueError(f"The 'test_train_ratio' parameter must be a float >= 0. Got "
                         f"{test_train_ratio!r} instead.")
    d = a_arr - b_arr
    J = len(d)
    mean = float(d.mean())
    var = float(d.var(ddof=1))
    # Fold scores are sums of floats: a difference of 1e-17 is no difference.
    scale = max(float(np.abs(a_arr).max()), float(np.abs(b_arr).max()), 1.0)
    if var <= (1e-12 * scale) ** 2:
        if abs(mean) <= 1e-12 * scale:
            return CorrectedTTest(0.0, 1.0, J - 1, mean)
        return CorrectedTTest(math.copysign(math.inf, mean), 0.0, J - 1, mean)
    t = mean / math.sqrt((1.0 / J + test_train_ratio) * var)
    p = float(2 * stats.t.sf(abs(t), J - 1))
    return CorrectedTTest(float(t), min(p, 1.0), J - 1, mean)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order.

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``
    for ``m`` p-values. NaN entries are left out of the family and stay NaN.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adjusted)
    return out


def _fold_map(scores: Mapping[Any, Any] | Sequence[Any]) -> dict[Any, float]:
    """``{fold: score}`` from a dict or a list (index = fold), finite scores only."""
    items = scores.items() if isinstance(scores, Mapping) else enumerate(scores)
    out = {}
    for fold, value in items:
        if value is not None and math.isfinite(float(value)):
            out[fold] = float(value)
    return out


def compare_to_best(
    fold_scores: Mapping[str, Mapping[Any, float] | Sequence[float | None]],
    metric: str,
    *,
    folds: int | None = None,
    test_train_ratio: float | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Every model of one dataset against the best, on paired fold scores.

    The best model has the best mean (the metric's direction respected; ties broken
    by name). Each other model is tested against it with
    :func:`corrected_resampled_ttest` on the folds both have (paired by fold id), the
    p-values are adjusted with :func:`holm`, and a model is *tied with the best* when
    its adjusted p-value is ``>= alpha``: the data cannot tell it apart from the best.

    Parameters
    ----------
    fold_scores : mapping
        Model name -> its score per fold: a dict ``{fold_id: score}`` or a list whose
        index is the fold (None or NaN for a missing fold).
    metric : str
        Gives the direction (``greater_is_better``).
    folds : int, optional
        ``k`` of the k-fold CV; ``n_test/n_train = 1/(k - 1)``. Defaults to the
        number of distinct folds seen.
    test_train_ratio : float, optional
        Overrides the ratio derived from ``folds`` (e.g. for repeated holdout).
    alpha : float
        Significance level of "tied with the best".
    confidence : float
        Level of the confidence interval of each mean.

    Returns
    -------
    pandas.DataFrame
        One row per model, best first: ``model, folds, mean, std, ci_low, ci_high,
        t_statistic, p_value`` (unadjusted), ``p_adjusted`` (Holm),
        ``tied_with_best`` (nullable boolean: True for the best, NA when fewer than 2
        folds are shared with the best or the model has no score), ``is_best``.

    Examples
    --------
    >>> board = compare_to_best({"a": [0.90, 0.92, 0.91], "b": [0.60, 0.62, 0.61],
    ...                          "c": [0.91, 0.90, 0.92]}, "accuracy")
    >>> board[["model", "tied_with_best"]].values.tolist()
    [['a', True], ['c', True], ['b', False]]
    """
    _check_alpha(alpha)
    greater = greater_is_better(metric)
    low, high = metric_range(metric)
    maps = {str(model): _fold_map(scores) for model, scores in fold_scores.items()}
    if folds is None:
        seen = {f for m in maps.values() for f in m}
        folds = max(len(seen), 2)
    if test_train_ratio is None:
        if folds < 2:
            raise ValueError(f"The 'folds' parameter must be an int >= 2. Got {folds!r} instead.")
        test_train_ratio = 1.0 / (folds - 1)
    columns = ["model", "folds", "mean", "std", "ci_low", "ci_high", "t_statistic", "p_value",
               "p_adjusted", "tied_with_best", "is_best"]
    records = []
    for model, scores in maps.items():
        summary = mean_ci(list(scores.values()), confidence)
        # Clipped to what the metric can take (a t interval of accuracies near 1 would
        # reach past 1); np.clip keeps NaN.
        ci_low, ci_high = np.clip([summary["ci_low"], summary["ci_high"]], low, high)
        records.append({"model": model, "folds": summary["n"], "mean": summary["mean"],
                        "std": summary["std"], "ci_low": float(ci_low),
                        "ci_high": float(ci_high), "t_statistic": math.nan,
                        "p_value": math.nan, "p_adjusted": math.nan,
                        "tied_with_best": pd.NA, "is_best": False})
    board = pd.DataFrame.from_records(records, columns=columns)
    if board.empty:
        return board
    board["_key"] = board["mean"] if greater else -board["mean"]
    board = board.sort_values(["_key", "model"], ascending=[False, True], na_position="last",
                              kind="stable").drop(columns="_key").reset_index(drop=True)
    if board["mean"].isna().all():
        board["tied_with_best"] = board["tied_with_best"].astype("boolean")
        return board
    best = board.loc[0, "model"]
    board.loc[0, "is_best"] = True
    board.loc[0, "tied_with_best"] = True
    for i in range(1, len(board)):
        model = board.loc[i, "model"]
        shared = sorted(set(maps[model]) & set(maps[best]), key=str)
        if len(shared) < 2:
            continue
        result = corrected_resampled_ttest([maps[model][f] for f in shared],
                                           [maps[best][f] for f in shared], test_train_ratio)
        board.loc[i, "t_statistic"] = result.statistic
        board.loc[i, "p_value"] = result.p_value
    board["p_adjusted"] = holm(board["p_value"].to_numpy())
    tested = board["p_adjusted"].notna()
    board.loc[tested, "tied_with_best"] = board.loc[tested, "p_adjusted"] >= alpha
    board["tied_with_best"] = board["tied_with_best"].astype("boolean")
    board["is_best"] = board["is_best"].astype(bool)
    return board


# -------------------------------------------------------- across datasets


def average_ranks(scores: pd.DataFrame, metric: str | None = None, *,
                  greater: bool | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Rank models within each dataset (1 = best, ties get the average rank).

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per dataset, one column per model, no missing values.
    metric : str, optional
        Gives the direction; or pass ``greater`` directly.

    Returns
    -------
    ranks : pandas.DataFrame
        Same shape as ``scores``.
    average : pandas.Series
        Mean rank of each model over the datasets, best (lowest) first.

    Examples
    --------
    >>> frame = pd.DataFrame({"a": [0.9, 0.8], "b": [0.9, 0.7], "c": [0.5, 0.6]})
    >>> average_ranks(frame, "accuracy")[1].to_dict()
    {'a': 1.25, 'b': 1.75, 'c': 3.0}
    """
    if greater is None:
        if metric is None:
            raise ValueError("Give the metric (or greater=True/False) so ranks know which "
                             "direction is better.")
        greater = greater_is_better(metric)
    values = scores.to_numpy(dtype=float)
    if np.isnan(values).any():
        raise ValueError("Scores have missing values: keep only the models scored on every "
                         "dataset (compare_datasets does this for you).")
    ranks = stats.rankdata(-values if greater else values, axis=1)
    frame = pd.DataFrame(ranks, index=scores.index, columns=scores.columns)
    average = frame.mean(axis=0)
    order = sorted(average.index, key=lambda m: (average[m], str(m)))
    return frame, average.loc[order]


def friedman_test(ranks: pd.DataFrame | np.ndarray) -> dict[str, float]:
    """The Friedman test on within-dataset ranks, with the tie correction.

    ``chi2 = (12 / (N k (k+1)) * sum_j R_j^2 - 3 N (k+1)) / C`` with ``R_j`` the rank
    sums and ``C = 1 - sum(t^3 - t) / (N k (k^2 - 1))`` over groups of tied ranks
    (as :func:`scipy.stats.friedmanchisquare`), compared to chi-square with ``k-1``
    degrees of freedom; and Iman and Davenport's less conservative
    ``F = (N-1) chi2 / (N (k-1) - chi2)`` with ``(k-1, (k-1)(N-1))`` degrees of
    freedom, which Demšar (2006) recommends.

    Parameters
    ----------
    ranks : DataFrame or array of shape (N datasets, k models)
        As returned by :func:`average_ranks`; needs ``N >= 2`` and ``k >= 2``.

    Returns
    -------
    dict
        ``statistic, p_value, df, f_statistic, f_p_value, f_df1, f_df2``. When every
        dataset ties every model, ``statistic = 0`` and ``p_value = 1``.

    Examples
    --------
    >>> r = friedman_test(np.array([[1, 2, 3], [1, 2, 3], [1, 3, 2], [1, 2, 3]]))
    >>> round(r["statistic"], 2), round(r["p_value"], 4)
    (6.5, 0.0388)
    """
    R = np.asarray(ranks, dtype=float)
    if R.ndim != 2 or R.shape[0] < 2 or R.shape[1] < 2:
        raise ValueError(f"The Friedman test needs at least 2 datasets and 2 models; got a "
                         f"{R.shape} table of ranks.")
    n, k = R.shape
    ties = 0.0
    for row in R:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts**3 - counts).sum())
    correction = 1.0 - ties / (n * k * (k * k - 1))
    df1 = k - 1
    df2 = (k - 1) * (n - 1)
    if correction <= 1e-12:  # every dataset ties every model
        return {"statistic": 0.0, "p_value": 1.0, "df": df1, "f_statistic": 0.0,
                "f_p_value": 1.0, "f_df1": df1, "f_df2": df2}
    ssbn = float((R.sum(axis=0) ** 2).sum())
    chi2 = (12.0 / (k * n * (k + 1)) * ssbn - 3.0 * n * (k + 1)) / correction
    chi2 = max(chi2, 0.0)
    p = float(stats.chi2.sf(chi2, df1))
    denominator = n * (k - 1) - chi2
    if denominator <= 1e-12:  # perfect agreement: F is infinite
        f_stat, f_p = math.inf, 0.0
    else:
        f_stat = (n - 1) * chi2 / denominator
        f_p = float(stats.f.sf(f_stat, df1, df2))
    return {"statistic": float(chi2), "p_value": p, "df": df1, "f_statistic": float(f_stat),
            "f_p_value": f_p, "f_df1": df1, "f_df2": df2}


@lru_cache(maxsize=256)
def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value ``q_alpha`` of the Nemenyi test for ``k`` models.

    The studentized range quantile with infinite degrees of freedom divided by
    ``sqrt(2)`` (Demšar 2006, Table 5a: k=4, alpha=0.05 gives 2.569).

    Examples
    --------
    >>> round(nemenyi_q(4, 0.05), 3)
    2.569
    """
    _check_alpha(alpha)
    if k < 2:
        raise ValueError(f"The Nemenyi test needs at least 2 models; got {k}.")
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def nemenyi_cd(k: int, n_datasets: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference ``q_alpha * sqrt(k (k+1) / (6 N))`` of average ranks.

    Two models whose average ranks differ by at least this much perform
    significantly differently.

    Examples
    --------
    >>> round(nemenyi_cd(4, 14, 0.05), 3)
    1.254
    """
    if n_datasets < 1:
        raise ValueError(f"The critical difference needs at least 1 dataset; got {n_datasets}.")
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_datasets))


def cd_groups(average: Mapping[str, float] | pd.Series, cd: float) -> list[list[str]]:
    """Maximal groups of models whose average ranks all differ by less than ``cd``.

    These are the bars of a critical-difference diagram: models in one group are not
    significantly different. Single models are not listed.

    Examples
    --------
    >>> cd_groups({"a": 1.0, "b": 1.5, "c": 3.0, "d": 3.2}, cd=1.0)
    [['a', 'b'], ['c', 'd']]
    """
    items = sorted(dict(average).items(), key=lambda p: (p[1], str(p[0])))
    groups: list[list[str]] = []
    last_end = -1
    for i in range(len(items)):
        j = i
        while j + 1 < len(items) and items[j + 1][1] - items[i][1] < cd:
            j += 1
        if j > i and j > last_end:
            groups.append([str(m) for m, _ in items[i:j + 1]])
            last_end = j
    return groups


@dataclass(frozen=True)
class DatasetComparison:
    """Models compared across datasets: ranks, Friedman, Nemenyi (see :func:`compare_datasets`)."""

    metric: str | None
    alpha: float
    datasets: list[str]
    models: list[str]
    scores: pd.DataFrame
    ranks: pd.DataFrame
    average_ranks: dict[str, float]
    friedman: dict[str, float]
    q_alpha: float
    critical_difference: float
    groups: list[list[str]]
    dropped_models: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (scores and ranks as ``{dataset: {model: value}}``)."""
        def clean(value: Any) -> Any:
            return None if isinstance(value, float) and not math.isfinite(value) else value

        return {
            "metric": self.metric,
            "alpha": self.alpha,
            "datasets": self.datasets,
            "models": self.models,
            "scores": {str(d): {str(m): clean(float(v)) for m, v in row.items()}
                       for d, row in self.scores.iterrows()},
            "ranks": {str(d): {str(m): float(v) for m, v in row.items()}
                      for d, row in self.ranks.iterrows()},
            "average_ranks": self.average_ranks,
            "friedman": {k: clean(v) for k, v in self.friedman.items()},
            "q_alpha": self.q_alpha,
            "critical_difference": self.critical_difference,
            "groups": self.groups,
            "dropped_models": self.dropped_models,
        }


def compare_datasets(scores: pd.DataFrame, metric: str | None = None, *, alpha: float = 0.05,
                     greater: bool | None = None) -> DatasetComparison:
    """Compare models over several datasets: average ranks, Friedman, Nemenyi CD.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per dataset, one column per model (e.g. the mean CV score). Models
        without a score on some dataset are dropped (listed in ``dropped_models``):
        the tests need every model on every dataset.
    metric : str, optional
        Gives the direction; or pass ``greater``.
    alpha : float
        Level of the Nemenyi critical difference.

    Raises
    ------
    ValueError
        Fewer than 2 datasets, or fewer than 2 models scored on all of them.

    Examples
    --------
    >>> frame = pd.DataFrame({"a": [0.9, 0.8, 0.85], "b": [0.7, 0.75, 0.7],
    ...                       "c": [0.6, 0.5, 0.55]}, index=["d1", "d2", "d3"])
    >>> result = compare_datasets(frame, "accuracy")
    >>> result.average_ranks, round(result.critical_difference, 3)
    ({'a': 1.0, 'b': 2.0, 'c': 3.0}, 1.914)
    """
    alpha = _check_alpha(alpha)
    complete = scores.apply(pd.to_numeric, errors="coerce")
    keep = [c for c in complete.columns if complete[c].notna().all()]
    dropped = [str(c) for c in complete.columns if c not in keep]
    complete = complete[keep]
    if len(complete.index) < 2 or len(keep) < 2:
        raise ValueError(
            f"Comparing across datasets needs at least 2 datasets and 2 models scored on "
            f"every one of them; got {len(complete.index)} dataset(s) and {len(keep)} such "
            "model(s)."
        )
    ranks, average = average_ranks(complete, metric, greater=greater)
    k, n = len(keep), len(complete.index)
    cd = nemenyi_cd(k, n, alpha)
    return DatasetComparison(
        metric=metric,
        alpha=alpha,
        datasets=[str(d) for d in complete.index],
        models=[str(m) for m in average.index],
        scores=complete,
        ranks=ranks,
        average_ranks={str(m): float(v) for m, v in average.items()},
        friedman=friedman_test(ranks),
        q_alpha=nemenyi_q(k, alpha),
        critical_difference=cd,
        groups=cd_groups(average, cd),
        dropped_models=dropped,
    )


# -------------------------------------------------------------------- trends


def _as_time(value: Any) -> pd.Timestamp:
    if isinstance(value, datetime | pd.Timestamp):
        stamp = pd.Timestamp(value)
    else:
        stamp = pd.Timestamp(str(value))
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _trend_row(item: Any, metric: str | None) -> dict[str, Any] | None:
    """A plain row from a dict or a registry ``ModelVersion`` (duck-typed)."""
    if isinstance(item, Mapping):
        row = dict(item)
        if "score" not in row and metric is not None:
            row["score"] = (row.get("scores") or {}).get(metric)
        row.setdefault("metric", metric)
        return row
    metrics = getattr(item, "metrics", None)
    if metrics is None:
        raise TypeError(f"score_trends takes dicts or registry ModelVersion records; got "
                        f"{type(item).__name__}.")
    chosen = metric or metrics.get("primary_metric")
    tags = getattr(item, "tags", None) or {}
    return {
        "t": item.created_at,
        "run": getattr(item, "run_id", None),
        "dataset": tags.get("dataset") or getattr(item, "dataset_id", None),
        "model": item.name,
        "version": item.version,
        "metric": chosen,
        "score": (metrics.get("test") or {}).get(chosen) if chosen else None,
    }


def score_trends(items: Iterable[Any], metric: str | None = None, *,
                 by: str = "model") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores over time: each series (a model, or a dataset) across runs and versions.

    Parameters
    ----------
    items : iterable
        Plain dicts ``{"t": time (datetime or ISO text), "score": float, "model",
        "dataset", "run", "version"}`` (``"scores": {metric: value}`` instead of
        ``"score"`` works with ``metric``), or registry ``ModelVersion`` records
        (their held-out test score of ``metric``, the version's primary metric by
        default).
    metric : str, optional
        Which score to read; also gives the direction of "best". Required for dicts
        without ``"score"``.
    by : {"model", "dataset"}
        What one series is.

    Returns
    -------
    points : pandas.DataFrame
        One row per item with a score, sorted by time: ``t, run, dataset, model,
        version, metric, score, run_best`` (the best score of that run's items in
        the same dataset) and ``change`` (vs the previous point of the series).
    summary : pandas.DataFrame
        One row per series: ``series, points, first, last, best, change`` (last -
        first), ``kendall_tau`` and ``trend_p_value`` (Kendall's tau of score vs
        time; NaN below 3 points), ``improving`` (tau in the better direction with
        p < 0.05). With ``by="dataset"`` a series is the best score of each run (one
        point per run).

    Examples
    --------
    >>> rows = [{"t": "2024-01-0%d" % d, "model": "m", "run": str(d), "score": s}
    ...         for d, s in [(1, 0.7), (2, 0.75), (3, 0.8), (4, 0.82)]]
    >>> points, summary = score_trends(rows, "accuracy")
    >>> summary[["series", "points", "change", "kendall_tau"]].values.tolist()
    [['m', 4, 0.12, 1.0]]
    """
    if by not in ("model", "dataset"):
        raise ValueError(f"The 'by' parameter must be 'model' or 'dataset'. Got {by!r} instead.")
    greater = greater_is_better(metric) if metric else True
    rows = []
    for item in items:
        row = _trend_row(item, metric)
        if row is None or row.get("score") is None or row.get("t") is None:
            continue
        score = float(row["score"])
        if not math.isfinite(score):
            continue
        rows.append({"t": _as_time(row["t"]), "run": row.get("run"), "dataset": row.get("dataset"),
                     "model": row.get("model"), "version": row.get("version"),
                     "metric": row.get("metric") or metric, "score": score})
    columns = ["t", "run", "dataset", "model", "version", "metric", "score", "run_best", "change"]
    summary_columns = ["series", "points", "first", "last", "best", "change", "kendall_tau",
                       "trend_p_value", "improving"]
    if not rows:
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=summary_columns)
    points = pd.DataFrame(rows).sort_values(["t", "model"], kind="stable").reset_index(drop=True)
    # The best of the run on that dataset: the line a model's own points are read against.
    run_key = points["run"].astype(str) + "\x1f" + points["dataset"].astype(str)
    points["run_best"] = points.groupby(run_key)["score"].transform("max" if greater else "min")
    points["change"] = points.groupby(points[by].astype(str))["score"].diff()
    summaries = []
    for series, part in points.groupby(points[by].astype(str), sort=True):
        if by == "dataset":
            # A dataset's trend is that of its best model: one point per run.
            part = part.loc[part.groupby(part["run"].astype(str))["t"].idxmin()].copy()
            part["score"] = part["run_best"]
            part = part.sort_values("t", kind="stable")
        values = part["score"].to_numpy()
        tau = p = math.nan
        if len(values) >= 3 and np.ptp(values) > 0:
            result = stats.kendalltau(part["t"].astype("int64").to_numpy(), values)
            tau, p = float(result.statistic), float(result.pvalue)
        improving = bool(
            math.isfinite(p) and p < 0.05 and (tau > 0 if greater else tau < 0)
        )
        summaries.append({
            "series": series, "points": len(values), "first": float(values[0]),
            "last": float(values[-1]),
            "best": float(values.max() if greater else values.min()),
            "change": round(float(values[-1] - values[0]), 12), "kendall_tau": tau,
            "trend_p_value": p, "improving": improving,
        })
    return points[columns], pd.DataFrame(summaries, columns=summary_columns)
