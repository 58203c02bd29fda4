"""Figure builders: the traces, titles and markings users read in the report and GUI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fleetlearn.evaluation import score_trends
from fleetlearn.reports import (
    COLORS,
    INFERENCE_FIELDS,
    confusion_matrix_figure,
    cost_quality_figure,
    critical_difference_figure,
    curve_figure,
    fold_scores_figure,
    inference_figure,
    permutation_importance_figure,
    precision_recall_figure,
    predicted_vs_actual_figure,
    residuals_figure,
    roc_figure,
    trends_figure,
)
from fleetlearn.reports._figures import MAX_POINTS, _frontier


def test_fold_scores_marks_best_tied_worse_and_untested():
    fig = fold_scores_figure(
        {"a": [0.9, 0.92, 0.91], "b": [0.9, None, 0.88], "c": [0.6, 0.61, 0.62], "d": [0.5]},
        "accuracy", tied={"a": True, "b": True, "c": False, "d": None}, best="a",
        title="iris: accuracy per fold")
    assert fig.layout.title.text == "iris: accuracy per fold"
    assert [t.name for t in fig.data] == ["a (best)", "b (tied with best)",
                                         "c (worse than best)", "d (not tested)"]
    assert [t.marker.color for t in fig.data] == [COLORS["best"], COLORS["tied"],
                                                  COLORS["worse"], COLORS["untested"]]
    assert list(fig.data[1].y) == [0.9, 0.88]  # a failed fold is not drawn as a score
    assert fig.data[0].boxpoints == "all"  # every fold visible, not only the box


def test_fold_scores_without_marking_uses_model_names():
    fig = fold_scores_figure({"ridge": [0.5, 0.6]}, "r2")
    assert [t.name for t in fig.data] == ["ridge"]
    assert fig.layout.yaxis.title.text == "r2"


def test_staged_training_curve_has_train_and_validation():
    curve = {"kind": "staged", "x_label": "stage", "x": [1, 5, 10], "train": [0.7, 0.9, 1.0],
             "validation": [0.68, 0.85, None], "metric": "accuracy"}
    fig = curve_figure(curve, title="iris / gb: accuracy during training")
    assert [t.name for t in fig.data] == ["train", "validation"]
    assert list(fig.data[0].x) == [1, 5, 10]
    assert fig.layout.xaxis.title.text == "stage"
    assert fig.layout.title.text == "iris / gb: accuracy during training"


def test_mlp_loss_curve_puts_the_validation_score_on_a_second_axis():
    curve = {"kind": "loss_curve", "x_label": "epoch", "x": [1, 2, 3], "train": [0.9, 0.6, 0.5],
             "validation": [0.7, 0.8, 0.85], "metric": "loss", "validation_metric": "accuracy"}
    fig = curve_figure(curve)
    assert [t.name for t in fig.data] == ["train", "validation accuracy"]
    assert fig.data[1].yaxis == "y2"
    assert fig.layout.title.text == "loss during training"


def test_learning_curve_title_and_axis():
    curve = {"kind": "learning_curve", "x_label": "training rows", "x": [10, 50, 100],
             "train": [1.0, 0.95, 0.93], "validation": [0.7, 0.85, 0.9], "metric": "f1_macro"}
    fig = curve_figure(curve)
    assert fig.layout.title.text == "learning curve (f1_macro)"
    assert fig.layout.xaxis.title.text == "training rows"


def test_cost_quality_frontier():
    rows = [{"model": "fast_bad", "fit_time_s": 0.01, "score": 0.70},
            {"model": "slow_good", "fit_time_s": 2.0, "score": 0.95, "is_best": True},
            {"model": "slow_bad", "fit_time_s": 3.0, "score": 0.60, "tied_with_best": False},
            {"model": "mid", "fit_time_s": 0.5, "score": 0.90, "tied_with_best": True},
            {"model": "no_time", "fit_time_s": None, "score": 0.99}]
    fig = cost_quality_figure(rows, "accuracy", title="d: fit time vs accuracy")
    models, frontier = fig.data
    assert list(models.text) == ["fast_bad", "slow_good", "slow_bad", "mid"]
    assert list(frontier.x) == [0.01, 0.5, 2.0]  # slow_bad is dominated
    assert list(models.marker.color)[1] == COLORS["best"]
    assert fig.layout.xaxis.type == "log"
    # Lower-is-better metrics keep the lowest errors on the frontier.
    assert _frontier([(1.0, 5.0), (2.0, 3.0), (3.0, 4.0)], greater=False) == [(1.0, 5.0),
                                                                              (2.0, 3.0)]


def test_confusion_matrix_counts_in_label_order():
    fig = confusion_matrix_figure(["cat", "dog", "dog", "bird"], ["cat", "dog", "cat", "bird"],
                                  labels=["bird", "cat", "dog"], title="t")
    heat = fig.data[0]
    assert list(heat.x) == ["bird", "cat", "dog"]
    assert heat.z.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert heat.customdata[2].tolist() == [0.0, 0.5, 0.5]  # share of the true class


def test_roc_and_pr_binary_and_multiclass():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 50)
    good = np.column_stack([1 - (y * 0.6 + rng.random(100) * 0.4),
                            y * 0.6 + rng.random(100) * 0.4])
    fig = roc_figure(y, {"good": (good, [0, 1]), "svm": (good[:, 1] - 0.5, [0, 1])})
    assert [t.name for t in fig.data] == [
        f"good (AUC {roc_auc_score(y, good[:, 1]):.3f})",
        f"svm (AUC {roc_auc_score(y, good[:, 1]):.3f})", "chance"]
    pr = precision_recall_figure(y, {"good": (good, [0, 1])}, title="d: precision-recall")
    assert pr.data[0].name.startswith("good (AP ")
    assert pr.data[-1].name == "prevalence"
    assert list(pr.data[-1].y) == [0.5, 0.5]
    # Three classes: one micro-averaged curve per model.
    y3 = np.array(["a", "b", "c"] * 20)
    proba = np.eye(3)[np.array([0, 1, 2] * 20)] * 0.8 + 0.1
    fig3 = roc_figure(y3, {"m": (proba, ["a", "b", "c"])})
    assert fig3.data[0].name == "m (AUC 1.000)"


def test_regression_figures_draw_every_model_and_thin_big_tables():
    y = np.linspace(0, 10, 5000)
    fig = predicted_vs_actual_figure(y, {"ridge": y + 1, "forest": y - 1}, title="p")
    assert [t.name for t in fig.data] == ["ridge", "forest", "identity"]
    assert len(fig.data[0].x) == MAX_POINTS
    # The same rows for every model, so the points line up.
    assert list(fig.data[0].x) == list(fig.data[1].x)
    res = residuals_figure(y[:10], {"ridge": y[:10] + 1})
    assert set(np.round(res.data[0].y, 9)) == {-1.0}
    assert res.layout.yaxis.title.text == "residual (actual - predicted)"


def test_permutation_importance_largest_on_top():
    fig = permutation_importance_figure({f"f{i}": (i / 10, 0.01) for i in range(30)}, "r2",
                                        top=5, title="imp")
    bar = fig.data[0]
    assert list(bar.y) == ["f25", "f26", "f27", "f28", "f29"]  # plotly draws the last on top
    assert list(bar.error_x.array) == [0.01] * 5


def test_critical_difference_diagram():
    fig = critical_difference_figure({"a": 1.0, "b": 1.8, "c": 3.2}, cd=1.0,
                                     groups=[["a", "b"]], title="cd")
    models, cd_bar, groups = fig.data
    assert list(models.text) == ["a", "b", "c"]
    assert list(cd_bar.x) == [1, 2.0]
    assert cd_bar.text[1] == "CD = 1.000"
    assert [x for x in groups.x if x is not None] == pytest.approx([0.97, 1.83])
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["a (1.00)", "b (1.80)", "c (3.20)"]


def test_trends_figure_one_line_per_series_and_the_best_of_each_run():
    rows = [{"t": f"2024-0{m}-01", "run": f"r{m}", "dataset": "d", "model": name,
             "version": m, "score": s}
            for m, name, s in [(1, "knn", 0.8), (1, "svm", 0.85), (2, "knn", 0.9),
                               (3, "svm", 0.88)]]
    points, _ = score_trends(rows, "accuracy")
    fig = trends_figure(points, "accuracy", title="d: accuracy over time")
    assert [t.name for t in fig.data] == ["knn", "svm", "best of each run"]
    assert list(fig.data[-1].y) == [0.85, 0.9, 0.88]
    assert trends_figure(points.iloc[:0], "accuracy").data == ()


def _window(minute: int, **extra: object) -> dict[str, object]:
    base = {"t": f"2024-05-01T12:{minute:02d}:00Z", "model": "wine-ridge", "version": 2,
            "count": 200, "errors": 4, "p50_ms": 2.0, "p95_ms": 6.0, "p99_ms": 9.5,
            "rps": 3.3, "cpu_percent": 35.0, "rss_bytes": 300 * 2**20}
    base.update(extra)
    return base


def test_inference_figure_panels_and_series():
    windows = [_window(0), _window(1, errors=0), _window(2, p99_ms=None),
               _window(0, model="iris-knn", version=1)]
    assert set(windows[0]) == set(INFERENCE_FIELDS)  # the documented structure
    fig = inference_figure(windows)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["latency (ms): p50 solid, p95 dashed, p99 dotted",
                      "throughput (requests/s)", "error rate (%)", "CPU (%)",
                      "memory (MiB resident)", "requests per window"]
    names = [t.name for t in fig.data]
    assert names[:3] == ["iris-knn:1 p50", "iris-knn:1 p95", "iris-knn:1 p99"]
    errors = next(t for t in fig.data if t.name == "wine-ridge:2 errors")
    assert list(errors.y) == [2.0, 0.0, 2.0]  # 4 of 200 requests = 2 %
    rss = next(t for t in fig.data if t.name == "wine-ridge:2 RSS")
    assert list(rss.y) == [300.0, 300.0, 300.0]
    p99 = next(t for t in fig.data if t.name == "wine-ridge:2 p99")
    assert pd.isna(p99.y[2])  # a missing number is a gap, not a zero


def test_inference_figure_rejects_windows_without_a_time():
    with pytest.raises(ValueError, match="window 1 has no 't'"):
        inference_figure([_window(0), {"model": "m", "p50_ms": 1.0}])
    with pytest.raises(ValueError, match="not a time"):
        inference_figure([_window(0, t="yesterday-ish")])
    assert inference_figure([]).data == ()
