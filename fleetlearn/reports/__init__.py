"""Plotly figures of a run and its self-contained HTML report.

Figure builders are pure functions (plain data in, ``plotly.graph_objects.Figure``
out) shared by the report, the PNG export and the GUI:

>>> from fleetlearn.reports import fold_scores_figure
>>> fig = fold_scores_figure({"ridge": [0.71, 0.74, 0.69]}, "r2")
>>> fig.layout.title.text
'r2 per fold'

``build_report(registry, run_id, "report.html")`` writes every figure of a run,
its configuration, dataset schemas, significance leaderboards and model lineage
into one HTML file that opens offline (plotly.js is inlined once);
``render_report(registry, run_id)`` returns that HTML as text (what an API route
serves). Both are built from the read models of :mod:`fleetlearn.insights`.
``figures_of_run(registry, run_id, dataset=..., kind=...)`` gives the same figures one
by one, each with its kind (:data:`FIGURE_KINDS`), dataset and model (what
``GET /v1/runs/{id}/figures`` serves as Plotly JSON and the GUI's Runs page draws).
"""

from __future__ import annotations

from fleetlearn.reports._collect import DatasetReport, RunReport, TestSplit, collect_run
from fleetlearn.reports._figures import (
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
from fleetlearn.reports._report import (
    FIGURE_KINDS,
    SECTIONS,
    ReportFigure,
    build_report,
    collect_report,
    figures_of_run,
    render_html,
    render_report,
    require_png_export,
    run_figures,
    write_pngs,
    write_report,
)

__all__ = [
    "COLORS",
    "FIGURE_KINDS",
    "INFERENCE_FIELDS",
    "SECTIONS",
    "DatasetReport",
    "ReportFigure",
    "RunReport",
    "TestSplit",
    "build_report",
    "collect_report",
    "collect_run",
    "confusion_matrix_figure",
    "cost_quality_figure",
    "critical_difference_figure",
    "curve_figure",
    "figures_of_run",
    "fold_scores_figure",
    "inference_figure",
    "permutation_importance_figure",
    "precision_recall_figure",
    "predicted_vs_actual_figure",
    "render_html",
    "render_report",
    "require_png_export",
    "residuals_figure",
    "roc_figure",
    "run_figures",
    "trends_figure",
    "write_pngs",
    "write_report",
]
