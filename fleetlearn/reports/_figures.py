"""Figure builders: plain data in, a Plotly ``Figure`` out.

Every function here is pure: no registry, no files, no Ray. The HTML report, the PNG
export and (later) the GUI call the same functions, so a figure looks the same
everywhere. Inputs are the plain structures the registry journal holds (fold
scores, curve payloads) or arrays computed on a test split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.metrics import (
    auc,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_curve,
)
from sklearn.preprocessing import label_binarize

__all__ = [
    "COLORS",
    "INFERENCE_FIELDS",
    "confusion_matrix_figure",
    "cost_quality_figure",
    "critical_difference_figure",
    "curve_figure",
    "fold_scores_figure",
    "inference_figure",
    "permutation_importance_figure",
    "precision_recall_figure",
    "predicted_vs_actual_figure",
    "residuals_figure",
    "roc_figure",
    "trends_figure",
]

#: Colours of the tied-with-best marking, shared by every figure.
COLORS = {"best": "#2ca02c", "tied": "#1f77b4", "worse": "#9a9a9a", "untested": "#ff7f0e",
          "train": "#1f77b4", "validation": "#d62728", "frontier": "#2ca02c"}

#: Most points drawn per scatter trace: more make a heavy file and no better picture.
MAX_POINTS = 2000

_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
           "height": 420}


def _figure(title: str, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title={"text": title}, **{**_LAYOUT, **layout})
    return fig


def _state(tied: Any, best: bool = False) -> str:
    if best:
        return "best"
    if tied is None or tied is pd.NA or (isinstance(tied, float) and math.isnan(tied)):
        return "untested"
    return "tied" if bool(tied) else "worse"


_STATE_TEXT = {"best": "best", "tied": "tied with best", "worse": "worse than best",
               "untested": "not tested"}


def _thin(n: int, limit: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` rows, evenly random, in order."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def _thin_curve(x: np.ndarray, y: np.ndarray, limit: int = 500) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= limit:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, limit).round().astype(int))
    return x[keep], y[keep]


# ------------------------------------------------------------ cross-validation


def fold_scores_figure(
    fold_scores: Mapping[str, Sequence[float | None]],
    metric: str,
    tied: Mapping[str, Any] | None = None,
    best: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Score per fold per model (box with every fold shown), tied-with-best marked.

    Parameters
    ----------
    fold_scores : mapping
        Model -> its score on each fold (None for a failed fold), in display order.
    metric : str
        Axis label.
    tied : mapping, optional
        Model -> ``tied_with_best`` (True, False, or None when it could not be
        tested); colours the boxes and names the state in the legend.
    best : str, optional
        The best model (drawn in its own colour).

    Examples
    --------
    >>> fig = fold_scores_figure({"a": [0.9, 0.92], "b": [0.7, 0.72]}, "accuracy",
    ...                          tied={"a": True, "b": False}, best="a")
    >>> [t.name for t in fig.data]
    ['a (best)', 'b (worse than best)']
    """
    fig = _figure(title or f"{metric} per fold", yaxis_title=metric, xaxis_title="model",
                  showlegend=True)
    tied = tied or {}
    for model, scores in fold_scores.items():
        values = [float(v) for v in scores if v is not None and math.isfinite(float(v))]
        state = _state(tied.get(model), best=model == best) if tied or best else "tied"
        label = f"{model} ({_STATE_TEXT[state]})" if tied or best else str(model)
        fig.add_trace(go.Box(y=values, name=label, x=[str(model)] * len(values),
                             boxpoints="all", jitter=0.3, pointpos=0,
                             marker_color=COLORS[state], line_color=COLORS[state],
                             hovertemplate=f"{model}<br>{metric}=%{{y:.4f}}<extra></extra>"))
    return fig


def curve_figure(curve: Mapping[str, Any], title: str | None = None) -> go.Figure:
    """A training curve (per stage / epoch) or a learning curve (per training size).

    Takes the ``curve`` payload the journal stores (``final`` unit for iterative
    models, ``curve`` unit for the others): ``{"kind", "x_label", "x", "train",
    "validation", "metric"}``. An MLP's loss curve has its validation score (a
    different metric) on a second axis.

    Examples
    --------
    >>> fig = curve_figure({"kind": "staged", "x_label": "stage", "x": [1, 2, 3],
    ...                     "train": [0.8, 0.9, 0.95], "validation": [0.78, 0.85, 0.86],
    ...                     "metric": "accuracy"})
    >>> [t.name for t in fig.data]
    ['train', 'validation']
    """
    kind = curve.get("kind", "curve")
    metric = str(curve.get("metric", ""))
    default = (f"learning curve ({metric})" if kind == "learning_curve"
               else f"{metric} during training")
    x_label = str(curve.get("x_label", "x"))
    validation = curve.get("validation")
    secondary = kind == "loss_curve" and validation is not None
    if secondary:
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.update_layout(title={"text": title or default}, **_LAYOUT)
    else:
        fig = _figure(title or default)
    x = list(curve.get("x") or [])
    fig.add_trace(go.Scatter(x=x, y=list(curve.get("train") or []), name="train",
                             mode="lines+markers", line_color=COLORS["train"]))
    if validation is not None:
        name = ("validation " + str(curve.get("validation_metric", ""))).strip() if secondary \
            else "validation"
        trace = go.Scatter(x=x[:len(validation)], y=list(validation), name=name,
                           mode="lines+markers", line_color=COLORS["validation"])
        if secondary:
            fig.add_trace(trace, secondary_y=True)
            fig.update_yaxes(title_text=str(curve.get("validation_metric", "")),
                             secondary_y=True)
        else:
            fig.add_trace(trace)
    fig.update_xaxes(title_text=x_label)
    if secondary:
        fig.update_yaxes(title_text=metric, secondary_y=False)
    else:
        fig.update_yaxes(title_text=metric)
    return fig


def _frontier(points: list[tuple[float, float]], greater: bool) -> list[tuple[float, float]]:
    """The cost/quality Pareto frontier: no other model is both faster and better."""
    out: list[tuple[float, float]] = []
    best = -math.inf
    for cost, score in sorted(points, key=lambda p: (p[0], -p[1] if greater else p[1])):
        value = score if greater else -score
        if value > best:
            out.append((cost, score))
            best = value
    return out


def cost_quality_figure(
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    greater: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Mean fit time vs mean CV score, with the cost/quality frontier.

    Parameters
    ----------
    rows : sequence of dict
        ``{"model", "fit_time_s", "score"}`` and optionally ``"tied_with_best"`` and
        ``"is_best"``. Rows without a time or a score are skipped.
    greater : bool
        Whether a larger score is better (draws the right frontier).

    Examples
    --------
    >>> fig = cost_quality_figure([{"model": "a", "fit_time_s": 0.1, "score": 0.8},
    ...                            {"model": "b", "fit_time_s": 2.0, "score": 0.9}], "r2")
    >>> [t.name for t in fig.data]
    ['models', 'frontier']
    """
    fig = _figure(title or f"fit time vs {metric}", xaxis_title="mean fit time per fold (s)",
                  yaxis_title=f"mean CV {metric}")
    usable = [r for r in rows if r.get("fit_time_s") is not None and r.get("score") is not None
              and math.isfinite(float(r["fit_time_s"])) and math.isfinite(float(r["score"]))]
    states = [_state(r.get("tied_with_best"), bool(r.get("is_best"))) for r in usable]
    fig.add_trace(go.Scatter(
        x=[float(r["fit_time_s"]) for r in usable], y=[float(r["score"]) for r in usable],
        mode="markers+text", name="models", text=[str(r["model"]) for r in usable],
        textposition="top center", marker={"size": 11, "color": [COLORS[s] for s in states]},
        customdata=[_STATE_TEXT[s] for s in states],
        hovertemplate="%{text}<br>fit %{x:.3g} s<br>" + metric
        + " %{y:.4f}<br>%{customdata}<extra></extra>"))
    front = _frontier([(float(r["fit_time_s"]), float(r["score"])) for r in usable], greater)
    fig.add_trace(go.Scatter(x=[p[0] for p in front], y=[p[1] for p in front], name="frontier",
                             mode="lines", line={"dash": "dash", "color": COLORS["frontier"],
                                                 "shape": "hv"}))
    if usable and min(float(r["fit_time_s"]) for r in usable) > 0:
        fig.update_xaxes(type="log")
    return fig


# ------------------------------------------------------------------ test split


def confusion_matrix_figure(y_true: Sequence[Any], y_pred: Sequence[Any],
                            labels: Sequence[Any] | None = None,
                            title: str | None = None) -> go.Figure:
    """Confusion matrix (counts, with the share of each true class on hover).

    Examples
    --------
    >>> fig = confusion_matrix_figure(["a", "b", "b"], ["a", "b", "a"])
    >>> fig.data[0].z.tolist()
    [[1, 0], [1, 1]]
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
    matrix = confusion_matrix(y_true, y_pred, labels=list(labels))
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    names = [str(v) for v in labels]
    fig = _figure(title or "confusion matrix", xaxis_title="predicted", yaxis_title="true",
                  height=max(360, 60 * len(names) + 160))
    fig.add_trace(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", name="counts",
                             text=matrix, texttemplate="%{text}", customdata=share,
                             hovertemplate="true %{y}<br>predicted %{x}<br>%{z} rows "
                                           "(%{customdata:.1%} of true)<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return fig


def _binary_targets(y_true: np.ndarray, scores: Any, classes: Sequence[Any]
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """(0/1 truth, score) for a binary problem, micro-averaged one-vs-rest otherwise."""
    scores = np.asarray(scores, dtype=float)
    classes = list(classes)
    if len(classes) == 2:
        column = scores if scores.ndim == 1 else scores[:, -1]
        return (y_true == classes[1]).astype(int), column.ravel()
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        return None
    truth = label_binarize(y_true, classes=classes)
    return truth.ravel(), scores.ravel()


def roc_figure(y_true: Sequence[Any], scores: Mapping[str, tuple[Any, Sequence[Any]]],
               title: str | None = None) -> go.Figure:
    """ROC curves of several models on the same rows.

    Parameters
    ----------
    y_true : sequence
        True labels.
    scores : mapping
        Model -> ``(scores, classes)``: ``predict_proba`` output (columns in the
        order of ``classes``) or binary ``decision_function`` output. Binary
        problems use ``classes[1]`` as the positive class; multiclass ones the
        micro-average over classes (one-vs-rest).

    Examples
    --------
    >>> fig = roc_figure([0, 1, 1, 0], {"m": ([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6],
    ...                                       [0.7, 0.3]], [0, 1])})
    >>> [t.name for t in fig.data]
    ['m (AUC 1.000)', 'chance']
    """
    y = np.asarray(y_true)
    fig = _figure(title or "ROC curves", xaxis_title="false positive rate",
                  yaxis_title="true positive rate")
    for model, (values, classes) in scores.items():
        pair = _binary_targets(y, values, classes)
        if pair is None or len(np.unique(pair[0])) < 2:
            continue
        fpr, tpr, _ = roc_curve(*pair)
        area = auc(fpr, tpr)
        fpr, tpr = _thin_curve(fpr, tpr)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{model} (AUC {area:.3f})"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                             line={"dash": "dot", "color": COLORS["worse"]}))
    return fig


def precision_recall_figure(y_true: Sequence[Any],
                            scores: Mapping[str, tuple[Any, Sequence[Any]]],
                            title: str | None = None) -> go.Figure:
    """Precision-recall curves of several models (same inputs as :func:`roc_figure`).

    Examples
    --------
    >>> fig = precision_recall_figure([0, 1, 1, 0], {"m": ([0.1, 0.8, 0.6, 0.3], [0, 1])})
    >>> [t.name for t in fig.data]
    ['m (AP 1.000)', 'prevalence']
    """
    y = np.asarray(y_true)
    fig = _figure(title or "precision-recall curves", xaxis_title="recall",
                  yaxis_title="precision")
    prevalence = None
    for model, (values, classes) in scores.items():
        pair = _binary_targets(y, values, classes)
        if pair is None or len(np.unique(pair[0])) < 2:
            continue
        precision, recall, _ = precision_recall_curve(*pair)
        ap = average_precision_score(*pair)
        prevalence = float(pair[0].mean())
        recall, precision = _thin_curve(recall, precision)
        fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines",
                                 name=f"{model} (AP {ap:.3f})"))
    if prevalence is not None:
        fig.add_trace(go.Scatter(x=[0, 1], y=[prevalence, prevalence], mode="lines",
                                 name="prevalence", line={"dash": "dot",
                                                          "color": COLORS["worse"]}))
    fig.update_yaxes(range=[0, 1.05])
    return fig


def predicted_vs_actual_figure(y_true: Sequence[float], predictions: Mapping[str, Sequence[float]],
                               title: str | None = None) -> go.Figure:
    """Predicted against actual values for several regressors, with the identity line.

    At most ``MAX_POINTS`` rows are drawn (the same rows for every model).

    Examples
    --------
    >>> fig = predicted_vs_actual_figure([1.0, 2.0], {"ridge": [1.1, 1.9]})
    >>> [t.name for t in fig.data]
    ['ridge', 'identity']
    """
    y = np.asarray(y_true, dtype=float)
    rows = _thin(len(y))
    fig = _figure(title or "predicted vs actual", xaxis_title="actual",
                  yaxis_title="predicted")
    for model, pred in predictions.items():
        p = np.asarray(pred, dtype=float)
        fig.add_trace(go.Scatter(x=y[rows], y=p[rows], mode="markers", name=str(model),
                                 marker={"size": 5, "opacity": 0.6}))
    if len(y):
        lo = float(min(y.min(), *(np.min(p) for p in predictions.values())))
        hi = float(max(y.max(), *(np.max(p) for p in predictions.values())))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="identity",
                                 line={"dash": "dot", "color": COLORS["worse"]}))
    return fig


def residuals_figure(y_true: Sequence[float], predictions: Mapping[str, Sequence[float]],
                     title: str | None = None) -> go.Figure:
    """Residuals (actual - predicted) against predicted values, with the zero line.

    Examples
    --------
    >>> fig = residuals_figure([1.0, 2.0], {"ridge": [1.1, 1.9]})
    >>> [round(float(v), 6) for v in fig.data[0].y]
    [-0.1, 0.1]
    """
    y = np.asarray(y_true, dtype=float)
    rows = _thin(len(y))
    fig = _figure(title or "residuals", xaxis_title="predicted",
                  yaxis_title="residual (actual - predicted)")
    for model, pred in predictions.items():
        p = np.asarray(pred, dtype=float)
        fig.add_trace(go.Scatter(x=p[rows], y=(y - p)[rows], mode="markers", name=str(model),
                                 marker={"size": 5, "opacity": 0.6}))
    fig.add_hline(y=0, line_dash="dot", line_color=COLORS["worse"])
    return fig


def permutation_importance_figure(importances: Mapping[str, tuple[float, float]],
                                  metric: str, top: int = 20,
                                  title: str | None = None) -> go.Figure:
    """Permutation feature importance: the drop of ``metric`` when a column is shuffled.

    Parameters
    ----------
    importances : mapping
        Feature -> ``(mean drop, std over repeats)``; the largest ``top`` are drawn,
        largest on top.

    Examples
    --------
    >>> fig = permutation_importance_figure({"age": (0.10, 0.01), "bmi": (0.30, 0.02)}, "r2")
    >>> list(fig.data[0].y)
    ['age', 'bmi']
    """
    items = sorted(importances.items(), key=lambda p: p[1][0], reverse=True)[:top][::-1]
    fig = _figure(title or "permutation feature importance",
                  xaxis_title=f"decrease in {metric} when shuffled",
                  height=max(320, 28 * len(items) + 140))
    fig.add_trace(go.Bar(x=[v[0] for _, v in items], y=[str(k) for k, _ in items],
                         orientation="h", name="importance",
                         error_x={"type": "data", "array": [v[1] for _, v in items]},
                         marker_color=COLORS["tied"]))
    return fig


# -------------------------------------------------------------- across datasets


def critical_difference_figure(average_ranks: Mapping[str, float], cd: float,
                               groups: Sequence[Sequence[str]] = (),
                               title: str | None = None) -> go.Figure:
    """Critical-difference diagram (Demšar 2006): average ranks on an axis, the CD
    as a bar, and a thick line joining models that are not significantly different.

    Parameters
    ----------
    average_ranks : mapping
        Model -> average rank (1 = best).
    cd : float
        Nemenyi critical difference.
    groups : sequence of sequences
        Groups of models not significantly different (:func:`cd_groups`).

    Examples
    --------
    >>> fig = critical_difference_figure({"a": 1.2, "b": 1.9, "c": 2.9}, cd=1.0,
    ...                                  groups=[["a", "b"]])
    >>> [t.name for t in fig.data]
    ['models', 'critical difference', 'not significantly different']
    """
    items = sorted(average_ranks.items(), key=lambda p: (p[1], str(p[0])))
    k = len(items)
    fig = _figure(title or "critical difference diagram", height=max(260, 40 * k + 160),
                  showlegend=True)
    # Models on the rank axis at y=0, their names staggered below.
    ys = [-(i + 1) for i in range(k)]
    fig.add_trace(go.Scatter(
        x=[r for _, r in items], y=[0] * k, mode="markers", name="models",
        marker={"size": 10, "color": COLORS["tied"]}, text=[str(m) for m, _ in items],
        hovertemplate="%{text}: average rank %{x:.3f}<extra></extra>"))
    for (model, rank), y in zip(items, ys, strict=True):
        fig.add_shape(type="line", x0=rank, x1=rank, y0=0, y1=y,
                      line={"color": COLORS["worse"], "width": 1})
        fig.add_annotation(x=rank, y=y, text=f"{model} ({rank:.2f})", showarrow=False,
                           xanchor="left", xshift=4, yanchor="middle")
    top = 1.2
    fig.add_trace(go.Scatter(x=[1, 1 + cd], y=[top, top], mode="lines+text",
                             name="critical difference", line={"color": "black", "width": 3},
                             text=["", f"CD = {cd:.3f}"], textposition="middle right"))
    xs: list[float | None] = []
    gy: list[float | None] = []
    for i, group in enumerate(groups):
        ranks = [average_ranks[m] for m in group]
        y = 0.3 + 0.25 * i
        xs += [min(ranks) - 0.03, max(ranks) + 0.03, None]
        gy += [y, y, None]
    fig.add_trace(go.Scatter(x=xs, y=gy, mode="lines", name="not significantly different",
                             line={"color": COLORS["validation"], "width": 6}))
    fig.update_xaxes(title_text="average rank (1 = best)", range=[0.8, max(k, 1 + cd) + 0.6],
                     dtick=1)
    fig.update_yaxes(visible=False, range=[-(k + 0.8), top + 0.4])
    return fig


def trends_figure(points: pd.DataFrame, metric: str, by: str = "model",
                  title: str | None = None) -> go.Figure:
    """Scores across runs and versions over time, one line per series, and the best of
    each run.

    Parameters
    ----------
    points : pandas.DataFrame
        The first frame :func:`fleetlearn.evaluation.score_trends` returns (``t``,
        ``run``, ``model``, ``version``, ``score``, ``run_best``).

    Examples
    --------
    >>> from fleetlearn.evaluation import score_trends
    >>> points, _ = score_trends([{"t": "2024-01-01", "run": "r1", "model": "m", "score": 0.8},
    ...                           {"t": "2024-02-01", "run": "r2", "model": "m", "score": 0.9}],
    ...                          "accuracy")
    >>> [t.name for t in trends_figure(points, "accuracy").data]
    ['m', 'best of each run']
    """
    fig = _figure(title or f"{metric} across runs and versions", xaxis_title="time",
                  yaxis_title=metric)
    if points.empty:
        return fig
    for series, part in points.groupby(points[by].astype(str), sort=True):
        labels = [f"{series} v{v} (run {r})" if v is not None and not pd.isna(v)
                  else f"{series} (run {r})" for v, r in zip(part["version"], part["run"],
                                                           strict=True)]
        fig.add_trace(go.Scatter(x=part["t"], y=part["score"], mode="lines+markers",
                                 name=str(series), text=labels,
                                 hovertemplate="%{text}<br>%{y:.4f}<extra></extra>"))
    best = points.drop_duplicates(subset=["run", "dataset"]).sort_values("t")
    fig.add_trace(go.Scatter(x=best["t"], y=best["run_best"], mode="lines+markers",
                             name="best of each run",
                             line={"dash": "dash", "color": "black"}))
    return fig


# ---------------------------------------------------------------- inference

#: Keys of one inference statistics window (what serving's ``/v1/stats`` "series" holds).
INFERENCE_FIELDS = ("t", "model", "version", "count", "errors", "p50_ms", "p95_ms", "p99_ms",
                    "rps", "cpu_percent", "rss_bytes")


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def inference_figure(windows: Sequence[Mapping[str, Any]],
                     title: str | None = None) -> go.Figure:
    """Inference statistics over time: latency percentiles, throughput, error rate,
    CPU and memory, one series per served ``model:version``.

    Parameters
    ----------
    windows : sequence of dict
        One per time window: ``{"t": ISO time, "model": str, "version": int,
        "count": requests, "errors": failed requests, "p50_ms", "p95_ms", "p99_ms":
        latency percentiles in milliseconds, "rps": requests per second,
        "cpu_percent": process CPU (%), "rss_bytes": resident memory}``. Missing
        numbers leave a gap; ``t`` is required.

    Raises
    ------
    ValueError
        A window without ``t``, or a ``t`` that is not a time.

    Examples
    --------
    >>> fig = inference_figure([{"t": "2024-05-01T12:00:00Z", "model": "m", "version": 1,
    ...                          "count": 10, "errors": 1, "p50_ms": 2.0, "p95_ms": 5.0,
    ...                          "p99_ms": 9.0, "rps": 0.17, "cpu_percent": 12.0,
    ...                          "rss_bytes": 2**28}])
    >>> sorted({t.name for t in fig.data})[:3]
    ['m:1 CPU', 'm:1 RSS', 'm:1 errors']
    """
    rows = []
    for i, w in enumerate(windows):
        if "t" not in w or w["t"] in (None, ""):
            raise ValueError(f"Inference window {i} has no 't' (its time): every window needs "
                             f"one, as an ISO 8601 string. Keys found: {sorted(w)}.")
        try:
            t = pd.Timestamp(w["t"])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"Inference window {i} has t={w['t']!r}, which is not a time: "
                             "use ISO 8601, e.g. '2024-05-01T12:00:00Z'.") from exc
        count, errors = _num(w.get("count")), _num(w.get("errors"))
        rss = _num(w.get("rss_bytes"))
        rows.append({
            "t": t, "series": f"{w.get('model', 'model')}:{w.get('version', '?')}",
            "p50": _num(w.get("p50_ms")), "p95": _num(w.get("p95_ms")),
            "p99": _num(w.get("p99_ms")), "rps": _num(w.get("rps")),
            "error_rate": 100.0 * errors / count if count and errors is not None else
            (0.0 if count == 0 else None),
            "cpu": _num(w.get("cpu_percent")), "rss": rss / 2**20 if rss is not None else None,
            "count": count,
        })
    panels = ["latency (ms): p50 solid, p95 dashed, p99 dotted", "throughput (requests/s)",
              "error rate (%)", "CPU (%)", "memory (MiB resident)", "requests per window"]
    fig = make_subplots(rows=3, cols=2, shared_xaxes=True, subplot_titles=panels,
                        vertical_spacing=0.1)
    fig.update_layout(title={"text": title or "inference statistics over time"},
                      template="plotly_white", height=760,
                      margin={"l": 60, "r": 20, "t": 80, "b": 40})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return fig
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for i, (series, part) in enumerate(frame.sort_values("t").groupby("series", sort=True)):
        color = palette[i % len(palette)]
        common = {"x": part["t"], "mode": "lines+markers", "legendgroup": series,
                  "marker": {"size": 4}}
        for key, dash in (("p50", "solid"), ("p95", "dash"), ("p99", "dot")):
            fig.add_trace(go.Scatter(y=part[key], name=f"{series} {key}",
                                     line={"color": color, "dash": dash}, **common),
                          row=1, col=1)
        for (key, label), (row, col) in zip(
                (("rps", "req/s"), ("error_rate", "errors"), ("cpu", "CPU"), ("rss", "RSS"),
                 ("count", "requests")),
                ((1, 2), (2, 1), (2, 2), (3, 1), (3, 2)), strict=True):
            fig.add_trace(go.Scatter(y=part[key], name=f"{series} {label}",
                                     line={"color": color}, showlegend=False, **common),
                          row=row, col=col)
    return fig
