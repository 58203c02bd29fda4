"""The run report: every figure of a run in one self-contained HTML file (and PNGs).

The HTML holds plotly.js once, inline, so it opens offline and can be mailed or
archived as one file; nothing is fetched from a CDN.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.io as pio
from plotly.offline import get_plotlyjs

from fleetlearn import __version__
from fleetlearn.errors import ConfigError, NotFoundError
from fleetlearn.evaluation import greater_is_better
from fleetlearn.insights import run_inference
from fleetlearn.reports import _figures as F
from fleetlearn.reports._collect import RunReport, collect_run

__all__ = ["FIGURE_KINDS", "ReportFigure", "SECTIONS", "build_report", "collect_report",
           "figures_of_run", "render_html", "run_figures", "write_pngs", "write_report"]

#: Section ids and headings of the report, in order.
SECTIONS = {
    "summary": "Summary",
    "config": "Configuration",
    "datasets": "Datasets and schemas",
    "leaderboards": "Leaderboards with significance",
    "across-datasets": "Comparison across datasets",
    "fold-scores": "Scores per fold",
    "training-curves": "Metrics during training and learning curves",
    "cost-quality": "Fit time vs score",
    "test-split": "Final models on the test split",
    "feature-importance": "Permutation feature importance",
    "trends": "Trends over runs and versions",
    "inference": "Inference statistics",
    "lineage": "Lineage of the registered models",
    "notes": "Notes and failures",
}


#: The kinds of figure a run has, in report order. Per dataset: scores per fold, the
#: metric during training (iterative models) or the learning curve, fit time vs score, the
#: held-out test split (confusion, ROC and precision-recall for classification; predicted
#: vs actual and residuals for regression), permutation importance, and the dataset's
#: versions over time. Per run (no dataset): the critical-difference diagram of a task
#: compared across datasets, and the inference statistics of its served models.
FIGURE_KINDS = ("critical-difference", "fold-scores", "training-curve", "learning-curve",
                "cost-quality", "confusion", "roc", "precision-recall",
                "predicted-vs-actual", "residuals", "importance", "trends", "inference")
#: Kinds drawn from the held-out test split (the tables and models loaded again).
TEST_SPLIT_KINDS = frozenset({"confusion", "roc", "precision-recall", "predicted-vs-actual",
                              "residuals", "importance"})


@dataclass(frozen=True)
class ReportFigure:
    """One figure of a report: its section, a file-safe key, the Plotly figure, its kind
    (one of :data:`FIGURE_KINDS`), and the dataset and model it is about (None for a
    figure of the whole run, or of every model of a dataset)."""

    section: str
    key: str
    figure: Any  # plotly.graph_objects.Figure
    kind: str
    dataset: str | None = None
    model: str | None = None

    @property
    def title(self) -> str:
        text = self.figure.layout.title.text
        return str(text) if text else self.key


def _key(*parts: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(str(p) for p in parts)).strip("_")


def run_figures(report: RunReport) -> list[ReportFigure]:
    """Every figure of a run's report, in report order.

    Examples
    --------
    >>> data = collect_run(Registry(), "3f2a9c")    # doctest: +SKIP
    >>> [f.key for f in run_figures(data)][:2]    # doctest: +SKIP
    ['cd-classification', 'fold-scores-wine']
    """
    out: list[ReportFigure] = []
    for task, comparison in report.across.items():
        out.append(ReportFigure("across-datasets", _key("cd", task), F.critical_difference_figure(
            comparison.average_ranks, comparison.critical_difference, comparison.groups,
            title=f"{task}: critical difference diagram (Nemenyi, alpha={comparison.alpha:g}, "
                  f"{len(comparison.datasets)} datasets)"), "critical-difference"))
    for d in report.datasets:
        board = d.board
        if d.fold_scores:
            tied = dict(zip(board["model"], board["tied_with_best"], strict=True))
            best = board.dropna(subset=["rank"])["model"].iloc[0] if board["rank"].notna().any() \
                else None
            out.append(ReportFigure("fold-scores", _key("fold-scores", d.name),
                                    F.fold_scores_figure(d.fold_scores, d.metric, tied, best,
                                                         title=f"{d.name}: {d.metric} per fold "
                                                               "(each point is one fold)"),
                                    "fold-scores", d.name))
    for d in report.datasets:
        for model, curve in d.curves.items():
            metric = curve.get("metric", "")
            if curve.get("kind") == "learning_curve":
                kind, title = "learning-curve", f"{d.name} / {model}: learning curve ({metric})"
            else:
                kind, title = "training-curve", f"{d.name} / {model}: {metric} during training"
            # The journal scores curves on the training rows and on the held-out test rows.
            if curve.get("validation") is not None:
                title += ", training rows vs held-out test rows"
            out.append(ReportFigure("training-curves", _key("curve", d.name, model),
                                    F.curve_figure(curve, title=title), kind, d.name, model))
    for d in report.datasets:
        rows = [{"model": r["model"], "fit_time_s": r["fit_time_s"], "score": r["cv_mean"],
                 "tied_with_best": r["tied_with_best"], "is_best": r["rank"] == 1}
                for _, r in d.board.iterrows() if r["status"] != "failed"]
        if rows and d.metric != "?":
            out.append(ReportFigure("cost-quality", _key("cost-quality", d.name),
                                    F.cost_quality_figure(rows, d.metric,
                                                          greater_is_better(d.metric),
                                                          title=f"{d.name}: fit time vs "
                                                                f"{d.metric}"),
                                    "cost-quality", d.name))
    for d in report.datasets:
        test = d.test
        if test is None or not test.predictions:
            continue
        n = f"{test.n_rows} test rows"
        if d.task == "classification":
            if test.focus_model is not None:
                out.append(ReportFigure("test-split", _key("confusion", d.name, test.focus_model),
                                        F.confusion_matrix_figure(
                                            test.y_true, test.predictions[test.focus_model],
                                            test.labels,
                                            title=f"{d.name} / {test.focus_model}: confusion "
                                                  f"matrix ({n})"),
                                        "confusion", d.name, test.focus_model))
            if test.scores:
                out.append(ReportFigure("test-split", _key("roc", d.name), F.roc_figure(
                    test.y_true, test.scores, title=f"{d.name}: ROC curves ({n})"), "roc",
                    d.name))
                out.append(ReportFigure("test-split", _key("pr", d.name),
                                        F.precision_recall_figure(
                                            test.y_true, test.scores,
                                            title=f"{d.name}: precision-recall curves ({n})"),
                                        "precision-recall", d.name))
        else:
            out.append(ReportFigure("test-split", _key("predicted", d.name),
                                    F.predicted_vs_actual_figure(
                                        test.y_true, test.predictions,
                                        title=f"{d.name}: predicted vs actual ({n})"),
                                    "predicted-vs-actual", d.name))
            out.append(ReportFigure("test-split", _key("residuals", d.name),
                                    F.residuals_figure(test.y_true, test.predictions,
                                                       title=f"{d.name}: residuals ({n})"),
                                    "residuals", d.name))
    for d in report.datasets:
        test = d.test
        if test is not None and test.importance:
            out.append(ReportFigure("feature-importance", _key("importance", d.name),
                                    F.permutation_importance_figure(
                                        test.importance, d.metric,
                                        title=f"{d.name} / {test.focus_model}: permutation "
                                              f"feature importance ({test.n_rows} test rows)"),
                                    "importance", d.name, test.focus_model))
    for d in report.datasets:
        if d.trend_points is not None and not d.trend_points.empty:
            out.append(ReportFigure("trends", _key("trends", d.name), F.trends_figure(
                d.trend_points, d.metric,
                title=f"{d.name} (fingerprint {d.record.fingerprint[:12]}): test {d.metric} "
                      "of every registered version over time"), "trends", d.name))
    if report.inference:
        out.append(ReportFigure("inference", "inference", F.inference_figure(report.inference),
                                "inference"))
    return out


def figures_of_run(registry: Any, run_id: str, *, dataset: str | None = None,
                   kind: str | None = None, metric: str | None = None, alpha: float = 0.05,
                   inference: list[dict[str, Any]] | None = None, test_split: bool = True,
                   importance_repeats: int = 5, trusted: tuple[str, ...] = ()
                   ) -> list[ReportFigure]:
    """The figures of a run's report (:func:`run_figures`), from the registry alone:
    what ``GET /v1/runs/{id}/figures`` serves and the GUI's Runs page draws.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.
    dataset : str, optional
        Only the figures of this dataset of the run (its name in the run).
    kind : str, optional
        Only figures of this kind (one of :data:`FIGURE_KINDS`). A kind that is not drawn
        from the test split skips reloading the tables and models.
    metric, alpha, inference, test_split, importance_repeats, trusted
        As in :func:`render_report`.

    Returns
    -------
    list of ReportFigure
        In report order; empty when the run has no figure of that kind (yet).

    Raises
    ------
    ConfigError
        An unknown kind, a bad ``alpha``, a metric that fits none of the run's tasks.
    NotFoundError
        No such run, or no such dataset in it.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> figures = figures_of_run(Registry(), "3f2a9c", kind="roc")    # doctest: +SKIP
    >>> [(f.dataset, f.title) for f in figures]    # doctest: +SKIP
    [('iris', 'iris: ROC curves (30 test rows)')]
    """
    if kind is not None and kind not in FIGURE_KINDS:
        raise ConfigError(f"The 'kind' parameter must be one of {', '.join(FIGURE_KINDS)}. "
                          f"Got {kind!r} instead.")
    if dataset is not None:
        run = registry.get_run(run_id)
        names = [r.name for r in registry.run_datasets(run.id)]
        if dataset not in names:
            raise NotFoundError(f"Run {run.id} has no dataset {dataset!r}; its datasets: "
                                f"{', '.join(names) or 'none'}.")
    if kind is not None and kind not in TEST_SPLIT_KINDS:
        test_split = False
    if inference is None and dataset is None and kind in (None, "inference"):
        inference = run_inference(registry, run_id) or None
    report = collect_report(registry, run_id, metric=metric, alpha=alpha, inference=inference,
                            test_split=test_split, importance_repeats=importance_repeats,
                            trusted=trusted)
    return [f for f in run_figures(report)
            if (dataset is None or f.dataset == dataset) and (kind is None or f.kind == kind)]


# ------------------------------------------------------------------------ HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
header { background: #243b53; color: white; padding: 18px 32px; }
header h1 { margin: 0 0 6px 0; font-size: 22px; }
header p { margin: 0; opacity: 0.85; }
nav { padding: 8px 32px; background: #e9eef3; font-size: 14px; }
nav a { margin-right: 14px; color: #243b53; }
main { padding: 8px 32px 40px 32px; max-width: 1200px; }
section { background: white; border: 1px solid #e2e2e2; border-radius: 6px; padding: 8px 20px 16px;
          margin: 18px 0; }
h2 { font-size: 19px; border-bottom: 1px solid #eee; padding-bottom: 6px; }
h3 { font-size: 16px; margin-top: 20px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #eee; padding: 4px 10px; text-align: left; }
th { background: #f3f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #e8f5e9; }
tr.tied td { background: #eef4fb; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; font-size: 12px; }
.note { color: #8a5300; }
.muted { color: #777; font-size: 13px; }
.figure { margin: 10px 0 24px 0; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def _table(rows: Sequence[dict[str, Any]], classes: Sequence[str] | None = None) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    head = "".join(f"<th>{_e(k)}</th>" for k in rows[0])
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{classes[i]}'" if classes and classes[i] else ""
        cells = "".join(
            f"<td class='num'>{_e(_fmt(v))}</td>" if isinstance(v, int | float)
            and not isinstance(v, bool) else f"<td>{_e(_fmt(v))}</td>" for v in row.values())
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _tied_text(value: Any, failed: bool) -> str:
    if failed:
        return ""
    if value is None or value is pd.NA:
        return "not tested"
    return "yes" if bool(value) else "no"


def _p_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _leaderboard_html(report: RunReport) -> str:
    parts = [f"<p class='muted'>Models are ranked by their mean cross-validation score. "
             f"<b>tied</b>: not significantly different from the best (corrected resampled "
             f"t-test of Nadeau and Bengio on paired folds, Holm-adjusted p &ge; "
             f"{report.alpha:g}). 95 % CI: t interval of the mean over folds. "
             f"Green: best; blue: tied with the best.</p>"]
    for d in report.datasets:
        rows, classes = [], []
        for _, r in d.board.iterrows():
            failed = r["status"] == "failed"
            ci = "" if pd.isna(r["ci_low"]) else f"{r['ci_low']:.4f} – {r['ci_high']:.4f}"
            rows.append({
                "#": "" if pd.isna(r["rank"]) else int(r["rank"]),
                "model": r["model"], "cv mean": r["cv_mean"], "cv sd": r["cv_std"],
                "95% CI": ci, "p": _p_text(r["p_value"]), "p Holm": _p_text(r["p_adjusted"]),
                "tied": _tied_text(r["tied_with_best"], failed), "test": r["test"],
                "fit s": r["fit_time_s"], "ms/row": r["predict_ms_per_row"],
                "folds": int(r["folds"]), "status": r["status"],
            })
            tied = r["tied_with_best"]
            classes.append("best" if r["rank"] == 1 else
                           "tied" if (tied is not pd.NA and tied is not None and bool(tied)
                                      and not failed) else "")
        parts.append(f"<h3>{_e(d.name)}: {_e(d.metric)}</h3>{_table(rows, classes)}")
    return "".join(parts)


def _summary_html(report: RunReport) -> str:
    rows = []
    for d in report.datasets:
        board = d.board
        ranked = board.dropna(subset=["rank"])
        if ranked.empty:
            rows.append({"dataset": d.name, "metric": d.metric, "best": "", "cv mean": None,
                         "tied with the best": ""})
            continue
        best = ranked.iloc[0]
        tied = [m for m, t in zip(ranked["model"], ranked["tied_with_best"], strict=True)
                if m != best["model"] and t is not pd.NA and bool(t)]
        rows.append({"dataset": d.name, "metric": d.metric, "best": best["model"],
                     "cv mean": best["cv_mean"], "test": best["test"],
                     "tied with the best": ", ".join(tied) or "none"})
    run = report.run
    seconds = ""
    if run.finished_at and run.started_at:
        seconds = f", {(run.finished_at - run.started_at).total_seconds():.1f} s"
    return (f"<p>Run <b>{_e(run.id)}</b> {_e(run.name or '')}: status <b>{_e(run.status)}</b>, "
            f"created {run.created_at:%Y-%m-%d %H:%M:%S} UTC{seconds}, seed {run.seed}, "
            f"{len(report.datasets)} dataset(s), {len(report.models)} registered model(s)."
            f"</p>{_table(rows)}")


def _datasets_html(report: RunReport) -> str:
    parts = []
    for d in report.datasets:
        rec = d.record
        schema = rec.schema or {}
        parts.append(
            f"<h3>{_e(d.name)}</h3><p>{_e(rec.task)}, target <code>{_e(rec.target)}</code>, "
            f"{rec.n_rows} rows, {rec.n_features} feature columns. Source "
            f"<code>{_e(rec.source)}</code>; fingerprint <code>{_e(rec.fingerprint)}</code>.</p>")
        if schema.get("classes"):
            parts.append(f"<p>Classes: {_e(', '.join(map(str, schema['classes'])))}</p>")
        cols = [{"column": c.get("name"), "kind": c.get("kind"), "dtype": c.get("dtype"),
                 "nullable": "yes" if c.get("nullable") else "no",
                 "categories": (", ".join(map(str, c["categories"][:12]))
                                + (" …" if len(c["categories"]) > 12 else ""))
                 if c.get("categories") else ""}
                for c in schema.get("columns", [])]
        parts.append(_table(cols))
        if schema.get("dropped"):
            parts.append("<p>Dropped columns:</p>" + _table(
                [{"column": k, "why": v} for k, v in schema["dropped"].items()]))
    return "".join(parts)


def _across_html(report: RunReport, figures: dict[str, str]) -> str:
    if not report.across:
        text = " ".join(report.notes) or (
            "This run has fewer than 2 datasets of one task with models in common, so there "
            "is no comparison across datasets. Train the same models on 2 or more tables to "
            "get average ranks, the Friedman test and the Nemenyi critical difference.")
        return f"<p class='muted'>{_e(text)}</p>"
    parts = []
    for task, c in report.across.items():
        f = c.friedman
        rows = [{"model": m, "average rank": r,
                 "not significantly different from": ", ".join(
                     sorted({x for g in c.groups if m in g for x in g} - {m}))}
                for m, r in c.average_ranks.items()]
        parts.append(
            f"<h3>{_e(task)}: {len(c.datasets)} datasets ({_e(', '.join(c.datasets))})</h3>"
            f"{_table(rows)}<p>Friedman &chi;&sup2; = {f['statistic']:.3f} (df {f['df']}), "
            f"p = {_e(_p_text(f['p_value']))}; Iman-Davenport F = {_fmt(f['f_statistic'], 3)}, "
            f"p = {_e(_p_text(f['f_p_value']))}. Nemenyi critical difference "
            f"{c.critical_difference:.3f} (q = {c.q_alpha:.3f}, alpha {c.alpha:g}).</p>")
        if c.dropped_models:
            parts.append(f"<p class='note'>Not on every dataset, so left out: "
                         f"{_e(', '.join(c.dropped_models))}.</p>")
        parts.append(figures.get(_key("cd", task), ""))
    for note in report.notes:
        parts.append(f"<p class='note'>{_e(note)}</p>")
    return "".join(parts)


def _lineage_html(report: RunReport) -> str:
    rows = []
    datasets = {d.record.id: d.record for d in report.datasets}
    for mv in report.models:
        rec = datasets.get(mv.dataset_id)
        rows.append({
            "model": mv.ref, "aliases": ", ".join(mv.aliases), "run": mv.run_id,
            "trial": mv.trial_id, "dataset": rec.name if rec else mv.dataset_id,
            "fingerprint": rec.fingerprint[:16] if rec else "",
            "estimator": mv.params.get("estimator", ""),
            "params": json.dumps({k: v for k, v in mv.params.items() if k != "estimator"},
                                 default=str)[:160],
            "artifact sha256": mv.artifact_digest, "bytes": mv.artifact_size,
            "registered": f"{mv.created_at:%Y-%m-%d %H:%M:%S}",
        })
    return ("<p class='muted'>Every model version this run registered: load one with "
            "<code>Registry().load_model(name, version)</code>; its artifact is checked "
            "against the sha256 below.</p>" + _table(rows))


def _notes_html(report: RunReport) -> str:
    parts = []
    for d in report.datasets:
        for note in d.notes:
            parts.append(f"<li><b>{_e(d.name)}</b>: {_e(note)}</li>")
    body = f"<ul>{''.join(parts)}</ul>" if parts else "<p class='muted'>No notes.</p>"
    if report.failures:
        body += "<h3>Failed units</h3>" + _table(report.failures)
    return body


def _figure_html(fig: ReportFigure) -> str:
    height = fig.figure.layout.height or 420
    div = pio.to_html(fig.figure, full_html=False, include_plotlyjs=False, div_id=fig.key,
                      default_width="100%", default_height=f"{int(height)}px",
                      config={"displaylogo": False, "responsive": True})
    return f"<div class='figure'>{div}</div>"


def render_html(report: RunReport, figures: Sequence[ReportFigure] | None = None) -> str:
    """The report as one self-contained HTML document (plotly.js inlined once).

    Examples
    --------
    >>> text = render_html(collect_run(Registry(), "3f2a9c"))    # doctest: +SKIP
    """
    figures = run_figures(report) if figures is None else list(figures)
    by_key = {f.key: _figure_html(f) for f in figures}
    by_section: dict[str, list[str]] = {}
    for f in figures:
        by_section.setdefault(f.section, []).append(by_key[f.key])

    def figs(section: str, empty: str) -> str:
        found = by_section.get(section)
        return "".join(found) if found else f"<p class='muted'>{_e(empty)}</p>"

    run = report.run
    body = {
        "summary": _summary_html(report),
        "config": "<details><summary>The run's full configuration (what <code>fleetlearn "
                  "train --resume</code> reads)</summary>"
                  f"<pre>{_e(json.dumps(run.config, indent=2, default=str))}</pre></details>",
        "datasets": _datasets_html(report),
        "leaderboards": _leaderboard_html(report),
        "across-datasets": _across_html(report, by_key),
        "fold-scores": figs("fold-scores", "No fold scores."),
        "training-curves": figs("training-curves", "No curves were recorded (curves off)."),
        "cost-quality": figs("cost-quality", "No fit times."),
        "test-split": figs("test-split", "No test-split figures: see the notes below."),
        "feature-importance": figs("feature-importance",
                                   "No feature importance: see the notes below."),
        "trends": figs("trends", "No registered versions to follow over time."),
        "inference": figs("inference", "No inference statistics: none of this run's "
                          "models has been served yet ('fleetlearn serve' records latency, "
                          "throughput, errors, CPU and memory in the registry), and no "
                          "--inference FILE.json was given."),
        "lineage": _lineage_html(report),
        "notes": _notes_html(report),
    }
    nav = "".join(f"<a href='#{sid}'>{_e(title)}</a>" for sid, title in SECTIONS.items())
    sections = "".join(f"<section id='{sid}'><h2>{_e(title)}</h2>{body[sid]}</section>"
                       for sid, title in SECTIONS.items())
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>fleetlearn run {_e(run.id)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>fleetlearn run {_e(run.id)} {_e(run.name or '')}</h1>"
        f"<p>Report generated {generated} by fleetlearn {__version__}.</p></header>"
        f"<nav>{nav}</nav><main>{sections}</main></body></html>\n"
    )


# ------------------------------------------------------------------------- PNG


def require_png_export() -> None:
    """Raise ConfigError with the install hint when PNG export (Kaleido) is missing.

    Callers check this before long work, so a missing extra costs nothing.
    """
    try:
        # Imported only to see whether the optional extra is there.
        import kaleido  # noqa: F401
    except ImportError as exc:
        raise ConfigError("PNG export needs Kaleido: pip install 'fleetlearn[png]' (and a "
                          "Chromium, e.g. apt-get install chromium).") from exc


def write_pngs(figures: Sequence[ReportFigure], folder: str | Path, *, width: int = 1100,
               scale: float = 1.0) -> list[Path]:
    """Write each figure as ``<folder>/<NN>-<key>.png`` (Kaleido with a local Chromium).

    Raises
    ------
    ConfigError
        Kaleido is not installed, or it finds no Chrome/Chromium to render with.

    Examples
    --------
    >>> write_pngs(run_figures(data), "figures/")    # doctest: +SKIP
    """
    require_png_export()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:02d}-{f.key}.png" for i, f in enumerate(figures, start=1)]
    if not figures:
        return []
    heights = [int(f.figure.layout.height or 420) for f in figures]
    try:
        if hasattr(pio, "write_images"):  # plotly >= 6.1: one browser for every figure
            pio.write_images([f.figure for f in figures], paths, format="png", width=width,
                             height=heights, scale=scale)
        else:
            for f, p, h in zip(figures, paths, heights, strict=True):
                pio.write_image(f.figure, p, format="png", width=width, height=h, scale=scale)
    except Exception as exc:
        name = type(exc).__name__
        if "ChromeNotFound" in name or "BrowserFailed" in name or "Chrome" in str(exc):
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()),
                         name)
            raise ConfigError(
                f"PNG export found no working Chrome/Chromium ({first[:200]}). Install one "
                "(Debian: apt-get install chromium) or point BROWSER_PATH at its binary."
            ) from exc
        raise
    return paths


def write_report(report: RunReport, path: str | Path,
                 png_dir: str | Path | None = None) -> tuple[Path, list[Path]]:
    """Write a collected report as HTML (atomically) and optionally its figures as PNG.

    Returns
    -------
    (Path, list of Path)
        The HTML file and the PNG files written.

    Examples
    --------
    >>> write_report(collect_run(Registry(), "3f2a9c"), "report.html")    # doctest: +SKIP
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"Report path {target} is a folder: give a file name such as "
                          f"{target / 'report.html'}.")
    figures = run_figures(report)
    text = render_html(report, figures)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    pngs = write_pngs(figures, png_dir) if png_dir is not None else []
    return target, pngs


def build_report(registry: Any, run_id: str, path: str | Path, *, metric: str | None = None,
                 alpha: float = 0.05, png_dir: str | Path | None = None,
                 inference: list[dict[str, Any]] | None = None, test_split: bool = True,
                 importance_repeats: int = 5, trusted: tuple[str, ...] = ()) -> Path:
    """Write the report of a run as one self-contained HTML file.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.
    path : str or Path
        The HTML file to write (its folder is created).
    metric : str, optional
        Rank and compare by this metric instead of the run's.
    alpha : float
        Significance level of the tied-with-best marking and the critical difference.
    png_dir : str or Path, optional
        Also write every figure there as PNG (needs Kaleido and Chromium).
    inference : list of dict, optional
        Inference statistics windows (see :func:`inference_figure`).
    test_split, importance_repeats, trusted
        As in :func:`collect_run`.

    Returns
    -------
    Path
        The HTML file written.

    Raises
    ------
    ConfigError
        Bad ``alpha``, a folder as ``path``, bad inference windows, PNG export
        without Kaleido or Chromium.
    NotFoundError
        No such run.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> build_report(Registry(), "3f2a9c", "report.html")    # doctest: +SKIP
    PosixPath('report.html')
    """
    report = collect_report(registry, run_id, metric=metric, alpha=alpha, inference=inference,
                            test_split=test_split, importance_repeats=importance_repeats,
                            trusted=trusted, path=path)
    return write_report(report, path, png_dir)[0]


def collect_report(registry: Any, run_id: str, *, metric: str | None = None,
                   alpha: float = 0.05, inference: list[dict[str, Any]] | None = None,
                   test_split: bool = True, importance_repeats: int = 5,
                   trusted: tuple[str, ...] = (), path: str | Path | None = None) -> RunReport:
    """:func:`collect_run` with the arguments checked first (one clear error each)."""
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ConfigError(f"The 'alpha' parameter must be a float in the range (0, 1). Got "
                          f"{alpha!r} instead.")
    if path is not None and Path(path).is_dir():
        raise ConfigError(f"Report path {path} is a folder: give a file name such as "
                          f"{Path(path) / 'report.html'}.")
    if inference is not None:
        try:
            F.inference_figure(inference)  # check the windows before the long part
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"Bad inference statistics: {exc}") from exc
    return collect_run(registry, run_id, metric=metric, alpha=alpha, test_split=test_split,
                       importance_repeats=importance_repeats, trusted=trusted,
                       inference=inference)


def render_report(registry: Any, run_id: str, *, metric: str | None = None,
                  alpha: float = 0.05, inference: list[dict[str, Any]] | None = None,
                  test_split: bool = True, importance_repeats: int = 5,
                  trusted: tuple[str, ...] = ()) -> str:
    """The report of a run as self-contained HTML text, from the registry alone.

    What ``fleetlearn report`` writes, without touching the file system beyond reading
    the run's tables again for the test-split figures; made for a route (``GET
    /v1/runs/{id}/report``) that has a registry, a run id and options.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.
    metric : str, optional
        Rank and compare by this metric instead of the run's.
    alpha : float
        Significance level, in (0, 1).
    inference : list of dict, optional
        Inference statistics windows; by default what the registry recorded while the
        run's models were served (:func:`fleetlearn.insights.run_inference`).
    test_split, importance_repeats, trusted
        As in :func:`collect_run`. ``test_split=False`` skips reloading the tables and
        models (the fast report).

    Returns
    -------
    str
        One HTML document (plotly.js inlined once) that opens offline.

    Raises
    ------
    ConfigError
        Bad ``alpha`` or inference windows, or a metric that fits none of the run's tasks.
    NotFoundError
        No such run.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> html = render_report(Registry(), "3f2a9c", test_split=False)    # doctest: +SKIP
    >>> html.startswith("<!DOCTYPE html>")    # doctest: +SKIP
    True
    """
    if inference is None:
        inference = run_inference(registry, run_id) or None
    report = collect_report(registry, run_id, metric=metric, alpha=alpha, inference=inference,
                            test_split=test_split, importance_repeats=importance_repeats,
                            trusted=trusted)
    return render_html(report)
