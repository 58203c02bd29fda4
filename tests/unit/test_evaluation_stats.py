"""Statistics of model comparison, checked against SciPy and values worked by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fleetlearn.evaluation import (
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
from fleetlearn.registry import ModelVersion

# ------------------------------------------------------------------ mean and CI


def test_mean_ci_matches_the_t_interval():
    values = [0.80, 0.82, 0.84]
    r = mean_ci(values)
    # By hand: mean 0.82, sd 0.02, t(0.975, 2) = 4.302653 -> half width 0.049683.
    assert r["mean"] == pytest.approx(0.82)
    assert r["std"] == pytest.approx(0.02)
    assert r["ci_high"] - r["mean"] == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-6)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert r["n"] == 3


def test_mean_ci_edge_cases():
    one = mean_ci([0.7])
    assert one["mean"] == 0.7
    assert one["n"] == 1
    assert math.isnan(one["ci_low"])
    same = mean_ci([0.5, 0.5, 0.5])
    assert (same["std"], same["ci_low"], same["ci_high"]) == (0.0, 0.5, 0.5)
    assert mean_ci([0.5, None, float("nan"), 0.7])["n"] == 2  # missing folds left out
    assert mean_ci([])["n"] == 0
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


# ------------------------------------------------------ corrected resampled t-test


def test_corrected_ttest_without_correction_is_the_paired_ttest():
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.02, 10)
    b = a - rng.normal(0.01, 0.01, 10)
    ours = corrected_resampled_ttest(a, b, test_train_ratio=0.0)
    scipy = stats.ttest_rel(a, b)
    assert ours.statistic == pytest.approx(scipy.statistic)
    assert ours.p_value == pytest.approx(scipy.pvalue)
    assert ours.df == 9


def test_corrected_ttest_inflates_the_variance_by_one_over_k_plus_ratio():
    rng = np.random.default_rng(1)
    a = rng.normal(0.8, 0.02, 5)
    b = a - rng.normal(0.01, 0.01, 5)
    plain = stats.ttest_rel(a, b).statistic
    # 5-fold CV: n_test/n_train = 1/4, so t shrinks by sqrt((1/5) / (1/5 + 1/4)).
    corrected = corrected_resampled_ttest(a, b, 1 / 4)
    assert corrected.statistic == pytest.approx(plain * math.sqrt(0.2 / 0.45))
    assert corrected.p_value == pytest.approx(2 * stats.t.sf(abs(corrected.statistic), 4))
    assert corrected.p_value > stats.ttest_rel(a, b).pvalue  # fewer false "differences"


def test_corrected_ttest_hand_worked_three_folds():
    # d = [0.1, 0.05, 0.05]: mean 1/15, var 1/1200, (1/3 + 1/2) var = 1/1440,
    # t = (1/15) / sqrt(1/1440) = sqrt(1440)/15 = 2.52982.
    r = corrected_resampled_ttest([0.9, 0.8, 0.85], [0.8, 0.75, 0.8], 1 / 2)
    assert r.statistic == pytest.approx(math.sqrt(1440) / 15)
    assert r.mean_difference == pytest.approx(1 / 15)
    assert r.df == 2


def test_corrected_ttest_two_folds_is_a_cauchy_tail():
    # d = [0.1, 0.05], k = 2 so the ratio is 1/(2-1) = 1: t = 0.075 / sqrt(1.5 * 0.00125)
    # = sqrt(3); with 1 degree of freedom P(|T| > sqrt 3) = 1 - 2/pi * atan(sqrt 3) = 1/3.
    r = corrected_resampled_ttest([0.9, 0.8], [0.8, 0.75], 1.0)
    assert r.statistic == pytest.approx(math.sqrt(3))
    assert r.p_value == pytest.approx(1 / 3)
    assert r.df == 1


def test_corrected_ttest_zero_variance():
    same = corrected_resampled_ttest([0.9, 0.8, 0.7], [0.9, 0.8, 0.7], 0.25)
    assert (same.statistic, same.p_value) == (0.0, 1.0)
    # Float noise in identical scores is not a difference.
    noisy = corrected_resampled_ttest([0.1 + 0.2, 0.3], [0.3, 0.3], 0.25)
    assert noisy.p_value == 1.0
    shifted = corrected_resampled_ttest([0.9, 0.8, 0.7], [0.8, 0.7, 0.6], 0.25)
    assert shifted.p_value == 0.0
    assert shifted.statistic == math.inf


@pytest.mark.parametrize(("a", "b", "ratio", "match"), [
    ([0.1, 0.2], [0.1], 0.25, "same length"),
    ([0.1], [0.2], 0.25, "at least 2"),
    ([0.1, float("nan")], [0.2, 0.3], 0.25, "finite"),
    ([0.1, 0.2], [0.2, 0.3], -1.0, "test_train_ratio"),
])
def test_corrected_ttest_rejects_bad_input(a, b, ratio, match):
    with pytest.raises(ValueError, match=match):
        corrected_resampled_ttest(a, b, ratio)


# ------------------------------------------------------------------------ Holm


def test_holm_hand_worked():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    # 5 * 0.01, 4 * 0.02, 3 * 0.03, max(0.09, 2 * 0.04), max(0.09, 0.05)
    assert holm([0.05, 0.04, 0.03, 0.02, 0.01]).tolist() == pytest.approx(
        [0.09, 0.09, 0.09, 0.08, 0.05])
    assert holm([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])  # capped at 1


def test_holm_leaves_nan_out_of_the_family():
    out = holm([0.01, np.nan, 0.04])
    assert out[0] == pytest.approx(0.02)
    assert out[2] == pytest.approx(0.04)
    assert math.isnan(out[1])
    assert np.isnan(holm([np.nan])).all()


# ---------------------------------------------------------------- vs the best


def test_compare_to_best_marks_ties_and_applies_holm():
    scores = {
        "best": [0.90, 0.92, 0.91, 0.93, 0.90],
        "close": [0.91, 0.90, 0.90, 0.92, 0.91],
        "bad": [0.70, 0.72, 0.69, 0.71, 0.70],
    }
    board = compare_to_best(scores, "accuracy")
    assert board["model"].tolist() == ["best", "close", "bad"]
    assert board["tied_with_best"].tolist() == [True, True, False]
    assert board["is_best"].tolist() == [True, False, False]
    assert math.isnan(board.loc[0, "p_value"])
    raw = [corrected_resampled_ttest(scores[m], scores["best"], 1 / 4).p_value
           for m in ("close", "bad")]
    assert board["p_value"].tolist()[1:] == pytest.approx(raw)
    assert board["p_adjusted"].tolist()[1:] == pytest.approx(holm(raw).tolist())
    ci = mean_ci(scores["close"])
    assert board.loc[1, "ci_low"] == pytest.approx(ci["ci_low"])


def test_compare_to_best_respects_the_direction_of_the_metric():
    board = compare_to_best({"a": [3.0, 3.1, 2.9], "b": [1.0, 1.1, 0.9]}, "rmse")
    assert board["model"].tolist() == ["b", "a"]  # lower error is better


def test_compare_to_best_pairs_by_fold_and_handles_missing_folds():
    scores = {
        "best": {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.93, 4: 0.94},
        "gappy": {0: 0.85, 1: 0.86, 3: 0.87},          # folds 2 and 4 failed
        "single": [None, 0.5, None, None, None],          # one fold left
        "broken": [],
    }
    board = compare_to_best(scores, "accuracy", folds=5).set_index("model")
    expected = corrected_resampled_ttest([0.85, 0.86, 0.87], [0.90, 0.92, 0.93], 1 / 4)
    assert board.loc["gappy", "p_value"] == pytest.approx(expected.p_value)
    assert board.loc["gappy", "folds"] == 3
    assert pd.isna(board.loc["single", "tied_with_best"])  # cannot be tested
    assert pd.isna(board.loc["broken", "tied_with_best"])
    assert board.loc["broken", "folds"] == 0
    # Holm's family is the models that could be tested: one here.
    assert board.loc["gappy", "p_adjusted"] == pytest.approx(expected.p_value)


def test_compare_to_best_identical_models_are_tied():
    board = compare_to_best({"x": [0.8, 0.9, 0.85], "y": [0.8, 0.9, 0.85]}, "accuracy")
    assert board["tied_with_best"].tolist() == [True, True]
    assert board.loc[1, "p_value"] == 1.0


def test_compare_to_best_alpha_is_configurable():
    scores = {"a": [0.90, 0.91, 0.92], "b": [0.88, 0.885, 0.91]}
    p = compare_to_best(scores, "accuracy").loc[1, "p_adjusted"]
    assert compare_to_best(scores, "accuracy", alpha=p / 2).loc[1, "tied_with_best"]
    assert not compare_to_best(scores, "accuracy", alpha=min(0.99, p * 2)).loc[
        1, "tied_with_best"]
    with pytest.raises(ValueError, match="alpha"):
        compare_to_best(scores, "accuracy", alpha=5)


# ------------------------------------------------------------ across datasets


def test_average_ranks_ties_and_direction():
    frame = pd.DataFrame({"a": [0.9, 0.8], "b": [0.9, 0.7], "c": [0.5, 0.6]}, index=["d1", "d2"])
    ranks, avg = average_ranks(frame, "accuracy")
    assert ranks.loc["d1"].tolist() == [1.5, 1.5, 3.0]  # a and b tie on d1
    assert avg.to_dict() == {"a": 1.25, "b": 1.75, "c": 3.0}
    _, errors = average_ranks(frame, "rmse")  # lower is better
    assert list(errors.index) == ["c", "b", "a"]
    with pytest.raises(ValueError, match="direction"):
        average_ranks(frame)


def test_friedman_hand_worked():
    # Rank sums 4, 9, 11: chi2 = 12/(3*4*4) * 218 - 48 = 6.5; chi2(2) tail = exp(-3.25).
    r = friedman_test(np.array([[1, 2, 3], [1, 2, 3], [1, 3, 2], [1, 2, 3]]))
    assert r["statistic"] == pytest.approx(6.5)
    assert r["p_value"] == pytest.approx(math.exp(-3.25))
    # Iman-Davenport: (N-1) chi2 / (N(k-1) - chi2) = 3 * 6.5 / 1.5 = 13 on (2, 6) df.
    assert r["f_statistic"] == pytest.approx(13.0)
    assert r["f_p_value"] == pytest.approx(stats.f.sf(13.0, 2, 6))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_friedman_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Rounded scores: plenty of ties within datasets.
    scores = pd.DataFrame(rng.integers(0, 4, size=(8, 5)) / 4,
                          columns=[f"m{i}" for i in range(5)])
    ranks, _ = average_ranks(scores, "accuracy")
    ours = friedman_test(ranks)
    scipy = stats.friedmanchisquare(*[scores[c] for c in scores.columns])
    assert ours["statistic"] == pytest.approx(scipy.statistic)
    assert ours["p_value"] == pytest.approx(scipy.pvalue)


def test_friedman_everything_tied():
    r = friedman_test(np.full((3, 4), 2.5))
    assert (r["statistic"], r["p_value"]) == (0.0, 1.0)


def test_friedman_needs_two_datasets_and_models():
    with pytest.raises(ValueError, match="at least 2 datasets"):
        friedman_test(np.array([[1.0, 2.0]]))


# Demšar (2006), Table 5(a): q_0.05 and q_0.10 for k = 2..10 models.
DEMSAR_Q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
DEMSAR_Q10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]


@pytest.mark.parametrize("k", range(2, 11))
def test_nemenyi_q_matches_demsar_table(k):
    assert nemenyi_q(k, 0.05) == pytest.approx(DEMSAR_Q05[k - 2], abs=1e-3)
    assert nemenyi_q(k, 0.10) == pytest.approx(DEMSAR_Q10[k - 2], abs=1e-3)


def test_nemenyi_cd_of_demsars_example():
    # Four C4.5 variants on 14 datasets: CD = 2.569 * sqrt(4 * 5 / (6 * 14)) = 1.25.
    assert nemenyi_cd(4, 14, 0.05) == pytest.approx(1.2536, abs=1e-3)
    with pytest.raises(ValueError, match="at least 2 models"):
        nemenyi_q(1)


def test_cd_groups():
    assert cd_groups({"a": 1.0, "b": 1.5, "c": 3.0, "d": 3.2}, cd=1.0) == [["a", "b"],
                                                                         ["c", "d"]]
    # Overlapping groups are both kept; contained ones are not.
    assert cd_groups({"a": 1.0, "b": 1.8, "c": 2.6}, cd=1.0) == [["a", "b"], ["b", "c"]]
    assert cd_groups({"a": 1.0, "b": 3.0}, cd=1.0) == []
    assert cd_groups({"a": 1.0, "b": 1.1, "c": 1.2}, cd=1.0) == [["a", "b", "c"]]


def test_compare_datasets_drops_models_missing_somewhere():
    frame = pd.DataFrame(
        {"a": [0.9, 0.8, 0.85, 0.8], "b": [0.7, 0.75, 0.7, 0.72], "c": [0.6, 0.5, 0.55, 0.5],
         "partial": [0.99, np.nan, 0.9, 0.9]},
        index=["d1", "d2", "d3", "d4"])
    result = compare_datasets(frame, "accuracy")
    assert result.dropped_models == ["partial"]
    assert result.models == ["a", "b", "c"]
    assert result.average_ranks == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert result.friedman["statistic"] == pytest.approx(8.0)  # perfect agreement, N=4, k=3
    assert result.critical_difference == pytest.approx(nemenyi_cd(3, 4))
    assert result.groups == [["a", "b"], ["b", "c"]]  # CD 1.657 > 1
    as_dict = result.to_dict()
    assert as_dict["scores"]["d1"]["a"] == 0.9
    assert as_dict["friedman"]["f_statistic"] is None
    with pytest.raises(ValueError, match="at least 2 datasets"):
        compare_datasets(frame.iloc[:1], "accuracy")


# ---------------------------------------------------------------------- trends


def _version(version: int, score: float, day: int, run: str) -> ModelVersion:
    return ModelVersion(
        id=version, name="wine-ridge", version=version, run_id=run, trial_id=1, dataset_id=1,
        metrics={"test": {"r2": score, "rmse": 1 - score}, "primary_metric": "r2"},
        params={}, input_schema={}, artifact_digest="0" * 64, artifact_size=1,
        tags={"dataset": "wine", "model": "ridge"}, description=None,
        created_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day))


def test_score_trends_from_registry_records():
    versions = [_version(1, 0.60, 0, "r1"), _version(2, 0.65, 3, "r2"),
                _version(3, 0.70, 7, "r3"), _version(4, 0.72, 9, "r4")]
    points, summary = score_trends(reversed(versions))  # order of input does not matter
    assert points["version"].tolist() == [1, 2, 3, 4]
    assert points["metric"].unique().tolist() == ["r2"]  # the version's primary metric
    assert points["change"].round(6).tolist()[1:] == [0.05, 0.05, 0.02]
    row = summary.iloc[0]
    assert (row["series"], row["points"], row["first"], row["last"]) == ("wine-ridge", 4, 0.6,
                                                                         0.72)
    tau = stats.kendalltau([0, 3, 7, 9], [0.60, 0.65, 0.70, 0.72])
    assert row["kendall_tau"] == pytest.approx(tau.statistic)
    assert row["trend_p_value"] == pytest.approx(tau.pvalue)
    # A falling error is an improvement too.
    _, errors = score_trends(versions, "rmse")
    assert errors.iloc[0]["kendall_tau"] == pytest.approx(-1.0)
    assert errors.iloc[0]["best"] == pytest.approx(0.28)


def test_score_trends_plain_rows_by_dataset_with_run_best():
    rows = [
        {"t": "2024-02-01T10:00:00", "run": "r1", "dataset": "iris", "model": "knn",
         "score": 0.90},
        {"t": "2024-02-01T10:00:01", "run": "r1", "dataset": "iris", "model": "svm",
         "score": 0.95},
        {"t": "2024-03-01T10:00:00", "run": "r2", "dataset": "iris", "model": "knn",
         "scores": {"accuracy": 0.97}},
        {"t": "2024-03-01T10:00:00", "run": "r2", "dataset": "iris", "model": "broken",
         "score": None},
    ]
    points, summary = score_trends(rows, "accuracy", by="dataset")
    assert len(points) == 3  # the row without a score is left out
    assert points["run_best"].tolist() == [0.95, 0.95, 0.97]
    assert summary["series"].tolist() == ["iris"]
    assert summary.iloc[0]["points"] == 2  # one point per run: its best
    assert math.isnan(summary.iloc[0]["kendall_tau"])  # fewer than 3 points: no trend test
    _, by_model = score_trends(rows, "accuracy")
    assert by_model.set_index("series").loc["knn", "change"] == pytest.approx(0.07)


def test_score_trends_rejects_unknown_items():
    with pytest.raises(TypeError, match="ModelVersion"):
        score_trends([42])
    with pytest.raises(ValueError, match="'by'"):
        score_trends([], by="run")
    points, summary = score_trends([])
    assert points.empty
    assert summary.empty


def test_a_confidence_interval_never_reaches_past_what_the_metric_can_take() -> None:
    # Accuracies near 1 over 5 folds: the t interval alone would reach 1.02.
    scores = {"a": [1.0, 1.0, 0.9655, 1.0, 1.0], "b": [0.0, 0.02, 0.0, 0.05, 0.0]}
    raw = mean_ci(scores["a"])
    assert raw["ci_high"] > 1.0
    board = compare_to_best(scores, "accuracy").set_index("model")
    assert board.loc["a", "ci_high"] == 1.0
    assert board.loc["a", "ci_low"] == pytest.approx(raw["ci_low"])
    assert board.loc["b", "ci_low"] == 0.0  # and not below 0
    # An error is at least 0; r2 at most 1 and unbounded below.
    rmse = compare_to_best({"m": [0.01, 0.2, 0.01]}, "rmse").set_index("model")
    assert rmse.loc["m", "ci_low"] == 0.0
    r2 = compare_to_best({"m": [0.99, 1.0, 0.90]}, "r2").set_index("model")
    assert r2.loc["m", "ci_high"] == 1.0
    assert r2.loc["m", "ci_low"] < 0.9
