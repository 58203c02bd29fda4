"""Fold summaries and leaderboards: the numbers and the ranking users read."""

from __future__ import annotations

import math

import pytest

from fleetlearn.errors import ConfigError
from fleetlearn.evaluation import leaderboard, summarize_folds


def _row(model, folds, dataset="houses", status="ok", test=None, fit_time=1.5,
         predict=2e-6, error=None):
    return {"dataset": dataset, "model": model, "status": status, "fold_scores": folds,
            "test_scores": test, "fit_time": fit_time, "predict_time_per_row": predict,
            "error": error}


def test_summarize_folds_mean_sample_std_and_count():
    summary = summarize_folds([{"r2": 0.5, "rmse": 2.0}, {"r2": 0.7, "rmse": 4.0},
                               {"r2": 0.9, "rmse": 6.0}])
    assert summary["r2"]["mean"] == pytest.approx(0.7)
    assert summary["r2"]["std"] == pytest.approx(0.2)  # ddof=1
    assert summary["rmse"] == {"mean": 4.0, "std": 2.0, "n": 3}


def test_summarize_one_fold_has_zero_std():
    assert summarize_folds([{"accuracy": 0.8}]) == {"accuracy": {"mean": 0.8, "std": 0.0,
                                                                 "n": 1}}


def test_summarize_folds_skips_missing_and_non_finite_values():
    summary = summarize_folds([{"accuracy": 0.8, "roc_auc": 0.9}, {"accuracy": 0.6},
                               {"accuracy": float("nan")}])
    assert summary["accuracy"] == {"mean": pytest.approx(0.7), "std": pytest.approx(0.1414,
                                   abs=1e-4), "n": 2}
    assert summary["roc_auc"]["n"] == 1
    assert summarize_folds([]) == {}


def test_leaderboard_columns():
    board = leaderboard([_row("ridge", [{"r2": 0.5}], test={"r2": 0.4})], "r2", "regression")
    assert list(board.columns) == ["rank", "dataset", "model", "r2_mean", "r2_std", "test_r2",
                                   "fit_time_s", "predict_ms_per_row", "folds", "status"]
    row = board.iloc[0]
    assert (row["rank"], row["test_r2"], row["folds"]) == (1, 0.4, 1)
    assert row["fit_time_s"] == 1.5
    assert row["predict_ms_per_row"] == pytest.approx(0.002)


def test_higher_r2_ranks_first():
    rows = [
        _row("lasso", [{"r2": 0.60}, {"r2": 0.62}]),
        _row("forest", [{"r2": 0.80}, {"r2": 0.84}]),
        _row("ridge", [{"r2": 0.70}, {"r2": 0.71}]),
    ]
    board = leaderboard(rows, "r2", "regression")
    assert board["model"].tolist() == ["forest", "ridge", "lasso"]
    assert board["rank"].tolist() == [1, 2, 3]
    assert board["r2_mean"].iloc[0] == pytest.approx(0.82)


def test_lower_rmse_ranks_first():
    rows = [
        _row("lasso", [{"rmse": 3.0}]),
        _row("forest", [{"rmse": 1.0}]),
        _row("ridge", [{"rmse": 2.0}]),
    ]
    board = leaderboard(rows, "rmse", "regression")
    assert board["model"].tolist() == ["forest", "ridge", "lasso"]
    assert board["rank"].tolist() == [1, 2, 3]


def test_log_loss_is_ranked_as_a_loss():
    rows = [_row("a", [{"log_loss": 0.9}]), _row("b", [{"log_loss": 0.3}])]
    assert leaderboard(rows, "log_loss", "classification")["model"].tolist() == ["b", "a"]


def test_failed_and_unscored_rows_come_last_without_rank():
    rows = [
        _row("broken", [], status="failed", fit_time=None, predict=None, error="boom"),
        _row("no_proba", [{"accuracy": 0.9}]),  # ranked by roc_auc it has no value
        _row("good", [{"accuracy": 0.8, "roc_auc": 0.85}]),
        _row("best", [{"accuracy": 0.7, "roc_auc": 0.95}], status="partial"),
    ]
    board = leaderboard(rows, "roc_auc", "classification")
    assert board["model"].tolist() == ["best", "good", "no_proba", "broken"]
    assert board["rank"].iloc[:2].tolist() == [1, 2]
    assert math.isnan(board["rank"].iloc[2])
    assert math.isnan(board["rank"].iloc[3])
    broken = board.iloc[3]
    assert broken["status"] == "failed"
    assert broken["folds"] == 0
    assert math.isnan(broken["fit_time_s"])
    assert math.isnan(broken["test_roc_auc"])


def test_a_failed_row_is_never_ranked_even_with_scores():
    rows = [_row("flaky", [{"r2": 0.99}], status="failed"), _row("steady", [{"r2": 0.5}])]
    board = leaderboard(rows, "r2", "regression")
    assert board["model"].tolist() == ["steady", "flaky"]
    assert math.isnan(board["rank"].iloc[1])


def test_ranks_are_per_dataset_and_datasets_are_sorted():
    rows = [
        _row("a", [{"accuracy": 0.9}], dataset="wine"),
        _row("b", [{"accuracy": 0.8}], dataset="wine"),
        _row("a", [{"accuracy": 0.6}], dataset="iris"),
        _row("b", [{"accuracy": 0.95}], dataset="iris"),
    ]
    board = leaderboard(rows, "accuracy", "classification")
    assert board[["dataset", "model", "rank"]].values.tolist() == [
        ["iris", "b", 1], ["iris", "a", 2], ["wine", "a", 1], ["wine", "b", 2]]


def test_ties_share_the_best_rank():
    rows = [_row("a", [{"r2": 0.5}]), _row("b", [{"r2": 0.5}]), _row("c", [{"r2": 0.1}])]
    assert leaderboard(rows, "r2", "regression")["rank"].tolist() == [1, 1, 3]


def test_empty_leaderboard_keeps_its_columns():
    board = leaderboard([], "accuracy", "classification")
    assert board.empty
    assert "accuracy_mean" in board.columns


def test_leaderboard_checks_the_metric():
    with pytest.raises(ConfigError, match="'rmse' is a regression metric"):
        leaderboard([_row("a", [{"rmse": 1.0}])], "rmse", "classification")
